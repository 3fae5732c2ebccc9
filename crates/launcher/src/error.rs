//! The launcher's errors.

/// Why the launcher cannot start or keep serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LauncherError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `launcher.host` is not an address.
    #[error("launcher.host {host:?} is not usable: expected an IP address or \"localhost\"")]
    Host {
        /// The value.
        host: String,
    },
    /// An entry of `launcher.allowed_cidrs` or `launcher.trusted_proxies` does not parse.
    #[error(
        "{key} entry {value:?} is not a network: expected an address or address/prefix such as 192.168.1.0/24"
    )]
    Cidr {
        /// The setting.
        key: &'static str,
        /// The value.
        value: String,
    },
    /// The OS random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
    /// The server failed while running.
    #[error("the dashboard server failed: {0}")]
    Serve(std::io::Error),
}
