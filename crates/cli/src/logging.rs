//! Logging setup: human or JSON lines, to stderr or a file. Nothing here ever formats a
//! secret: request headers are not logged, and credentials are logged by fingerprint.

use std::path::Path;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber writing to stderr.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(format!("{level},hyper=warn,tungstenite=warn,tokio_tungstenite=warn"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Opens (creating, mode 0600) an append-only log file.
pub fn open_log_file(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        picoclaw_config::files::ensure_dir(dir, 0o700)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
