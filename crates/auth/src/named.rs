//! Named tokens and rotation grace: verification in O(1) of the number of tokens.
//!
//! - [`format`]: the `pcl_<id>_<secret>_<check>` format, checked offline;
//! - [`record`]: one hash-only record of `.security.yml` `tokens:`, its name and state;
//! - [`TokenSet`]: all the records of one file and the changes to them (create, revoke,
//!   rotate), validated; the `tokens:` and `rotated:` trees are read and written by a
//!   private `tree` module that names the key of any bad entry;
//! - [`FixedCredential`]: `gateway.token` and `channels.pico.token`, which rotate too;
//! - [`time`]: timestamps, the injectable clock and the `30d` duration syntax;
//! - [`TokenFile`]: locked read-change-write of those records;
//! - [`ops`]: the token operations (list, create, revoke, rotate) that `picoclaw token`
//!   and the admin API both call: typed requests, results and errors, one audit line;
//! - [`NamedTokenStore`]: id → record map; a presented token is parsed, looked up by its
//!   id, and its SHA-256 compared in constant time with the current digest and any old
//!   digest still in its rotation grace;
//! - [`GraceDigests`]: old values of rotated `gateway.token` / `channels.pico.token`,
//!   accepted until their grace ends;
//! - [`StoredCredentials`]: both together, as the [`NamedTokens`] the gateway's
//!   [`crate::Verifier`] consults.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use picoclaw_credentials::Credentials;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq};

mod error;
mod file;
mod fixed;
pub mod format;
pub mod ops;
pub mod record;
mod set;
pub mod time;
pub(crate) mod tree;

pub use error::TokenStoreError;
pub use file::{FixedRotation, SharedTokens, TokenFile};
pub use fixed::{FixedCredential, GraceDigests, MAX_ROTATED, RotatedDigest};
pub use format::{FormatError, PREFIX, TOKEN_LEN, TokenId};
pub use record::{Digest, MAX_NAME_LEN, PreviousSecret, TokenName, TokenRecord, TokenState, TokenSummary};
pub use set::{MAX_PREVIOUS, MAX_TOKENS, TokenSet};
pub use time::{Clock, DurationError, ManualClock, SystemClock, Timestamp, format_duration, parse_duration};

use crate::verify::{AuthError, CredentialKind, Lapse, NamedTokens, Principal};

/// Where named-token principals say they come from.
pub const NAMED_SOURCE: &str = ".security.yml:tokens";
/// Where principals of a rotated fixed credential (within grace) say they come from.
pub const ROTATED_SOURCE: &str = ".security.yml:rotated";
/// The most distinct tokens whose last use is remembered between two
/// [`NamedTokenStore::take_last_used`] calls (bounded like every other table).
const MAX_PENDING_LAST_USED: usize = 10_000;

struct Entry {
    record: TokenRecord,
    principal: Principal,
}

/// The named tokens a gateway accepts, indexed by public id.
pub struct NamedTokenStore {
    by_id: HashMap<TokenId, Entry>,
    last_used: Mutex<HashMap<TokenId, Timestamp>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for NamedTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedTokenStore").field("tokens", &self.by_id.len()).finish_non_exhaustive()
    }
}

impl NamedTokenStore {
    /// A store of `set`, using the system clock.
    pub fn new(set: &TokenSet) -> NamedTokenStore {
        NamedTokenStore::with_clock(set, Arc::new(SystemClock))
    }

    /// A store of `set` with an injected clock.
    pub fn with_clock(set: &TokenSet, clock: Arc<dyn Clock>) -> NamedTokenStore {
        let by_id = set
            .records()
            .iter()
            .map(|r| {
                let principal = Principal {
                    kind: CredentialKind::Named,
                    id: r.id.to_string(),
                    name: r.name.to_string(),
                    scope: r.scope,
                    source: NAMED_SOURCE.to_owned(),
                    fingerprint: r.fingerprint(),
                    guessable: false,
                };
                (r.id.clone(), Entry { record: r.clone(), principal })
            })
            .collect();
        NamedTokenStore { by_id, last_used: Mutex::new(HashMap::new()), clock }
    }

