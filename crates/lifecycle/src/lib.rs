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
//!   nobody holds the exclusive one and any record is stale;
//! - a record is only a claim: [`probe`] hands out a [`VerifiedGateway`] — the one thing a
//!   caller can signal ([`VerifiedGateway::stop`]) or send a credential to
//!   ([`http::request`]) — only after proving that the record's pid holds the lock and owns
//!   the socket listening at the record's address (see the `verify` module; on platforms
//!   other than Linux only "the lock is held" is proven, [`Assurance::LockOnly`]).

pub mod binary;
pub mod http;
pub mod migrate;
pub mod port;
pub mod proxy;
pub mod service;
pub mod spawn;
pub mod unit;
mod verify;
pub mod writers;

pub use verify::{Assurance, Mismatch, Pending};

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
    /// A gateway holds the lock, but the record does not name it (yet); nothing was
    /// signalled or sent.
    #[error("{0}; nothing was signalled or sent to it")]
    Starting(Pending),
    /// The record could not be proven to describe the gateway that holds the lock;
    /// nothing was signalled or sent.
    #[error("{0}; nothing was signalled or sent to it")]
    Unverified(Mismatch),
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
                    // The lock holder where the kernel tells, else the record's claim.
                    let pid = match holder(&file) {
                        Some(Ok(pid)) => pid,
                        _ => RuntimeRecord::read(&paths.pid_file()).ok().flatten().map_or(0, |r| r.pid),
                    };
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

/// What a reader finds. Only [`Probe::Running`] hands out something a caller may signal or
/// send a credential to; every other state says why not.
#[derive(Debug)]
pub enum Probe {
    /// A gateway holds the lock and its record was verified (see [`VerifiedGateway`]).
    Running(VerifiedGateway),
    /// A gateway holds the lock but no record names it: none is published yet, or the one
    /// there names a pid that does not hold the lock (left by an earlier gateway while a new
    /// one starts, or rewritten).
    Starting(Pending),
    /// The record's pid holds the lock, but the rest of the record could not be proven (its
    /// address is served by another process, or the kernel's tables could not be read).
    /// Nothing may be signalled or sent to it.
    Unverified(Mismatch),
    /// Nobody holds the lock; a leftover record exists (crash or SIGKILL).
    Stale,
    /// Nobody holds the lock and there is no record.
    NotRunning,
}

/// A running gateway whose `.picoclaw.pid` record was checked against the kernel: the
/// record's pid holds the gateway lock and owns the socket listening at the record's
/// address (Linux; see [`Assurance`] for other platforms). The only value local tools
/// signal ([`VerifiedGateway::stop`]) or send a credential to ([`http::request`]).
///
/// The check is a point-in-time one: a gateway that exits right after it is made no
/// longer holds what was verified. `stop` re-checks the lock holder before each signal.
#[derive(Debug, Clone)]
pub struct VerifiedGateway {
    record: RuntimeRecord,
    assurance: Assurance,
    paths: Paths,
}

impl VerifiedGateway {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.record.pid
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        self.record.base_url()
    }

    /// The verified record (pid, version, address, start time, runtime token).
    pub fn record(&self) -> &RuntimeRecord {
        &self.record
    }

    /// The verified record, for code that dials the gateway itself (the launcher's proxy).
    pub fn into_record(self) -> RuntimeRecord {
        self.record
    }

    /// What was proven.
    pub fn assurance(&self) -> Assurance {
        self.assurance
    }

    /// The loopback address to dial, or why local tools do not dial it.
    pub fn loopback_addr(&self) -> Result<std::net::SocketAddr, http::HttpError> {
        http::loopback_addr(&self.record.host, self.record.port)
    }

    /// Stops it: SIGTERM, wait up to `grace` for the lock to be released, then SIGKILL and
    /// wait a little more. Before each signal the lock holder is checked again, and on
    /// Linux the signal goes through a pidfd opened before that check, so a pid reused in
    /// between is never signalled. Returns the stopped pid.
    pub fn stop(self, grace: Duration) -> Result<u32, LifecycleError> {
        let pid = self.pid();
        let target = SignalTarget::open(pid);
        if !self.still_holds()? {
            return Ok(pid);
        }
        target.send(false);
        if wait_released(&self.paths, grace) {
            return Ok(pid);
        }
        if !self.still_holds()? {
            return Ok(pid);
        }
        target.send(true);
        if wait_released(&self.paths, Duration::from_secs(3)) {
            return Ok(pid);
        }
        Err(LifecycleError::StopFailed { pid })
    }

    /// True while the verified pid still holds the lock; `false` once the lock is free; an
    /// error when someone else holds it now.
    fn still_holds(&self) -> Result<bool, LifecycleError> {
        let path = lock_path(&self.paths);
        let file = open_lock(&path)?;
        if !held(&file, &path)? {
            return Ok(false);
        }
        if self.assurance == Assurance::LockOnly {
            return Ok(true);
        }
        match holder(&file) {
            Some(Ok(pid)) if pid == self.pid() => Ok(true),
            Some(Ok(other)) => Err(LifecycleError::Starting(Pending {
                lock: path.display().to_string(),
                holder: Some(other),
                recorded: Some(self.pid()),
            })),
            Some(Err(detail)) => Err(LifecycleError::Unverified(Mismatch::LockHolderUnknown {
                lock: path.display().to_string(),
                detail,
            })),
            None => Ok(true),
        }
    }
}

