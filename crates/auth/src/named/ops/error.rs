//! [`TokenOpError`]: why a token operation was refused or failed, with one stable code
//! and one HTTP status per variant. `picoclaw token` prints the message; the admin API
//! answers `{"error": {"code", "message"}}` with the status. No message carries a secret
//! or echoes a field's value.

use picoclaw_credentials::CredentialError;

use crate::audit::Outcome;
use crate::named::{FixedCredential, MAX_TOKENS, TokenStoreError};

/// A field of a token request, as both the CLI (`--grace`) and the API (`"grace"`) name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// `name` / `--name`.
    Name,
    /// `scope` / `--scope`.
    Scope,
    /// `expires` / `--expires`.
    Expires,
    /// `grace` / `--grace`.
    Grace,
    /// The `{key}` of the API path / the `ID|NAME` argument.
    Key,
    /// The API's JSON body as a whole.
    Body,
}

impl Field {
    /// The field's name; also the CLI flag's name, where there is one.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Scope => "scope",
            Field::Expires => "expires",
            Field::Grace => "grace",
            Field::Key => "key",
            Field::Body => "body",
        }
    }

    /// True when the CLI takes it as a `--flag` (the key is a positional argument and
    /// the body exists only in the API).
    pub fn is_flag(self) -> bool {
        matches!(self, Field::Name | Field::Scope | Field::Expires | Field::Grace)
    }
}

/// Why a token operation was refused or failed. The message of an invalid field starts
/// with the field's name (`grace: ...`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenOpError {
    /// `name` is not an acceptable token name.
    #[error("name: invalid token name: {reason}")]
    InvalidName {
        /// What a name must be.
        reason: &'static str,
    },
    /// `scope` is not `read`, `chat` or `admin`.
    #[error("scope: expected `read`, `chat` or `admin`")]
    InvalidScope,
    /// `expires` is neither a positive duration nor a future RFC 3339 time.
    #[error("expires: {problem}")]
    InvalidExpires {
        /// What is wrong and what was expected.
        problem: String,
    },
    /// `grace` is not a duration.
    #[error("grace: {problem}")]
    InvalidGrace {
        /// What is wrong and what was expected.
        problem: String,
    },
    /// The key cannot name any credential that can be changed.
    #[error("key: {reason}")]
    InvalidKey {
        /// What was expected.
        reason: &'static str,
    },
    /// The API body is not the expected JSON object.
    #[error("body: expected JSON {expected}: {detail}")]
    InvalidBody {
        /// The expected shape.
        expected: &'static str,
        /// The parser's complaint, quoted values blanked.
        detail: String,
    },
    /// No named token has this id or name.
    #[error("no named token with id or name `{key}` (see `picoclaw token list`)")]
    NotFound {
        /// The id or name asked for (a valid id or name: never a secret).
        key: String,
    },
    /// The name is used by another token that is not revoked.
    #[error("a token named `{name}` already exists; pick another name or revoke it first")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// The token is revoked: it can be neither revoked again nor rotated.
    #[error("token {id} (`{name}`) is revoked; create a new one with `picoclaw token create`")]
    Revoked {
        /// Its id.
        id: String,
        /// Its name.
        name: String,
    },
    /// `pico` and `gateway` are only ever replaced, never removed.
    #[error(
        "{} cannot be revoked without a replacement; rotate it instead (`picoclaw token rotate {}` or \
         POST /api/tokens/{}/rotate): without a grace the old value stops working at once",
        .credential.key(), .credential.id(), .credential.id()
    )]
    NotRevocable {
        /// The credential.
        credential: FixedCredential,
    },
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
    /// The fixed credential is not configured, so there is nothing to rotate.
    #[error("{key} is not set, so there is nothing to rotate; {}", not_set_hint(key))]
    NotSet {
        /// The key, e.g. `channels.pico.token`.
        key: &'static str,
    },
    /// The file holds as many tokens as it may.
    #[error("at most {MAX_TOKENS} named tokens are supported; revoke unused ones first")]
    TooMany,
    /// Another writer held `.security.yml.lock` for too long.
    #[error("{path}: {message}")]
    Busy {
        /// The lock file.
        path: String,
        /// Why.
        message: String,
    },
    /// The shared token records (PostgreSQL, `storage.url`) could not be read or written.
    #[error("the shared token records in PostgreSQL (storage.url) are unavailable: {message}")]
    SharedStore {
        /// Why (never a secret).
        message: String,
    },
    /// `pico` / `gateway` cannot be rotated on one replica (see
    /// [`TokenStoreError::PerReplica`]).
    #[error("{0}")]
    PerReplica(String),
    /// A record in `.security.yml` is malformed (the file is left as it is).
    #[error(".security.yml: `{key}`: {message}")]
    InvalidRecord {
        /// Where, e.g. `tokens[2].sha256`.
        key: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Reading or writing `.security.yml` failed.
    #[error(transparent)]
    SecurityFile(CredentialError),
    /// The OS random source failed.
    #[error("cannot generate a random token: {0}")]
    Random(getrandom::Error),
}

fn not_set_hint(key: &str) -> &'static str {
    match FixedCredential::from_key(key) {
        Some(FixedCredential::Pico) => "`picoclaw onboard` creates one",
        Some(FixedCredential::Gateway) | None => {
            "local tools use the runtime token; set gateway.token in .security.yml for remote admin clients"
        }
    }
}

