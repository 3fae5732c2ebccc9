//! One-time secrets across replicas (`storage.url`, `picoclaw_auth::one_time`): a ticket or
//! pairing code is written to PostgreSQL right after it is issued ([`share`]), and taken
//! from there right before a redemption ([`take`]), so it works once on any replica.
//! Without `storage.url` both do nothing; secrets of a replica's own runtime token are
//! never shared (see [`share`]).

use picoclaw_auth::{CredentialKind, OneTimeTable, Principal};
use picoclaw_wire::{ApiError, Code};

use crate::state::Shared;

/// Makes the just-issued secret `digest` of `table`, asked for by `parent`, redeemable on
/// the other replicas. When that fails it is forgotten here too — a secret that works on
/// one replica only would fail at random behind a load balancer — and the caller answers
/// 503. A secret of this replica's runtime token stays here: no other replica can check
/// that parent (it is this process's own), and taking it elsewhere would only burn it.
pub(crate) async fn share<T: OneTimeTable>(
    shared: &Shared,
    table: &T,
    digest: &[u8; 32],
    parent: &Principal,
) -> Result<(), ApiError> {
    let Some(pg) = shared.shared_one_time.get() else { return Ok(()) };
    if parent.kind == CredentialKind::Runtime {
        return Ok(());
    }
    let stored = match table.export(digest) {
        Some((payload, expires)) => {
            pg.put(T::KIND, digest, &payload, expires).await.map_err(|e| e.to_string())
        }
        None => Err("it was dropped at once".to_owned()),
    };
    stored.map_err(|reason| {
        table.forget(digest);
        tracing::warn!(kind = T::KIND, "cannot share a one-time secret with the other replicas: {reason}");
        ApiError::new(
            Code::SharedStateUnavailable,
            format!(
                "the {} could not be stored in PostgreSQL (storage.url) for the other replicas; retry",
                T::KIND
            ),
        )
    })
}

/// Before `presented` is redeemed from `table`: takes it from the shared table. The replica
/// that takes the row holds the only copy; finding none (used elsewhere, or expired) or a
/// database that does not answer leaves none here either, so the redemption refuses it —
/// except for a secret of this replica's runtime token, which was never shared.
pub(crate) async fn take<T: OneTimeTable>(shared: &Shared, table: &T, presented: &str) {
    let Some(pg) = shared.shared_one_time.get() else { return };
    let Some(digest) = T::digest_of(presented) else { return };
    match pg.take(T::KIND, &digest).await {
        Ok(Some((payload, expires))) => {
            if !table.adopt(digest, &payload, expires) {
                tracing::warn!(
                    kind = T::KIND,
                    "a shared one-time secret has an invalid payload; refusing it"
                );
                table.forget(&digest);
            }
        }
        // Never shared (see `share`): the local copy is the only one.
        Ok(None) | Err(_) if table.parent_kind(&digest) == Some(CredentialKind::Runtime) => {}
        Ok(None) => table.forget(&digest),
        Err(e) => {
            tracing::warn!(kind = T::KIND, "cannot take a shared one-time secret (refusing it): {e}");
            table.forget(&digest);
        }
    }
}