/// Whether someone holds the exclusive lock, tested with a brief shared lock.
fn held(file: &File, path: &Path) -> Result<bool, LifecycleError> {
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(source)) => Err(LifecycleError::Io { path: path.to_owned(), source }),
    }
}

/// The pid holding the exclusive lock on `file`: `None` where the platform cannot tell,
/// `Some(Err(why))` where it should but did not.
#[cfg(target_os = "linux")]
fn holder(file: &File) -> Option<Result<u32, String>> {
    use verify::linux::Holder;
    // /proc/locks is read a page at a time, and with many locks on the machine an entry
    // can be skipped when the list changes between two pages: a lock that is held (the
    // caller saw it) but not listed is looked for again before it counts as missing.
    let mut found = verify::linux::lock_holder(file);
    for _ in 0..LOCK_LIST_RETRIES {
        if !matches!(found, Holder::Nobody) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        found = verify::linux::lock_holder(file);
    }
    Some(match found {
        Holder::Pid(pid) => Ok(pid),
        Holder::Nobody => Err("/proc/locks lists no exclusive flock on it".to_owned()),
        Holder::Unknown(why) => Err(why),
    })
}

/// How many more times a held lock missing from /proc/locks is looked for.
#[cfg(target_os = "linux")]
const LOCK_LIST_RETRIES: usize = 3;

#[cfg(not(target_os = "linux"))]
fn holder(_file: &File) -> Option<Result<u32, String>> {
    None
}

/// Tells whether a gateway is running for `paths`, from the lock, not from the PID, and
/// verifies the record before handing it out.
pub fn probe(paths: &Paths) -> Result<Probe, LifecycleError> {
    let path = lock_path(paths);
    let record_path = paths.pid_file();
    let not_held =
        |record: Option<RuntimeRecord>| if record.is_some() { Probe::Stale } else { Probe::NotRunning };
    if !path.exists() {
        return Ok(if record_path.exists() { Probe::Stale } else { Probe::NotRunning });
    }
    let file = open_lock(&path)?;
    let is_held = held(&file, &path)?;
    let record = RuntimeRecord::read(&record_path).ok().flatten();
    if !is_held {
        return Ok(not_held(record));
    }
    let lock = path.display().to_string();
    let (holder, assurance) = match holder(&file) {
        Some(Ok(pid)) => (Some(pid), Assurance::LockAndListener),
        Some(Err(detail)) => {
            // Released between the two looks, or a lock table this process cannot read.
            if !held(&file, &path)? {
                return Ok(not_held(record));
            }
            return Ok(Probe::Unverified(Mismatch::LockHolderUnknown { lock, detail }));
        }
        None => (None, Assurance::LockOnly),
    };
    let Some(record) = record else {
        return Ok(Probe::Starting(Pending { lock, holder, recorded: None }));
    };
    if let Some(holder) = holder {
        if holder != record.pid {
            return Ok(Probe::Starting(Pending { lock, holder: Some(holder), recorded: Some(record.pid) }));
        }
        if let Err(mismatch) = listener_belongs(holder, &record.host, record.port) {
            return Ok(Probe::Unverified(mismatch));
        }
    }
    Ok(Probe::Running(VerifiedGateway { record, assurance, paths: paths.clone() }))
}

#[cfg(target_os = "linux")]
fn listener_belongs(pid: u32, host: &str, port: u16) -> Result<(), Mismatch> {
    let ip = verify::record_ip(host)?;
    verify::linux::listener_belongs(pid, host, ip, port)
}

#[cfg(not(target_os = "linux"))]
fn listener_belongs(_pid: u32, _host: &str, _port: u16) -> Result<(), Mismatch> {
    Ok(())
}