    /// Number of records (any state).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no token is stored.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The verdict for a presented token of the `pcl_` format.
    fn check(&self, presented: &str) -> Result<Principal, AuthError> {
        let id = format::parse(presented).map_err(|e| AuthError::Malformed(e.reason()))?;
        let Some(entry) = self.by_id.get(&id) else {
            // Same work as a found token, so timing does not tell whether the id exists.
            std::hint::black_box(Sha256::digest(presented.as_bytes()));
            return Err(AuthError::Invalid);
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let now = self.clock.now();
        let record = &entry.record;
        let current: Choice = record.sha256.0.ct_eq(&digest);
        let mut live = Choice::from(0);
        let mut ended = Choice::from(0);
        for p in &record.previous {
            let hit = p.sha256.0.ct_eq(&digest);
            if p.valid_until > now {
                live |= hit;
            } else {
                ended |= hit;
            }
        }
        let (current, live, ended) = (bool::from(current), bool::from(live), bool::from(ended));
        if !(current || live || ended) {
            return Err(AuthError::Invalid);
        }
        // The secret matched: from here on it is safe to say what is wrong with it.
        let expired = |state| AuthError::Expired { id: record.id.to_string(), state };
        match record.state(now) {
            TokenState::Revoked => return Err(expired(Lapse::Revoked)),
            TokenState::Expired => return Err(expired(Lapse::Expired)),
            TokenState::Active => {}
        }
        if !current && !live {
            return Err(expired(Lapse::Rotated));
        }
        self.note_use(&record.id, now);
        let mut principal = entry.principal.clone();
        if !current {
            principal.fingerprint = Digest(digest).fingerprint();
        }
        Ok(principal)
    }

    fn note_use(&self, id: &TokenId, now: Timestamp) {
        let mut pending = self.last_used.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() < MAX_PENDING_LAST_USED || pending.contains_key(id) {
            pending.insert(id.clone(), now);
        }
    }

    /// Last-use times recorded since the previous call (drained). The gateway persists
    /// them with [`TokenFile::persist_last_used`] at most once a minute.
    pub fn take_last_used(&self) -> Vec<(TokenId, Timestamp)> {
        let mut pending = self.last_used.lock().unwrap_or_else(PoisonError::into_inner);
        pending.drain().collect()
    }

    /// Whether a connection authenticated as `principal` (a named-token principal) may stay
    /// open now: its record exists, is active, and the secret it used (by fingerprint) is
    /// the current one or still in grace. Used after a reload and when a deadline passes.
    pub fn still_valid(&self, principal: &Principal) -> Result<(), AuthError> {
        let Some(entry) = TokenId::parse(&principal.id).ok().and_then(|id| self.by_id.get(&id)) else {
            return Err(AuthError::Expired { id: principal.id.clone(), state: Lapse::Revoked });
        };
        let now = self.clock.now();
        let r = &entry.record;
        let expired = |state| AuthError::Expired { id: principal.id.clone(), state };
        match r.state(now) {
            TokenState::Revoked => return Err(expired(Lapse::Revoked)),
            TokenState::Expired => return Err(expired(Lapse::Expired)),
            TokenState::Active => {}
        }
        let current = r.fingerprint() == principal.fingerprint;
        let in_grace =
            r.previous.iter().any(|p| p.valid_until > now && p.sha256.fingerprint() == principal.fingerprint);
        if current || in_grace { Ok(()) } else { Err(expired(Lapse::Rotated)) }
    }

    /// The next instant at which some accepted secret stops working (an expiry or the end
    /// of a grace), so the gateway can re-check open connections then.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let now = self.clock.now();
        self.by_id
            .values()
            .filter(|e| e.record.revoked.is_none())
            .flat_map(|e| e.record.expires.into_iter().chain(e.record.previous.iter().map(|p| p.valid_until)))
            .filter(|t| *t > now)
            .min()
    }
}

impl NamedTokens for NamedTokenStore {
    fn verify(&self, presented: &str) -> Option<Result<Principal, AuthError>> {
        presented.starts_with(PREFIX).then(|| self.check(presented))
    }
}

/// Named tokens and rotation grace digests from one `.security.yml`, as one
/// [`NamedTokens`] for [`crate::Verifier::with_named`]: `pcl_` tokens go to the named
/// store; anything else is checked against old rotated values (and, when none matches,
/// left to the verifier's fixed credentials).
#[derive(Debug)]
pub struct StoredCredentials {
    /// The named tokens.
    pub named: NamedTokenStore,
    /// Old values of rotated fixed credentials.
    pub grace: GraceDigests,
}

impl StoredCredentials {
    /// Loads both from the `.security.yml` tree (e.g. `Layers::security_tree()`, or an
    /// empty object when the file is missing). `current` are the credentials in effect
    /// (old values equal to one of them are dropped). Errors name the key; nothing is
    /// half-loaded.
    pub fn from_tree(
        tree: &Value,
        current: &Credentials,
        pico_enabled: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<StoredCredentials, TokenStoreError> {
        let mut grace = GraceDigests::from_tree(tree)?.with_clock(clock.clone()).retain_enabled(pico_enabled);
        grace.forget_current(current);
        Ok(StoredCredentials {
            named: NamedTokenStore::with_clock(&TokenSet::from_tree(tree)?, clock),
            grace,
        })
    }

    /// Whether a connection authenticated as `principal` may stay open, for the kinds this
    /// type knows: `None` for principals it does not own (runtime, tickets, and fixed
    /// credentials authenticated with their *current* value — the verifier's fixed set
    /// decides those); `Some(verdict)` for named tokens and old rotated values.
    pub fn still_valid(&self, principal: &Principal) -> Option<Result<(), AuthError>> {
        match principal.kind {
            CredentialKind::Named => Some(self.named.still_valid(principal)),
            CredentialKind::Gateway | CredentialKind::Pico if principal.source == ROTATED_SOURCE => {
                let cred = FixedCredential::from_name(&principal.id)?;
                Some(if self.grace.accepts(cred, &principal.fingerprint) {
                    Ok(())
                } else {
                    Err(AuthError::Expired { id: principal.id.clone(), state: Lapse::Rotated })
                })
            }
            _ => None,
        }
    }

    /// The earliest future deadline of either part.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        [self.named.next_deadline(), self.grace.next_deadline()].into_iter().flatten().min()
    }
}

impl NamedTokens for StoredCredentials {
    fn verify(&self, presented: &str) -> Option<Result<Principal, AuthError>> {
        if presented.starts_with(PREFIX) {
            return Some(self.named.check(presented));
        }
        self.grace.verify(presented).map(Ok)
    }
}

#[cfg(test)]
mod tests;
