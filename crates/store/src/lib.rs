//! Chat history and session ownership.
//!
//! - [`Store`]: the narrow, async interface the engine and the gateway use: claim a session
//!   (its owner is written durably at the first claim and decides who may use it),
//!   record a finished turn (durable before the call returns), read history, list and
//!   delete sessions. Nothing SQLite-specific crosses it, so a server database can
//!   implement it for several gateway replicas.
//! - [`SqliteStore`]: the embedded implementation — one SQLite database in WAL mode
//!   (`sessions/sessions.db`), one writer thread that commits every pending write in one
//!   transaction with one sync (group commit) and then answers every waiter.
//! - [`PgStore`]: the server implementation for several gateway replicas — PostgreSQL
//!   (`storage.url`), a small pool, versioned migrations under an advisory lock.
//! - [`token_records`]: where the named tokens are — `.security.yml`, or with
//!   `storage.url` one row of PostgreSQL shared by every replica ([`PgTokens`]), changes
//!   announced to all of them ([`watch_tokens`]).
//! - [`PgOneTime`]: with `storage.url`, tickets and pairing codes any replica redeems once.
//! - [`import_jsonl`](sqlite::SqliteStore::open): the first open imports the
//!   `sessions/*.jsonl` files of older picoclaw versions, once, atomically.

use std::future::Future;
use std::pin::Pin;

mod bus;
mod jsonl;
mod one_time;
mod postgres;
mod sqlite;
mod tokens;

pub use bus::{Envelope, PgBus, Relayed};
pub use one_time::{MAX_SHARED_PER_KIND, PgOneTime};
pub use postgres::{MIGRATION_LOCK, MIGRATIONS, POOL_SIZE, PgStore, PgTarget};
pub use sqlite::{SESSION_ROW_BYTES, SqliteStore, StoreOptions};
pub use tokens::{PgTokens, TOKENS_CHANNEL, TokenFeed, token_records, watch_tokens};

/// The PostgreSQL database of `storage.url` with its password, `None` for SQLite.
pub fn storage_target(
    settings: &picoclaw_config::Settings,
    creds: &picoclaw_credentials::Credentials,
) -> Option<PgTarget> {
    let url = settings.storage.url.as_ref()?;
    Some(PgTarget {
        host: url.host.clone(),
        port: url.port,
        user: url.user.clone(),
        database: url.database.clone(),
        password: creds.storage_password().map(|p| p.secret.expose().as_bytes().to_vec()),
    })
}

/// A future the store returns.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person chatting.
    User,
    /// The agent.
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    /// The protocol-2 `seq` of the frame that carried it: for a user message, the
    /// `typing.start` of the turn that answered it; for an answer, its `message.create`.
    pub seq: u64,
    /// Who said it.
    pub role: Role,
    /// The text.
    pub content: String,
    /// The answer's `message_id` (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Unix milliseconds.
    pub ts_ms: u64,
}

/// A finished turn to record.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    /// The session.
    pub session: String,
    /// The user's text and its `seq`.
    pub user: (u64, String),
    /// The answer's `seq`, `message_id` and text (empty for an answer that failed before
    /// its first word).
    pub answer: (u64, String, String),
    /// Unix milliseconds.
    pub ts_ms: u64,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The session's owner (the caller when it was new).
    pub owner: String,
    /// The highest `seq` stored for the session (0 for a new one), so sequence numbers
    /// stay increasing across restarts.
    pub last_seq: u64,
}

/// A session as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// Its id.
    pub id: String,
    /// Its owner (principal id).
    pub owner: String,
    /// Unix milliseconds of the first claim.
    pub created_ms: u64,
    /// Unix milliseconds of the last turn (or the claim).
    pub last_ms: u64,
    /// Messages stored.
    pub messages: u64,
    /// Bytes of message text stored.
    pub bytes: u64,
}

/// Why the store could not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The history is at its total size bound (`storage.max_total_bytes`): the turn was not
    /// recorded, and should not be answered.
    #[error(
        "session history is full ({used} of {limit} bytes, storage.max_total_bytes): delete old sessions (`picoclaw sessions delete`) or raise the limit"
    )]
    Full {
        /// Bytes stored.
        used: u64,
        /// The bound.
        limit: u64,
    },
    /// The database could not be read or written (the detail is logged; never a message
    /// text).
    #[error("session storage failed: {0}")]
    Storage(String),
    /// The store is shut down.
    #[error("session storage is closed")]
    Closed,
}

/// The history of every session, and who owns each.
pub trait Store: Send + Sync + 'static {
    /// Records `principal` as the owner of `session` when it has none — durably, before the
    /// returned future completes — and answers the owner and the last stored `seq`.
    fn claim(&self, session: String, principal: String) -> StoreFuture<Claim>;

    /// The owner of `session` when it is known without touching the disk (a cache of
    /// durable owners); `None` means "ask [`claim`](Store::claim)".
    fn cached_owner(&self, session: &str) -> Option<Claim>;

    /// Records a finished turn; durable when the future completes. Refused with
    /// [`StoreError::Full`] when over the total bound.
    fn record_turn(&self, turn: TurnRecord) -> StoreFuture<()>;

    /// Checks, before any work is done for a turn, that one could be recorded now.
    fn check_room(&self, session: &str) -> Result<(), StoreError>;

    /// The most recent messages of `session`, oldest first: at most `max_messages`, and at
    /// most `max_bytes` of text (the newest message always, even when larger).
    fn history(&self, session: String, max_messages: usize, max_bytes: usize) -> StoreFuture<Vec<Message>>;

    /// The sessions of `owner` (all sessions for `None`), most recent first, at most `limit`.
    fn sessions(&self, owner: Option<String>, limit: usize) -> StoreFuture<Vec<SessionInfo>>;

    /// One session's summary.
    fn session(&self, session: String) -> StoreFuture<Option<SessionInfo>>;

    /// Messages of `session` with `seq > after_seq`, oldest first, at most `limit`.
    fn messages(&self, session: String, after_seq: u64, limit: usize) -> StoreFuture<Vec<Message>>;

    /// Deletes a session and its history; `false` when there was none.
    fn delete(&self, session: String) -> StoreFuture<bool>;
}
