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
use crate::verify::{AuthError, Principal};

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
}

impl From<TicketError> for AuthError {
    fn from(e: TicketError) -> AuthError {
        match e {
            TicketError::Malformed => AuthError::Malformed("ticket: expected 43 characters of base64url"),
            TicketError::Unknown | TicketError::OriginMismatch => AuthError::Invalid,
            TicketError::Expired => AuthError::Expired { id: "ticket".to_owned(), state: "expired" },
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

/// Origins compare case-insensitively and without a trailing slash
/// (`https://App.example/` = `https://app.example`).
fn normalize_origin(origin: Option<&str>) -> Option<String> {
    let o = origin?.trim();
    if o.is_empty() || o.eq_ignore_ascii_case("null") {
        return None;
    }
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
        let mut random = Zeroizing::new([0u8; 32]);
        getrandom::fill(random.as_mut())?;
        let ticket = Secret::new(URL_SAFE_NO_PAD.encode(random.as_ref()));
        let digest = ticket.digest();
        let now = self.clock.now();
        let expires = now.after(TICKET_TTL);
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
        inner.tickets.insert(
            digest,
            Outstanding {
                digest,
                principal: principal.clone(),
                origin: normalize_origin(origin),
                expires,
                issued_seq,
            },
        );
        Ok((ticket, expires))
    }

    /// Redeems `ticket` presented with `origin`: consumes it and returns the principal it
    /// was issued to (unchanged: a socket opened with a ticket acts as that credential).
    pub fn redeem(&self, ticket: &str, origin: Option<&str>) -> Result<Principal, TicketError> {
        if ticket.len() != TICKET_LEN
            || !ticket.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(TicketError::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(ticket.as_bytes()).into();
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
        Ok(t.principal)
    }

    /// Drops expired tickets (the gateway may call this periodically; issuing also does).
    pub fn sweep(&self) {
        let now = self.clock.now();
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).tickets.retain(|_, t| t.expires > now);
    }

    /// Drops every ticket issued to the credential `id` (after it was revoked or rotated).
    pub fn revoke_principal(&self, id: &str) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).tickets.retain(|_, t| t.principal.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::named::ManualClock;
    use crate::verify::{CredentialKind, Scope};

    fn principal(id: &str) -> Principal {
        Principal {
            kind: CredentialKind::Named,
            id: id.to_owned(),
            name: "app".to_owned(),
            scope: Scope::Chat,
            source: ".security.yml:tokens".to_owned(),
            fingerprint: "01234567".to_owned(),
        }
    }

    fn store() -> (TicketStore, ManualClock) {
        let clock = ManualClock::new(Timestamp::from_unix(1_800_000_000));
        (TicketStore::with_clock(Arc::new(clock.clone())), clock)
    }

    const APP: Option<&str> = Some("https://app.example");

    #[test]
    fn works_once() {
        let (s, _) = store();
        let (t, _) = s.issue(&principal("abc"), APP).unwrap();
        assert_eq!(t.len(), TICKET_LEN);
        assert_eq!(s.redeem(t.expose(), APP), Ok(principal("abc")));
        assert_eq!(s.redeem(t.expose(), APP), Err(TicketError::Unknown));
        assert_eq!(AuthError::from(TicketError::Unknown), AuthError::Invalid);
    }

    #[test]
    fn only_from_its_origin_and_a_wrong_origin_burns_it() {
        let (s, _) = store();
        let (t, _) = s.issue(&principal("abc"), Some("https://App.example/")).unwrap();
        assert_eq!(s.redeem(t.expose(), Some("https://evil.example")), Err(TicketError::OriginMismatch));
        assert_eq!(
            s.redeem(t.expose(), APP),
            Err(TicketError::Unknown),
            "burned by the wrong-origin attempt"
        );
        let (t, _) = s.issue(&principal("abc"), APP).unwrap();
        assert_eq!(s.redeem(t.expose(), None), Err(TicketError::OriginMismatch));
        let (t, _) = s.issue(&principal("abc"), None).unwrap();
        assert_eq!(s.redeem(t.expose(), APP), Err(TicketError::OriginMismatch));
        let (t, _) = s.issue(&principal("abc"), Some("https://app.example/")).unwrap();
        assert!(s.redeem(t.expose(), APP).is_ok(), "case and trailing slash do not matter");
    }

    #[test]
    fn not_after_30_seconds() {
        let (s, clock) = store();
        let (t1, exp) = s.issue(&principal("abc"), APP).unwrap();
        let (t2, _) = s.issue(&principal("abc"), APP).unwrap();
        assert_eq!(exp, Timestamp::from_unix(1_800_000_030));
        clock.advance(Duration::from_secs(29));
        assert!(s.redeem(t1.expose(), APP).is_ok());
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.redeem(t2.expose(), APP), Err(TicketError::Expired));
        assert!(matches!(AuthError::from(TicketError::Expired), AuthError::Expired { .. }));
    }

    #[test]
    fn malformed_and_unknown() {
        let (s, _) = store();
        assert_eq!(s.redeem("short", APP), Err(TicketError::Malformed));
        assert_eq!(s.redeem(&"a".repeat(TICKET_LEN), APP), Err(TicketError::Unknown));
        assert_eq!(s.redeem(&"+".repeat(TICKET_LEN), APP), Err(TicketError::Malformed));
    }

    #[test]
    fn bounded_expired_first_then_oldest() {
        let (s, clock) = store();
        let (first, _) = s.issue(&principal("a"), APP).unwrap();
        for _ in 1..MAX_OUTSTANDING {
            s.issue(&principal("a"), APP).unwrap();
        }
        assert_eq!(s.outstanding(), MAX_OUTSTANDING);
        let (newest, _) = s.issue(&principal("a"), APP).unwrap();
        assert_eq!(s.outstanding(), MAX_OUTSTANDING);
        assert_eq!(s.redeem(first.expose(), APP), Err(TicketError::Unknown), "oldest evicted");
        assert!(s.redeem(newest.expose(), APP).is_ok());
        clock.advance(TICKET_TTL);
        s.issue(&principal("a"), APP).unwrap();
        s.issue(&principal("a"), APP).unwrap();
        s.sweep();
        assert_eq!(s.outstanding(), 2, "expired ones dropped");
    }

    #[test]
    fn revoking_a_credential_drops_its_tickets() {
        let (s, _) = store();
        let (t, _) = s.issue(&principal("gone"), APP).unwrap();
        let (k, _) = s.issue(&principal("kept"), APP).unwrap();
        s.revoke_principal("gone");
        assert_eq!(s.redeem(t.expose(), APP), Err(TicketError::Unknown));
        assert!(s.redeem(k.expose(), APP).is_ok());
    }
}
