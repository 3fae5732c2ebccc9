//! The home directory and every file picoclaw keeps in it.

use std::path::{Path, PathBuf};

use crate::env::EnvSource;
use crate::error::ConfigError;

/// Name of the variable that selects the home directory.
pub const HOME_VAR: &str = "PICOCLAW_HOME";
/// Name of the variable that points `config.json` elsewhere.
pub const CONFIG_VAR: &str = "PICOCLAW_CONFIG";

/// Every path picoclaw reads or writes, derived from `PICOCLAW_HOME` and `PICOCLAW_CONFIG`.
///
/// `.security.yml` and `launcher-config.json` always sit beside `config.json`; the PID file,
/// logs and sessions live in the home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    home: PathBuf,
    config: PathBuf,
}

impl Paths {
    /// Resolves the paths from the environment: `PICOCLAW_HOME` (default `~/.picoclaw`) and
    /// `PICOCLAW_CONFIG` (default `$PICOCLAW_HOME/config.json`).
    pub fn from_env(env: &dyn EnvSource) -> Result<Paths, ConfigError> {
        let home = match env.var(HOME_VAR).filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home),
            None => {
                let user_home = env
                    .var("HOME")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(std::env::home_dir)
                    .ok_or(ConfigError::NoHome)?;
                user_home.join(".picoclaw")
            }
        };
        let config = match env.var(CONFIG_VAR).filter(|v| !v.is_empty()) {
            Some(config) => PathBuf::from(config),
            None => home.join("config.json"),
        };
        Ok(Paths { home, config })
    }

    /// Paths rooted at an explicit home directory (config.json inside it).
    pub fn at(home: impl Into<PathBuf>) -> Paths {
        let home = home.into();
        let config = home.join("config.json");
        Paths { home, config }
    }

    /// The home directory (`PICOCLAW_HOME`).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `config.json`.
    pub fn config_file(&self) -> &Path {
        &self.config
    }

    /// The directory holding config.json, .security.yml and launcher-config.json.
    pub fn config_dir(&self) -> &Path {
        self.config.parent().unwrap_or(&self.home)
    }

    /// `.security.yml`, beside config.json.
    pub fn security_file(&self) -> PathBuf {
        self.config_dir().join(".security.yml")
    }

    /// `launcher-config.json`, beside config.json.
    pub fn launcher_file(&self) -> PathBuf {
        self.config_dir().join("launcher-config.json")
    }

    /// `.picoclaw.pid`: the discovery record and lock of the running gateway.
    pub fn pid_file(&self) -> PathBuf {
        self.home.join(".picoclaw.pid")
    }

    /// `logs/`.
    pub fn logs_dir(&self) -> PathBuf {
        self.home.join("logs")
    }

    /// `logs/gateway.log`.
    pub fn gateway_log(&self) -> PathBuf {
        self.logs_dir().join("gateway.log")
    }

    /// `logs/launcher.log`.
    pub fn launcher_log(&self) -> PathBuf {
        self.logs_dir().join("launcher.log")
    }

    /// `logs/audit.jsonl`.
    pub fn audit_log(&self) -> PathBuf {
        self.logs_dir().join("audit.jsonl")
    }

    /// `sessions/`: one append-only history file per chat session.
    pub fn sessions_dir(&self) -> PathBuf {
        self.home.join("sessions")
    }
}
