//! Logging setup: human or JSON lines to stderr and, for the gateway, also to
//! `logs/gateway.log` (mode 0600). Nothing here ever formats a secret: request headers are
//! not logged, and credentials are logged by fingerprint and source.

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::cli::LogFormat;

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_new(format!(
        "{level},hyper=warn,hyper_util=warn,tungstenite=warn,tokio_tungstenite=warn,notify=warn"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber writing to stderr and, when given, appending to `file`.
pub fn init(format: LogFormat, level: &str, file: Option<&Path>) {
    let file = file.and_then(|path| match open_log_file(path) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("warning: cannot open {} for logging: {e}", path.display());
            None
        }
    });
    let ansi = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let base = tracing_subscriber::fmt().with_env_filter(filter(level)).with_target(false).with_ansi(ansi);
    let _ = match (format, file) {
        (LogFormat::Human, Some(f)) => base.with_writer(std::io::stderr.and(Mutex::new(f))).try_init(),
        (LogFormat::Human, None) => base.with_writer(std::io::stderr).try_init(),
        (LogFormat::Json, Some(f)) => {
            base.json().flatten_event(true).with_writer(std::io::stderr.and(Mutex::new(f))).try_init()
        }
        (LogFormat::Json, None) => base.json().flatten_event(true).with_writer(std::io::stderr).try_init(),
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
