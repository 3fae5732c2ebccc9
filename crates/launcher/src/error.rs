//! The launcher's errors.

/// Why the launcher cannot start or keep serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LauncherError {
    /// The listening socket could not be opened.
    // The cause is part of the message and deliberately not a `#[source]`: `{:#}` would
    // print it a second time.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        reason: std::io::Error,
    },
    /// The port is taken by another listener: which port, what sets it, and who holds it.
    #[error(
        "cannot listen on {addr}: port {port} is already in use by {holder}. The port comes from {source_name}; \
         choose another with --port, PICOCLAW_LAUNCHER_PORT or port in launcher-config.json"
    )]
    PortInUse {
        /// The address.
        addr: String,
        /// The port.
        port: u16,
        /// Where the port setting came from.
        source_name: String,
        /// Who listens there.
        holder: picoclaw_lifecycle::port::PortHolder,
    },
    /// The OS random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
    /// The server failed while running.
    #[error("the dashboard server failed: {0}")]
    Serve(std::io::Error),
}
