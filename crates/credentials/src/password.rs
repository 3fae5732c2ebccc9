//! The dashboard password: picoclaw's second login mode beside the launcher token.
//!
//! Upstream PicoClaw (v0.2.7+) replaced the dashboard token with a password and stores
//! its bcrypt hash (cost 12) in `launcher-auth.db` or, where SQLite is unavailable, as
//! `dashboard_password_hash` in `launcher-config.json`. picoclaw reads that key: an
//! upstream user's password logs in as it did. A password set from picoclaw's dashboard
//! is stored there too, hashed with argon2id (PHC string), so the file never holds a
//! password. The hash is treated as a secret (never shown, never logged): it can be
//! attacked offline.

use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use picoclaw_config::files::{SECRET_MODE, require_private, write_atomic};
use picoclaw_config::{Layers, Source, resolve, schema};
use serde_json::{Map, Value};

use crate::error::CredentialError;
use crate::secret::Secret;

/// The shortest password accepted for a new one (upstream's rule: 8 characters).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted (bcrypt reads only 72 bytes; argon2 is bounded by this).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// How a stored hash was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `$2a$`, `$2b$`, `$2y$` (upstream PicoClaw).
    Bcrypt,
    /// `$argon2id$` (set from picoclaw).
    Argon2id,
}

/// A stored dashboard password hash and where it came from.
#[derive(Clone)]
pub struct DashboardPassword {
    hash: Secret,
    /// The scheme of the hash.
    pub scheme: Scheme,
    /// Where it was read (`launcher-config.json:dashboard_password_hash`).
    pub source: Source,
}

impl std::fmt::Debug for DashboardPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately prints no hash.
        f.debug_struct("DashboardPassword")
            .field("scheme", &self.scheme)
            .field("source", &self.source)
            .finish()
    }
}

fn scheme_of(hash: &str) -> Option<Scheme> {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        Some(Scheme::Bcrypt)
    } else if hash.starts_with("$argon2id$") && PasswordHash::new(hash).is_ok() {
        Some(Scheme::Argon2id)
    } else {
        None
    }
}

impl DashboardPassword {
    /// A stored hash; an error names the file and key when it is neither bcrypt nor argon2id.
    pub fn from_hash(hash: &str, source: Source) -> Result<DashboardPassword, CredentialError> {
        let scheme = scheme_of(hash).ok_or_else(|| CredentialError::Unparseable {
            path: source.to_string(),
            message: "expected a bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$) password hash".into(),
        })?;
        Ok(DashboardPassword { hash: Secret::new(hash), scheme, source })
    }

    /// Hashes a new password with argon2id and a random 128-bit salt.
    pub fn create(password: &Secret, source: Source) -> Result<DashboardPassword, CredentialError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| CredentialError::Hash(e.to_string()))?;
        let hash = argon2::Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map_err(|e| CredentialError::Hash(e.to_string()))?
            .to_string();
        Ok(DashboardPassword { hash: Secret::new(hash), scheme: Scheme::Argon2id, source })
    }

    /// Whether `other` is the same stored hash (a changed `dashboard_password_hash`).
    pub fn same_hash(&self, other: &DashboardPassword) -> bool {
        self.hash.digest() == other.hash.digest()
    }

    /// Whether `presented` is the password. Slow on purpose (bcrypt cost 12, argon2id):
    /// call it off the async runtime.
    pub fn verify(&self, presented: &str) -> bool {
        if presented.is_empty() || presented.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        let hash = self.hash.expose();
        match self.scheme {
            Scheme::Bcrypt => bcrypt::verify(presented, hash).unwrap_or(false),
            Scheme::Argon2id => PasswordHash::new(hash)
                .is_ok_and(|h| argon2::Argon2::default().verify_password(presented.as_bytes(), &h).is_ok()),
        }
    }

    /// The PHC/bcrypt string, for writing it to launcher-config.json.
    fn hash(&self) -> &str {
        self.hash.expose()
    }
}

/// Upstream PicoClaw's password store in the home (SQLite, one row).
pub const AUTH_DB: &str = "launcher-auth.db";

