//! Dashboard sessions: a bounded server-side table of random session ids, handed to the
//! browser as `id.HMAC(key, SHA-256(token) ‖ id)` in an `HttpOnly; SameSite=Strict` cookie.
//!
//! The HMAC key is 256 bits made at process start, so a restart ends every session; the
//! launcher token is part of what is signed (seed 001: "the same token also signs the
//! dashboard session cookies"), so a cookie made under another token never verifies. Each
//! session also remembers the token generation it was created under: changing the token
//! bumps the generation and drops every other session at once. Logout removes the entry,
//! so a copied cookie stops working immediately.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use picoclaw_config::BasePath;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "picoclaw_launcher_session";
/// How long a session lives after login (about 7 days, seed 001).
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Live sessions kept at most; the least recently used is evicted beyond this.
pub const CAPACITY: usize = 64;

/// A session's id (256 random bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 32]);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id is a bearer credential: never print it.
        f.write_str("SessionId(..)")
    }
}

#[derive(Debug, Clone, Copy)]
struct Session {
    created: Instant,
    last_seen: Instant,
    generation: u64,
}

/// The session table.
pub struct Sessions {
    key: [u8; 32],
    table: Mutex<HashMap<SessionId, Session>>,
    max_age: Duration,
    capacity: usize,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("live", &self.live()).finish_non_exhaustive()
    }
}

/// The OS random generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random generator failed")]
pub struct RandomError;

fn random() -> Result<[u8; 32], RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(bytes)
}

impl Sessions {
    /// A fresh table with a new per-process key.
    pub fn new() -> Result<Sessions, RandomError> {
        Sessions::with_limits(MAX_AGE, CAPACITY)
    }

