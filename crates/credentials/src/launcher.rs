//! The dashboard (launcher) token.
//!
//! Resolution, in order (seed 001, "Web Launcher Dashboard Token"):
//! 1. `PICOCLAW_LAUNCHER_TOKEN`, then the file `PICOCLAW_LAUNCHER_TOKEN_FILE` names, then
//!    `$CREDENTIALS_DIRECTORY/picoclaw-launcher-token` — never echoed, never persisted;
//! 2. `launcher_token` in `launcher-config.json`;
//! 3. a random 256-bit token, persisted to `launcher-config.json` (0600) and reused on
//!    the next start.

use std::fmt;
use std::path::Path;

use picoclaw_config::files::{SECRET_MODE, require_private, write_atomic};
use picoclaw_config::{Layers, Source, schema};
use serde_json::{Map, Value};

use crate::error::CredentialError;
use crate::secret::Secret;

/// The three origins seed 001 names for the dashboard token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `PICOCLAW_LAUNCHER_TOKEN`, or a file outside picoclaw's control
    /// (`PICOCLAW_LAUNCHER_TOKEN_FILE`, the systemd credential): managed outside, so
    /// never echoed and never replaced from the dashboard. `source` tells which.
    Env,
    /// `launcher-config.json` `launcher_token`.
    Config,
    /// Generated at this start and persisted.
    Random,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Env => "env",
            Origin::Config => "config",
            Origin::Random => "random",
        })
    }
}

/// The resolved dashboard token.
#[derive(Debug, Clone)]
pub struct LauncherToken {
    /// The token.
    pub secret: Secret,
    /// `env`, `config` or `random`.
    pub origin: Origin,
    /// The detailed source.
    pub source: Source,
}

/// The launcher token if one is configured, without generating one (for `auth explain`).
pub fn peek(layers: &Layers) -> Result<Option<LauncherToken>, CredentialError> {
    let Some(candidate) = layers.candidates(&schema::LAUNCHER_TOKEN).into_iter().next() else {
        return Ok(None);
    };
    let Some(value) = candidate.value.as_str().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let secret = if candidate.source.is_secret_file() {
        crate::secret_file::read(&candidate.source, Path::new(value))?
    } else {
        Secret::new(value)
    };
    let origin = match candidate.source {
        Source::Env(_) | Source::EnvFile(_) | Source::Credential(_) => Origin::Env,
        _ => Origin::Config,
    };
    Ok(Some(LauncherToken { secret, origin, source: candidate.source }))
}

/// The launcher token; generates and persists a random one when none is configured.
pub fn resolve_or_create(layers: &Layers) -> Result<LauncherToken, CredentialError> {
    if let Some(token) = peek(layers)? {
        return Ok(token);
    }
    let secret = Secret::generate()?;
    let path = layers.paths().launcher_file();
    store(&path, &secret)?;
    Ok(LauncherToken {
        secret,
        origin: Origin::Random,
        source: Source::Generated("launcher-config.json".to_owned()),
    })
}

/// Writes `launcher_token` into `launcher-config.json`, keeping every other key. Refuses
/// when the file does not parse or is readable by others.
pub fn store(path: &Path, secret: &Secret) -> Result<(), CredentialError> {
    let mut tree = match std::fs::read_to_string(path) {
        Ok(text) => {
            require_private(path)?;
            picoclaw_config::files::ensure_dir(path.parent().unwrap_or(Path::new(".")), 0o700)
                .map_err(|source| picoclaw_config::ConfigError::Write { path: path.to_owned(), source })?;
            if text.trim().is_empty() {
                Value::Object(Map::new())
            } else {
                serde_json::from_str::<Value>(&text).map_err(|e| CredentialError::Unparseable {
                    path: path.display().to_string(),
                    message: format!("line {}, column {}", e.line(), e.column()),
                })?
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(e) => {
            return Err(CredentialError::Unparseable {
                path: path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    let Value::Object(map) = &mut tree else {
        return Err(CredentialError::Unparseable {
            path: path.display().to_string(),
            message: "expected a JSON object".into(),
        });
    };
    let port = schema::LAUNCHER_PORT.file_key;
    if !map.contains_key(port) {
        map.insert(port.into(), Value::from(18800));
    }
    let token = schema::LAUNCHER_TOKEN.file_key;
    map.insert(token.into(), Value::from(secret.expose()));
    let text = zeroize::Zeroizing::new(serde_json::to_string_pretty(&tree).unwrap_or_default() + "\n");
    if let Value::Object(map) = &mut tree {
        map.remove(token);
    }
    write_atomic(path, text.as_bytes(), SECRET_MODE)?;
    Ok(())
}
