//! One-time secrets shared by several gateway replicas (`picoclaw_auth::one_time`): with
//! `storage.url`, a WebSocket ticket or a pairing code issued by one replica works on any
//! of them, once — a browser or phone behind a load balancer without affinity gets it from
//! one replica and uses it on another.
//!
//! - A row per outstanding secret in `picoclaw_one_time`: its kind, the SHA-256 of its
//!   value (hex; never the value), what it grants as JSON (names and fingerprints, no
//!   secret) and its expiry.
//! - [`PgOneTime::take`] deletes the row and answers it (`DELETE … RETURNING`): of two
//!   replicas presented the same secret at once, exactly one gets it and redeems it with
//!   every local check; the other finds nothing and refuses.
//! - Bounded: every insert deletes expired rows, and past [`MAX_SHARED_PER_KIND`] of one
//!   kind the oldest go first, like the per-replica tables.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use picoclaw_auth::named::Timestamp;
use tokio_postgres::NoTls;

use crate::StoreError;
use crate::postgres::{PgTarget, db, now_ms};

/// The most secrets of one kind outstanding in the database, all replicas together.
pub const MAX_SHARED_PER_KIND: i64 = 8192;
/// Connections for one-time secrets, per replica.
const POOL: usize = 2;
/// Bound of every wait (connecting, taking a connection).
const TIMEOUT: Duration = Duration::from_secs(5);

/// The one-time secrets in PostgreSQL.
pub struct PgOneTime {
    pool: Pool,
}

impl std::fmt::Debug for PgOneTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOneTime").finish_non_exhaustive()
    }
}

fn pool_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("PostgreSQL: {e}"))
}

fn unix(t: Timestamp) -> i64 {
    i64::try_from(t.unix()).unwrap_or(i64::MAX)
}

impl PgOneTime {
    /// The table in the database of `target` (connections are made when first needed; the
    /// gateway's store applied the migrations at start).
    pub fn new(target: &PgTarget) -> Result<PgOneTime, StoreError> {
        let manager = Manager::from_config(
            target.config(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .build()
            .map_err(pool_error)?;
        Ok(PgOneTime { pool })
    }

    /// Stores a just-issued secret of `kind`.
    pub async fn put(
        &self,
        kind: &str,
        digest: &[u8; 32],
        payload: &str,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute("DELETE FROM picoclaw_one_time WHERE expires_unix <= $1", &[&unix(Timestamp::now())])
            .await
            .map_err(db)?;
        client
            .execute(
                "DELETE FROM picoclaw_one_time WHERE kind = $1 AND digest IN (SELECT digest FROM picoclaw_one_time \
                 WHERE kind = $1 ORDER BY issued_ms DESC OFFSET $2)",
                &[&kind, &(MAX_SHARED_PER_KIND - 1)],
            )
            .await
            .map_err(db)?;
        client
            .execute(
                "INSERT INTO picoclaw_one_time (kind, digest, payload, expires_unix, issued_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, digest) DO NOTHING",
                &[&kind, &hex::encode(digest), &payload, &unix(expires), &now_ms()],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Takes (deletes and answers) the secret of `kind` with `digest`, with its expiry:
    /// `None` when no replica holds it any more (used, expired and swept, never issued).
    pub async fn take(
        &self,
        kind: &str,
        digest: &[u8; 32],
    ) -> Result<Option<(String, Timestamp)>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                "DELETE FROM picoclaw_one_time WHERE kind = $1 AND digest = $2 RETURNING payload, expires_unix",
                &[&kind, &hex::encode(digest)],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| (r.get(0), Timestamp::from_unix(u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))))
    }
}
