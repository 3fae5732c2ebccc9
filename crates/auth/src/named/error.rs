//! Why the token records cannot be read or changed: [`TokenStoreError`], with the HTTP
//! status and the stable code each kind of failure answers with.

use picoclaw_credentials::CredentialError;

use super::set::MAX_TOKENS;

/// Why the token records cannot be read or changed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenStoreError {
    /// A record in `.security.yml` is malformed.
    #[error(".security.yml: `{key}`: {message}")]
    Invalid {
        /// Where, e.g. `tokens[2].sha256`.
        key: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// No token has this id or name.
    #[error("no named token with id or name `{0}` (see `picoclaw token list`)")]
    NotFound(String),
    /// The name is used by another active token.
    #[error("a token named `{0}` already exists; pick another name or revoke it first")]
    NameTaken(String),
    /// The name is not acceptable.
    #[error("invalid token name: {0}")]
    InvalidName(&'static str),
    /// The token is already revoked.
    #[error("token {id} (`{name}`) is revoked; create a new one with `picoclaw token create`")]
    Revoked {
        /// Public id.
        id: String,
        /// Its name.
        name: String,
    },
    /// Too many tokens.
    #[error("at most {MAX_TOKENS} named tokens are supported; revoke unused ones first")]
    TooMany,
    /// The OS random source failed.
    #[error("cannot generate a random token: {0}")]
    Random(#[from] getrandom::Error),
    /// Reading or writing `.security.yml` failed.
    #[error(transparent)]
    File(#[from] CredentialError),
    /// The credential's value comes from an environment variable, which overrides the
    /// file: it can only be changed where that variable is set.
    #[error(
        "{key} comes from the environment variable {var}, which overrides .security.yml, so picoclaw \
         cannot change it. Change {var} where it is set (the service unit's Environment=, the container \
         or pod spec / Kubernetes Secret, or your shell profile), then restart the gateway so it sees the \
         new value"
    )]
    EnvManaged {
        /// The key, e.g. `channels.pico.token`.
        key: &'static str,
        /// The variable.
        var: &'static str,
    },
    /// The credential's value is the content of a file picoclaw does not own (a `_FILE`
    /// variable or the systemd credentials directory): its owner rotates it by replacing
    /// the file, which the gateway watches.
    #[error(
        "{key} comes from {origin}, a file picoclaw reads but does not own, so picoclaw \
         cannot rotate it. Replace that file's content (the Kubernetes Secret, the systemd credential or the \
         file itself); the running gateway applies the new value without a restart, the old one stays valid \
         for gateway.rotation_grace"
    )]
    FileManaged {
        /// The key, e.g. `channels.pico.token`.
        key: &'static str,
        /// The source, e.g. `file:$PICOCLAW_CHANNELS_PICO_TOKEN_FILE`.
        origin: String,
    },
    /// The fixed credential is not configured at all.
    #[error("{0} is not set, so there is nothing to rotate")]
    NotSet(&'static str),
    /// An expiry that is not in the future.
    #[error("the expiry must be in the future")]
    InvalidExpiry,
    /// The database the replicas share the named tokens in (`storage.url`) could not be
    /// read or written; nothing was changed.
    #[error("the shared token records in PostgreSQL (storage.url) are unavailable: {message}")]
    Shared {
        /// The server's or the driver's reason (never a secret).
        message: String,
    },
    /// `pico` / `gateway` rotated through the token service while the named tokens are
    /// shared by replicas: their values are per home, so one replica would change alone.
    #[error(
        "{key} is read by every replica from its own configuration while storage.url shares the named \
         tokens, so rotating it on one replica would leave the others on the old value. Rotate it where all \
         replicas read it (the Kubernetes Secret or file behind PICOCLAW_{env}_FILE): each replica applies \
         the new value without a restart and keeps the old one for gateway.rotation_grace"
    )]
    PerReplica {
        /// The key, e.g. `channels.pico.token`.
        key: &'static str,
        /// Its environment name without the `PICOCLAW_` prefix.
        env: &'static str,
    },
    /// The advisory lock beside `.security.yml` could not be taken.
    #[error("{path}: {message}")]
    Lock {
        /// The lock file.
        path: String,
        /// Why.
        message: String,
    },
}

impl TokenStoreError {
    /// The HTTP status an API should answer with.
    pub fn status(&self) -> u16 {
        match self {
            TokenStoreError::NotFound(_) => 404,
            TokenStoreError::NameTaken(_)
            | TokenStoreError::Revoked { .. }
            | TokenStoreError::EnvManaged { .. }
            | TokenStoreError::FileManaged { .. }
            | TokenStoreError::NotSet(_)
            | TokenStoreError::PerReplica { .. }
            | TokenStoreError::TooMany => 409,
            TokenStoreError::InvalidName(_) | TokenStoreError::InvalidExpiry => 400,
            TokenStoreError::Lock { .. } | TokenStoreError::Shared { .. } => 503,
            TokenStoreError::Invalid { .. } | TokenStoreError::Random(_) | TokenStoreError::File(_) => 500,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenStoreError::Invalid { .. } => "invalid_security_file",
            TokenStoreError::NotFound(_) => "token_not_found",
            TokenStoreError::NameTaken(_) => "name_taken",
            TokenStoreError::InvalidName(_) => "invalid_name",
            TokenStoreError::Revoked { .. } => "token_revoked",
            TokenStoreError::TooMany => "too_many_tokens",
            TokenStoreError::Random(_) => "random_failed",
            TokenStoreError::File(_) => "security_file_error",
            TokenStoreError::EnvManaged { .. } => "env_managed",
            TokenStoreError::FileManaged { .. } => "file_managed",
            TokenStoreError::NotSet(_) => "not_set",
            TokenStoreError::InvalidExpiry => "invalid_expiry",
            TokenStoreError::Lock { .. } => "busy",
            TokenStoreError::Shared { .. } => "shared_tokens_unavailable",
            TokenStoreError::PerReplica { .. } => "per_replica",
        }
    }
}