impl TokenOpError {
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> u16 {
        match self {
            TokenOpError::InvalidName { .. }
            | TokenOpError::InvalidScope
            | TokenOpError::InvalidExpires { .. }
            | TokenOpError::InvalidGrace { .. }
            | TokenOpError::InvalidBody { .. } => 400,
            TokenOpError::InvalidKey { .. } | TokenOpError::NotFound { .. } => 404,
            TokenOpError::NameTaken { .. }
            | TokenOpError::Revoked { .. }
            | TokenOpError::NotRevocable { .. }
            | TokenOpError::EnvManaged { .. }
            | TokenOpError::FileManaged { .. }
            | TokenOpError::NotSet { .. }
            | TokenOpError::PerReplica(_)
            | TokenOpError::TooMany => 409,
            TokenOpError::Busy { .. } | TokenOpError::SharedStore { .. } => 503,
            TokenOpError::InvalidRecord { .. } | TokenOpError::SecurityFile(_) | TokenOpError::Random(_) => {
                500
            }
        }
    }

    /// The stable, machine-readable code (API bodies and the audit log).
    pub fn code(&self) -> &'static str {
        match self {
            TokenOpError::InvalidName { .. } => "invalid_name",
            TokenOpError::InvalidScope => "invalid_scope",
            TokenOpError::InvalidExpires { .. } => "invalid_expires",
            TokenOpError::InvalidGrace { .. } => "invalid_grace",
            TokenOpError::InvalidKey { .. } => "invalid_key",
            TokenOpError::InvalidBody { .. } => "invalid_body",
            TokenOpError::NotFound { .. } => "token_not_found",
            TokenOpError::NameTaken { .. } => "name_taken",
            TokenOpError::Revoked { .. } => "token_revoked",
            TokenOpError::NotRevocable { .. } => "not_revocable",
            TokenOpError::EnvManaged { .. } => "env_managed",
            TokenOpError::FileManaged { .. } => "file_managed",
            TokenOpError::NotSet { .. } => "not_set",
            TokenOpError::TooMany => "too_many_tokens",
            TokenOpError::Busy { .. } => "busy",
            TokenOpError::SharedStore { .. } => "shared_tokens_unavailable",
            TokenOpError::PerReplica(_) => "per_replica",
            TokenOpError::InvalidRecord { .. } => "invalid_security_file",
            TokenOpError::SecurityFile(_) => "security_file_error",
            TokenOpError::Random(_) => "random_failed",
        }
    }

    /// The request field that was refused, for errors about one field.
    pub fn field(&self) -> Option<Field> {
        match self {
            TokenOpError::InvalidName { .. } => Some(Field::Name),
            TokenOpError::InvalidScope => Some(Field::Scope),
            TokenOpError::InvalidExpires { .. } => Some(Field::Expires),
            TokenOpError::InvalidGrace { .. } => Some(Field::Grace),
            TokenOpError::InvalidKey { .. } => Some(Field::Key),
            TokenOpError::InvalidBody { .. } => Some(Field::Body),
            _ => None,
        }
    }

    /// Whether the audit log records this failure, and how: a refusal to change a
    /// credential that exists (`denied`), or a failure of the file or the system
    /// (`error`). Bad input, unknown tokens and changes that would change nothing are not
    /// recorded: no credential was at stake.
    pub fn audit_outcome(&self) -> Option<Outcome> {
        match self {
            TokenOpError::EnvManaged { .. }
            | TokenOpError::FileManaged { .. }
            | TokenOpError::PerReplica(_)
            | TokenOpError::NotRevocable { .. } => Some(Outcome::Denied),
            TokenOpError::Busy { .. }
            | TokenOpError::SharedStore { .. }
            | TokenOpError::InvalidRecord { .. }
            | TokenOpError::SecurityFile(_)
            | TokenOpError::Random(_) => Some(Outcome::Error),
            _ => None,
        }
    }
}

impl From<TokenStoreError> for TokenOpError {
    fn from(e: TokenStoreError) -> TokenOpError {
        match e {
            TokenStoreError::Invalid { key, message } => TokenOpError::InvalidRecord { key, message },
            TokenStoreError::NotFound(key) => TokenOpError::NotFound { key },
            TokenStoreError::NameTaken(name) => TokenOpError::NameTaken { name },
            TokenStoreError::InvalidName(reason) => TokenOpError::InvalidName { reason },
            TokenStoreError::Revoked { id, name } => TokenOpError::Revoked { id, name },
            TokenStoreError::TooMany => TokenOpError::TooMany,
            TokenStoreError::Random(e) => TokenOpError::Random(e),
            TokenStoreError::File(e) => TokenOpError::SecurityFile(e),
            TokenStoreError::EnvManaged { key, var } => TokenOpError::EnvManaged { key, var },
            TokenStoreError::FileManaged { key, origin } => TokenOpError::FileManaged { key, origin },
            TokenStoreError::NotSet(key) => TokenOpError::NotSet { key },
            TokenStoreError::InvalidExpiry => TokenOpError::InvalidExpires {
                problem:
                    "that time has passed; give a duration such as 30d or an RFC 3339 time in the future"
                        .to_owned(),
            },
            TokenStoreError::Lock { path, message } => TokenOpError::Busy { path, message },
            TokenStoreError::Shared { message } => TokenOpError::SharedStore { message },
            e @ TokenStoreError::PerReplica { .. } => TokenOpError::PerReplica(e.to_string()),
        }
    }
}
