//! The fixed credentials `token rotate` can rotate (`gateway.token`,
//! `channels.pico.token`) and the old digests of rotated values during their grace.

use std::fmt;
use std::sync::Arc;

use picoclaw_credentials::Credentials;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::error::TokenStoreError;
use super::record::Digest;
use super::time::{Clock, SystemClock, Timestamp};
use super::{ROTATED_SOURCE, tree};
use crate::verify::{AuthError, CredentialKind, NamedTokens, Principal, Scope};

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
            FixedCredential::Gateway => picoclaw_config::schema::GATEWAY_TOKEN.path,
            FixedCredential::Pico => picoclaw_config::schema::CHANNELS_PICO_TOKEN.path,
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

    pub(crate) fn from_key(key: &str) -> Option<FixedCredential> {
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

/// The most rotated-credential digests kept.
pub const MAX_ROTATED: usize = 16;

/// Old values of rotated fixed credentials (`gateway.token`, `channels.pico.token`), each
/// accepted until the end of its grace.
pub struct GraceDigests {
    entries: Vec<RotatedDigest>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for GraceDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraceDigests").field("entries", &self.entries.len()).finish_non_exhaustive()
    }
}

impl GraceDigests {
    /// From the `.security.yml` tree (`rotated:`), with the system clock.
    pub fn from_tree(tree: &Value) -> Result<GraceDigests, TokenStoreError> {
        Ok(GraceDigests { entries: tree::rotated_from_tree(tree)?, clock: Arc::new(SystemClock) })
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> GraceDigests {
        self.clock = clock;
        self
    }

    /// Drops the pico entries when the Pico channel is disabled (its token is then not
    /// accepted at all, old or new).
    pub fn retain_enabled(mut self, pico_enabled: bool) -> GraceDigests {
        self.entries.retain(|e| pico_enabled || e.credential != FixedCredential::Pico);
        self
    }

    /// The entries (all, including ended ones not yet pruned from the file).
    pub fn entries(&self) -> &[RotatedDigest] {
        &self.entries
    }

    /// Adds the old value of `credential`, accepted until `valid_until`.
    pub fn push(
        &mut self,
        credential: FixedCredential,
        old: &picoclaw_credentials::Secret,
        valid_until: Timestamp,
    ) {
        self.entries.push(RotatedDigest { credential, sha256: Digest::of(old), valid_until });
        let excess = self.entries.len().saturating_sub(MAX_ROTATED);
        self.entries.drain(..excess);
    }

    /// Removes every old value of `credential` (its grace ends now).
    pub fn clear(&mut self, credential: FixedCredential) {
        self.entries.retain(|e| e.credential != credential);
    }

    /// Writes `rotated:` into the tree, dropping ended entries.
    pub fn write_into(&self, tree: &mut Value) {
        tree::rotated_into(tree, &self.entries, self.clock.now());
    }

    /// Forgets old values equal to a credential in effect now (someone put an old value
    /// back by hand): the current value must not inherit the old one's deadline.
    pub fn forget_current(&mut self, current: &Credentials) {
        let now: Vec<[u8; 32]> =
            [current.gateway(), current.pico()].into_iter().flatten().map(|r| r.secret.digest()).collect();
        self.entries.retain(|e| !now.iter().any(|d| bool::from(d.ct_eq(&e.sha256.0))));
    }

    /// `Some(principal)` (kind Gateway or Pico) when `presented` is an old value whose
    /// grace lasts; `None` otherwise. After its grace an old value is simply not
    /// accepted (the verifier answers "invalid credential"): it is never reported as
    /// "rotated", in case the same value is in use again elsewhere.
    pub fn verify(&self, presented: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let now = self.clock.now();
        let mut live: Option<&RotatedDigest> = None;
        // No early exit: every entry is compared.
        for e in &self.entries {
            let hit = bool::from(e.sha256.0.ct_eq(&digest));
            if hit && e.valid_until > now && live.is_none() {
                live = Some(e);
            }
        }
        live.map(|e| Principal {
            kind: e.credential.kind(),
            id: e.credential.id().to_owned(),
            name: e.credential.id().to_owned(),
            scope: e.credential.scope(),
            source: ROTATED_SOURCE.to_owned(),
            fingerprint: e.sha256.fingerprint(),
            // Only a digest of the old value is kept: its strength is unknown.
            guessable: true,
        })
    }

    /// True while the old value of `credential` with this fingerprint is in grace.
    pub fn accepts(&self, credential: FixedCredential, fingerprint: &str) -> bool {
        let now = self.clock.now();
        self.entries.iter().any(|e| {
            e.credential == credential && e.valid_until > now && e.sha256.fingerprint() == fingerprint
        })
    }

    /// The next end of a grace, if any is in the future.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let now = self.clock.now();
        self.entries.iter().map(|e| e.valid_until).filter(|t| *t > now).min()
    }
}

impl NamedTokens for GraceDigests {
    fn verify(&self, presented: &str) -> Option<Result<Principal, AuthError>> {
        GraceDigests::verify(self, presented).map(Ok)
    }
}
