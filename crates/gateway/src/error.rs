//! Why the gateway could not start or run. HTTP answers use `picoclaw_wire::ApiError`.

/// Why the gateway could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// Configuration is invalid (exit code 78).
    #[error(transparent)]
    Config(#[from] picoclaw_config::ConfigError),
    /// Credentials are invalid or cannot be generated.
    #[error(transparent)]
    Credentials(#[from] picoclaw_credentials::CredentialError),
    /// Lock / record problems, including "already running".
    #[error(transparent)]
    Lifecycle(#[from] picoclaw_lifecycle::LifecycleError),
    /// A refused combination, e.g. a public bind without any credential.
    #[error("{0}")]
    Refused(String),
    /// Binding or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The agent could not be built.
    #[error("agent: {0}")]
    Agent(#[source] picoclaw_agent::AgentError),
}

impl GatewayError {
    /// Process exit code: 78 (EX_CONFIG) for configuration problems, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            GatewayError::Config(_) | GatewayError::Credentials(_) | GatewayError::Refused(_) => 78,
            _ => 1,
        }
    }
}
