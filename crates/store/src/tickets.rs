//! WebSocket tickets shared by several gateway replicas: with `storage.url`, a ticket
//! issued by one replica (`POST /auth/ticket`) opens a socket on any of them, once — a
//! browser behind a load balancer without affinity gets its ticket from one replica and
//! its socket from another.
//!
//! - A row per outstanding ticket in `picoclaw_tickets`: the SHA-256 of the value (hex;
//!   never the value), the parent credential's principal (names and fingerprint, no
//!   secret), the `Origin` it is bound to and its expiry.
//! - [`PgTickets::take`] deletes the row and answers it (`DELETE … RETURNING`): of two
//!   replicas presented the same ticket at once, exactly one gets it. The replica that
//!   gets it redeems it locally (expiry, origin, and the parent re-checked against its own
//!   — shared — credentials); the other finds nothing and refuses.
//! - Bounded: every insert deletes expired rows, and past [`MAX_SHARED_TICKETS`] the
//!   oldest go first, like the per-replica table.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use picoclaw_auth::SharedTicket;
use picoclaw_auth::named::Timestamp;
use tokio_postgres::NoTls;

use crate::StoreError;
use crate::postgres::{PgTarget, db, now_ms};

/// The most tickets outstanding in the database, all replicas together.
pub const MAX_SHARED_TICKETS: i64 = 8192;
/// Connections for tickets, per replica.
const POOL: usize = 2;
/// Bound of every wait (connecting, taking a connection).
const TIMEOUT: Duration = Duration::from_secs(5);

/// The tickets in PostgreSQL.
pub struct PgTickets {
    pool: Pool,
}

impl std::fmt::Debug for PgTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTickets").finish_non_exhaustive()
    }
}

fn pool_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("PostgreSQL: {e}"))
}

impl PgTickets {
    /// Tickets in the database of `target` (connections are made when first needed; the
    /// gateway's store has applied the migrations at start).
    pub fn new(target: &PgTarget) -> Result<PgTickets, StoreError> {
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
        Ok(PgTickets { pool })
    }

    /// Stores a just-issued ticket.
    pub async fn put(&self, ticket: &SharedTicket) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let now = i64::try_from(Timestamp::now().unix()).unwrap_or(i64::MAX);
        client.execute("DELETE FROM picoclaw_tickets WHERE expires_unix <= $1", &[&now]).await.map_err(db)?;
        client
            .execute(
                "DELETE FROM picoclaw_tickets WHERE digest IN (SELECT digest FROM picoclaw_tickets \
                 ORDER BY issued_ms DESC OFFSET $1)",
                &[&(MAX_SHARED_TICKETS - 1)],
            )
            .await
            .map_err(db)?;
        let parent = serde_json::to_string(&ticket.parent).map_err(|e| StoreError::Storage(e.to_string()))?;
        client
            .execute(
                "INSERT INTO picoclaw_tickets (digest, parent, origin, expires_unix, issued_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING",
                &[
                    &hex::encode(ticket.digest),
                    &parent,
                    &ticket.origin,
                    &i64::try_from(ticket.expires.unix()).unwrap_or(i64::MAX),
                    &now_ms(),
                ],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Takes (deletes and answers) the ticket with `digest`: `None` when no replica holds
    /// it any more (used, expired and swept, or never issued).
    pub async fn take(&self, digest: &[u8; 32]) -> Result<Option<SharedTicket>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                "DELETE FROM picoclaw_tickets WHERE digest = $1 RETURNING parent, origin, expires_unix",
                &[&hex::encode(digest)],
            )
            .await
            .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let parent = serde_json::from_str(row.get::<_, &str>(0))
            .map_err(|e| StoreError::Storage(format!("a row of picoclaw_tickets is not a principal: {e}")))?;
        Ok(Some(SharedTicket {
            digest: *digest,
            parent,
            origin: row.get(1),
            expires: Timestamp::from_unix(u64::try_from(row.get::<_, i64>(2)).unwrap_or(0)),
        }))
    }
}
