//! Proving that `.picoclaw.pid` describes the gateway that holds the lock.
//!
//! The record is a plain file: a crash leaves it behind, a new gateway replaces it a moment
//! after taking the lock, and anything that can write the home can rewrite it. So before a
//! tool signals the pid it names, or sends a credential to the address it names, two facts
//! are checked with the kernel (Linux, through `/proc`):
//!
//! 1. the record's pid holds the exclusive `flock` on `$PICOCLAW_HOME/.picoclaw.lock`
//!    (`/proc/locks` lists `FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode>`; device and
//!    inode must be the lock file's);
//! 2. every socket listening at the record's host:port (`/proc/net/tcp`, `/proc/net/tcp6`)
//!    is one of that pid's open file descriptors (`/proc/<pid>/fd/*` → `socket:[inode]`).
//!
//! On other platforms only "a process holds the lock" is known; see [`Assurance`].

use std::fmt;
use std::net::IpAddr;

/// How much of a record was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Assurance {
    /// The record's pid holds the exclusive lock and owns the listening socket (Linux).
    LockAndListener,
    /// A process holds the lock; which one, and who listens at the recorded address, is
    /// not known on this platform. The record is trusted as far as the home is private.
    LockOnly,
}

/// Why a record does not describe the gateway that holds the lock. Names pids, files and
/// addresses, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// Nothing listens at the recorded address.
    #[error(
        "nothing listens at {addr}, the address .picoclaw.pid names; pid {pid} holds the gateway lock but does not serve there"
    )]
    NoListener {
        /// `host:port` from the record.
        addr: String,
        /// The lock holder (= the record's pid).
        pid: u32,
    },
    /// A socket listening at the recorded address belongs to another process.
    #[error(
        "the socket listening at {addr}, the address .picoclaw.pid names, does not belong to pid {pid}, which holds the gateway lock"
    )]
    ListenerNotOwned {
        /// `host:port` from the record.
        addr: String,
        /// The lock holder (= the record's pid).
        pid: u32,
    },
    /// The record's host is not an IP address (the gateway always records one).
    #[error(".picoclaw.pid names host {host:?}; a gateway records an IP address there")]
    BadHost {
        /// The recorded host.
        host: String,
    },
    /// The lock is held but the kernel's lock table does not say by whom.
    #[error("cannot tell which process holds {lock}: {detail}")]
    LockHolderUnknown {
        /// The lock file.
        lock: String,
        /// What was missing.
        detail: String,
    },
    /// The listening sockets or the lock holder's descriptors could not be read.
    #[error("cannot check who listens at {addr}: {detail}")]
    ListenerUnknown {
        /// `host:port` from the record.
        addr: String,
        /// What could not be read.
        detail: String,
    },
}

/// A gateway holds the lock, but no record names it (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The lock file.
    pub lock: String,
    /// The pid holding the lock, where the platform tells.
    pub holder: Option<u32>,
    /// The pid the record names, when there is a record.
    pub recorded: Option<u32>,
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let holder = self.holder.map_or_else(|| "a process".to_owned(), |p| format!("pid {p}"));
        match self.recorded {
            None => write!(
                f,
                "the gateway lock {} is held by {holder}, which has not published .picoclaw.pid yet",
                self.lock
            ),
            Some(recorded) => write!(
                f,
                "the gateway lock {} is held by {holder}, but .picoclaw.pid names pid {recorded}: the record is not that gateway's (left by an earlier one, or rewritten); a gateway that is starting replaces it within a second",
                self.lock
            ),
        }
    }
}

/// The IP a record's host stands for (`localhost` is 127.0.0.1, as clients dial it).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn record_ip(host: &str) -> Result<IpAddr, Mismatch> {
    match host.trim_matches(['[', ']']) {
        "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
        other => other.parse().map_err(|_| Mismatch::BadHost { host: host.to_owned() }),
    }
}

/// `host:port` as shown in messages.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn show_addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether a connection to `dial` can be accepted by a socket listening on `listen`
/// (same address, or a wildcard of a family that can take it).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn reaches(listen: IpAddr, dial: IpAddr) -> bool {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (listen, dial) = (plain(listen), plain(dial));
    // A `::` socket may also take IPv4 (dual stack): counted, so it too must be the pid's.
    listen == dial || (listen.is_unspecified() && (listen.is_ipv6() || dial.is_ipv4()))
}

#[cfg(target_os = "linux")]
pub(crate) mod linux {
    //! The `/proc` side of the checks.

    use std::collections::HashSet;
    use std::fs::File;
    use std::net::IpAddr;
    use std::os::unix::fs::MetadataExt;

    use procfs::process::{FDTarget, Process};
    use procfs::{FromBufRead, LockKind, LockType, Locks};

    use super::{Mismatch, reaches, show_addr};

