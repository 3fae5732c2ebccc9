//! Configuration errors and warnings. Messages name the file, the key and what was
//! expected; they never contain a value that could be a secret.

use std::fmt;
use std::path::PathBuf;

/// A configuration problem that stops the program before it starts half-configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither `PICOCLAW_HOME` nor a user home directory is known.
    #[error("cannot find a home directory: set PICOCLAW_HOME (or HOME)")]
    NoHome,
    /// A file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be parsed or has a value of the wrong type.
    #[error("{}{}: {message}", path.display(), location(*line, *column))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line, when the format gives one.
        line: Option<usize>,
        /// 1-based column, when the format gives one.
        column: Option<usize>,
        /// What is wrong and what was expected (never the value).
        message: String,
    },
    /// An environment variable has a value of the wrong type.
    #[error("environment variable {name}: expected {expected}{}", shown(value))]
    Env {
        /// The variable.
        name: &'static str,
        /// What was expected.
        expected: &'static str,
        /// The value, only for non-secret keys.
        value: Option<String>,
    },
    /// A secret is given both as a value and as a file.
    #[error(
        "both {value} and {file} are set: set one of them ({value} holds the secret itself, {file} the absolute path of a file holding it)"
    )]
    EnvConflict {
        /// The value variable.
        value: &'static str,
        /// The `_FILE` variable.
        file: &'static str,
    },
    /// A variable that must hold an absolute path does not.
    #[error("environment variable {name}: expected an absolute path, got {value:?}")]
    NotAbsolute {
        /// The variable.
        name: &'static str,
        /// Its value (a path, not a secret).
        value: String,
    },
    /// A combination of values that cannot work.
    #[error("{key} (from {origin}): {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Where the offending value came from.
        origin: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A file holding secrets is readable by other users.
    #[error(
        "{} has permissions {mode:04o}, wider than 0600; refusing to write secrets to it (run `chmod 600 {}` or `picoclaw doctor --fix`)",
        path.display(), path.display()
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// Writing a file failed; the old content is intact.
    #[error("cannot write {} (the previous content is unchanged): {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn shown(value: &Option<String>) -> String {
    match value {
        Some(v) => format!(", got {v:?}"),
        None => String::new(),
    }
}

/// A problem that does not stop the program, such as an unknown key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file name (`config.json`, `.security.yml`, `launcher-config.json`).
    pub file: &'static str,
    /// The dotted key.
    pub key: String,
    /// The full message.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}
