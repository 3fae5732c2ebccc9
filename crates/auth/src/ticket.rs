//! Single-use WebSocket tickets for browser apps.
//!
//! `POST /auth/ticket` (with a chat or admin credential) gets a ticket: 256 random bits,
//! valid [`TICKET_TTL`], usable once, bound to the `Origin` of the request that asked for
//! it. The browser then opens `/pico/ws` with `Sec-WebSocket-Protocol: ticket.<t>`, so no
//! long-lived token has to live in the page.
//!
//! Tickets are kept by the SHA-256 of their value (the value itself is never stored), so
//! the lookup cannot leak the ticket through timing; the digests are compared again in
//! constant time. Any presentation consumes the ticket, whether it then succeeds or not
//! (a ticket shown from the wrong origin is burned). At most [`MAX_OUTSTANDING`] tickets
//! are held: expired ones are dropped first, then the oldest.
//!
//! A ticket is derived from the credential that asked for it (its *parent*: kind, id and
//! the fingerprint of the exact secret value) and dies with it: redeeming re-checks the
//! parent against the current [`Verifier`], and [`TicketStore::retain_valid`] — run by
//! the gateway on every change of its credentials — drops the tickets of a parent that was
//! revoked, rotated past its grace or removed. A ticket opens the Pico socket only; it is
//! never accepted where a ticket could be minted, so one ticket cannot breed another.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use picoclaw_credentials::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::named::{Clock, SystemClock, Timestamp};
use crate::verify::{AuthError, Lapse, Principal, Verifier};

/// How long a ticket is valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// The most tickets outstanding at once.
pub const MAX_OUTSTANDING: usize = 1024;
/// Length of a ticket (43 characters of base64url).
pub const TICKET_LEN: usize = 43;

/// Why a ticket was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Not 43 characters of base64url.
    #[error("malformed ticket: expected 43 characters of A-Z, a-z, 0-9, - and _")]
    Malformed,
    /// Unknown, or already used.
    #[error("unknown or already used ticket; request a new one with POST /auth/ticket")]
    Unknown,
    /// Older than 30 s.
    #[error("ticket expired (tickets are valid for 30 s); request a new one")]
    Expired,
    /// Presented from another origin than the one it was issued to.
    #[error("ticket was issued to another origin")]
    OriginMismatch,
    /// The credential that minted it is no longer accepted (revoked, rotated past its
    /// grace, or removed from the configuration).
    #[error("the credential that issued this ticket is no longer valid")]
    ParentRevoked,
    /// The credential that minted it cannot be checked right now
    /// ([`AuthError::Unverifiable`]); its public id.
    #[error("the credential that issued this ticket cannot be checked right now; retry shortly")]
    ParentUnverifiable(String),
}

impl From<TicketError> for AuthError {
    fn from(e: TicketError) -> AuthError {
        match e {
            TicketError::Malformed => AuthError::Malformed("ticket: expected 43 characters of base64url"),
            TicketError::Unknown | TicketError::OriginMismatch => AuthError::Invalid,
            TicketError::Expired => AuthError::Expired { id: "ticket".to_owned(), state: Lapse::Expired },
            TicketError::ParentRevoked => {
                AuthError::Expired { id: "ticket".to_owned(), state: Lapse::Revoked }
            }
            TicketError::ParentUnverifiable(id) => AuthError::Unverifiable { id },
        }
    }
}

struct Outstanding {
    digest: [u8; 32],
    principal: Principal,
    origin: Option<String>,
    expires: Timestamp,
    issued_seq: u64,
}

struct Inner {
    tickets: HashMap<[u8; 32], Outstanding>,
    seq: u64,
}

/// The outstanding tickets of one gateway.
pub struct TicketStore {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    cap: usize,
}

impl fmt::Debug for TicketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketStore").field("outstanding", &self.outstanding()).finish_non_exhaustive()
    }
}

impl Default for TicketStore {
    fn default() -> Self {
        TicketStore::new()
    }
}

/// A ticket's payload between replicas: the names of its parent and its origin.
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedTicket {
    parent: Principal,
    origin: Option<String>,
}

impl crate::one_time::OneTimeTable for TicketStore {
    const KIND: &'static str = "ticket";

