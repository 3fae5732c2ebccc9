//! One-time pairing codes for phones and extensions (issue 19 item 11): the store only.
//!
//! An admin credential asks for a code with a scope (`chat` or `read`, never `admin`), a
//! token name and a lifetime (default [`DEFAULT_TTL`], at most [`MAX_TTL`]). The code is
//! 256 random bits (so no lockout is needed for it), shown once to the admin and carried to
//! the device in a URL *fragment*; the device exchanges it once for a named token of that
//! scope. Like tickets ([`crate::ticket`]):
//!
//! - codes are kept by the SHA-256 of their value, never the value, and compared again in
//!   constant time;
//! - any redemption attempt consumes the code, whether it then succeeds or not;
//! - a code names its parent (the admin credential that created it) and dies with it:
//!   redeeming re-checks the parent against the current [`Verifier`], and
//!   [`PairingStore::retain_valid`] drops the codes of a parent that is no longer accepted;
//! - at most [`MAX_OUTSTANDING`] codes are held: expired ones are dropped first, then the
//!   oldest.
//!
//! Each code also has a public *id* (the first 8 hex of its digest): audit lines and
//! answers name that, never the code.
//!
//! The gateway serves it (`POST /api/pair`, `POST /api/pair/redeem`, the `/pair` page;
//! `crates/gateway/src/pairing.rs`); `picoclaw pair` and the dashboard's "Pair a device"
//! call `POST /api/pair`. The requests of both endpoints are parsed here
//! ([`PairRequest`], [`RedeemRequest`]), once.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use picoclaw_credentials::Secret;
use subtle::ConstantTimeEq;

use crate::named::{Clock, SystemClock, Timestamp, TokenName, parse_duration};
use crate::verify::{Principal, Scope, Verifier};

/// Lifetime of a code when none is asked for.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);
/// The longest lifetime a code may have.
pub const MAX_TTL: Duration = Duration::from_secs(60 * 60);
/// The shortest lifetime a code may have (short enough for tests to watch one expire).
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The most codes outstanding at once.
pub const MAX_OUTSTANDING: usize = 64;
/// Length of a code (43 characters of base64url).
pub const CODE_LEN: usize = 43;

/// Why a code was not issued or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PairingError {
    /// A pairing code may only carry `chat` or `read`.
    #[error(
        "a pairing code gives `chat` or `read` scope, not `admin`: create admin tokens with `picoclaw token create`"
    )]
    AdminScope,
    /// The lifetime is outside [`MIN_TTL`]..=[`MAX_TTL`].
    #[error("pairing code lifetime must be between 1 s and 1 h (got {0} s)")]
    Ttl(u64),
    /// Not 43 characters of base64url.
    #[error("malformed pairing code: expected 43 characters of A-Z, a-z, 0-9, - and _")]
    Malformed,
    /// Unknown, or already used.
    #[error("unknown or already used pairing code; ask for a new one (`picoclaw pair`)")]
    Unknown,
    /// Past its lifetime.
    #[error("pairing code expired; ask for a new one (`picoclaw pair`)")]
    Expired,
    /// The credential that created it is no longer accepted.
    #[error("the credential that created this pairing code is no longer valid")]
    ParentRevoked,
    /// The credential that created it cannot be checked right now
    /// ([`crate::AuthError::Unverifiable`]).
    #[error("the credential that created this pairing code cannot be checked right now; retry shortly")]
    ParentUnverifiable,
    /// The OS random generator failed.
    #[error("the operating system's random generator failed")]
    Random,
    /// Another outstanding code already carries this token name.
    #[error(
        "a pairing code for a token named `{0}` is already outstanding; use it, wait for it to expire, or pick another name"
    )]
    NamePending(String),
    /// A request body that is not what the endpoint takes.
    #[error("{0}")]
    Request(String),
}

/// `POST /api/pair`: what the code will grant, how long it lives, and the public URL its
/// link should carry (else the gateway derives one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRequest {
    /// `chat` (default) or `read`.
    pub scope: Scope,
    /// The name of the token the device will get.
    pub name: TokenName,
    /// The code's lifetime.
    pub ttl: Duration,
    /// The base URL the device reaches the gateway at, as given (checked by the gateway).
    pub public_url: Option<String>,
}