/// The configured dashboard password, if any: launcher-config.json
/// `dashboard_password_hash` (where picoclaw stores a password set from its dashboard),
/// else upstream's `launcher-auth.db` in the home (opened read-only, never written). A
/// hash of an unknown scheme, or a database that does not read, is an error naming it.
pub fn peek(layers: &Layers) -> Result<Option<DashboardPassword>, CredentialError> {
    if let Some(r) = resolve(layers, &schema::LAUNCHER_DASHBOARD_PASSWORD_HASH)
        && let Some(value) = r.value.as_str().map(str::trim).filter(|v| !v.is_empty())
    {
        return DashboardPassword::from_hash(value, r.source).map(Some);
    }
    let db = layers.paths().home().join(AUTH_DB);
    if !db.is_file() {
        return Ok(None);
    }
    match read_auth_db(&db) {
        Ok(Some(hash)) => DashboardPassword::from_hash(hash.trim(), Source::LauncherAuthDb).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(CredentialError::Unparseable {
            path: db.display().to_string(),
            message: format!("cannot read dashboard_credentials.bcrypt_hash: {e}"),
        }),
    }
}

/// `SELECT bcrypt_hash FROM dashboard_credentials WHERE id = 1`, read-only.
fn read_auth_db(path: &Path) -> rusqlite::Result<Option<String>> {
    use rusqlite::{OpenFlags, OptionalExtension};
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.query_row("SELECT bcrypt_hash FROM dashboard_credentials WHERE id = 1", [], |row| row.get(0))
        .optional()
}

/// Writes `dashboard_password_hash` into `launcher-config.json` (atomically, 0600),
/// keeping every other key. Refuses when the file does not parse or others can read it.
pub fn store(path: &Path, password: &DashboardPassword) -> Result<(), CredentialError> {
    let unparseable =
        |message: String| CredentialError::Unparseable { path: path.display().to_string(), message };
    let mut tree = match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Value::Object(Map::new()),
        Ok(text) => {
            require_private(path)?;
            picoclaw_config::validate_launcher_text(path, &text).map_err(|e| unparseable(e.to_string()))?;
            serde_json::from_str::<Value>(&text)
                .map_err(|e| unparseable(format!("line {}, column {}", e.line(), e.column())))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(e) => return Err(unparseable(e.to_string())),
    };
    let Value::Object(map) = &mut tree else { return Err(unparseable("expected a JSON object".into())) };
    map.insert(schema::LAUNCHER_DASHBOARD_PASSWORD_HASH.file_key.into(), Value::from(password.hash()));
    let text = zeroize::Zeroizing::new(serde_json::to_string_pretty(&tree).unwrap_or_default() + "\n");
    write_atomic(path, text.as_bytes(), SECRET_MODE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_launcher_auth_db_is_read_and_launcher_config_wins() {
        use picoclaw_config::{Flags, MapEnv, Paths};
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let load = || Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
        assert!(peek(&load()).unwrap().is_none());
        // The table as upstream's dashboardauth creates it.
        let conn = rusqlite::Connection::open(dir.path().join(AUTH_DB)).unwrap();
        conn.execute_batch(
            "CREATE TABLE dashboard_credentials (id INTEGER PRIMARY KEY CHECK (id = 1), bcrypt_hash TEXT NOT NULL);",
        )
        .unwrap();
        assert!(peek(&load()).unwrap().is_none(), "an empty store is no password");
        let hash = bcrypt::hash("from the db", 4).unwrap();
        conn.execute("INSERT INTO dashboard_credentials (id, bcrypt_hash) VALUES (1, ?1)", [&hash]).unwrap();
        let p = peek(&load()).unwrap().unwrap();
        assert_eq!(p.source, Source::LauncherAuthDb);
        assert!(p.verify("from the db"));
        let ours = DashboardPassword::create(&Secret::new("set here now"), Source::Default).unwrap();
        store(&paths.launcher_file(), &ours).unwrap();
        let p = peek(&load()).unwrap().unwrap();
        assert!(p.verify("set here now") && !p.verify("from the db"), "launcher-config.json wins");
    }

    #[test]
    fn upstream_bcrypt_and_our_argon2id_both_verify() {
        // A bcrypt hash as upstream writes it (cost 4 here to keep the test fast).
        let bcrypt = bcrypt::hash("correct horse", 4).unwrap();
        let p = DashboardPassword::from_hash(&bcrypt, Source::Default).unwrap();
        assert_eq!(p.scheme, Scheme::Bcrypt);
        assert!(p.verify("correct horse") && !p.verify("wrong horse") && !p.verify(""));

        let ours = DashboardPassword::create(&Secret::new("battery staple"), Source::Default).unwrap();
        assert!(ours.hash().starts_with("$argon2id$"), "new passwords are argon2id");
        assert!(ours.verify("battery staple") && !ours.verify("battery staples"));
        assert!(!format!("{ours:?}").contains("argon2id$"), "Debug shows no hash");

        assert!(DashboardPassword::from_hash("plaintext", Source::Default).is_err());
    }
}
