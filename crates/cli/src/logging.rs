//! Logging setup: human or JSON lines to stderr and, for the gateway, also to
//! `logs/gateway.log` (mode 0600). Nothing here ever formats a secret: request headers are
//! not logged, and credentials are logged by fingerprint and source.

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use picoclaw_config::LogLevel;

use crate::cli::LogFormat;

/// Libraries whose chatter stays at warn whatever the level.
const QUIET: [&str; 5] = ["hyper", "hyper_util", "tungstenite", "tokio_tungstenite", "notify"];

/// `level` (one of error, warn, info, debug, trace — the schema checks it) for picoclaw,
/// warn for [`QUIET`]. A plain target filter: no directive parser (and no regex engine)
/// at start-up.
fn filter(level: LogLevel) -> Targets {
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let quiet = level.min(LevelFilter::WARN);
    QUIET.iter().fold(Targets::new().with_default(level), |t, target| t.with_target(*target, quiet))
}

/// Installs the global subscriber writing to stderr and, when given, appending to `file`.
pub fn init(format: LogFormat, level: LogLevel, file: Option<&Path>) {
    let file = file.and_then(|path| match open_log_file(path) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("warning: cannot open {} for logging: {e}", path.display());
            None
        }
    });
    let ansi = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let filter = filter(level);
    let base =
        tracing_subscriber::fmt().with_max_level(LevelFilter::TRACE).with_target(false).with_ansi(ansi);
    let _ = match (format, file) {
        (LogFormat::Human, Some(f)) => {
            base.with_writer(std::io::stderr.and(Mutex::new(f))).finish().with(filter).try_init()
        }
        (LogFormat::Human, None) => base.with_writer(std::io::stderr).finish().with(filter).try_init(),
        (LogFormat::Json, Some(f)) => base
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr.and(Mutex::new(f)))
            .finish()
            .with(filter)
            .try_init(),
        (LogFormat::Json, None) => {
            base.json().flatten_event(true).with_writer(std::io::stderr).finish().with(filter).try_init()
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn level_applies_to_picoclaw_and_libraries_stay_at_warn() {
        let f = filter(LogLevel::Debug);
        assert!(f.would_enable("picoclaw_gateway::conn", &Level::DEBUG));
        assert!(!f.would_enable("picoclaw_gateway::conn", &Level::TRACE));
        assert!(!f.would_enable("hyper::proto", &Level::INFO));
        assert!(f.would_enable("hyper::proto", &Level::WARN));
        let f = filter(LogLevel::Error);
        assert!(!f.would_enable("picoclaw", &Level::WARN));
        assert!(!f.would_enable("tungstenite", &Level::WARN), "a library is never louder than the level");
    }
}
