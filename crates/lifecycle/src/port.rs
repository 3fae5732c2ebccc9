//! Who listens on a TCP port, so that "address already in use" can say by whom: this
//! home's gateway (the pid `.picoclaw.pid` names), another picoclaw process, or another
//! program.
//!
//! Linux only (through `/proc/net/tcp{,6}` and `/proc/<pid>/fd`); elsewhere, and for
//! processes of other users whose descriptors cannot be read, the holder is unknown and
//! the message says how to find it. Only a process's command line is shown, which never
//! holds a secret here (secrets never go in argv); its environment is never read.

use std::fmt;

use picoclaw_config::Paths;
use picoclaw_credentials::runtime::RuntimeRecord;

/// Longest command line shown for a holder, in characters.
const MAX_ARGS_SHOWN: usize = 120;

/// Who holds a port.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortHolder {
    /// The gateway `.picoclaw.pid` of this home names.
    ThisHomesGateway {
        /// Its pid.
        pid: u32,
        /// The record's path.
        record: String,
    },
    /// Another picoclaw process (a gateway of another `PICOCLAW_HOME`, or a launcher).
    Picoclaw {
        /// Its pid.
        pid: u32,
        /// Its command line (shortened).
        args: String,
    },
    /// A process that is not picoclaw.
    Other {
        /// Its pid.
        pid: u32,
        /// Its command line (shortened), or its name.
        args: String,
    },
    /// It could not be told (another user's process, or not Linux).
    Unknown {
        /// The port, for the command that finds the holder.
        port: u16,
    },
}

impl PortHolder {
    /// Whether it is the gateway recorded in this home's `.picoclaw.pid`.
    pub fn is_this_homes_gateway(&self) -> bool {
        matches!(self, PortHolder::ThisHomesGateway { .. })
    }
}

impl fmt::Display for PortHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortHolder::ThisHomesGateway { pid, record } => {
                write!(f, "this home's gateway (pid {pid}, recorded in {record})")
            }
            PortHolder::Picoclaw { pid, args } => write!(
                f,
                "another picoclaw process, not this home's gateway (pid {pid}: `{args}`; a gateway or launcher of another PICOCLAW_HOME?)"
            ),
            PortHolder::Other { pid, args } => write!(f, "pid {pid} (`{args}`), which is not picoclaw"),
            PortHolder::Unknown { port } => write!(
                f,
                "another program, not this home's gateway (`ss -ltnp 'sport = :{port}'` shows which)"
            ),
        }
    }
}

/// Who listens on `port` (any address), judged against the record in `paths`.
pub fn holder(paths: &Paths, port: u16) -> PortHolder {
    let Some((pid, args, picoclaw)) = listener(port) else {
        return PortHolder::Unknown { port };
    };
    let record = paths.pid_file();
    if let Ok(Some(recorded)) = RuntimeRecord::read(&record)
        && recorded.pid == pid
    {
        return PortHolder::ThisHomesGateway { pid, record: record.display().to_string() };
    }
    if picoclaw { PortHolder::Picoclaw { pid, args } } else { PortHolder::Other { pid, args } }
}

/// A command line for a one-line message: control characters become spaces, and it is
/// cut after [`MAX_ARGS_SHOWN`] characters.
fn shorten(args: &str) -> String {
    let clean = args.chars().map(|c| if c.is_control() { ' ' } else { c });
    let mut out: String = clean.clone().take(MAX_ARGS_SHOWN).collect();
    if clean.count() > MAX_ARGS_SHOWN {
        out.push('…');
    }
    out
}

/// The pid, command line and "is picoclaw" of the process listening on `port`.
#[cfg(target_os = "linux")]
fn listener(port: u16) -> Option<(u32, String, bool)> {
    use std::collections::HashSet;

    use procfs::process::FDTarget;

    let mut entries = procfs::net::tcp().ok()?;
    if let Ok(v6) = procfs::net::tcp6() {
        entries.extend(v6);
    }
    let listening: HashSet<u64> = entries
        .iter()
        .filter(|e| e.state == procfs::net::TcpState::Listen && e.local_address.port() == port)
        .map(|e| e.inode)
        .collect();
    if listening.is_empty() {
        return None;
    }
    for process in procfs::process::all_processes().ok()?.filter_map(Result::ok) {
        let Ok(fds) = process.fd() else { continue };
        let owns = fds
            .filter_map(Result::ok)
            .any(|fd| matches!(fd.target, FDTarget::Socket(i) if listening.contains(&i)));
        if !owns {
            continue;
        }
        let pid = u32::try_from(process.pid).ok()?;
        let comm = process.stat().map(|s| s.comm).unwrap_or_default();
        let exe_name = process
            .exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let args =
            process.cmdline().ok().filter(|a| !a.is_empty()).map_or_else(|| comm.clone(), |a| a.join(" "));
        let picoclaw = comm == "picoclaw" || exe_name.starts_with("picoclaw");
        return Some((pid, shorten(&args), picoclaw));
    }
    None
}

#[cfg(not(target_os = "linux"))]
fn listener(_port: u16) -> Option<(u32, String, bool)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_command_lines_are_shortened() {
        let long = "x".repeat(500);
        assert_eq!(shorten(&long).chars().count(), MAX_ARGS_SHOWN + 1);
        assert_eq!(shorten("nc -l 5"), "nc -l 5");
        assert_eq!(shorten("python3 -c \nimport x"), "python3 -c  import x");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_listener_of_this_process_is_found_and_judged_against_the_record() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::at(home.path());
        match holder(&paths, port) {
            PortHolder::Other { pid, .. } | PortHolder::Picoclaw { pid, .. } => {
                assert_eq!(pid, std::process::id())
            }
            other => panic!("expected this test process, got {other:?}"),
        }
        drop(listener);
        assert_eq!(holder(&paths, port), PortHolder::Unknown { port });
    }
}
