//! One-time secrets several gateway replicas share: WebSocket tickets and pairing codes.
//!
//! Each is held by the replica that issued it in a bounded table keyed by the SHA-256 of
//! its value ([`crate::TicketStore`], [`crate::pairing::PairingStore`]). With replicas
//! (`storage.url`) it is also written to the database, and a presentation on any replica
//! first *takes* it from there (an atomic delete), then redeems it locally with every
//! usual check — expiry, origin, the parent credential still accepted. Whoever takes the
//! row holds the only copy; a replica that finds none forgets its own, so each secret
//! works once across all of them. [`OneTimeTable`] is what a table offers for that.

use crate::named::Timestamp;

/// A table of one-time secrets that can be shared between replicas.
pub trait OneTimeTable {
    /// Its name in the shared table (`ticket`, `pairing`).
    const KIND: &'static str;

    /// The digest a presented value is kept under; `None` when it is not shaped like one.
    fn digest_of(presented: &str) -> Option<[u8; 32]>;

    /// What outstanding `digest` grants, as JSON without any secret, and its expiry.
    fn export(&self, digest: &[u8; 32]) -> Option<(String, Timestamp)>;

    /// Holds an entry taken from the shared table (replacing a local copy); `false` when
    /// its payload is not valid, and then nothing is held.
    fn adopt(&self, digest: [u8; 32], payload: &str, expires: Timestamp) -> bool;

    /// Forgets `digest` (used elsewhere, or not stored where the others see it).
    fn forget(&self, digest: &[u8; 32]);

    /// The kind of credential outstanding `digest` was issued for (`None`: not held here).
    fn parent_kind(&self, digest: &[u8; 32]) -> Option<crate::CredentialKind>;
}
