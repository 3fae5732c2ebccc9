//! Credential errors. None of them can carry a secret value.

use picoclaw_config::ConfigError;

/// Why a credential could not be resolved, stored or chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The configuration itself is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The OS random source failed; no token was generated.
    #[error("cannot generate a random token: {0}")]
    Random(#[from] getrandom::Error),
    /// Hashing a new dashboard password failed; nothing was stored.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The local gateway's discovery record is missing or stale.
    #[error(
        "no gateway is running for {home} (no live .picoclaw.pid); start one with `picoclaw gateway start`"
    )]
    NoLocalGateway {
        /// The home directory searched.
        home: String,
    },
    /// The discovery record exists but cannot be read.
    #[error("{path}: {message}")]
    RuntimeRecord {
        /// The PID file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A remote target needs a credential that is not configured.
    #[error("no credential configured for {endpoint} on a remote gateway: {hint}")]
    Missing {
        /// The endpoint.
        endpoint: &'static str,
        /// Which variable or key to set.
        hint: &'static str,
    },
    /// A secret given as an upstream PicoClaw reference (`file://name`, `enc://…`) that
    /// cannot be followed.
    #[error("{origin}: {message}")]
    SecretReference {
        /// Where the reference was found (`.security.yml:channel_list.pico.settings.token`).
        origin: String,
        /// What is wrong (never the value).
        message: String,
    },
    /// A secret file (`PICOCLAW_<NAME>_FILE`, `$CREDENTIALS_DIRECTORY/<name>`) that cannot
    /// be used.
    #[error("{origin} ({path}): {message}")]
    SecretFile {
        /// The source (`file:$PICOCLAW_GATEWAY_TOKEN_FILE`, `credential:picoclaw-pico-token`).
        origin: String,
        /// The file's path (not a secret).
        path: String,
        /// What is wrong (never the content).
        message: String,
    },
    /// A file that must be rewritten does not parse; it was left untouched.
    #[error("{path} does not parse ({message}); it was left untouched")]
    Unparseable {
        /// The file.
        path: String,
        /// The parser's message (never a value).
        message: String,
    },
}