    /// Who holds the lock on `file`.
    pub(crate) enum Holder {
        /// This pid holds an exclusive flock on it.
        Pid(u32),
        /// No exclusive flock on it is listed.
        Nobody,
        /// It could not be told (the message says why).
        Unknown(String),
    }

    /// The pid holding the exclusive flock on `file`, from `/proc/locks`.
    pub(crate) fn lock_holder(file: &File) -> Holder {
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return Holder::Unknown(format!("cannot stat the lock file: {e}")),
        };
        let (major, minor) = (rustix::fs::major(meta.dev()), rustix::fs::minor(meta.dev()));
        let text = match std::fs::read_to_string("/proc/locks") {
            Ok(t) => t,
            Err(e) => return Holder::Unknown(format!("cannot read /proc/locks: {e}")),
        };
        // A process *waiting* for a lock is listed as `N: -> FLOCK ADVISORY WRITE <pid> ...`
        // after the holder's line; procfs parses that line like a granted lock (measured:
        // its `Lock` has no field for the arrow), so waiters are dropped before parsing.
        let granted: String = text.lines().filter(|l| !l.contains("->")).flat_map(|l| [l, "\n"]).collect();
        let locks = match Locks::from_buf_read(granted.as_bytes()) {
            Ok(l) => l,
            Err(e) => return Holder::Unknown(format!("cannot parse /proc/locks: {e}")),
        };
        let ours: Vec<Option<i32>> = locks
            .0
            .iter()
            .filter(|l| l.lock_type == LockType::FLock && matches!(l.kind, LockKind::Write))
            .filter(|l| l.devmaj == major && l.devmin == minor && l.inode == meta.ino())
            .map(|l| l.pid)
            .collect();
        match ours.as_slice() {
            [] => Holder::Nobody,
            [Some(pid)] if *pid > 0 => u32::try_from(*pid).map_or_else(|_| Holder::Nobody, Holder::Pid),
            [_] => Holder::Unknown(
                "/proc/locks shows the lock without a pid this process can see (another PID namespace?)"
                    .into(),
            ),
            _ => Holder::Unknown("/proc/locks lists more than one exclusive lock on it".into()),
        }
    }

    /// Checks that every socket listening at `ip:port` is one of `pid`'s descriptors.
    pub(crate) fn listener_belongs(pid: u32, host: &str, ip: IpAddr, port: u16) -> Result<(), Mismatch> {
        let addr = show_addr(host, port);
        let unknown = |detail: String| Mismatch::ListenerUnknown { addr: addr.clone(), detail };
        let mut entries = procfs::net::tcp().map_err(|e| unknown(format!("/proc/net/tcp: {e}")))?;
        // No IPv6 in the kernel: no tcp6 table, and no IPv6 listener to worry about.
        if let Ok(v6) = procfs::net::tcp6() {
            entries.extend(v6);
        }
        let listening: Vec<u64> = entries
            .iter()
            .filter(|e| e.state == procfs::net::TcpState::Listen && e.local_address.port() == port)
            .filter(|e| reaches(e.local_address.ip(), ip))
            .map(|e| e.inode)
            .collect();
        if listening.is_empty() {
            return Err(Mismatch::NoListener { addr, pid });
        }
        let pid_i32 = i32::try_from(pid).map_err(|_| unknown(format!("pid {pid} is out of range")))?;
        let fds = Process::new(pid_i32)
            .and_then(|p| p.fd())
            .map_err(|e| unknown(format!("cannot list the open files of pid {pid}: {e}")))?;
        let sockets: HashSet<u64> = fds
            .filter_map(Result::ok)
            .filter_map(|fd| match fd.target {
                FDTarget::Socket(inode) => Some(inode),
                _ => None,
            })
            .collect();
        if listening.iter().all(|inode| sockets.contains(inode)) {
            Ok(())
        } else {
            Err(Mismatch::ListenerNotOwned { addr, pid })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_reach_their_families() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(reaches(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(reaches(ip("0.0.0.0"), ip("127.0.0.1")));
        assert!(reaches(ip("::"), ip("127.0.0.1")));
        assert!(reaches(ip("::ffff:127.0.0.1"), ip("127.0.0.1")));
        assert!(reaches(ip("::"), ip("::1")));
        assert!(!reaches(ip("0.0.0.0"), ip("::1")));
        assert!(!reaches(ip("127.0.0.2"), ip("127.0.0.1")));
        assert!(!reaches(ip("::1"), ip("127.0.0.1")));
    }

    #[test]
    fn hosts_are_ips_or_localhost() {
        assert_eq!(record_ip("localhost").unwrap(), IpAddr::from([127, 0, 0, 1]));
        assert_eq!(record_ip("[::1]").unwrap(), "::1".parse::<IpAddr>().unwrap());
        assert!(matches!(record_ip("gateway.example"), Err(Mismatch::BadHost { .. })));
        assert_eq!(show_addr("::1", 5), "[::1]:5");
        assert_eq!(show_addr("127.0.0.1", 5), "127.0.0.1:5");
    }
}