const PAIR_BODY: &str = "a JSON object {\"name\": \"phone\", \"scope\": \"chat\" or \"read\" (default chat),                          \"ttl\": \"10m\" (1s to 1h, default 10m), \"public_url\": \"https://…\" (optional)}";

impl PairRequest {
    /// Parses the body of `POST /api/pair`.
    pub fn from_json(body: &[u8]) -> Result<PairRequest, PairingError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            name: String,
            #[serde(default)]
            scope: Option<String>,
            #[serde(default)]
            ttl: Option<String>,
            #[serde(default)]
            public_url: Option<String>,
        }
        let body: Body = serde_json::from_slice(body).map_err(|e| {
            PairingError::Request(format!(
                "expected {PAIR_BODY}: {}",
                crate::named::tree::redact_quoted(&e.to_string())
            ))
        })?;
        let scope = match body.scope.as_deref() {
            None | Some("chat") => Scope::Chat,
            Some("read") => Scope::Read,
            Some("admin") => return Err(PairingError::AdminScope),
            Some(_) => {
                return Err(PairingError::Request("invalid `scope`: expected `chat` or `read`".into()));
            }
        };
        let name = TokenName::parse(&body.name)
            .map_err(|e| PairingError::Request(format!("invalid `name`: {e}")))?;
        let ttl = match body.ttl.as_deref() {
            None => DEFAULT_TTL,
            Some(text) => parse_duration(text).map_err(|e| {
                PairingError::Request(format!(
                    "invalid `ttl`: {}; expected a duration from 1s to 1h such as 90s or 10m",
                    e.reason()
                ))
            })?,
        };
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(PairingError::Ttl(ttl.as_secs()));
        }
        Ok(PairRequest { scope, name, ttl, public_url: body.public_url })
    }
}

/// `POST /api/pair/redeem`: `{"code": "…"}`.
pub struct RedeemRequest {
    /// The code, as sent.
    pub code: Secret,
}

impl fmt::Debug for RedeemRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedeemRequest { .. }")
    }
}

impl RedeemRequest {
    /// Parses the body of `POST /api/pair/redeem` (the message never echoes the code).
    pub fn from_json(body: &[u8]) -> Result<RedeemRequest, PairingError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            code: String,
        }
        let body: Body = serde_json::from_slice(body).map_err(|e| {
            PairingError::Request(format!(
                "expected a JSON object {{\"code\": \"<the code from the link's #code=>\"}}: {}",
                crate::named::tree::redact_quoted(&e.to_string())
            ))
        })?;
        Ok(RedeemRequest { code: Secret::new(body.code) })
    }
}

/// What a redeemed code grants: a named token of `scope` called `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The code's public id (8 hex), for the audit log.
    pub id: String,
    /// The scope of the token to create.
    pub scope: Scope,
    /// The name of the token to create.
    pub name: TokenName,
    /// The admin credential that created the code.
    pub parent: Principal,
}

/// A code just issued: the value (shown once), its public id and its expiry.
pub struct Issued {
    /// The code itself; goes only into the link's fragment.
    pub code: Secret,
    /// Public id (first 8 hex of the code's SHA-256).
    pub id: String,
    /// When it stops working.
    pub expires: Timestamp,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued").field("id", &self.id).field("expires", &self.expires).finish_non_exhaustive()
    }
}

struct Outstanding {
    digest: [u8; 32],
    grant: Grant,
    expires: Timestamp,
    issued_seq: u64,
}

struct Inner {
    codes: HashMap<[u8; 32], Outstanding>,
    seq: u64,
}

/// The outstanding pairing codes of one gateway.
pub struct PairingStore {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for PairingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairingStore").field("outstanding", &self.outstanding()).finish_non_exhaustive()
    }
}

impl Default for PairingStore {
    fn default() -> Self {
        PairingStore::new()
    }
}

