//! Writing secrets into `.security.yml`: parse first, change one key, validate, write
//! atomically with mode 0600. A file that does not parse is never rewritten; a file with
//! permissions wider than 0600 is refused.
//!
//! The file is re-serialized, so YAML comments are not preserved (documented in
//! `docs/configuration.md`).

use std::path::Path;

use picoclaw_config::files::{SECRET_MODE, require_private, write_atomic};
use picoclaw_config::validate_security_text;
use serde_json::{Map, Value};

use crate::error::CredentialError;

/// Reads `.security.yml` as a tree (empty when the file is missing).
pub fn read_security_tree(path: &Path) -> Result<Value, CredentialError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => zeroize::Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Value::Object(Map::new())),
        Err(e) => {
            return Err(CredentialError::Unparseable {
                path: path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    validate_security_text(path, &text).map_err(|e| CredentialError::Unparseable {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(Value::Object(Map::new()));
    }
    serde_saphyr::from_str::<Value>(&text).map_err(|e| CredentialError::Unparseable {
        path: path.display().to_string(),
        message: e.without_snippet().render(),
    })
}

/// Replaces `.security.yml` with `tree` after validating it, atomically, mode 0600.
pub fn write_security_tree(path: &Path, tree: &Value) -> Result<(), CredentialError> {
    if path.exists() {
        require_private(path)?;
    }
    let text = zeroize::Zeroizing::new(serde_saphyr::to_string(tree).map_err(|e| {
        CredentialError::Unparseable { path: path.display().to_string(), message: e.to_string() }
    })?);
    validate_security_text(path, &text)?;
    let header = "# picoclaw secrets: keep this file mode 0600 and out of version control.\n";
    let mut body = zeroize::Zeroizing::new(String::with_capacity(header.len() + text.len()));
    body.push_str(header);
    body.push_str(&text);
    write_atomic(path, body.as_bytes(), SECRET_MODE)?;
    Ok(())
}

/// Sets the dotted `key` (e.g. `channels.pico.token`) to `value` in the tree.
pub fn set_path(tree: &mut Value, key: &str, value: Value) {
    let mut node = tree;
    let parts: Vec<&str> = key.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if !node.get(*part).is_some_and(Value::is_object)
            && let Value::Object(map) = node
        {
            map.insert((*part).to_owned(), Value::Object(Map::new()));
        }
        let Some(next) = node.get_mut(*part) else { return };
        node = next;
    }
    if let (Value::Object(map), Some(last)) = (node, parts.last()) {
        map.insert((*last).to_owned(), value);
    }
}

/// The value at a dotted `key`, if any.
pub fn get_path<'v>(tree: &'v Value, key: &str) -> Option<&'v Value> {
    key.split('.').try_fold(tree, |node, part| node.get(part))
}
