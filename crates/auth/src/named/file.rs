//! Changes to the token records in `.security.yml`, shared by `picoclaw token` and the
//! gateway's admin API: each one takes an advisory lock beside the file
//! (`.security.yml.lock`), reads and validates the whole file, changes it, and writes it
//! back atomically with mode 0600 — so two writers cannot lose each other's change, and
//! a file that does not parse, or holds a bad record, is never rewritten.
//!
//! With several gateway replicas on one database (`storage.url`), the `tokens:` list
//! lives in that database instead ([`SharedTokens`], implemented by `picoclaw-store`):
//! the same read-change-write happens under the database's row lock, and every replica is
//! notified of the change. `rotated:` and the `pico` / `gateway` values stay per home.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use picoclaw_config::Source;
use picoclaw_credentials::store::{read_security_tree, set_path, write_security_tree};
use picoclaw_credentials::{Credentials, Secret};
use serde_json::Value;

use super::GraceDigests;
use super::error::TokenStoreError;
use super::fixed::FixedCredential;
use super::format::TokenId;
use super::record::{TokenName, TokenRecord, TokenSummary};
use super::set::TokenSet;
use super::time::Timestamp;
use crate::verify::Scope;

/// How long a writer waits for another one to finish.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The result of rotating `pico` or `gateway`.
pub struct FixedRotation {
    /// The new value (shown once to the caller).
    pub secret: Secret,
    /// Until when the old value is still accepted (`None`: it stopped at once).
    pub old_valid_until: Option<Timestamp>,
    /// Where the old value came from (e.g. `config.json:channels.pico.token`, which is
    /// now shadowed and should be removed there).
    pub old_source: Source,
}

/// The named tokens of several replicas, kept where they all read them (PostgreSQL): the
/// value of `.security.yml`'s `tokens:` list, as one JSON value. Hash-only records: no
/// secret is ever stored through it.
pub trait SharedTokens: Send + Sync {
    /// The shared `tokens` value (`null`: none). When the database holds none yet and
    /// `seed` (this home's validated `tokens:` list) is not `null`, it is stored first,
    /// once, and returned.
    fn read(&self, seed: &Value) -> Result<Value, TokenStoreError>;

    /// Under the database's lock: read (seeded as by [`SharedTokens::read`]), `change`,
    /// write back; when `announce`, every replica is notified once it is committed.
    fn update(
        &self,
        seed: &Value,
        announce: bool,
        change: &mut (dyn FnMut(&mut Value) -> Result<(), TokenStoreError> + Send),
    ) -> Result<(), TokenStoreError>;
}

/// Where the token records are: `.security.yml`, and with replicas the shared `tokens`.
#[derive(Clone)]
pub struct TokenFile {
    path: PathBuf,
    shared: Option<std::sync::Arc<dyn SharedTokens>>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile").field("path", &self.path).field("shared", &self.shared.is_some()).finish()
    }
}

/// The `tokens` value of a `.security.yml` tree (`null` when absent).
fn tokens_of(tree: &Value) -> Value {
    tree.get("tokens").cloned().unwrap_or(Value::Null)
}

/// This home's `tokens:` list as the shared store's first content, `null` when there is
/// none or it does not validate: an empty home never seeds (it cannot claim the shared
/// row before a home that has tokens), and a bad list is never stored for every replica
/// (the gateway refuses to start on it and names the record).
fn seed_of(tree: &Value) -> Value {
    match TokenSet::from_tree(tree) {
        Ok(set) if !set.records().is_empty() => tokens_of(tree),
        _ => Value::Null,
    }
}

struct Locked {
    _file: File,
}

impl TokenFile {
    /// The file at `path` (normally `Paths::security_file()`).
    pub fn new(path: impl Into<PathBuf>) -> TokenFile {
        TokenFile { path: path.into(), shared: None }
    }

    /// The named tokens from `shared` (several replicas), the rest of the records from the
    /// file at `path`.
    pub fn with_shared(path: impl Into<PathBuf>, shared: std::sync::Arc<dyn SharedTokens>) -> TokenFile {
        TokenFile { path: path.into(), shared: Some(shared) }
    }

