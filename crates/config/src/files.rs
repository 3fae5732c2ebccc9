//! Atomic, permission-aware file writes.
//!
//! Every file picoclaw writes goes through [`write_atomic`]: a temporary file in the same
//! directory, created 0600, written, fsynced, renamed over the target, then the directory
//! fsynced. A crash at any point leaves the old or the new content, never a torn file.

use std::fs;
use std::io::Write;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use crate::error::ConfigError;

/// Mode of every file that holds a secret.
pub const SECRET_MODE: u32 = 0o600;

/// Writes `bytes` to `path` atomically with the given mode (0600 for anything secret).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ConfigError> {
    let err = |source| ConfigError::Write { path: path.to_owned(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    ensure_dir(dir, 0o700).map_err(err)?;
    let mut tmp = tempfile::Builder::new().prefix(".picoclaw-tmp-").tempfile_in(dir).map_err(err)?;
    #[cfg(unix)]
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode)).map_err(err)?;
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Creates `dir` (and parents) with `mode` when missing. Existing directories are left as
/// they are.
pub fn ensure_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(mode);
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(dir)
}

/// Prefix of the temporary files [`write_atomic`] creates.
pub const TEMP_PREFIX: &str = ".picoclaw-tmp-";

/// Removes temporary files left in `dir` by writers killed mid-write (they may hold an old
/// secret). Only files older than `min_age` are removed, so a write in progress in another
/// process is left alone. Returns how many were removed.
pub fn remove_stale_temp_files(dir: &Path, min_age: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let old_enough = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        if old_enough && entry.file_type().is_ok_and(|t| t.is_file()) && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

fn sync_dir(dir: &Path) {
    // Best effort: some filesystems refuse fsync on a directory; the rename itself is atomic.
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// The mode bits of `path` when group or others have any access, else `None`.
pub fn too_open(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Refuses to write secrets into an existing file that other users can read.
pub fn require_private(path: &Path) -> Result<(), ConfigError> {
    match too_open(path) {
        Some(mode) => Err(ConfigError::InsecurePermissions { path: path.to_owned(), mode }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_creates_private_file_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.yml");
        write_atomic(&path, b"one", SECRET_MODE).unwrap();
        write_atomic(&path, b"two", SECRET_MODE).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(too_open(&path), None);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    #[test]
    fn stale_temp_files_are_removed_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".picoclaw-tmp-abc"), "old secret").unwrap();
        fs::write(dir.path().join("config.json"), "{}").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path(), std::time::Duration::from_secs(3600)), 0);
        assert_eq!(remove_stale_temp_files(dir.path(), std::time::Duration::ZERO), 1);
        assert!(dir.path().join("config.json").exists());
    }

    #[cfg(unix)]
    #[test]
    fn open_permissions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yml");
        fs::write(&path, "x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = require_private(&path).unwrap_err().to_string();
        assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
    }
}
