//! Moving secrets into `.security.yml`, the file meant for them: out of `config.json`
//! ([`move_config_secrets`]), and from a service definition ([`adopt`], before the unit
//! is rewritten without them by `picoclaw-lifecycle`).
//!
//! Seed 001 rates config.json "development/testing only" for tokens. `doctor` lists the
//! secrets found there ([`config_secrets`]) and `doctor --fix` moves them
//! ([`move_config_secrets`]): `.security.yml` is written first (0600), then config.json
//! without the moved keys, so a crash in between leaves the secret in both files, never
//! in neither. A key `.security.yml` already holds with a *different* value is reported
//! and left in both files: which one is right is the user's call.

use picoclaw_config::Paths;
use picoclaw_config::files::{SECRET_MODE, write_atomic};
use picoclaw_config::schema::{self, Home, Key};
use serde_json::{Map, Value};

use crate::error::CredentialError;
use crate::secret::{Fingerprint, Secret};
use crate::store::{get_path, read_security_tree, set_path, write_security_tree};

/// A secret found in config.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSecret {
    /// Where it is in config.json (`gateway.token`, `model_list[gpt].api_key`).
    pub key: String,
    /// Where it belongs in `.security.yml` (`gateway.token`, `model_list.gpt.api_keys`).
    pub target: String,
    /// Public name of the value.
    pub fingerprint: Fingerprint,
}

/// What happened to one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    /// Written to `.security.yml` and removed from config.json.
    Moved,
    /// `.security.yml` already held the same value; removed from config.json.
    AlreadyThere,
    /// `.security.yml` holds a different value; both were left as they are.
    Conflict {
        /// Fingerprint of the `.security.yml` value.
        file_fingerprint: Fingerprint,
    },
}

enum Found {
    Single(Secret),
    List(Vec<Secret>),
}

struct Item {
    info: ConfigSecret,
    value: Found,
    /// How to remove it from the config tree.
    remove: Removal,
}

