//! Gateway lifecycle: the singleton lock, the `.picoclaw.pid` discovery record, and
//! stopping a running gateway.
//!
//! The gateway holds an exclusive OS lock (`File::try_lock`, i.e. `flock`) on
//! `$PICOCLAW_HOME/.picoclaw.lock` for its whole life, and publishes its discovery record
//! `.picoclaw.pid` (atomic, 0600) once it is bound. The lock lives in a separate file
//! because the record is replaced by rename on every write, and a lock on a replaced inode
//! would protect nothing. Consequences:
//!
//! - a second gateway fails fast with "already running (pid N)";
//! - after a SIGKILL the kernel drops the lock, so the next start succeeds at once and
//!   replaces the stale record — no PID liveness guessing;
//! - readers ([`probe`]) test the lock with a brief *shared* lock: if they can take it,
//!   nobody holds the exclusive one and any record is stale.

pub mod http;
pub mod service;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use picoclaw_config::Paths;
use picoclaw_credentials::runtime::RuntimeRecord;

/// Lifecycle failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// Another gateway holds the lock.
    #[error("a gateway is already running (pid {pid}) for {home}")]
    AlreadyRunning {
        /// Its pid, from the record (0 when the record is not yet written).
        pid: u32,
        /// The home directory.
        home: String,
    },
    /// No gateway is running.
    #[error("no gateway is running for {home}")]
    NotRunning {
        /// The home directory.
        home: String,
    },
    /// The lock or record file could not be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The record could not be written or read.
    #[error(transparent)]
    Record(#[from] picoclaw_credentials::CredentialError),
    /// The gateway did not stop within the bound, even after SIGKILL.
    #[error("gateway (pid {pid}) did not stop")]
    StopFailed {
        /// Its pid.
        pid: u32,
    },
}

/// Path of the lock file.
pub fn lock_path(paths: &Paths) -> PathBuf {
    paths.home().join(".picoclaw.lock")
}

fn open_lock(path: &Path) -> Result<File, LifecycleError> {
    let io = |source| LifecycleError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        picoclaw_config::files::ensure_dir(dir, 0o700).map_err(io)?;
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(io)
}

/// The exclusive lock of a running gateway. Dropping it removes the record (when it is
/// still ours) and releases the lock.
#[derive(Debug)]
pub struct GatewayLock {
    file: File,
    pid_path: PathBuf,
    pid: u32,
}

/// How long a start waits for a reader's brief shared lock to go away.
const ACQUIRE_PATIENCE: Duration = Duration::from_millis(300);

/// Takes the singleton lock, or fails with [`LifecycleError::AlreadyRunning`].
pub fn acquire(paths: &Paths) -> Result<GatewayLock, LifecycleError> {
    let path = lock_path(paths);
    let file = open_lock(&path)?;
    let deadline = Instant::now() + ACQUIRE_PATIENCE;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                // Either a live gateway (exclusive, for good) or a reader probing (shared,
                // for microseconds). A record that is ours-to-be is not there yet, so wait a
                // little before concluding.
                if Instant::now() >= deadline {
                    let pid = RuntimeRecord::read(&paths.pid_file()).ok().flatten().map_or(0, |r| r.pid);
                    return Err(LifecycleError::AlreadyRunning {
                        pid,
                        home: paths.home().display().to_string(),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::Error(source)) => return Err(LifecycleError::Io { path, source }),
        }
    }
    Ok(GatewayLock { file, pid_path: paths.pid_file(), pid: std::process::id() })
}

impl GatewayLock {
    /// Publishes the discovery record (atomic, 0600), replacing any stale one.
    pub fn publish(&self, record: &RuntimeRecord) -> Result<(), LifecycleError> {
        record.write(&self.pid_path)?;
        Ok(())
    }
}

impl Drop for GatewayLock {
    fn drop(&mut self) {
        if let Ok(Some(record)) = RuntimeRecord::read(&self.pid_path)
            && record.pid == self.pid
        {
            let _ = std::fs::remove_file(&self.pid_path);
        }
        let _ = self.file.unlock();
    }
}

