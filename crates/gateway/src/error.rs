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
    // The cause is part of the message and deliberately not a `#[source]`: `{:#}` would
    // print it a second time.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        reason: std::io::Error,
    },
    /// The port is taken by another listener: which port, what sets it, and who holds it.
    #[error(
        "cannot listen on {addr}: port {port} is already in use by {holder}. The port comes from {source_name}; \
         choose another with --port, PICOCLAW_GATEWAY_PORT or gateway.port in config.json{stop_hint}"
    )]
    PortInUse {
        /// The address.
        addr: String,
        /// The port.
        port: u16,
        /// Where the port setting came from (`config.json:gateway.port`, `env:…`, `flag:--port`, `default`).
        source_name: String,
        /// Who listens there.
        holder: picoclaw_lifecycle::port::PortHolder,
        /// What to do when it is this home's gateway.
        stop_hint: String,
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
