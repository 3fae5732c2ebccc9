//! The records kept in `.security.yml` — `tokens:` (named tokens) and `rotated:` (the old
//! digests of rotated fixed credentials during their grace) — parsed into typed,
//! validated values, changed, and written back. Only SHA-256 digests are stored, never a
//! secret.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use picoclaw_credentials::store::read_security_tree;
use picoclaw_credentials::{CredentialError, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::format::{self, TokenId};
use super::time::Timestamp;
use crate::verify::{CredentialKind, Scope};

/// The most named tokens one `.security.yml` may hold (verification stays O(1); this
/// bounds the file and the memory of the store).
pub const MAX_TOKENS: usize = 10_000;
/// The most old secrets kept per token during rotation grace.
pub const MAX_PREVIOUS: usize = 4;
/// The longest token name.
pub const MAX_NAME_LEN: usize = 64;

/// Why the token records cannot be read or changed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenStoreError {
    /// A record in `.security.yml` is malformed.
    #[error(".security.yml: `{key}`: {message}")]
    Invalid {
        /// Where, e.g. `tokens[2].sha256`.
        key: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// No token has this id or name.
    #[error("no named token with id or name `{0}` (see `picoclaw token list`)")]
    NotFound(String),
    /// The name is used by another active token.
    #[error("a token named `{0}` already exists; pick another name or revoke it first")]
    NameTaken(String),
    /// The name is not acceptable.
    #[error("invalid token name: {0}")]
    InvalidName(&'static str),
    /// The token is already revoked.
    #[error("token {id} (`{name}`) is revoked; create a new one with `picoclaw token create`")]
    Revoked {
        /// Public id.
        id: String,
        /// Its name.
        name: String,
    },
    /// Too many tokens.
    #[error("at most {MAX_TOKENS} named tokens are supported; revoke unused ones first")]
    TooMany,
    /// The OS random source failed.
    #[error("cannot generate a random token: {0}")]
    Random(#[from] getrandom::Error),
    /// Reading or writing `.security.yml` failed.
    #[error(transparent)]
    File(#[from] CredentialError),
    /// The credential's value comes from an environment variable, which overrides the
    /// file: it can only be changed where that variable is set.
    #[error(
        "{key} comes from the environment variable {var}, which overrides .security.yml, so picoclaw \
         cannot change it. Change {var} where it is set (the service unit's Environment=, the container \
         or pod spec / Kubernetes Secret, or your shell profile), then restart the gateway so it sees the \
         new value"
    )]
    EnvManaged {
        /// The key, e.g. `channels.pico.token`.
        key: &'static str,
        /// The variable.
        var: &'static str,
    },
    /// The fixed credential is not configured at all.
    #[error("{0} is not set, so there is nothing to rotate")]
    NotSet(&'static str),
    /// An expiry that is not in the future.
    #[error("the expiry must be in the future")]
    InvalidExpiry,
    /// The advisory lock beside `.security.yml` could not be taken.
    #[error("{path}: {message}")]
    Lock {
        /// The lock file.
        path: String,
        /// Why.
        message: String,
    },
}

impl TokenStoreError {
    /// The HTTP status an API should answer with.
    pub fn status(&self) -> u16 {
        match self {
            TokenStoreError::NotFound(_) => 404,
            TokenStoreError::NameTaken(_)
            | TokenStoreError::Revoked { .. }
            | TokenStoreError::EnvManaged { .. }
            | TokenStoreError::NotSet(_)
            | TokenStoreError::TooMany => 409,
            TokenStoreError::InvalidName(_) | TokenStoreError::InvalidExpiry => 400,
            TokenStoreError::Lock { .. } => 503,
            TokenStoreError::Invalid { .. } | TokenStoreError::Random(_) | TokenStoreError::File(_) => 500,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenStoreError::Invalid { .. } => "invalid_security_file",
            TokenStoreError::NotFound(_) => "token_not_found",
            TokenStoreError::NameTaken(_) => "name_taken",
            TokenStoreError::InvalidName(_) => "invalid_name",
            TokenStoreError::Revoked { .. } => "token_revoked",
            TokenStoreError::TooMany => "too_many_tokens",
            TokenStoreError::Random(_) => "random_failed",
            TokenStoreError::File(_) => "security_file_error",
            TokenStoreError::EnvManaged { .. } => "env_managed",
            TokenStoreError::NotSet(_) => "not_set",
            TokenStoreError::InvalidExpiry => "invalid_expiry",
            TokenStoreError::Lock { .. } => "busy",
        }
    }
}

/// A token name: 1–64 characters of `A-Z a-z 0-9 . _ -`, not `pico`, `gateway` or
/// `runtime`, and not shaped like a token id (so `ID|NAME` arguments are unambiguous).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenName(String);

impl TokenName {
    /// Validates a name.
    pub fn parse(s: &str) -> Result<TokenName, TokenStoreError> {
        if s.is_empty() || s.len() > MAX_NAME_LEN {
            return Err(TokenStoreError::InvalidName("a name has 1 to 64 characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return Err(TokenStoreError::InvalidName("use only letters, digits, `.`, `_` and `-`"));
        }
        if ["pico", "gateway", "runtime"].contains(&s) {
            return Err(TokenStoreError::InvalidName(
                "`pico`, `gateway` and `runtime` name the built-in credentials",
            ));
        }
        if TokenId::looks_like(s) {
            return Err(TokenStoreError::InvalidName(
                "a name must not look like a token id (12 characters of a-z and 2-7)",
            ));
        }
        Ok(TokenName(s.to_owned()))
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest of a token (not secret, but shown only as its fingerprint).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `secret`.
    pub fn of(secret: &Secret) -> Digest {
        Digest(secret.digest())
    }

    /// First 8 hex characters, the public name of the token.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.0[..4])
    }

    fn parse(s: &str) -> Option<Digest> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Digest(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.fingerprint())
    }
}

/// The lifecycle state of a named token at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    /// Usable.
    Active,
    /// Past its `expires`.
    Expired,
    /// Revoked.
    Revoked,
}

impl TokenState {
    /// `active`, `expired` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An old secret of a rotated token, accepted until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    /// SHA-256 of the old token.
    pub sha256: Digest,
    /// End of the grace period.
    pub valid_until: Timestamp,
}

/// One named token, as stored (hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id.
    pub id: TokenId,
    /// Unique name among active tokens.
    pub name: TokenName,
    /// What it may do.
    pub scope: Scope,
    /// SHA-256 of the full current token.
    pub sha256: Digest,
    /// When it was created.
    pub created: Timestamp,
    /// When it stops working, if ever.
    pub expires: Option<Timestamp>,
    /// When it was last used (persisted at most once a minute by the gateway).
    pub last_used: Option<Timestamp>,
    /// When it was revoked.
    pub revoked: Option<Timestamp>,
    /// When it was last rotated.
    pub rotated: Option<Timestamp>,
    /// Old secrets still accepted during their rotation grace.
    pub previous: Vec<PreviousSecret>,
}

impl TokenRecord {
    /// Its state at `now`.
    pub fn state(&self, now: Timestamp) -> TokenState {
        if self.revoked.is_some() {
            TokenState::Revoked
        } else if self.expires.is_some_and(|e| e <= now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }

    /// Fingerprint of the current secret.
    pub fn fingerprint(&self) -> String {
        self.sha256.fingerprint()
    }

    /// The summary plus the token itself, for the one answer that shows a new token
    /// (`token create|rotate --json` and the admin API).
    pub fn shown_once(&self, now: Timestamp, token: &Secret) -> Value {
        let mut out = serde_json::to_value(self.summary(now)).unwrap_or_else(|_| Value::Object(Map::new()));
        out["token"] = Value::from(token.expose());
        out
    }

    /// The public, secret-free view printed by `token list --json` and the admin API.
    pub fn summary(&self, now: Timestamp) -> TokenSummary {
        TokenSummary {
            id: self.id.to_string(),
            name: self.name.to_string(),
            scope: self.scope,
            fingerprint: self.fingerprint(),
            created: self.created.to_string(),
            expires: self.expires.map(|t| t.to_string()),
            last_used: self.last_used.map(|t| t.to_string()),
            revoked: self.revoked.map(|t| t.to_string()),
            grace_until: self
                .previous
                .iter()
                .map(|p| p.valid_until)
                .filter(|t| *t > now)
                .max()
                .map(|t| t.to_string()),
            state: self.state(now),
        }
    }
}

/// What `token list --json` and the admin API show for one token: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSummary {
    /// Public id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: Scope,
    /// First 8 hex of the SHA-256 of the current secret.
    pub fingerprint: String,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339, if it expires.
    pub expires: Option<String>,
    /// RFC 3339, if ever used.
    pub last_used: Option<String>,
    /// RFC 3339, if revoked.
    pub revoked: Option<String>,
    /// While an old secret is still accepted after a rotation: until when.
    pub grace_until: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: TokenState,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordWire {
    id: String,
    name: String,
    scope: String,
    sha256: String,
    created: TimeWire,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<TimeWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used: Option<TimeWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked: Option<TimeWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotated: Option<TimeWire>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    previous: Vec<PreviousWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousWire {
    sha256: String,
    valid_until: TimeWire,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TimeWire {
    Unix(u64),
    Text(String),
}

impl TimeWire {
    fn of(t: Timestamp) -> TimeWire {
        TimeWire::Text(t.to_string())
    }

    fn parse(&self, key: &str) -> Result<Timestamp, TokenStoreError> {
        match self {
            TimeWire::Unix(n) => Ok(Timestamp::from_unix(*n)),
            TimeWire::Text(s) => Timestamp::parse(s).ok_or_else(|| {
                invalid(key, "expected an RFC 3339 time such as 2026-01-31T12:00:00Z, or Unix seconds")
            }),
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> TokenStoreError {
    TokenStoreError::Invalid { key: key.to_owned(), message: message.into() }
}

/// serde's messages quote unexpected string values, and a user may have pasted a token
/// into the wrong field: blank out anything between double quotes.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if !inside {
                out.push_str("[value]");
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

fn from_value<T: serde::de::DeserializeOwned>(value: &Value, key: &str) -> Result<T, TokenStoreError> {
    T::deserialize(value).map_err(|e| invalid(key, redact_quoted(&e.to_string())))
}

fn digest_field(s: &str, key: &str) -> Result<Digest, TokenStoreError> {
    Digest::parse(s).ok_or_else(|| {
        invalid(key, "expected the 64 hex characters of a SHA-256 digest (never the token itself)")
    })
}

fn scope_field(s: &str, key: &str) -> Result<Scope, TokenStoreError> {
    match s {
        "chat" => Ok(Scope::Chat),
        "admin" => Ok(Scope::Admin),
        _ => Err(invalid(key, "expected `chat` or `admin`")),
    }
}

fn record_from_wire(w: RecordWire, at: &str) -> Result<TokenRecord, TokenStoreError> {
    let key = |field: &str| format!("{at}.{field}");
    let time = |t: &Option<TimeWire>, field: &str| t.as_ref().map(|t| t.parse(&key(field))).transpose();
    let mut previous = Vec::with_capacity(w.previous.len());
    for (i, p) in w.previous.iter().enumerate() {
        let pk = format!("{at}.previous[{i}]");
        previous.push(PreviousSecret {
            sha256: digest_field(&p.sha256, &format!("{pk}.sha256"))?,
            valid_until: p.valid_until.parse(&format!("{pk}.valid_until"))?,
        });
    }
    Ok(TokenRecord {
        id: TokenId::parse(&w.id)
            .map_err(|_| invalid(&key("id"), "expected 12 characters of a-z and 2-7"))?,
        name: TokenName::parse(&w.name).map_err(|e| invalid(&key("name"), e.to_string()))?,
        scope: scope_field(&w.scope, &key("scope"))?,
        sha256: digest_field(&w.sha256, &key("sha256"))?,
        created: w.created.parse(&key("created"))?,
        expires: time(&w.expires, "expires")?,
        last_used: time(&w.last_used, "last_used")?,
        revoked: time(&w.revoked, "revoked")?,
        rotated: time(&w.rotated, "rotated")?,
        previous,
    })
}

fn record_to_wire(r: &TokenRecord) -> RecordWire {
    RecordWire {
        id: r.id.to_string(),
        name: r.name.to_string(),
        scope: r.scope.to_string(),
        sha256: hex::encode(r.sha256.0),
        created: TimeWire::of(r.created),
        expires: r.expires.map(TimeWire::of),
        last_used: r.last_used.map(TimeWire::of),
        revoked: r.revoked.map(TimeWire::of),
        rotated: r.rotated.map(TimeWire::of),
        previous: r
            .previous
            .iter()
            .map(|p| PreviousWire {
                sha256: hex::encode(p.sha256.0),
                valid_until: TimeWire::of(p.valid_until),
            })
            .collect(),
    }
}

/// All named-token records of one `.security.yml`, validated: ids unique, names unique
/// among non-revoked tokens, at most [`MAX_TOKENS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    records: Vec<TokenRecord>,
}

impl TokenSet {
    /// From the whole `.security.yml` tree (its `tokens` key).
    pub fn from_tree(tree: &Value) -> Result<TokenSet, TokenStoreError> {
        TokenSet::from_tokens(tree.get("tokens"))
    }

    /// From the `tokens` value alone (e.g. `Layers::security_tokens()`); `None` or null
    /// is an empty set.
    pub fn from_tokens(tokens: Option<&Value>) -> Result<TokenSet, TokenStoreError> {
        let list = match tokens {
            None | Some(Value::Null) => return Ok(TokenSet::default()),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(invalid("tokens", "expected a list of token records")),
        };
        if list.len() > MAX_TOKENS {
            return Err(invalid("tokens", format!("at most {MAX_TOKENS} records are supported")));
        }
        let mut set = TokenSet { records: Vec::with_capacity(list.len()) };
        let mut ids = std::collections::HashSet::with_capacity(list.len());
        let mut names = std::collections::HashSet::new();
        for (i, entry) in list.iter().enumerate() {
            let at = format!("tokens[{i}]");
            let wire: RecordWire = from_value(entry, &at)?;
            let record = record_from_wire(wire, &at)?;
            if record.previous.len() > MAX_PREVIOUS {
                return Err(invalid(&format!("{at}.previous"), format!("at most {MAX_PREVIOUS} entries")));
            }
            if !ids.insert(record.id.clone()) {
                return Err(invalid(&format!("{at}.id"), format!("id {} appears twice", record.id)));
            }
            if record.revoked.is_none() && !names.insert(record.name.clone()) {
                return Err(invalid(
                    &format!("{at}.name"),
                    format!("name `{}` is used by two active tokens", record.name),
                ));
            }
            set.records.push(record);
        }
        Ok(set)
    }

    /// Reads `.security.yml` at `path` (empty when missing).
    pub fn load(path: &Path) -> Result<TokenSet, TokenStoreError> {
        TokenSet::from_tree(&read_security_tree(path)?)
    }

    /// Every record, in file order.
    pub fn records(&self) -> &[TokenRecord] {
        &self.records
    }

    /// By id, else by name (an active token's name wins over revoked ones).
    pub fn find(&self, id_or_name: &str) -> Option<&TokenRecord> {
        self.index(id_or_name).map(|i| &self.records[i])
    }

    fn index(&self, id_or_name: &str) -> Option<usize> {
        if let Some(i) = self.records.iter().position(|r| r.id.as_str() == id_or_name) {
            return Some(i);
        }
        let by_name = |revoked: bool| {
            self.records.iter().rposition(|r| r.name.as_str() == id_or_name && r.revoked.is_some() == revoked)
        };
        by_name(false).or_else(|| by_name(true))
    }

    /// Creates a token; returns its record and the token (shown once, never stored).
    /// Prefer [`super::TokenFile::create`], which also locks, reads and writes the file.
    pub fn create(
        &mut self,
        name: TokenName,
        scope: Scope,
        expires: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(TokenRecord, Secret), TokenStoreError> {
        if self.records.len() >= MAX_TOKENS {
            return Err(TokenStoreError::TooMany);
        }
        if self.records.iter().any(|r| r.revoked.is_none() && r.name == name) {
            return Err(TokenStoreError::NameTaken(name.to_string()));
        }
        let (id, secret) = loop {
            let (id, secret) = format::generate()?;
            if !self.records.iter().any(|r| r.id == id) {
                break (id, secret);
            }
        };
        let record = TokenRecord {
            id,
            name,
            scope,
            sha256: Digest::of(&secret),
            created: now,
            expires,
            last_used: None,
            revoked: None,
            rotated: None,
            previous: Vec::new(),
        };
        self.records.push(record.clone());
        Ok((record, secret))
    }

    /// Revokes a token at once (its current and any grace secrets stop working).
    pub fn revoke(&mut self, id_or_name: &str, now: Timestamp) -> Result<TokenRecord, TokenStoreError> {
        let i = self.index(id_or_name).ok_or_else(|| TokenStoreError::NotFound(id_or_name.to_owned()))?;
        let r = &mut self.records[i];
        if r.revoked.is_some() {
            return Err(TokenStoreError::Revoked { id: r.id.to_string(), name: r.name.to_string() });
        }
        r.revoked = Some(now);
        r.previous.clear();
        Ok(r.clone())
    }

    /// Gives a token a new secret with the same id, name, scope and expiry. The old secret
    /// keeps working until `now + grace` (not at all when `grace` is zero).
    pub fn rotate(
        &mut self,
        id_or_name: &str,
        grace: Duration,
        now: Timestamp,
    ) -> Result<(TokenRecord, Secret), TokenStoreError> {
        let i = self.index(id_or_name).ok_or_else(|| TokenStoreError::NotFound(id_or_name.to_owned()))?;
        let r = &mut self.records[i];
        if r.revoked.is_some() {
            return Err(TokenStoreError::Revoked { id: r.id.to_string(), name: r.name.to_string() });
        }
        let secret = format::generate_for(&r.id)?;
        r.previous.retain(|p| p.valid_until > now);
        if !grace.is_zero() {
            r.previous.push(PreviousSecret { sha256: r.sha256, valid_until: now.after(grace) });
        }
        // Keep the newest grace secrets only: the bound on what one record may accept.
        let excess = r.previous.len().saturating_sub(MAX_PREVIOUS);
        r.previous.drain(..excess);
        r.sha256 = Digest::of(&secret);
        r.rotated = Some(now);
        Ok((r.clone(), secret))
    }

    /// Records use times (from [`super::NamedTokenStore::take_last_used`]); unknown ids are
    /// ignored, older times never replace newer ones.
    pub fn apply_last_used(&mut self, updates: &[(TokenId, Timestamp)]) {
        for (id, at) in updates {
            if let Some(r) = self.records.iter_mut().find(|r| &r.id == id)
                && r.last_used.is_none_or(|t| t < *at)
            {
                r.last_used = Some(*at);
            }
        }
    }

    /// Writes the records into `tree["tokens"]`, dropping grace secrets that ended.
    pub fn write_into(&self, tree: &mut Value, now: Timestamp) {
        let list: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.previous.retain(|p| p.valid_until > now);
                serde_json::to_value(record_to_wire(&r)).unwrap_or(Value::Null)
            })
            .collect();
        if let Value::Object(map) = tree {
            map.insert("tokens".to_owned(), Value::Array(list));
        } else {
            let mut map = Map::new();
            map.insert("tokens".to_owned(), Value::Array(list));
            *tree = Value::Object(map);
        }
    }
}

/// Persists last-use times into `.security.yml` at `path` (locked read, merge, validate,
/// atomic 0600 write). The gateway calls this at most once a minute with
/// [`super::NamedTokenStore::take_last_used`].
pub fn persist_last_used(path: &Path, updates: &[(TokenId, Timestamp)]) -> Result<(), TokenStoreError> {
    super::TokenFile::new(path).persist_last_used(updates)
}

/// One of the fixed credentials `token rotate` can rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FixedCredential {
    /// `gateway.token` (admin).
    Gateway,
    /// `channels.pico.token` (chat).
    Pico,
}

impl FixedCredential {
    /// `gateway` or `pico` → the credential.
    pub fn from_name(s: &str) -> Option<FixedCredential> {
        match s {
            "gateway" => Some(FixedCredential::Gateway),
            "pico" => Some(FixedCredential::Pico),
            _ => None,
        }
    }

    /// The key in `.security.yml` (also its schema path).
    pub fn key(self) -> &'static str {
        match self {
            FixedCredential::Gateway => "gateway.token",
            FixedCredential::Pico => "channels.pico.token",
        }
    }

    /// Principal id / CLI name.
    pub fn id(self) -> &'static str {
        match self {
            FixedCredential::Gateway => "gateway",
            FixedCredential::Pico => "pico",
        }
    }

    /// Credential kind of its principal.
    pub fn kind(self) -> CredentialKind {
        match self {
            FixedCredential::Gateway => CredentialKind::Gateway,
            FixedCredential::Pico => CredentialKind::Pico,
        }
    }

    /// Its scope.
    pub fn scope(self) -> Scope {
        match self {
            FixedCredential::Gateway => Scope::Admin,
            FixedCredential::Pico => Scope::Chat,
        }
    }

    fn from_key(key: &str) -> Option<FixedCredential> {
        [FixedCredential::Gateway, FixedCredential::Pico].into_iter().find(|c| c.key() == key)
    }
}

/// The old value of a rotated fixed credential, accepted until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedDigest {
    /// Which credential.
    pub credential: FixedCredential,
    /// SHA-256 of the old value.
    pub sha256: Digest,
    /// End of its grace.
    pub valid_until: Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotatedWire {
    credential: String,
    sha256: String,
    valid_until: TimeWire,
}

/// The most rotated-credential digests kept.
pub const MAX_ROTATED: usize = 16;

/// `.security.yml` `rotated:` — old digests of rotated fixed credentials.
pub(crate) fn rotated_from_tree(tree: &Value) -> Result<Vec<RotatedDigest>, TokenStoreError> {
    let list = match tree.get("rotated") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("rotated", "expected a list of {credential, sha256, valid_until}")),
    };
    if list.len() > MAX_ROTATED {
        return Err(invalid("rotated", format!("at most {MAX_ROTATED} entries are supported")));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = format!("rotated[{i}]");
        let w: RotatedWire = from_value(entry, &at)?;
        out.push(RotatedDigest {
            credential: FixedCredential::from_key(&w.credential).ok_or_else(|| {
                invalid(&format!("{at}.credential"), "expected `gateway.token` or `channels.pico.token`")
            })?,
            sha256: digest_field(&w.sha256, &format!("{at}.sha256"))?,
            valid_until: w.valid_until.parse(&format!("{at}.valid_until"))?,
        });
    }
    Ok(out)
}

/// Writes `rotated` into the tree, dropping entries whose grace ended (and the key when
/// none is left).
pub(crate) fn rotated_into(tree: &mut Value, entries: &[RotatedDigest], now: Timestamp) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| e.valid_until > now)
        .map(|e| {
            serde_json::to_value(RotatedWire {
                credential: e.credential.key().to_owned(),
                sha256: hex::encode(e.sha256.0),
                valid_until: TimeWire::of(e.valid_until),
            })
            .unwrap_or(Value::Null)
        })
        .collect();
    if let Value::Object(map) = tree {
        if list.is_empty() {
            map.remove("rotated");
        } else {
            map.insert("rotated".to_owned(), Value::Array(list));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_unix(1_800_000_000)
    }

    #[test]
    fn create_find_write_read_round_trip() {
        let mut set = TokenSet::default();
        let (rec, secret) = set
            .create(
                TokenName::parse("ci").unwrap(),
                Scope::Chat,
                Some(now().after(Duration::from_secs(60))),
                now(),
            )
            .unwrap();
        assert_eq!(set.find("ci").unwrap().id, rec.id);
        assert_eq!(set.find(rec.id.as_str()).unwrap().name.as_str(), "ci");
        let mut tree = json!({"channels": {"pico": {"token": "x"}}});
        set.write_into(&mut tree, now());
        let text = tree.to_string();
        assert!(!text.contains(secret.expose()), "the token itself is never stored");
        assert!(text.contains(&hex::encode(secret.digest())));
        assert_eq!(TokenSet::from_tree(&tree).unwrap(), set);
        assert_eq!(tree["channels"]["pico"]["token"], "x", "other keys are kept");
    }

    #[test]
    fn names_are_unique_among_active_tokens_and_validated() {
        let mut set = TokenSet::default();
        let name = TokenName::parse("phone").unwrap();
        set.create(name.clone(), Scope::Chat, None, now()).unwrap();
        assert!(matches!(
            set.create(name.clone(), Scope::Chat, None, now()),
            Err(TokenStoreError::NameTaken(_))
        ));
        set.revoke("phone", now()).unwrap();
        let (again, _) = set.create(name, Scope::Admin, None, now()).unwrap();
        assert_eq!(set.find("phone").unwrap().id, again.id, "the active one wins by name");
        for bad in ["", "pico", "gateway", "has space", "abcdefghijkl", &"x".repeat(65)] {
            assert!(TokenName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revoke_twice_and_rotate_revoked_are_errors() {
        let mut set = TokenSet::default();
        set.create(TokenName::parse("a").unwrap(), Scope::Chat, None, now()).unwrap();
        set.revoke("a", now()).unwrap();
        assert!(matches!(set.revoke("a", now()), Err(TokenStoreError::Revoked { .. })));
        assert!(matches!(set.rotate("a", Duration::ZERO, now()), Err(TokenStoreError::Revoked { .. })));
        assert!(matches!(set.revoke("zzz", now()), Err(TokenStoreError::NotFound(_))));
    }

    #[test]
    fn rotate_keeps_id_name_scope_and_bounds_previous() {
        let mut set = TokenSet::default();
        let (first, old) = set.create(TokenName::parse("a").unwrap(), Scope::Admin, None, now()).unwrap();
        let (rec, new) = set.rotate("a", Duration::from_secs(60), now()).unwrap();
        assert_eq!((&rec.id, &rec.name, rec.scope), (&first.id, &first.name, first.scope));
        assert_ne!(old, new);
        assert_eq!(
            rec.previous,
            vec![PreviousSecret { sha256: first.sha256, valid_until: now().after(Duration::from_secs(60)) }]
        );
        for _ in 0..10 {
            set.rotate("a", Duration::from_secs(60), now()).unwrap();
        }
        assert_eq!(set.find("a").unwrap().previous.len(), MAX_PREVIOUS);
    }

    #[test]
    fn malformed_records_name_the_key_and_never_echo_values() {
        let canary = "pcl_canarycanary_secretsecretsecretsecretsecretsecretsecret_aaaaaa";
        let cases = [
            (json!({"tokens": "x"}), "`tokens`"),
            (json!({"tokens": [{"id": "abc"}]}), "tokens[0]"),
            (
                json!({"tokens": [{"id": "aaaaaaaaaaaa", "name": "n", "scope": "chat", "sha256": canary, "created": 1}]}),
                "tokens[0].sha256",
            ),
            (
                json!({"tokens": [{"id": "aaaaaaaaaaaa", "name": "n", "scope": "root", "sha256": "00", "created": 1}]}),
                "tokens[0].scope",
            ),
            (
                json!({"tokens": [{"id": "aaaaaaaaaaaa", "name": "n", "scope": "chat", "sha256": hex::encode([0u8; 32]), "created": 1, "previous": canary}]}),
                "tokens[0]",
            ),
            (
                json!({"rotated": [{"credential": "gateway.token", "sha256": canary, "valid_until": 5}]}),
                "rotated[0].sha256",
            ),
        ];
        for (tree, key) in cases {
            let err = TokenSet::from_tree(&tree)
                .map(|_| ())
                .and_then(|()| rotated_from_tree(&tree).map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err} should name {key}");
            assert!(!err.contains("canary"), "{err} echoes a value");
        }
    }

    #[test]
    fn last_used_only_moves_forward() {
        let mut set = TokenSet::default();
        let (rec, _) = set.create(TokenName::parse("a").unwrap(), Scope::Chat, None, now()).unwrap();
        set.apply_last_used(&[(rec.id.clone(), now().after(Duration::from_secs(5)))]);
        set.apply_last_used(&[(rec.id.clone(), now())]);
        assert_eq!(set.find("a").unwrap().last_used, Some(now().after(Duration::from_secs(5))));
    }
}
