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
