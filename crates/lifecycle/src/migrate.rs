//! The one migration of secrets out of a service definition, used by `picoclaw service
//! install` (before it replaces a unit) and by `picoclaw doctor --fix`: keep every
//! embedded secret in the picoclaw files at its key (so clients holding it keep working),
//! then rewrite the definition without it. Callers word the outcome for their user.

use std::path::{Path, PathBuf};

use picoclaw_config::Paths;
use picoclaw_config::schema::Key;
use picoclaw_credentials::migrate::{self, Adoption};
use picoclaw_credentials::{CredentialError, Fingerprint};

use crate::service::{self, Rewritten, ServiceError, UnitAudit, UserDirs};

/// Why nothing was migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The definition cannot be read.
    #[error(transparent)]
    Read(ServiceError),
    /// The definition runs with another `PICOCLAW_HOME`: its secrets belong there.
    #[error("{} runs with PICOCLAW_HOME={}", path.display(), home.display())]
    OtherHome {
        /// The definition.
        path: PathBuf,
        /// The home it runs with.
        home: PathBuf,
    },
    /// The definition sets one key to two different values; nothing was written.
    #[error("the unit sets {} to different values", key.path)]
    Ambiguous {
        /// The first such key.
        key: &'static Key,
    },
    /// `.security.yml` (or `launcher-config.json`) could not be read or written; nothing
    /// was changed.
    #[error(transparent)]
    Adopt(#[from] CredentialError),
}

/// One embedded secret and where it is kept now.
#[derive(Debug, Clone)]
pub struct Adopted {
    /// Its key.
    pub key: &'static Key,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// Stored, already there, or kept out by a different value in the file.
    pub outcome: Adoption,
}

/// The outcome of [`unit`].
#[derive(Debug)]
pub struct Migration {
    /// What the definition was found to hold.
    pub audit: UnitAudit,
    /// Each embedded secret, in the order of `audit.embedded`.
    pub adopted: Vec<Adopted>,
    /// The rewrite without secrets (after the adoption, which stands either way).
    pub rewrite: Result<Rewritten, ServiceError>,
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    canon(a) == canon(b)
}

/// Keeps every secret `audit` embeds in the picoclaw files of `paths`, at its key. A
/// value the file already holds differently is kept (reported as a conflict). Nothing is
/// written when the definition runs with another home or sets one key to two values.
pub fn adopt(paths: &Paths, dirs: &UserDirs, audit: &UnitAudit) -> Result<Vec<Adopted>, MigrateError> {
    if audit.embedded.is_empty() {
        return Ok(Vec::new());
    }
    let home = audit.effective_home(dirs);
    if !same_dir(&home, paths.home()) {
        return Err(MigrateError::OtherHome { path: audit.path.clone(), home });
    }
    if let Some(e) = audit
        .embedded
        .iter()
        .find(|e| audit.embedded.iter().any(|o| o.key.path == e.key.path && o.secret != e.secret))
    {
        return Err(MigrateError::Ambiguous { key: e.key });
    }
    let found: Vec<_> = audit.embedded.iter().map(|e| (e.key, &e.secret)).collect();
    let outcomes = migrate::adopt(paths, &found)?;
    Ok(audit
        .embedded
        .iter()
        .zip(outcomes)
        .map(|(e, outcome)| Adopted { key: e.key, fingerprint: e.fingerprint(), outcome })
        .collect())
}

/// The whole migration of the definition at `path`: audit, [`adopt`], then rewrite it
/// without secrets (ours re-rendered, a hand-written one stripped).
pub fn unit(paths: &Paths, dirs: &UserDirs, path: &Path) -> Result<Migration, MigrateError> {
    let audit = service::audit_file(path, dirs).map_err(MigrateError::Read)?;
    let adopted = adopt(paths, dirs, &audit)?;
    let rewrite = service::rewrite_without_secrets(&audit, dirs);
    Ok(Migration { audit, adopted, rewrite })
}

#[cfg(test)]
mod tests {
    use super::*;
    use picoclaw_config::MapEnv;

    fn setup(unit_text: &str) -> (tempfile::TempDir, Paths, UserDirs, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let dirs = UserDirs::from_env(&MapEnv::new().with("HOME", dir.path().to_string_lossy())).unwrap();
        let paths = Paths::at(dir.path().join(".picoclaw"));
        std::fs::create_dir_all(paths.home()).unwrap();
        let path = dirs.systemd_dir().join("pc.service");
        std::fs::create_dir_all(dirs.systemd_dir()).unwrap();
        std::fs::write(&path, unit_text).unwrap();
        (dir, paths, dirs, path)
    }

    #[test]
    fn secrets_are_kept_then_the_unit_is_rewritten() {
        let (_dir, paths, dirs, path) = setup(
            "[Service]\nExecStart=/bin/picoclaw gateway\nEnvironment=PICOCLAW_GATEWAY_TOKEN=unit-gw OTHER=1\n",
        );
        let done = unit(&paths, &dirs, &path).unwrap();
        assert_eq!(done.adopted.len(), 1);
        assert!(
            matches!(&done.adopted[0].outcome, Adoption::Stored { destination } if destination == ".security.yml:gateway.token")
        );
        assert_eq!(done.rewrite.unwrap().remaining, 0);
        assert!(std::fs::read_to_string(paths.security_file()).unwrap().contains("unit-gw"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[Service]\nExecStart=/bin/picoclaw gateway\nEnvironment=OTHER=1\n"
        );
    }

    #[test]
    fn two_values_for_one_key_write_nothing() {
        let text =
            "[Service]\nEnvironment=PICOCLAW_GATEWAY_TOKEN=one\nEnvironment=PICOCLAW_GATEWAY_TOKEN=two\n";
        let (_dir, paths, dirs, path) = setup(text);
        assert!(matches!(unit(&paths, &dirs, &path), Err(MigrateError::Ambiguous { .. })));
        assert!(!paths.security_file().exists());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_unit_for_another_home_is_left_alone() {
        let text = "[Service]\nEnvironment=PICOCLAW_HOME=/elsewhere PICOCLAW_GATEWAY_TOKEN=one\n";
        let (_dir, paths, dirs, path) = setup(text);
        assert!(matches!(unit(&paths, &dirs, &path), Err(MigrateError::OtherHome { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