    /// Whether the named tokens are shared by replicas (not this home's `tokens:`).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<Locked, TokenStoreError> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let io = |e: std::io::Error| TokenStoreError::Lock {
            path: lock_path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            picoclaw_config::files::ensure_dir(dir, 0o700).map_err(io)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&lock_path).map_err(io)?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Locked { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(TokenStoreError::Lock {
                        path: lock_path.display().to_string(),
                        message: "another picoclaw process has been changing .security.yml for 5 s"
                            .to_owned(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
    }

    /// Reads the tree and its validated records (no lock: for listing). With shared
    /// tokens, the tree's `tokens` is the shared list.
    pub fn read(&self) -> Result<(Value, TokenSet), TokenStoreError> {
        let mut tree = read_security_tree(&self.path)?;
        if let Some(shared) = &self.shared {
            let tokens = shared.read(&seed_of(&tree))?;
            put_tokens(&mut tree, tokens);
        }
        let set = TokenSet::from_tree(&tree)?;
        // `rotated:` is validated too, so a bad entry is reported before any write.
        GraceDigests::from_tree(&tree)?;
        Ok((tree, set))
    }

    /// Under the lock: read, let `change` modify the records, write back. With shared
    /// tokens the lock is the database's, and `announce` says whether the other replicas
    /// are told (not for last-use times).
    fn update<T: Send>(
        &self,
        now: Timestamp,
        announce: bool,
        change: impl FnOnce(&mut TokenSet) -> Result<T, TokenStoreError> + Send,
    ) -> Result<T, TokenStoreError> {
        if let Some(shared) = &self.shared {
            let seed = seed_of(&read_security_tree(&self.path)?);
            let mut change = Some(change);
            let mut out = None;
            shared.update(&seed, announce, &mut |tokens| {
                let change = change.take().ok_or_else(|| TokenStoreError::Shared {
                    message: "a change was applied twice".to_owned(),
                })?;
                let mut set = TokenSet::from_tokens(Some(tokens))?;
                out = Some(change(&mut set)?);
                let mut tree = Value::Null;
                set.write_into(&mut tree, now);
                *tokens = tokens_of(&tree);
                Ok(())
            })?;
            return out
                .ok_or_else(|| TokenStoreError::Shared { message: "the change was not applied".to_owned() });
        }
        let _lock = self.lock()?;
        let (mut tree, mut set) = self.read()?;
        let out = change(&mut set)?;
        set.write_into(&mut tree, now);
        write_security_tree(&self.path, &tree)?;
        Ok(out)
    }

    /// Every record's public summary.
    pub fn list(&self, now: Timestamp) -> Result<Vec<TokenSummary>, TokenStoreError> {
        let (_, set) = self.read()?;
        Ok(set.records().iter().map(|r| r.summary(now)).collect())
    }

    /// Creates a named token; returns its record and the token (shown once).
    pub fn create(
        &self,
        name: &str,
        scope: Scope,
        expires: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(TokenRecord, Secret), TokenStoreError> {
        self.create_named(TokenName::parse(name)?, scope, expires, now)
    }

    /// [`TokenFile::create`] with a name already parsed.
    pub fn create_named(
        &self,
        name: TokenName,
        scope: Scope,
        expires: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(TokenRecord, Secret), TokenStoreError> {
        if expires.is_some_and(|e| e <= now) {
            return Err(TokenStoreError::InvalidExpiry);
        }
        self.update(now, true, |set| set.create(name, scope, expires, now))
    }

    /// Revokes a named token by id or name.
    pub fn revoke(&self, id_or_name: &str, now: Timestamp) -> Result<TokenRecord, TokenStoreError> {
        self.update(now, true, |set| set.revoke(id_or_name, now))
    }

    /// Gives a named token a new secret (same id, name, scope); the old one works for
    /// `grace`.
    pub fn rotate(
        &self,
        id_or_name: &str,
        grace: Duration,
        now: Timestamp,
    ) -> Result<(TokenRecord, Secret), TokenStoreError> {
        self.update(now, true, |set| set.rotate(id_or_name, grace, now))
    }

    /// Records last-use times (the gateway calls this at most once a minute).
    pub fn persist_last_used(&self, updates: &[(TokenId, Timestamp)]) -> Result<(), TokenStoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        self.update(Timestamp::now(), false, |set| {
            set.apply_last_used(updates);
            Ok(())
        })
    }

    /// Refuses when `cred` comes from an environment variable or a secret file (rewriting
    /// `.security.yml` would change nothing: that source wins).
    pub fn check_not_env(cred: FixedCredential, current: &Credentials) -> Result<(), TokenStoreError> {
        let resolved = match cred {
            FixedCredential::Pico => current.pico(),
            FixedCredential::Gateway => current.gateway(),
        };
        match resolved.map(|r| &r.source) {
            Some(Source::Env(var)) => Err(TokenStoreError::EnvManaged { key: cred.key(), var }),
            Some(source) if source.is_secret_file() => {
                Err(TokenStoreError::FileManaged { key: cred.key(), origin: source.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// Rotates `pico` or `gateway`: a new 256-bit value at its key in `.security.yml`;
    /// the old value's SHA-256 under `rotated:` until `now + grace` (not kept when
    /// `grace` is zero). `current` are the credentials in effect (to find the old value
    /// and refuse env-managed ones).
    pub fn rotate_fixed(
        &self,
        cred: FixedCredential,
        current: &Credentials,
        grace: Duration,
        now: Timestamp,
    ) -> Result<FixedRotation, TokenStoreError> {
        TokenFile::check_not_env(cred, current)?;
        if self.shared.is_some() {
            let env = match cred {
                FixedCredential::Pico => "CHANNELS_PICO_TOKEN",
                FixedCredential::Gateway => "GATEWAY_TOKEN",
            };
            return Err(TokenStoreError::PerReplica { key: cred.key(), env });
        }
        let old = match cred {
            FixedCredential::Pico => current.pico(),
            FixedCredential::Gateway => current.gateway(),
        }
        .ok_or(TokenStoreError::NotSet(cred.key()))?;
        let _lock = self.lock()?;
        let (mut tree, _) = self.read()?;
        let mut old_values = GraceDigests::from_tree(&tree)?.with_clock(std::sync::Arc::new(FixedNow(now)));
        old_values.clear(cred);
        let old_valid_until = (!grace.is_zero()).then(|| now.after(grace));
        if let Some(until) = old_valid_until {
            old_values.push(cred, &old.secret, until);
        }
        let secret = Secret::generate()?;
        set_path(&mut tree, cred.key(), Value::from(secret.expose()));
        old_values.write_into(&mut tree);
        write_security_tree(&self.path, &tree)?;
        Ok(FixedRotation { secret, old_valid_until, old_source: old.source.clone() })
    }
}

/// Sets the `tokens` of a `.security.yml` tree.
fn put_tokens(tree: &mut Value, tokens: Value) {
    match tree {
        Value::Object(map) => {
            map.insert("tokens".to_owned(), tokens);
        }
        other => *other = serde_json::json!({ "tokens": tokens }),
    }
}

struct FixedNow(Timestamp);

impl super::Clock for FixedNow {
    fn now(&self) -> Timestamp {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};

    fn creds(dir: &Path, env: MapEnv) -> Credentials {
        let layers = Layers::load(&Paths::at(dir), &env, &Flags::new()).unwrap();
        Credentials::resolve(&layers, &Settings::resolve(&layers).unwrap()).unwrap()
    }

    #[test]
    fn concurrent_writers_do_not_lose_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::new(dir.path().join(".security.yml"));
        std::thread::scope(|s| {
            for t in 0..4 {
                let file = file.clone();
                s.spawn(move || {
                    for i in 0..5 {
                        file.create(&format!("t{t}-{i}"), Scope::Chat, None, Timestamp::now()).unwrap();
                    }
                });
            }
        });
        assert_eq!(file.list(Timestamp::now()).unwrap().len(), 20);
    }

    #[test]
    fn rotate_fixed_refuses_env_and_unset() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::new(dir.path().join(".security.yml"));
        let env = creds(dir.path(), MapEnv::new().with("PICOCLAW_GATEWAY_TOKEN", "canary-gw"));
        let err = file.rotate_fixed(FixedCredential::Gateway, &env, Duration::ZERO, Timestamp::now());
        let msg = err.err().unwrap().to_string();
        assert!(msg.contains("PICOCLAW_GATEWAY_TOKEN") && !msg.contains("canary"), "{msg}");
        let none = creds(dir.path(), MapEnv::new());
        let err = file.rotate_fixed(FixedCredential::Pico, &none, Duration::ZERO, Timestamp::now());
        assert!(matches!(err, Err(TokenStoreError::NotSet("channels.pico.token"))));
        assert!(!file.path().exists(), "nothing written");
    }

    #[test]
    fn rotate_fixed_writes_new_value_and_old_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".security.yml");
        std::fs::write(&path, "channels:\n  pico:\n    token: old-value\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let file = TokenFile::new(&path);
        let now = Timestamp::now();
        let r = file
            .rotate_fixed(
                FixedCredential::Pico,
                &creds(dir.path(), MapEnv::new()),
                Duration::from_secs(60),
                now,
            )
            .unwrap();
        assert_eq!(r.old_valid_until, Some(now.after(Duration::from_secs(60))));
        assert_eq!(r.old_source.to_string(), ".security.yml:channels.pico.token");
        let after = creds(dir.path(), MapEnv::new());
        assert_eq!(after.pico().unwrap().secret, r.secret);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("old-value") && text.contains("rotated"));
        let tree = read_security_tree(&path).unwrap();
        let grace = GraceDigests::from_tree(&tree).unwrap();
        assert_eq!(grace.verify("old-value").map(|p| p.id), Some("pico".to_owned()));
    }
}