enum Removal {
    Path(&'static str),
    Model { index: usize, field: &'static str },
}

fn non_blank(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn collect(config: &Value) -> Vec<Item> {
    let mut out = Vec::new();
    for key in schema::KEYS.iter().filter(|k| k.is_secret() && k.home == Home::Config) {
        if let Some(v) = get_path(config, key.file_key).and_then(non_blank) {
            let secret = Secret::new(v);
            out.push(Item {
                info: ConfigSecret {
                    key: key.file_key.to_owned(),
                    target: key.file_key.to_owned(),
                    fingerprint: secret.fingerprint(),
                },
                value: Found::Single(secret),
                remove: Removal::Path(key.file_key),
            });
        }
    }
    let models =
        config.get(schema::MODEL_LIST.file_key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for (index, model) in models.iter().enumerate() {
        let Some(name) = model.get("model_name").and_then(non_blank) else { continue };
        for field in ["api_key", "api_keys"] {
            let keys: Vec<Secret> = match model.get(field) {
                Some(Value::Array(list)) => list.iter().filter_map(non_blank).map(Secret::new).collect(),
                Some(v) => non_blank(v).map(Secret::new).into_iter().collect(),
                None => Vec::new(),
            };
            if keys.is_empty() {
                continue;
            }
            out.push(Item {
                info: ConfigSecret {
                    key: format!("model_list[{name}].{field}"),
                    target: format!("model_list.{name}.api_keys"),
                    fingerprint: keys[0].fingerprint(),
                },
                value: Found::List(keys),
                remove: Removal::Model { index, field },
            });
        }
    }
    out
}

/// Every secret in a parsed config.json tree (names and fingerprints only).
pub fn config_secrets(config: &Value) -> Vec<ConfigSecret> {
    collect(config).into_iter().map(|i| i.info).collect()
}

fn same(existing: &Value, found: &Found) -> Option<bool> {
    match (existing, found) {
        (v, Found::Single(s)) => non_blank(v).map(|e| s.matches(e)),
        (Value::Array(list), Found::List(keys)) => {
            let existing: Vec<&str> = list.iter().filter_map(non_blank).collect();
            if existing.is_empty() {
                return None;
            }
            Some(existing.len() == keys.len() && keys.iter().zip(existing).all(|(k, e)| k.matches(e)))
        }
        _ => None,
    }
}

fn fingerprint_of(existing: &Value) -> Fingerprint {
    let first = match existing {
        Value::Array(list) => list.iter().find_map(non_blank),
        other => non_blank(other),
    };
    Secret::new(first.unwrap_or_default()).fingerprint()
}

/// Moves every secret of config.json into `.security.yml`. Refuses (error, nothing
/// written) when either file does not parse.
pub fn move_config_secrets(paths: &Paths) -> Result<Vec<(ConfigSecret, MoveOutcome)>, CredentialError> {
    let config_path = paths.config_file();
    let text = match std::fs::read_to_string(config_path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CredentialError::Unparseable {
                path: config_path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    let unparseable =
        |message: String| CredentialError::Unparseable { path: config_path.display().to_string(), message };
    picoclaw_config::validate_config_text(config_path, &text).map_err(|e| unparseable(e.to_string()))?;
    let mut config: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(&text)
            .map_err(|e| unparseable(format!("line {}, column {}", e.line(), e.column())))?
    };
    let items = collect(&config);
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let security_path = paths.security_file();
    let mut tree = read_security_tree(&security_path)?;
    let mut results = Vec::with_capacity(items.len());
    let mut to_remove = Vec::new();
    let mut security_dirty = false;
    for item in items {
        let outcome = match get_path(&tree, &item.info.target)
            .and_then(|v| same(v, &item.value).map(|s| (s, v)))
        {
            None => {
                let value = match &item.value {
                    Found::Single(s) => Value::from(s.expose()),
                    Found::List(keys) => Value::Array(keys.iter().map(|k| Value::from(k.expose())).collect()),
                };
                set_path(&mut tree, &item.info.target, value);
                security_dirty = true;
                MoveOutcome::Moved
            }
            Some((true, _)) => MoveOutcome::AlreadyThere,
            Some((false, v)) => MoveOutcome::Conflict { file_fingerprint: fingerprint_of(v) },
        };
        if !matches!(outcome, MoveOutcome::Conflict { .. }) {
            to_remove.push(item.remove);
        }
        results.push((item.info, outcome));
    }
    if security_dirty {
        write_security_tree(&security_path, &tree)?;
    }
    if !to_remove.is_empty() {
        for removal in &to_remove {
            remove(&mut config, removal);
        }
        let body = zeroize::Zeroizing::new(
            serde_json::to_string_pretty(&config).map_err(|e| unparseable(e.to_string()))? + "\n",
        );
        write_atomic(config_path, body.as_bytes(), SECRET_MODE)?;
    }
    Ok(results)
}

fn remove(config: &mut Value, removal: &Removal) {
    match removal {
        Removal::Path(path) => {
            let (parent, last) = match path.rsplit_once('.') {
                Some((p, l)) => (Some(p), l),
                None => (None, *path),
            };
            let node = match parent {
                Some(p) => p.split('.').try_fold(&mut *config, |n, part| n.get_mut(part)),
                None => Some(&mut *config),
            };
            if let Some(Value::Object(map)) = node {
                map.remove(last);
            }
        }
        Removal::Model { index, field } => {
            if let Some(Value::Object(model)) =
                config.get_mut(schema::MODEL_LIST.file_key).and_then(|l| l.get_mut(*index))
            {
                model.remove(*field);
            }
        }
    }
}

/// What happened to one adopted secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// It was written to the file (it was not set there).
    Stored {
        /// File and key, e.g. `.security.yml:gateway.token`.
        destination: String,
    },
    /// The file already holds the same value.
    AlreadyThere {
        /// File and key.
        destination: String,
    },
    /// The file holds a different value; it was kept, the adopted one was not written.
    Conflict {
        /// File and key.
        destination: String,
        /// Fingerprint of the value the file holds.
        file_fingerprint: Fingerprint,
    },
    /// The same key comes with different values; nothing was written for it.
    Ambiguous,
}

/// Largest `launcher-config.json` read while adopting.
const MAX_LAUNCHER_FILE_BYTES: u64 = 1 << 20;

/// Moves secrets found outside the picoclaw files (a service definition) into
/// `.security.yml` (launcher token: `launcher-config.json`) at the same key, so a client
/// holding the value keeps working once the definition no longer carries it. A value
/// already in the file is never overwritten. Files that do not parse are left untouched
/// (error). One outcome per entry of `found`, in order.
pub fn adopt(paths: &Paths, found: &[(&'static Key, &Secret)]) -> Result<Vec<Adoption>, CredentialError> {
    let security_path = paths.security_file();
    let mut tree: Option<Value> = None;
    let mut dirty = false;
    let mut outcomes = Vec::with_capacity(found.len());
    for &(key, secret) in found {
        let ambiguous = found.iter().any(|(k, s)| k.path == key.path && *s != secret);
        if ambiguous {
            outcomes.push(Adoption::Ambiguous);
            continue;
        }
        match key.home {
            Home::Config => {
                if tree.is_none() {
                    tree = Some(read_security_tree(&security_path)?);
                }
                let Some(t) = tree.as_mut() else { continue };
                let destination = format!(".security.yml:{}", key.file_key);
                let existing = get_path(t, key.file_key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty());
                match existing {
                    None => {
                        set_path(t, key.file_key, Value::from(secret.expose()));
                        dirty = true;
                        outcomes.push(Adoption::Stored { destination });
                    }
                    Some(v) if secret.matches(v) => outcomes.push(Adoption::AlreadyThere { destination }),
                    Some(v) => outcomes.push(Adoption::Conflict {
                        destination,
                        file_fingerprint: Secret::new(v).fingerprint(),
                    }),
                }
            }
            Home::Launcher => {
                let path = paths.launcher_file();
                let destination = format!("launcher-config.json:{}", key.file_key);
                let existing = std::fs::metadata(&path)
                    .ok()
                    .filter(|m| m.is_file() && m.len() <= MAX_LAUNCHER_FILE_BYTES)
                    .and_then(|_| std::fs::read_to_string(&path).ok())
                    .map(zeroize::Zeroizing::new)
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .and_then(|v| v.get(key.file_key).and_then(Value::as_str).map(Secret::new))
                    .filter(|s| !s.is_empty());
                match existing {
                    None => {
                        crate::launcher::store(&path, secret)?;
                        outcomes.push(Adoption::Stored { destination });
                    }
                    Some(v) if v == *secret => outcomes.push(Adoption::AlreadyThere { destination }),
                    Some(v) => {
                        outcomes.push(Adoption::Conflict { destination, file_fingerprint: v.fingerprint() })
                    }
                }
            }
        }
    }
    if dirty && let Some(t) = &tree {
        write_security_tree(&security_path, t)?;
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(path: &std::path::Path, text: &str) {
        std::fs::write(path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    #[test]
    fn moves_secrets_and_keeps_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        private(
            paths.config_file(),
            r#"{"gateway":{"port":1,"token":"gw-in-config"},"channels":{"pico":{"enabled":true,"token":"pico-in-config"}},
               "model_list":[{"model_name":"m","model":"x","api_base":"http://127.0.0.1:1","api_key":"sk-1"}]}"#,
        );
        private(&paths.security_file(), "channels:\n  pico:\n    token: different\n");
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(paths.config_file()).unwrap()).unwrap();
        let found = config_secrets(&config);
        assert_eq!(found.len(), 3);
        let results = move_config_secrets(&paths).unwrap();
        let outcomes: Vec<_> = results.iter().map(|(s, o)| (s.key.as_str(), o.clone())).collect();
        assert_eq!(outcomes[0], ("gateway.token", MoveOutcome::Moved));
        assert!(matches!(outcomes[1], ("channels.pico.token", MoveOutcome::Conflict { .. })));
        assert_eq!(outcomes[2], ("model_list[m].api_key", MoveOutcome::Moved));
        let after = std::fs::read_to_string(paths.config_file()).unwrap();
        assert!(!after.contains("gw-in-config") && !after.contains("sk-1"), "{after}");
        assert!(after.contains("pico-in-config"), "conflicting value is kept: {after}");
        let tree = read_security_tree(&paths.security_file()).unwrap();
        assert_eq!(get_path(&tree, "gateway.token").and_then(Value::as_str), Some("gw-in-config"));
        assert_eq!(get_path(&tree, "channels.pico.token").and_then(Value::as_str), Some("different"));
        // Idempotent: the second run moves nothing more.
        let again = move_config_secrets(&paths).unwrap();
        assert!(again.iter().all(|(_, o)| matches!(o, MoveOutcome::Conflict { .. })));
    }

    #[test]
    fn unparseable_files_are_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        private(paths.config_file(), r#"{"gateway":{"token":"t"}}"#);
        private(&paths.security_file(), "gateway: [unclosed\n");
        assert!(move_config_secrets(&paths).is_err());
        assert_eq!(std::fs::read_to_string(paths.config_file()).unwrap(), r#"{"gateway":{"token":"t"}}"#);
        private(paths.config_file(), r#"{"gateway":{"token":"#);
        assert!(move_config_secrets(&paths).is_err());
    }

    #[test]
    fn adopt_stores_keeps_and_reports_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let (gateway, pico) = (Secret::new("unit-gw"), Secret::new("unit-pico"));
        let found = [(&schema::GATEWAY_TOKEN, &gateway), (&schema::CHANNELS_PICO_TOKEN, &pico)];
        private(&paths.security_file(), "channels:\n  pico:\n    token: other\n");
        let outcomes = adopt(&paths, &found).unwrap();
        assert!(
            matches!(&outcomes[0], Adoption::Stored { destination } if destination == ".security.yml:gateway.token")
        );
        assert!(matches!(&outcomes[1], Adoption::Conflict { .. }));
        let tree = read_security_tree(&paths.security_file()).unwrap();
        let at = |key: &Key| get_path(&tree, key.file_key).and_then(Value::as_str);
        assert_eq!(at(&schema::GATEWAY_TOKEN), Some("unit-gw"));
        assert_eq!(at(&schema::CHANNELS_PICO_TOKEN), Some("other"));
        assert!(matches!(adopt(&paths, &found[..1]).unwrap()[0], Adoption::AlreadyThere { .. }));
        let other = Secret::new("unit-gw-2");
        let twice = [(&schema::GATEWAY_TOKEN, &gateway), (&schema::GATEWAY_TOKEN, &other)];
        assert_eq!(adopt(&paths, &twice).unwrap(), [Adoption::Ambiguous, Adoption::Ambiguous]);
    }
}
