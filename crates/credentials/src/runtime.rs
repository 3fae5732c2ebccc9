//! The gateway's discovery record, `.picoclaw.pid`, and its runtime token.
//!
//! The gateway writes `{pid, version, host, port, started_at, token}` atomically with mode
//! 0600 after it binds. `token` is a fresh 256-bit runtime token, accepted on every
//! gateway endpoint; local tools (CLI, launcher, doctor) read it here, so a stale
//! environment can never make them disagree with the gateway that is actually running.
//! Whether the record is live is decided by the OS lock the gateway holds (see the
//! `picoclaw-lifecycle` crate), not by guessing from the PID.

use std::path::Path;

use picoclaw_config::files::{SECRET_MODE, write_atomic};
use serde::{Deserialize, Serialize};

use crate::error::CredentialError;
use crate::secret::Secret;

/// The contents of `.picoclaw.pid`.
#[derive(Debug, Clone)]
pub struct RuntimeRecord {
    /// Process id of the gateway.
    pub pid: u32,
    /// picoclaw version of the gateway.
    pub version: String,
    /// Host clients should dial (a loopback address when bound to loopback or any).
    pub host: String,
    /// The bound port (the real one, also when configured as 0).
    pub port: u16,
    /// Unix time (seconds) the gateway started.
    pub started_at: u64,
    /// The runtime token.
    pub token: Secret,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    pid: u32,
    version: String,
    host: String,
    port: u16,
    started_at: u64,
    token: String,
}

impl RuntimeRecord {
    /// `http://host:port` of the gateway.
    pub fn base_url(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("http://{host}:{}", self.port)
    }

    /// Writes the record atomically (temp file, fsync, rename) with mode 0600.
    pub fn write(&self, path: &Path) -> Result<(), CredentialError> {
        let wire = Wire {
            pid: self.pid,
            version: self.version.clone(),
            host: self.host.clone(),
            port: self.port,
            started_at: self.started_at,
            token: self.token.expose().to_owned(),
        };
        let mut text = serde_json::to_string_pretty(&wire).map_err(|e| CredentialError::RuntimeRecord {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        text.push('\n');
        let result = write_atomic(path, text.as_bytes(), SECRET_MODE);
        zeroize::Zeroize::zeroize(&mut text);
        Ok(result?)
    }

    /// Reads the record, `Ok(None)` when there is none. Does not tell whether the gateway
    /// is alive: ask the lock (`picoclaw_lifecycle::probe`).
    pub fn read(path: &Path) -> Result<Option<RuntimeRecord>, CredentialError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => zeroize::Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CredentialError::RuntimeRecord {
                    path: path.display().to_string(),
                    message: e.to_string(),
                });
            }
        };
        let wire: Wire = serde_json::from_str(&text).map_err(|e| CredentialError::RuntimeRecord {
            path: path.display().to_string(),
            message: format!(
                "not a valid gateway record (line {}, column {}); it is stale and will be replaced by the next gateway start",
                e.line(),
                e.column()
            ),
        })?;
        Ok(Some(RuntimeRecord {
            pid: wire.pid,
            version: wire.version,
            host: wire.host,
            port: wire.port,
            started_at: wire.started_at,
            token: Secret::new(wire.token),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_private_and_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".picoclaw.pid");
        let rec = RuntimeRecord {
            pid: 42,
            version: "0.1.0".into(),
            host: "127.0.0.1".into(),
            port: 18790,
            started_at: 1,
            token: Secret::new("runtime-canary"),
        };
        rec.write(&path).unwrap();
        assert_eq!(picoclaw_config::files::too_open(&path), None);
        let back = RuntimeRecord::read(&path).unwrap().unwrap();
        assert_eq!(back.pid, 42);
        assert!(back.token.matches("runtime-canary"));
        assert!(!format!("{back:?}").contains("runtime-canary"));
        assert_eq!(back.base_url(), "http://127.0.0.1:18790");
    }

    #[test]
    fn garbage_record_is_an_error_without_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".picoclaw.pid");
        std::fs::write(&path, "{\"token\": \"leaky-canary\"").unwrap();
        let err = RuntimeRecord::read(&path).unwrap_err().to_string();
        assert!(!err.contains("leaky-canary"), "{err}");
    }
}