    fn digest_of(presented: &str) -> Option<[u8; 32]> {
        one_time_digest(presented, TICKET_LEN)
    }

    fn export(&self, digest: &[u8; 32]) -> Option<(String, Timestamp)> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let t = inner.tickets.get(digest)?;
        let payload = SharedTicket { parent: t.principal.clone(), origin: t.origin.clone() };
        Some((serde_json::to_string(&payload).ok()?, t.expires))
    }

    fn adopt(&self, digest: [u8; 32], payload: &str, expires: Timestamp) -> bool {
        let Ok(t) = serde_json::from_str::<SharedTicket>(payload) else { return false };
        self.hold(digest, t.parent, t.origin, expires);
        true
    }

    fn forget(&self, digest: &[u8; 32]) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).tickets.remove(digest);
    }

    fn parent_kind(&self, digest: &[u8; 32]) -> Option<crate::CredentialKind> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tickets
            .get(digest)
            .map(|t| t.principal.kind)
    }
}

/// Origins compare case-insensitively and without a trailing slash
/// (`https://App.example/` = `https://app.example`). `null` (a sandboxed frame, a `data:`
/// page) is an origin of its own: never the same as "no Origin header".
fn normalize_origin(origin: Option<&str>) -> Option<String> {
    let o = origin?.trim();
    Some(o.trim_end_matches('/').to_ascii_lowercase())
}

impl TicketStore {
    /// An empty store with the system clock.
    pub fn new() -> TicketStore {
        TicketStore::with_clock(Arc::new(SystemClock))
    }

    /// An empty store with an injected clock.
    pub fn with_clock(clock: Arc<dyn Clock>) -> TicketStore {
        TicketStore {
            inner: Mutex::new(Inner { tickets: HashMap::new(), seq: 0 }),
            clock,
            cap: MAX_OUTSTANDING,
        }
    }

    /// Tickets currently held (including expired ones not yet dropped).
    pub fn outstanding(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).tickets.len()
    }

    /// Issues a ticket for `principal`, bound to `origin` (the request's `Origin` header;
    /// `None` when it had none, and then only a request without `Origin` may redeem it).
    /// Returns the ticket (shown once, to the caller) and its expiry.
    pub fn issue(
        &self,
        principal: &Principal,
        origin: Option<&str>,
    ) -> Result<(Secret, Timestamp), getrandom::Error> {
        let ticket = one_time_secret()?;
        let expires = self.clock.now().after(TICKET_TTL);
        self.hold(ticket.digest(), principal.clone(), normalize_origin(origin), expires);
        Ok((ticket, expires))
    }

    /// Redeems `ticket` presented with `origin`: consumes it, then checks that its parent
    /// is still accepted by `verifier`, and returns the parent's principal (a socket opened
    /// with a ticket acts as — and dies with — that credential).
    pub fn redeem(
        &self,
        ticket: &str,
        origin: Option<&str>,
        verifier: &Verifier,
    ) -> Result<Principal, TicketError> {
        let Some(digest) = one_time_digest(ticket, TICKET_LEN) else {
            return Err(TicketError::Malformed);
        };
        let now = self.clock.now();
        let found = self.inner.lock().unwrap_or_else(PoisonError::into_inner).tickets.remove(&digest);
        let Some(t) = found else { return Err(TicketError::Unknown) };
        if !bool::from(t.digest.ct_eq(&digest)) {
            return Err(TicketError::Unknown);
        }
        if t.expires <= now {
            return Err(TicketError::Expired);
        }
        if t.origin != normalize_origin(origin) {
            return Err(TicketError::OriginMismatch);
        }
        verifier.still_valid(&t.principal).map_err(|e| match e {
            AuthError::Unverifiable { id } => TicketError::ParentUnverifiable(id),
            _ => TicketError::ParentRevoked,
        })?;
        Ok(t.principal)
    }

    /// Keeps a ticket, making room first: expired ones go, then the oldest.
    fn hold(&self, digest: [u8; 32], principal: Principal, origin: Option<String>, expires: Timestamp) {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.tickets.len() >= self.cap {
            inner.tickets.retain(|_, t| t.expires > now);
        }
        while inner.tickets.len() >= self.cap {
            let oldest = inner.tickets.iter().min_by_key(|(_, t)| t.issued_seq).map(|(k, _)| *k);
            match oldest {
                Some(k) => inner.tickets.remove(&k),
                None => break,
            };
        }
        inner.seq += 1;
        let issued_seq = inner.seq;
        inner.tickets.insert(digest, Outstanding { digest, principal, origin, expires, issued_seq });
    }

    /// Drops expired tickets (the gateway may call this periodically; issuing also does).
    pub fn sweep(&self) {
        let now = self.clock.now();
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).tickets.retain(|_, t| t.expires > now);
    }

    /// Drops every outstanding ticket whose parent `verifier` no longer accepts (and the
    /// expired ones). The gateway runs this on every change of its credentials; returns
    /// how many were dropped.
    pub fn retain_valid(&self, verifier: &Verifier) -> usize {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let before = inner.tickets.len();
        inner.tickets.retain(|_, t| t.expires > now && verifier.still_valid(&t.principal).is_ok());
        before - inner.tickets.len()
    }
}

