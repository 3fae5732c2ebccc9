//! Which `picoclaw` binary a service unit starts: an installed one, never a file that
//! `cargo clean` or the next build removes or replaces.
//!
//! A binary is *in a build directory* when one of its ancestors is a cargo target
//! directory (it holds `CACHEDIR.TAG` or `.rustc_info.json`, which cargo writes there).
//! Run from such a place, `service install` looks for an installed `picoclaw` on `PATH`
//! (e.g. `~/.cargo/bin/picoclaw` from `cargo install --path crates/cli`) and uses it;
//! when there is none it keeps the build's binary and warns.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The cargo target directory `binary` lies in, if any.
pub fn build_dir_of(binary: &Path) -> Option<PathBuf> {
    binary
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file() || dir.join(".rustc_info.json").is_file())
        .map(Path::to_owned)
}

/// The first executable `picoclaw` on `path_var` (a `PATH` value) that is not in a build
/// directory, canonicalized.
pub fn installed_on_path(path_var: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("picoclaw"))
        .filter(|candidate| is_executable(candidate))
        .filter_map(|candidate| std::fs::canonicalize(&candidate).ok())
        .find(|candidate| build_dir_of(candidate).is_none())
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_under_a_target_dir_is_in_a_build_dir_and_is_skipped_on_path() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("clone/target");
        std::fs::create_dir_all(target.join("release")).unwrap();
        std::fs::write(target.join("CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55").unwrap();
        let built = target.join("release/picoclaw");
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let installed = bin.join("picoclaw");
        for file in [&built, &installed] {
            std::fs::write(file, "#!/bin/sh\n").unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        assert_eq!(build_dir_of(&built), Some(target.clone()));
        assert_eq!(build_dir_of(&installed), None);
        let path = std::env::join_paths([target.join("release"), bin.clone()]).unwrap();
        assert_eq!(installed_on_path(Some(&path)), Some(std::fs::canonicalize(&installed).unwrap()));
        let only_build = std::env::join_paths([target.join("release")]).unwrap();
        assert_eq!(installed_on_path(Some(&only_build)), None);
        assert_eq!(installed_on_path(None), None);
    }
}
