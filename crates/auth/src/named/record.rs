//! One named-token record as kept in `.security.yml` (hash only, never a secret), its
//! name, digest and lifecycle state, and the secret-free summary shown by `token list`
//! and the admin API.

use std::fmt;

use picoclaw_credentials::Secret;
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::TokenStoreError;
use super::format::TokenId;
use super::time::Timestamp;
use crate::verify::Scope;

/// The longest token name.
pub const MAX_NAME_LEN: usize = 64;

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

    pub(crate) fn parse(s: &str) -> Option<Digest> {
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