    /// A table with explicit limits (tests).
    pub fn with_limits(max_age: Duration, capacity: usize) -> Result<Sessions, RandomError> {
        Ok(Sessions { key: random()?, table: Mutex::new(HashMap::new()), max_age, capacity: capacity.max(1) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Session>> {
        // The table holds no invariant a panic could break halfway.
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tag(&self, id: &SessionId, token_digest: &[u8; 32]) -> [u8; 32] {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(b"picoclaw-launcher-session-v1\0");
        mac.update(token_digest);
        mac.update(&id.0);
        mac.finalize().into_bytes().into()
    }

    /// The cookie value for session `id` under the token with SHA-256 `token_digest`.
    pub fn cookie_value(&self, id: SessionId, token_digest: &[u8; 32]) -> String {
        format!("{}.{}", hex::encode(id.0), hex::encode(self.tag(&id, token_digest)))
    }

    /// Opens a session under token `generation` (whose SHA-256 is `token_digest`); returns
    /// its id and cookie value.
    pub fn create(
        &self,
        generation: u64,
        token_digest: &[u8; 32],
    ) -> Result<(SessionId, String), RandomError> {
        let id = SessionId(random()?);
        let now = Instant::now();
        let mut table = self.lock();
        table.retain(|_, s| now.duration_since(s.created) < self.max_age);
        while table.len() >= self.capacity {
            let Some(oldest) = table.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) else { break };
            table.remove(&oldest);
        }
        table.insert(id, Session { created: now, last_seen: now, generation });
        drop(table);
        Ok((id, self.cookie_value(id, token_digest)))
    }

    /// The live session a cookie value names, if its signature (under the current token)
    /// is valid, it has not expired or been revoked, and it belongs to token `generation`.
    pub fn validate(&self, cookie: &str, generation: u64, token_digest: &[u8; 32]) -> Option<SessionId> {
        let (id_hex, tag_hex) = cookie.split_once('.')?;
        let mut id = [0u8; 32];
        hex::decode_to_slice(id_hex, &mut id).ok()?;
        let mut tag = [0u8; 32];
        hex::decode_to_slice(tag_hex, &mut tag).ok()?;
        let id = SessionId(id);
        if !bool::from(self.tag(&id, token_digest).ct_eq(&tag)) {
            return None;
        }
        let now = Instant::now();
        let mut table = self.lock();
        let session = table.get_mut(&id)?;
        if session.generation != generation || now.duration_since(session.created) >= self.max_age {
            table.remove(&id);
            return None;
        }
        session.last_seen = now;
        Some(id)
    }

    /// Whether `id` is still live under `generation` (for long-lived proxied sockets).
    pub fn is_live(&self, id: SessionId, generation: u64) -> bool {
        let now = Instant::now();
        self.lock()
            .get(&id)
            .is_some_and(|s| s.generation == generation && now.duration_since(s.created) < self.max_age)
    }

    /// Ends one session (logout).
    pub fn revoke(&self, id: SessionId) {
        self.lock().remove(&id);
    }

    /// After a token change: every session but `keep` ends; `keep` moves to `generation`.
    pub fn rotate(&self, keep: Option<SessionId>, generation: u64) {
        let mut table = self.lock();
        table.retain(|id, _| Some(*id) == keep);
        for s in table.values_mut() {
            s.generation = generation;
        }
    }

    /// Number of live sessions.
    pub fn live(&self) -> usize {
        self.lock().len()
    }
}

/// The `Set-Cookie` value for a new session. Its `Path` is the dashboard's base path
/// (`/picoclaw/`), so the cookie is sent only to the dashboard, not to whatever else the
/// proxy serves on the same host.
pub fn set_cookie(value: &str, secure: bool, base: &BasePath) -> String {
    format!(
        "{COOKIE}={value}; Max-Age={}; Path={}/; HttpOnly; SameSite=Strict{}",
        MAX_AGE.as_secs(),
        base.as_str(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie (same `Path` as it was set with).
pub fn clear_cookie(secure: bool, base: &BasePath) -> String {
    format!(
        "{COOKIE}=; Max-Age=0; Path={}/; HttpOnly; SameSite=Strict{}",
        base.as_str(),
        if secure { "; Secure" } else { "" }
    )
}

/// The session cookie's value in a request's `Cookie` headers.
pub fn from_headers(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [u8; 32] = [7; 32];

    #[test]
    fn cookie_round_trip_and_tamper() {
        let s = Sessions::new().unwrap();
        let (id, cookie) = s.create(0, &T).unwrap();
        assert_eq!(s.validate(&cookie, 0, &T), Some(id));
        assert_eq!(s.validate(&cookie, 0, &[9; 32]), None, "signed under another token");
        let mut forged = cookie.clone();
        forged.replace_range(0..1, if forged.starts_with('0') { "1" } else { "0" });
        assert_eq!(s.validate(&forged, 0, &T), None);
        assert_eq!(s.validate("garbage", 0, &T), None);
        let other = Sessions::new().unwrap();
        assert_eq!(other.validate(&cookie, 0, &T), None, "another process's key does not verify");
    }

    #[test]
    fn revoke_rotate_and_generation() {
        let s = Sessions::new().unwrap();
        let (a, ca) = s.create(0, &T).unwrap();
        let (_b, cb) = s.create(0, &T).unwrap();
        s.rotate(Some(a), 1);
        assert_eq!(s.validate(&ca, 1, &T), Some(a));
        assert_eq!(s.validate(&cb, 1, &T), None);
        assert_eq!(s.validate(&cb, 0, &T), None);
        s.revoke(a);
        assert_eq!(s.validate(&ca, 1, &T), None);
    }

    #[test]
    fn bounded_and_expiring() {
        let s = Sessions::with_limits(MAX_AGE, 3).unwrap();
        let cookies: Vec<String> = (0..10).map(|_| s.create(0, &T).unwrap().1).collect();
        assert_eq!(s.live(), 3);
        assert!(s.validate(&cookies[9], 0, &T).is_some());
        assert!(s.validate(&cookies[0], 0, &T).is_none());
        let short = Sessions::with_limits(Duration::from_millis(0), 3).unwrap();
        let (_, c) = short.create(0, &T).unwrap();
        assert!(short.validate(&c, 0, &T).is_none());
    }

    #[test]
    fn cookie_attributes() {
        let root = BasePath::default();
        let c = set_cookie("v", false, &root);
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/;", "Max-Age=604800"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(!c.contains("Secure"));
        assert!(set_cookie("v", true, &root).ends_with("; Secure"));
        let sub = BasePath::parse("/picoclaw").unwrap();
        assert!(set_cookie("v", false, &sub).contains("; Path=/picoclaw/;"));
        assert!(clear_cookie(false, &sub).contains("; Path=/picoclaw/;"));
    }
}