/// Keeps a code, making room first: expired ones go, then the oldest.
fn hold(inner: &mut Inner, now: Timestamp, digest: [u8; 32], grant: Grant, expires: Timestamp) {
    if inner.codes.len() >= MAX_OUTSTANDING {
        inner.codes.retain(|_, c| c.expires > now);
    }
    while inner.codes.len() >= MAX_OUTSTANDING {
        let oldest = inner.codes.iter().min_by_key(|(_, c)| c.issued_seq).map(|(k, _)| *k);
        match oldest {
            Some(k) => inner.codes.remove(&k),
            None => break,
        };
    }
    inner.seq += 1;
    let issued_seq = inner.seq;
    inner.codes.insert(digest, Outstanding { digest, grant, expires, issued_seq });
}

/// A code's payload between replicas: what it grants, and who issued it.
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedGrant {
    id: String,
    scope: Scope,
    name: String,
    parent: Principal,
}

impl crate::one_time::OneTimeTable for PairingStore {
    const KIND: &'static str = "pairing";

    fn digest_of(presented: &str) -> Option<[u8; 32]> {
        crate::ticket::one_time_digest(presented, CODE_LEN)
    }

    fn export(&self, digest: &[u8; 32]) -> Option<(String, Timestamp)> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let c = inner.codes.get(digest)?;
        let g = &c.grant;
        let payload = SharedGrant {
            id: g.id.clone(),
            scope: g.scope,
            name: g.name.as_str().to_owned(),
            parent: g.parent.clone(),
        };
        Some((serde_json::to_string(&payload).ok()?, c.expires))
    }

    fn adopt(&self, digest: [u8; 32], payload: &str, expires: Timestamp) -> bool {
        let Ok(g) = serde_json::from_str::<SharedGrant>(payload) else { return false };
        let Ok(name) = TokenName::parse(&g.name) else { return false };
        if g.scope == Scope::Admin {
            return false;
        }
        let grant = Grant { id: g.id, scope: g.scope, name, parent: g.parent };
        let now = self.clock.now();
        hold(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner), now, digest, grant, expires);
        true
    }

    fn forget(&self, digest: &[u8; 32]) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).codes.remove(digest);
    }

    fn parent_kind(&self, digest: &[u8; 32]) -> Option<crate::CredentialKind> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .codes
            .get(digest)
            .map(|c| c.grant.parent.kind)
    }
}