/// A fresh single-use secret: 256 bits from the OS CSPRNG as 43 characters of base64url
/// (tickets, pairing codes and the launcher's one-time login codes).
pub fn one_time_secret() -> Result<Secret, getrandom::Error> {
    let mut random = Zeroizing::new([0u8; 32]);
    getrandom::fill(random.as_mut())?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(random.as_ref())))
}

/// The SHA-256 of a presented single-use secret when it has the shape
/// [`one_time_secret`] makes (`len` characters of base64url); `None` otherwise.
pub fn one_time_digest(presented: &str, len: usize) -> Option<[u8; 32]> {
    let well_formed = presented.len() == len
        && presented.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| Sha256::digest(presented.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::named::ManualClock;
    use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};
    use picoclaw_credentials::Credentials;

    const PICO: &str = "pico-token-0123456789abcdef0123456789abcdef";
    const GATEWAY: &str = "gateway-token-0123456789abcdef0123456789abcdef";

    /// A verifier accepting `env`'s tokens (the pico token when set, the gateway token
    /// when set) and the runtime token `rt`.
    fn verifier(env: MapEnv) -> Verifier {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let layers = Layers::load(&paths, &env, &Flags::new()).unwrap();
        let settings = Settings::resolve(&layers).unwrap();
        let creds = Credentials::resolve(&layers, &settings).unwrap();
        Verifier::new(&creds, &Secret::new("rt"), true)
    }

    fn both() -> Verifier {
        verifier(
            MapEnv::new().with("PICOCLAW_CHANNELS_PICO_TOKEN", PICO).with("PICOCLAW_GATEWAY_TOKEN", GATEWAY),
        )
    }

    fn pico(v: &Verifier) -> Principal {
        v.identify(PICO).unwrap()
    }

    fn store() -> (TicketStore, ManualClock) {
        let clock = ManualClock::new(Timestamp::from_unix(1_800_000_000));
        (TicketStore::with_clock(Arc::new(clock.clone())), clock)
    }

    const APP: Option<&str> = Some("https://app.example");

    #[test]
    fn works_once() {
        let (s, _) = store();
        let v = both();
        let (t, _) = s.issue(&pico(&v), APP).unwrap();
        assert_eq!(t.len(), TICKET_LEN);
        assert_eq!(s.redeem(t.expose(), APP, &v), Ok(pico(&v)));
        assert_eq!(s.redeem(t.expose(), APP, &v), Err(TicketError::Unknown));
        assert_eq!(AuthError::from(TicketError::Unknown), AuthError::Invalid);
    }

    #[test]
    fn only_from_its_origin_and_a_wrong_origin_burns_it() {
        let (s, _) = store();
        let v = both();
        let (t, _) = s.issue(&pico(&v), Some("https://App.example/")).unwrap();
        assert_eq!(s.redeem(t.expose(), Some("https://evil.example"), &v), Err(TicketError::OriginMismatch));
        assert_eq!(
            s.redeem(t.expose(), APP, &v),
            Err(TicketError::Unknown),
            "burned by the wrong-origin attempt"
        );
        let (t, _) = s.issue(&pico(&v), APP).unwrap();
        assert_eq!(s.redeem(t.expose(), None, &v), Err(TicketError::OriginMismatch));
        let (t, _) = s.issue(&pico(&v), None).unwrap();
        assert_eq!(s.redeem(t.expose(), APP, &v), Err(TicketError::OriginMismatch));
        let (t, _) = s.issue(&pico(&v), Some("https://app.example/")).unwrap();
        assert!(s.redeem(t.expose(), APP, &v).is_ok(), "case and trailing slash do not matter");
        for (issued, presented) in [(None, Some("null")), (Some("null"), None), (Some(""), Some("NULL"))] {
            let (t, _) = s.issue(&pico(&v), issued).unwrap();
            assert_eq!(
                s.redeem(t.expose(), presented, &v),
                Err(TicketError::OriginMismatch),
                "{issued:?} -> {presented:?}"
            );
        }
    }

    #[test]
    fn not_after_30_seconds() {
        let (s, clock) = store();
        let v = both();
        let (t1, exp) = s.issue(&pico(&v), APP).unwrap();
        let (t2, _) = s.issue(&pico(&v), APP).unwrap();
        assert_eq!(exp, Timestamp::from_unix(1_800_000_030));
        clock.advance(Duration::from_secs(29));
        assert!(s.redeem(t1.expose(), APP, &v).is_ok());
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.redeem(t2.expose(), APP, &v), Err(TicketError::Expired));
        assert!(matches!(AuthError::from(TicketError::Expired), AuthError::Expired { .. }));
    }

    #[test]
    fn malformed_and_unknown() {
        let (s, _) = store();
        let v = both();
        assert_eq!(s.redeem("short", APP, &v), Err(TicketError::Malformed));
        assert_eq!(s.redeem(&"a".repeat(TICKET_LEN), APP, &v), Err(TicketError::Unknown));
        assert_eq!(s.redeem(&"+".repeat(TICKET_LEN), APP, &v), Err(TicketError::Malformed));
    }

    #[test]
    fn bounded_expired_first_then_oldest() {
        let (s, clock) = store();
        let v = both();
        let (first, _) = s.issue(&pico(&v), APP).unwrap();
        for _ in 1..MAX_OUTSTANDING {
            s.issue(&pico(&v), APP).unwrap();
        }
        assert_eq!(s.outstanding(), MAX_OUTSTANDING);
        let (newest, _) = s.issue(&pico(&v), APP).unwrap();
        assert_eq!(s.outstanding(), MAX_OUTSTANDING);
        assert_eq!(s.redeem(first.expose(), APP, &v), Err(TicketError::Unknown), "oldest evicted");
        assert!(s.redeem(newest.expose(), APP, &v).is_ok());
        clock.advance(TICKET_TTL);
        s.issue(&pico(&v), APP).unwrap();
        s.issue(&pico(&v), APP).unwrap();
        s.sweep();
        assert_eq!(s.outstanding(), 2, "expired ones dropped");
    }

    #[test]
    fn a_ticket_dies_with_its_parent() {
        let (s, _) = store();
        let before = both();
        let (lazy, _) = s.issue(&pico(&before), APP).unwrap();
        let (swept, _) = s.issue(&pico(&before), APP).unwrap();
        let (kept, _) = s.issue(&before.identify(GATEWAY).unwrap(), APP).unwrap();
        // The pico token is removed (or rotated: a new value has another fingerprint).
        let after = verifier(MapEnv::new().with("PICOCLAW_GATEWAY_TOKEN", GATEWAY));
        assert_eq!(
            s.redeem(lazy.expose(), APP, &after),
            Err(TicketError::ParentRevoked),
            "checked when redeemed"
        );
        assert_eq!(s.retain_valid(&after), 1, "dropped when the credentials change");
        assert_eq!(s.redeem(swept.expose(), APP, &before), Err(TicketError::Unknown));
        assert!(s.redeem(kept.expose(), APP, &after).is_ok(), "another parent's ticket stays");
        let rotated = verifier(
            MapEnv::new()
                .with("PICOCLAW_CHANNELS_PICO_TOKEN", "another-pico-token-0123456789abcdef0123456789"),
        );
        let (old, _) = s.issue(&pico(&before), APP).unwrap();
        assert_eq!(
            s.redeem(old.expose(), APP, &rotated),
            Err(TicketError::ParentRevoked),
            "same id, new value"
        );
    }
}