/// What a reader finds.
#[derive(Debug)]
pub enum Probe {
    /// A gateway holds the lock; its record.
    Running(RuntimeRecord),
    /// A gateway holds the lock but has not published its record yet.
    Starting,
    /// Nobody holds the lock; a leftover record exists (crash or SIGKILL).
    Stale,
    /// Nobody holds the lock and there is no record.
    NotRunning,
}

/// Tells whether a gateway is running for `paths`, from the lock, not from the PID.
pub fn probe(paths: &Paths) -> Result<Probe, LifecycleError> {
    let path = lock_path(paths);
    let record_path = paths.pid_file();
    if !path.exists() {
        return Ok(if record_path.exists() { Probe::Stale } else { Probe::NotRunning });
    }
    let file = open_lock(&path)?;
    let held = match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(source)) => return Err(LifecycleError::Io { path, source }),
    };
    let record = RuntimeRecord::read(&record_path).ok().flatten();
    Ok(match (held, record) {
        (true, Some(record)) => Probe::Running(record),
        (true, None) => Probe::Starting,
        (false, Some(_)) => Probe::Stale,
        (false, None) => Probe::NotRunning,
    })
}

/// The record of the running gateway, or [`LifecycleError::NotRunning`].
pub fn running(paths: &Paths) -> Result<RuntimeRecord, LifecycleError> {
    match probe(paths)? {
        Probe::Running(record) => Ok(record),
        _ => Err(LifecycleError::NotRunning { home: paths.home().display().to_string() }),
    }
}

/// Stops the running gateway: SIGTERM, wait up to `grace` for the lock to be released,
/// then SIGKILL and wait a little more. Returns the stopped pid.
pub fn stop(paths: &Paths, grace: Duration) -> Result<u32, LifecycleError> {
    let record = running(paths)?;
    let pid = record.pid;
    signal(pid, false);
    if wait_released(paths, grace) {
        return Ok(pid);
    }
    signal(pid, true);
    if wait_released(paths, Duration::from_secs(3)) {
        return Ok(pid);
    }
    Err(LifecycleError::StopFailed { pid })
}

/// Waits until no gateway holds the lock.
pub fn wait_released(paths: &Paths, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        match probe(paths) {
            Ok(Probe::Running(_) | Probe::Starting) => {}
            _ => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until a gateway has published its record.
pub fn wait_running(paths: &Paths, within: Duration) -> Option<RuntimeRecord> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Probe::Running(record)) = probe(paths) {
            return Some(record);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, kill: bool) {
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else { return };
        let sig = if kill { rustix::process::Signal::KILL } else { rustix::process::Signal::TERM };
        let _ = rustix::process::kill_process(pid, sig);
    }
    #[cfg(not(unix))]
    let _ = (pid, kill);
}

#[cfg(test)]
mod tests {
    use super::*;
    use picoclaw_credentials::Secret;

    fn record() -> RuntimeRecord {
        RuntimeRecord {
            pid: std::process::id(),
            version: "t".into(),
            host: "127.0.0.1".into(),
            port: 1,
            started_at: 0,
            token: Secret::new("x"),
        }
    }

    #[test]
    fn second_acquire_fails_and_release_frees() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        assert!(matches!(probe(&paths).unwrap(), Probe::NotRunning));
        let lock = acquire(&paths).unwrap();
        assert!(matches!(probe(&paths).unwrap(), Probe::Starting));
        lock.publish(&record()).unwrap();
        assert!(matches!(probe(&paths).unwrap(), Probe::Running(_)));
        let err = acquire(&paths).unwrap_err().to_string();
        assert!(err.contains("already running") && err.contains(&std::process::id().to_string()), "{err}");
        drop(lock);
        assert!(matches!(probe(&paths).unwrap(), Probe::NotRunning));
        assert!(!paths.pid_file().exists());
    }

    #[test]
    fn leftover_record_without_lock_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        record().write(&paths.pid_file()).unwrap();
        assert!(matches!(probe(&paths).unwrap(), Probe::Stale));
        let lock = acquire(&paths).unwrap();
        lock.publish(&record()).unwrap();
        assert!(matches!(probe(&paths).unwrap(), Probe::Running(_)));
    }
}