fn id_of(digest: &[u8; 32]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

impl PairingStore {
    /// An empty store with the system clock.
    pub fn new() -> PairingStore {
        PairingStore::with_clock(Arc::new(SystemClock))
    }

    /// An empty store with an injected clock.
    pub fn with_clock(clock: Arc<dyn Clock>) -> PairingStore {
        PairingStore { inner: Mutex::new(Inner { codes: HashMap::new(), seq: 0 }), clock }
    }

    /// Codes currently held (including expired ones not yet dropped).
    pub fn outstanding(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).codes.len()
    }

    /// Issues a code that `parent` (an admin credential, checked by the caller) hands out
    /// for a `scope` token named `name`, valid `ttl`.
    pub fn issue(
        &self,
        parent: &Principal,
        scope: Scope,
        name: &TokenName,
        ttl: Duration,
    ) -> Result<Issued, PairingError> {
        if scope == Scope::Admin {
            return Err(PairingError::AdminScope);
        }
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(PairingError::Ttl(ttl.as_secs()));
        }
        let code = crate::ticket::one_time_secret().map_err(|_| PairingError::Random)?;
        let digest = code.digest();
        let id = id_of(&digest);
        let now = self.clock.now();
        let expires = now.after(ttl);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Two codes for one name: the second redemption could only fail, after its code
        // was spent.
        if inner.codes.values().any(|c| c.expires > now && c.grant.name == *name) {
            return Err(PairingError::NamePending(name.as_str().to_owned()));
        }
        let grant = Grant { id: id.clone(), scope, name: name.clone(), parent: parent.clone() };
        hold(&mut inner, now, digest, grant, expires);
        Ok(Issued { code, id, expires })
    }

    /// Redeems `code`: consumes it, then checks its lifetime and that its parent is still
    /// accepted by `verifier`, and returns what it grants.
    pub fn redeem(&self, code: &str, verifier: &Verifier) -> Result<Grant, PairingError> {
        let Some(digest) = crate::ticket::one_time_digest(code, CODE_LEN) else {
            return Err(PairingError::Malformed);
        };
        let now = self.clock.now();
        let found = self.inner.lock().unwrap_or_else(PoisonError::into_inner).codes.remove(&digest);
        let Some(c) = found else { return Err(PairingError::Unknown) };
        if !bool::from(c.digest.ct_eq(&digest)) {
            return Err(PairingError::Unknown);
        }
        if c.expires <= now {
            return Err(PairingError::Expired);
        }
        verifier.still_valid(&c.grant.parent).map_err(|e| match e {
            crate::AuthError::Unverifiable { .. } => PairingError::ParentUnverifiable,
            _ => PairingError::ParentRevoked,
        })?;
        Ok(c.grant)
    }

    /// Drops every code whose parent `verifier` no longer accepts, and the expired ones.
    /// Returns how many were dropped.
    pub fn retain_valid(&self, verifier: &Verifier) -> usize {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let before = inner.codes.len();
        inner.codes.retain(|_, c| c.expires > now && verifier.still_valid(&c.grant.parent).is_ok());
        before - inner.codes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::named::ManualClock;
    use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};
    use picoclaw_credentials::Credentials;

    const GATEWAY: &str = "gateway-token-0123456789abcdef0123456789abcdef";

    fn verifier(env: MapEnv) -> Verifier {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let layers = Layers::load(&paths, &env, &Flags::new()).unwrap();
        let settings = Settings::resolve(&layers).unwrap();
        let creds = Credentials::resolve(&layers, &settings).unwrap();
        Verifier::new(&creds, &Secret::new("rt"), true)
    }

    fn with_gateway() -> Verifier {
        verifier(MapEnv::new().with("PICOCLAW_GATEWAY_TOKEN", GATEWAY))
    }

    fn n(name: impl AsRef<str>) -> TokenName {
        TokenName::parse(name.as_ref()).unwrap()
    }

    fn store() -> (PairingStore, ManualClock) {
        let clock = ManualClock::new(Timestamp::from_unix(1_800_000_000));
        (PairingStore::with_clock(Arc::new(clock.clone())), clock)
    }

    #[test]
    fn a_code_works_once_and_grants_exactly_its_scope_and_name() {
        let (s, _) = store();
        let v = with_gateway();
        let admin = v.identify(GATEWAY).unwrap();
        let issued = s.issue(&admin, Scope::Read, &n("phone"), DEFAULT_TTL).unwrap();
        assert_eq!(issued.code.len(), CODE_LEN);
        assert!(!format!("{issued:?}").contains(issued.code.expose()), "Debug never shows the code");
        let grant = s.redeem(issued.code.expose(), &v).unwrap();
        assert_eq!(
            (grant.scope, grant.name.as_str(), grant.id.as_str()),
            (Scope::Read, "phone", issued.id.as_str())
        );
        assert_eq!(grant.parent, admin);
        assert_eq!(s.redeem(issued.code.expose(), &v), Err(PairingError::Unknown));
        // One outstanding code per name; free again once redeemed (or expired).
        let _first = s.issue(&admin, Scope::Chat, &n("tablet"), DEFAULT_TTL).unwrap();
        assert_eq!(
            s.issue(&admin, Scope::Chat, &n("tablet"), DEFAULT_TTL).err(),
            Some(PairingError::NamePending("tablet".into()))
        );
        assert!(s.issue(&admin, Scope::Chat, &n("phone"), DEFAULT_TTL).is_ok());
    }

    #[test]
    fn it_expires_at_its_ttl_and_the_ttl_is_bounded() {
        let (s, clock) = store();
        let v = with_gateway();
        let admin = v.identify(GATEWAY).unwrap();
        let a = s.issue(&admin, Scope::Chat, &n("a"), Duration::from_secs(60)).unwrap();
        let b = s.issue(&admin, Scope::Chat, &n("b"), Duration::from_secs(60)).unwrap();
        clock.advance(Duration::from_secs(59));
        assert!(s.redeem(a.code.expose(), &v).is_ok());
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.redeem(b.code.expose(), &v), Err(PairingError::Expired));
        assert_eq!(
            s.issue(&admin, Scope::Chat, &n("c"), MAX_TTL + Duration::from_secs(1)).err(),
            Some(PairingError::Ttl(3601))
        );
        assert_eq!(s.issue(&admin, Scope::Chat, &n("c"), Duration::ZERO).err(), Some(PairingError::Ttl(0)));
        assert_eq!(s.issue(&admin, Scope::Admin, &n("c"), DEFAULT_TTL).err(), Some(PairingError::AdminScope));
    }

    #[test]
    fn malformed_unknown_and_a_wrong_guess_costs_nothing_but_is_refused() {
        let (s, _) = store();
        let v = with_gateway();
        assert_eq!(s.redeem("short", &v), Err(PairingError::Malformed));
        assert_eq!(s.redeem(&"+".repeat(CODE_LEN), &v), Err(PairingError::Malformed));
        assert_eq!(s.redeem(&"a".repeat(CODE_LEN), &v), Err(PairingError::Unknown));
    }

    #[test]
    fn codes_die_with_their_parent() {
        let (s, _) = store();
        let v = with_gateway();
        let admin = v.identify(GATEWAY).unwrap();
        let a = s.issue(&admin, Scope::Chat, &n("a"), DEFAULT_TTL).unwrap();
        let b = s.issue(&admin, Scope::Chat, &n("b"), DEFAULT_TTL).unwrap();
        // The gateway token is gone from the configuration: a new verifier without it.
        let without = verifier(MapEnv::new());
        assert_eq!(s.redeem(a.code.expose(), &without), Err(PairingError::ParentRevoked));
        assert_eq!(s.retain_valid(&without), 1);
        assert_eq!(s.redeem(b.code.expose(), &v), Err(PairingError::Unknown), "dropped by retain_valid");
    }

    #[test]
    fn requests_parse_once_with_errors_that_name_the_field() {
        let r = PairRequest::from_json(br#"{"name":"phone"}"#).unwrap();
        assert_eq!(
            (r.scope, r.name.as_str(), r.ttl, r.public_url),
            (Scope::Chat, "phone", DEFAULT_TTL, None)
        );
        let r =
            PairRequest::from_json(br#"{"name":"tab","scope":"read","ttl":"90s","public_url":"https://x"}"#)
                .unwrap();
        assert_eq!((r.scope, r.ttl.as_secs(), r.public_url.as_deref()), (Scope::Read, 90, Some("https://x")));
        assert_eq!(PairRequest::from_json(br#"{"name":"a","scope":"admin"}"#), Err(PairingError::AdminScope));
        assert_eq!(PairRequest::from_json(br#"{"name":"a","ttl":"2h"}"#), Err(PairingError::Ttl(7200)));
        for (body, needle) in [
            (&br#"{"name":"a","ttl":"soon"}"#[..], "`ttl`"),
            (br#"{"name":"a","scope":"write"}"#, "`scope`"),
            (br#"{"name":"pico"}"#, "`name`"),
            (br#"{"name":"a","token":"x"}"#, "expected a JSON object"),
        ] {
            let e = PairRequest::from_json(body).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        let secret = "s3cr3t-value-that-must-not-echo";
        let e = RedeemRequest::from_json(format!(r#"{{"code":"{secret}","x":1}}"#).as_bytes()).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        assert_eq!(RedeemRequest::from_json(br#"{"code":"abc"}"#).unwrap().code.expose(), "abc");
    }

    #[test]
    fn bounded_expired_first_then_oldest() {
        let (s, clock) = store();
        let v = with_gateway();
        let admin = v.identify(GATEWAY).unwrap();
        let first = s.issue(&admin, Scope::Chat, &n("first"), Duration::from_secs(5)).unwrap();
        clock.advance(Duration::from_secs(1));
        let second = s.issue(&admin, Scope::Chat, &n("second"), DEFAULT_TTL).unwrap();
        for i in 2..MAX_OUTSTANDING {
            s.issue(&admin, Scope::Chat, &n(format!("n{i}")), DEFAULT_TTL).unwrap();
        }
        assert_eq!(s.outstanding(), MAX_OUTSTANDING);
        s.issue(&admin, Scope::Chat, &n("one-more"), DEFAULT_TTL).unwrap();
        assert_eq!(s.outstanding(), MAX_OUTSTANDING);
        assert_eq!(s.redeem(first.code.expose(), &v), Err(PairingError::Unknown), "the oldest went first");
        assert!(s.redeem(second.code.expose(), &v).is_ok());
    }
}
