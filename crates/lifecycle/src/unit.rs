//! Finding picoclaw secrets copied into service definitions — systemd units, the files
//! their `EnvironmentFile=` lines reference, and launchd plists — and removing them.
//!
//! A token copied into a unit is a second source of truth: it is read once at service
//! start, shadows `.security.yml` (environment beats files), and silently goes stale when
//! the token is rotated (seed 004). This module only *reads* such values so that
//! `service audit` can name them by fingerprint and [`crate::migrate`] can keep
//! them in `.security.yml` (`picoclaw_credentials::migrate::adopt`) before the unit is
//! rewritten without them.
//!
//! - [`systemd`]: the unit syntax (words, quoting, continuations, specifiers), environment
//!   files.
//! - [`launchd`]: property lists, parsed with the `plist` crate (XML or binary).

pub mod launchd;
pub mod systemd;

use std::path::{Path, PathBuf};

use picoclaw_config::schema::{self, Key};
use picoclaw_credentials::{Fingerprint, Secret};

/// Largest unit, drop-in, plist or environment file read (larger files are skipped).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Where in a service definition a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// An `Environment=` assignment (1-based line).
    Environment {
        /// Line number in the unit.
        line: usize,
    },
    /// A line of a file named by `EnvironmentFile=`.
    EnvironmentFile {
        /// The environment file.
        file: PathBuf,
        /// Line number in that file.
        line: usize,
    },
    /// An argument of `ExecStart=` (or another `Exec*=` line).
    ExecArgument {
        /// Line number in the unit.
        line: usize,
    },
    /// A `SetCredential=ID:VALUE` line: the value is in the unit itself (use
    /// `LoadCredential=` with a file, or `SetCredentialEncrypted=`).
    SetCredential {
        /// Line number in the unit.
        line: usize,
    },
    /// `EnvironmentVariables` of a launchd plist.
    PlistEnvironment,
    /// `ProgramArguments` of a launchd plist.
    PlistArgument,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Environment { line } => write!(f, "Environment= (line {line})"),
            Place::SetCredential { line } => write!(f, "SetCredential= (line {line})"),
            Place::EnvironmentFile { file, line } => {
                write!(f, "EnvironmentFile {} (line {line})", file.display())
            }
            Place::ExecArgument { line } => write!(f, "ExecStart argument (line {line})"),
            Place::PlistEnvironment => f.write_str("EnvironmentVariables"),
            Place::PlistArgument => f.write_str("ProgramArguments"),
        }
    }
}

/// One secret found in a service definition.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The configuration key it sets (`gateway.token`, ...).
    pub key: &'static Key,
    /// The variable or flag that carries it (`PICOCLAW_GATEWAY_TOKEN`, `--token`).
    pub name: String,
    /// Where it is.
    pub place: Place,
    /// The value.
    pub secret: Secret,
}

impl Embedded {
    /// Public name of the value.
    pub fn fingerprint(&self) -> Fingerprint {
        self.secret.fingerprint()
    }
}

/// The secret key an environment variable sets, if it is one of picoclaw's secrets.
pub fn secret_var(name: &str) -> Option<&'static Key> {
    schema::by_env(name).filter(|k| k.is_secret())
}

/// The one reader of service files: `None` when the file does not exist, an error when it
/// cannot be read or is larger than [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_FILE_BYTES => {
            return Err(std::io::Error::other("file is larger than 1 MiB"));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    std::fs::read_to_string(path).map(Some)
}

/// A file that may hold secrets, read into memory that is wiped when dropped; `None` when
/// it is missing, unreadable, not a file or too large.
fn read_secret_text(path: &Path) -> Option<zeroize::Zeroizing<String>> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    read_text(path).ok().flatten().map(zeroize::Zeroizing::new)
}

/// The permission bits of `path`, or `default` when they cannot be read.
pub fn mode_or(path: &Path, default: u32) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).map_or(default, |m| m.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        default
    }
}