/// Like [`probe`], but gives a gateway that holds the lock without a matching record up
/// to `within` to publish one (it does so right after binding). What is still
/// [`Probe::Starting`] after that is a record that is not the lock holder's.
pub fn settle(paths: &Paths, within: Duration) -> Result<Probe, LifecycleError> {
    let deadline = Instant::now() + within;
    loop {
        let found = probe(paths)?;
        if !matches!(found, Probe::Starting(_)) || Instant::now() >= deadline {
            return Ok(found);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The verified running gateway, or why there is none to talk to:
/// [`LifecycleError::NotRunning`], [`LifecycleError::Starting`] or
/// [`LifecycleError::Unverified`].
pub fn running(paths: &Paths) -> Result<VerifiedGateway, LifecycleError> {
    match probe(paths)? {
        Probe::Running(gateway) => Ok(gateway),
        Probe::Starting(pending) => Err(LifecycleError::Starting(pending)),
        Probe::Unverified(mismatch) => Err(LifecycleError::Unverified(mismatch)),
        Probe::Stale | Probe::NotRunning => {
            Err(LifecycleError::NotRunning { home: paths.home().display().to_string() })
        }
    }
}

/// Waits until no gateway holds the lock.
pub fn wait_released(paths: &Paths, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let path = lock_path(paths);
    loop {
        let free = match open_lock(&path) {
            Ok(file) => !matches!(held(&file, &path), Ok(true)),
            Err(_) => true,
        };
        if free {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until a gateway has published a record that verifies.
pub fn wait_running(paths: &Paths, within: Duration) -> Option<VerifiedGateway> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Probe::Running(gateway)) = probe(paths) {
            return Some(gateway);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Where signals go: a pidfd where the kernel has them (a reused pid cannot be hit), else
/// the pid.
struct SignalTarget {
    pid: u32,
    #[cfg(target_os = "linux")]
    pidfd: Option<std::os::fd::OwnedFd>,
}

impl SignalTarget {
    fn open(pid: u32) -> SignalTarget {
        #[cfg(target_os = "linux")]
        {
            let pidfd = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
                .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
            SignalTarget { pid, pidfd }
        }
        #[cfg(not(target_os = "linux"))]
        SignalTarget { pid }
    }

    fn send(&self, kill: bool) {
        #[cfg(unix)]
        {
            let sig = if kill { rustix::process::Signal::KILL } else { rustix::process::Signal::TERM };
            #[cfg(target_os = "linux")]
            if let Some(fd) = &self.pidfd {
                let _ = rustix::process::pidfd_send_signal(fd, sig);
                return;
            }
            let Some(pid) = i32::try_from(self.pid).ok().and_then(rustix::process::Pid::from_raw) else {
                return;
            };
            let _ = rustix::process::kill_process(pid, sig);
        }
        #[cfg(not(unix))]
        let _ = (self.pid, kill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picoclaw_credentials::Secret;

    fn record(port: u16) -> RuntimeRecord {
        RuntimeRecord {
            pid: std::process::id(),
            version: "t".into(),
            host: "127.0.0.1".into(),
            port,
            started_at: 0,
            token: Secret::new("x"),
        }
    }

    #[test]
    fn second_acquire_fails_and_release_frees() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(matches!(probe(&paths).unwrap(), Probe::NotRunning));
        let lock = acquire(&paths).unwrap();
        assert!(matches!(probe(&paths).unwrap(), Probe::Starting(Pending { recorded: None, .. })));
        lock.publish(&record(port)).unwrap();
        match probe(&paths).unwrap() {
            Probe::Running(gw) => assert_eq!(gw.pid(), std::process::id()),
            other => panic!("{other:?}"),
        }
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
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        record(port).write(&paths.pid_file()).unwrap();
        assert!(matches!(probe(&paths).unwrap(), Probe::Stale));
        let lock = acquire(&paths).unwrap();
        lock.publish(&record(port)).unwrap();
        assert!(matches!(probe(&paths).unwrap(), Probe::Running(_)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_record_is_verified_against_the_lock_holder_and_the_listener() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let lock = acquire(&paths).unwrap();

        // Another pid: a stale or rewritten record reads as "starting", never as running.
        let mut other = record(port);
        other.pid = 1;
        lock.publish(&other).unwrap();
        match probe(&paths).unwrap() {
            Probe::Starting(p) => {
                assert_eq!((p.holder, p.recorded), (Some(std::process::id()), Some(1)));
                assert!(p.to_string().contains("names pid 1"), "{p}");
            }
            found => panic!("{found:?}"),
        }
        assert!(matches!(running(&paths), Err(LifecycleError::Starting(_))));

        // Our pid, but a port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        lock.publish(&record(closed_port)).unwrap();
        assert!(matches!(probe(&paths).unwrap(), Probe::Unverified(Mismatch::NoListener { .. })));

        // A listener this process owns verifies for this process and not for another pid
        // (a child `sleep` stands in for "another process").
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let theirs = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let theirs_port = theirs.local_addr().unwrap().port();
        lock.publish(&record(theirs_port)).unwrap();
        assert!(matches!(probe(&paths).unwrap(), Probe::Running(_)), "our own listener verifies");
        let err = verify::linux::listener_belongs(
            child.id(),
            "127.0.0.1",
            "127.0.0.1".parse().unwrap(),
            theirs_port,
        )
        .unwrap_err();
        assert!(matches!(err, Mismatch::ListenerNotOwned { .. }), "{err}");
        assert!(err.to_string().contains(&theirs_port.to_string()), "{err}");
        let _ = child.kill();
        let _ = child.wait();
    }
}
