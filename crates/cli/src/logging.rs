//! Logging setup: human or JSON lines to stderr and, for the gateway, also to
//! `logs/gateway.log` (mode 0600). Nothing here ever formats a secret: request headers are
//! not logged, and credentials are logged by fingerprint and source.
//!
//! The log file is bounded: past [`LOG_MAX_BYTES`] it is renamed to `<name>.1` (replacing
//! the previous one) and a new file is started, so a flood of failed requests (one INFO
//! line each) costs at most twice the bound on disk.

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use picoclaw_config::LogLevel;

use crate::cli::LogFormat;

/// Size at which a log file is rotated to `<name>.1`.
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// An append-only log file that rotates once past `max` bytes.
struct RotatingFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
    max: u64,
}

impl RotatingFile {
    fn open(path: &Path, max: u64) -> std::io::Result<RotatingFile> {
        let file = open_log_file(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile { path: path.to_owned(), file, size, max })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        std::fs::rename(&self.path, &rotated)?;
        self.file = open_log_file(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl std::io::Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        // A failed rotation keeps appending: losing log lines is worse than a larger file.
        if self.size > 0 && self.size.saturating_add(len) > self.max && self.rotate().is_err() {
            self.size = 0;
        }
        let n = self.file.write(buf)?;
        self.size = self.size.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

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
    let file = file.and_then(|path| match RotatingFile::open(path, LOG_MAX_BYTES) {
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

    #[test]
    fn the_log_file_rotates_past_its_bound() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/gateway.log");
        let mut log = RotatingFile::open(&path, 1000).unwrap();
        let line = [b'x'; 99];
        for _ in 0..1000 {
            log.write_all(&line).unwrap();
            log.write_all(b"\n").unwrap();
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let rotated = dir.path().join("logs/gateway.log.1");
        assert!(size(&path) <= 1000 && size(&rotated) <= 1000, "{} and {}", size(&path), size(&rotated));
        assert!(size(&rotated) > 0);
        // Reopened: the size already there counts.
        let mut log = RotatingFile::open(&path, 1000).unwrap();
        log.write_all(&[b'y'; 999]).unwrap();
        assert!(size(&path) <= 1000);
    }
}
