//! Rewriting upstream PicoClaw's version-3 files into picoclaw's shape (`doctor --fix`).
//!
//! Both files are read and validated before either is written: a file that does not parse
//! is never rewritten. Each rewritten file is first copied, as it was, beside itself
//! (`config.json.upstream.bak`, `.security.yml.upstream.bak`; a numbered name when one
//! exists already), mode 0600, then replaced atomically. The mapping itself is
//! `picoclaw_config::upstream::rewrite`.

use std::path::{Path, PathBuf};

use picoclaw_config::Paths;
use picoclaw_config::files::{SECRET_MODE, require_private, write_atomic};
use picoclaw_config::upstream::rewrite;
use serde_json::Value;

use crate::error::CredentialError;
use crate::store::{read_security_tree, write_security_tree};

/// Suffix of the backups kept beside a rewritten file.
pub const BACKUP_SUFFIX: &str = ".upstream.bak";

/// One file rewritten into our shape.
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The file.
    pub path: PathBuf,
    /// Its previous content, kept as it was.
    pub backup: PathBuf,
}

fn unparseable(path: &Path, message: String) -> CredentialError {
    CredentialError::Unparseable { path: path.display().to_string(), message }
}

fn read(path: &Path) -> Result<Option<zeroize::Zeroizing<String>>, CredentialError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(zeroize::Zeroizing::new(t))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unparseable(path, e.to_string())),
    }
}

/// A name beside `path` that does not exist yet: `<name>.upstream.bak`, then `.1`, `.2`…
fn backup_name(path: &Path) -> PathBuf {
    let base = format!("{}{BACKUP_SUFFIX}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

/// Rewrites `config.json` and `.security.yml` from upstream's version-3 shape into ours,
/// keeping a backup of each file it changes. Nothing is written when either file does
/// not parse, or when neither is upstream-shaped (the result is then empty).
pub fn rewrite_upstream_files(paths: &Paths) -> Result<Vec<Rewritten>, CredentialError> {
    let config_path = paths.config_file();
    let security_path = paths.security_file();

    // Read and check both before writing either.
    let config_text = read(config_path)?;
    let config_new = match &config_text {
        Some(text) if !text.trim().is_empty() => {
            picoclaw_config::validate_config_text(config_path, text)
                .map_err(|e| unparseable(config_path, e.to_string()))?;
            let tree: Value = serde_json::from_str(text)
                .map_err(|e| unparseable(config_path, format!("line {}, column {}", e.line(), e.column())))?;
            match rewrite(&tree) {
                Some(new) => {
                    let body = zeroize::Zeroizing::new(
                        serde_json::to_string_pretty(&new)
                            .map_err(|e| unparseable(config_path, e.to_string()))?
                            + "\n",
                    );
                    picoclaw_config::validate_config_text(config_path, &body)?;
                    Some(body)
                }
                None => None,
            }
        }
        _ => None,
    };
    let security_text = read(&security_path)?;
    let security_new = match &security_text {
        Some(_) => rewrite(&read_security_tree(&security_path)?),
        None => None,
    };
    if security_new.is_some() {
        require_private(&security_path)?;
    }

    let mut done = Vec::new();
    if let (Some(old), Some(new)) = (&config_text, &config_new) {
        let backup = backup_name(config_path);
        write_atomic(&backup, old.as_bytes(), SECRET_MODE)?;
        write_atomic(config_path, new.as_bytes(), SECRET_MODE)?;
        done.push(Rewritten { path: config_path.to_owned(), backup });
    }
    if let (Some(old), Some(new)) = (&security_text, &security_new) {
        let backup = backup_name(&security_path);
        write_atomic(&backup, old.as_bytes(), SECRET_MODE)?;
        write_security_tree(&security_path, new)?;
        done.push(Rewritten { path: security_path, backup });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_files_are_rewritten_with_backups_and_a_bad_file_stops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let config =
            r#"{"version": 3, "channel_list": {"pico": {"enabled": true, "type": "pico", "settings": {}}}}"#;
        let security = "channel_list:\n  pico:\n    settings:\n      token: abc\n";
        std::fs::write(paths.config_file(), config).unwrap();
        write_atomic(&paths.security_file(), security.as_bytes(), SECRET_MODE).unwrap();

        let done = rewrite_upstream_files(&paths).unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(std::fs::read_to_string(&done[0].backup).unwrap(), config);
        assert_eq!(std::fs::read_to_string(&done[1].backup).unwrap(), security);
        let new: Value =
            serde_json::from_str(&std::fs::read_to_string(paths.config_file()).unwrap()).unwrap();
        assert_eq!(new, serde_json::json!({"channels": {"pico": {"enabled": true}}}));
        let tree = read_security_tree(&paths.security_file()).unwrap();
        assert_eq!(tree, serde_json::json!({"channels": {"pico": {"token": "abc"}}}));
        assert!(rewrite_upstream_files(&paths).unwrap().is_empty(), "a second run changes nothing");

        // An upstream-shaped config.json beside a .security.yml that does not parse: nothing.
        std::fs::write(paths.config_file(), config).unwrap();
        write_atomic(&paths.security_file(), b"channel_list: [", SECRET_MODE).unwrap();
        assert!(rewrite_upstream_files(&paths).is_err());
        assert_eq!(std::fs::read_to_string(paths.config_file()).unwrap(), config);
    }
}
