//! The server store: PostgreSQL, shared by several gateway replicas (`storage.url`).
//!
//! - Connections come from a small pool (`deadpool-postgres`, at most [`POOL_SIZE`]); every
//!   wait — connecting, taking a connection, a statement — is bounded.
//! - The schema is a list of versioned migrations, applied at open under a PostgreSQL
//!   advisory lock ([`MIGRATION_LOCK`]), each in its own transaction with its row in
//!   `picoclaw_migrations`: replicas starting together apply each version once; a database
//!   newer than this binary is refused.
//! - Every write is one transaction, committed (durable, `synchronous_commit` as the server
//!   is configured) before its future completes. Turns of one session are serialized by the
//!   session row's lock, so `seq` only grows whichever replica writes.
//! - `storage.max_total_bytes` counts, as in SQLite, every session's text plus
//!   [`SESSION_ROW_BYTES`] per session — in one counter row (`picoclaw_usage`) updated in the
//!   same transaction with a check, so replicas together never pass the bound.
//! - There is no owner cache: another replica may delete a session and a third principal
//!   claim it, so every claim asks the database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row};

use crate::sqlite::SESSION_ROW_BYTES;
use crate::{Claim, Message, Role, SessionInfo, Store, StoreError, StoreFuture, StoreOptions, TurnRecord};

/// Connections one replica holds at most.
pub const POOL_SIZE: usize = 8;

/// The advisory lock key migrations run under ("picoclaw" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x7069_636f_636c_6177;

/// Limit of a connection attempt, of the wait for a pooled connection, and of one statement.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, one entry per version, applied in order (never edit an applied one: add a
/// version).
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE picoclaw_sessions (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        last_ms BIGINT NOT NULL,
        last_seq BIGINT NOT NULL DEFAULT 0,
        messages BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX picoclaw_sessions_by_owner ON picoclaw_sessions (owner, last_ms);
    CREATE TABLE picoclaw_messages (
        session TEXT NOT NULL REFERENCES picoclaw_sessions(id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        message_id TEXT,
        ts_ms BIGINT NOT NULL,
        PRIMARY KEY (session, seq)
    );
    CREATE TABLE picoclaw_usage (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        used BIGINT NOT NULL
    );
    INSERT INTO picoclaw_usage (id, used) VALUES (1, 0);",
    ),
    (
        2,
        "CREATE TABLE picoclaw_frames (
        id BIGSERIAL PRIMARY KEY,
        session TEXT NOT NULL,
        seq BIGINT NOT NULL,
        v2_only BOOLEAN NOT NULL,
        update_of TEXT,
        body TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE INDEX picoclaw_frames_by_age ON picoclaw_frames (created_ms);",
    ),
    (
        3,
        "CREATE TABLE picoclaw_tokens (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL,
        tokens TEXT NOT NULL,
        updated_ms BIGINT NOT NULL
    );",
    ),
    (
        4,
        "CREATE TABLE picoclaw_one_time (
        kind TEXT NOT NULL,
        digest TEXT NOT NULL,
        payload TEXT NOT NULL,
        expires_unix BIGINT NOT NULL,
        issued_ms BIGINT NOT NULL,
        PRIMARY KEY (kind, digest)
    );
    CREATE INDEX picoclaw_one_time_by_expiry ON picoclaw_one_time (expires_unix);",
    ),
];

/// Where the database is (from `storage.url`) and the password (from the credentials).
#[derive(Clone)]
pub struct PgTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Database.
    pub database: String,
    /// The password (`storage.password`), when the server asks for one.
    pub password: Option<Vec<u8>>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "postgres://{}@{}:{}/{}", self.user, self.host, self.port, self.database)
    }
}

impl PgTarget {
    pub(crate) fn config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name("picoclaw")
            .connect_timeout(TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            // A peer that vanished (no FIN: a dead node) is noticed in about a minute.
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .options(format!("-c statement_timeout={}", TIMEOUT.as_millis()));
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }
}

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PgStore {
    pool: Pool,
    used: Arc<AtomicU64>,
    options: StoreOptions,
    target: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("target", &self.target).finish_non_exhaustive()
    }
}

/// A PostgreSQL error as a store error: its own text (never a message's content: the
/// statements carry texts only as parameters, which the server does not echo).
fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => StoreError::Storage(format!("PostgreSQL: {} ({})", d.message(), d.code().code())),
        None => StoreError::Storage(format!("PostgreSQL: {e}")),
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Applies the missing migrations under the advisory lock; answers the versions applied by
/// this call.
async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db)?;
    let outcome = async {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS picoclaw_migrations (
                    version INTEGER PRIMARY KEY,
                    applied_ms BIGINT NOT NULL
                )",
            )
            .await
            .map_err(db)?;
        let done: Vec<i32> = client
            .query("SELECT version FROM picoclaw_migrations", &[])
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if let Some(newer) = done.iter().copied().filter(|v| *v > known).max() {
            return Err(StoreError::Storage(format!(
                "the database has schema version {newer}, newer than this picoclaw ({known}); upgrade picoclaw"
            )));
        }
        let mut applied = Vec::new();
        for (version, sql) in MIGRATIONS {
            if done.contains(version) {
                continue;
            }
            let tx = client.transaction().await.map_err(db)?;
            tx.batch_execute(sql).await.map_err(db)?;
            tx.execute(
                "INSERT INTO picoclaw_migrations (version, applied_ms) VALUES ($1, $2)",
                &[version, &now_ms()],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            tracing::info!(version, "storage: applied PostgreSQL migration");
            applied.push(*version);
        }
        Ok(applied)
    }
    .await;
    // The lock is the session's: it goes with the connection anyway; unlock to be tidy.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    outcome
}

/// Longest a short connection's whole work may take (connect, schema check, statements).
const WORK_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies the migrations only when the database is older than this picoclaw. A newer
/// schema is fine here (migrations only add): during a rolling upgrade, the replicas still
/// on the old version keep reading and changing tokens after a new one migrated. Only
/// [`PgStore::open`] refuses a newer schema, at start.
async fn ensure_schema(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    let current: Option<i32> =
        match client.query_one("SELECT max(version) FROM picoclaw_migrations", &[]).await {
            Ok(row) => row.get(0),
            // No migrations table yet: an empty database.
            Err(_) => None,
        };
    if current.unwrap_or(0) >= known {
        return Ok(());
    }
    migrate(client).await.map(drop)
}

/// Connects once, migrates (refusing a schema newer than this picoclaw) and reads the
/// usage counter.
fn prepare(target: &PgTarget) -> Result<u64, StoreError> {
    with_connection(target, "opening the store", |mut client| async move {
        migrate(&mut client).await?;
        let row = client.query_one("SELECT used FROM picoclaw_usage WHERE id = 1", &[]).await.map_err(db)?;
        Ok(uint(row.get(0)))
    })
}

/// Runs `work` on one new connection to `target`, after migrating a database older than
/// this picoclaw ([`ensure_schema`]), on a thread of its own with its own runtime — so a
/// synchronous caller, inside a runtime or not, can use the database. Connecting is
/// bounded by [`TIMEOUT`], every statement by the server's `statement_timeout`, the whole
/// by [`WORK_TIMEOUT`]. `what` names the work in errors.
pub(crate) fn with_connection<T, F, Fut>(target: &PgTarget, what: &str, work: F) -> Result<T, StoreError>
where
    T: Send,
    F: FnOnce(tokio_postgres::Client) -> Fut + Send,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let config = target.config();
    let run = move || -> Result<T, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(storage)?;
        rt.block_on(async move {
            let (mut client, conn) = tokio::time::timeout(TIMEOUT, config.connect(NoTls))
                .await
                .map_err(|_| StoreError::Storage("PostgreSQL: connecting timed out".into()))?
                .map_err(db)?;
            let driver = tokio::spawn(conn);
            // Bounded as a whole: a server that stops answering mid-way (statement_timeout
            // is the server's own clock) cannot hold a reload or a CLI command forever.
            let result = tokio::time::timeout(WORK_TIMEOUT, async move {
                ensure_schema(&mut client).await?;
                work(client).await
            })
            .await
            .unwrap_or_else(|_| Err(StoreError::Storage(format!("PostgreSQL: {what} timed out"))));
            // The client is gone: the connection says goodbye and its task ends.
            let _ = tokio::time::timeout(Duration::from_secs(1), driver).await;
            result
        })
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("picoclaw-pg".into())
            .spawn_scoped(scope, run)
            .map_err(storage)?
            .join()
            .map_err(|_| StoreError::Storage(format!("PostgreSQL: {what} panicked")))?
    })
}

/// Pause before a listening connection is reopened.
pub(crate) const RETRY: Duration = Duration::from_secs(1);

/// A connection that `LISTEN`s on one channel: its notifications' payloads come out of
/// `notes` (bounded; `None` once the connection failed).
pub(crate) struct Listening {
    pub client: tokio_postgres::Client,
    pub notes: tokio::sync::mpsc::Receiver<String>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connects and listens on `channel`; `None` (logged, naming `what`) when that fails.
pub(crate) async fn listen(target: &PgTarget, channel: &str, what: &str) -> Option<Listening> {
    use futures_util::StreamExt;
    let (client, mut conn) = match target.config().connect(NoTls).await {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!("{what}: cannot listen: {e}");
            return None;
        }
    };
    let (notes_tx, notes) = tokio::sync::mpsc::channel::<String>(crate::bus::QUEUE);
    let label = what.to_owned();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if notes_tx.try_send(n.payload().to_owned()).is_err() {
                        tracing::warn!("{label}: the receive queue is full; a notification was dropped");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("{label}: listening connection failed: {e}");
                    break;
                }
            }
        }
    });
    let listening = Listening { client, notes, driver };
    // Bounded like the connect: a half-open connection must not hold the listener up.
    match tokio::time::timeout(TIMEOUT, listening.client.batch_execute(&format!("LISTEN {channel}"))).await {
        Ok(Ok(())) => Some(listening),
        Ok(Err(e)) => {
            tracing::warn!("{what}: LISTEN failed: {e}");
            None
        }
        Err(_) => {
            tracing::warn!("{what}: LISTEN got no answer within {} s", TIMEOUT.as_secs());
            None
        }
    }
}

impl PgStore {
    /// Connects to `target`, applies the migrations (under the advisory lock) and builds the
    /// pool. Fails with the server's reason (never the password).
    pub fn open(target: &PgTarget, options: StoreOptions) -> Result<Arc<PgStore>, StoreError> {
        let used = prepare(target)?;
        let manager = Manager::from_config(
            target.config(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .build()
            .map_err(storage)?;
        Ok(Arc::new(PgStore {
            pool,
            used: Arc::new(AtomicU64::new(used)),
            options,
            target: format!("{target:?}"),
        }))
    }

    /// The store of `target` in this process: opened at the first call, the same pool after
    /// (whatever rebuilds its engine). Bounds and password of a later call are ignored while
    /// the first lives: they change at a restart.
    pub fn shared(target: &PgTarget, options: StoreOptions) -> Result<Arc<PgStore>, StoreError> {
        static OPEN: Mutex<Vec<(String, std::sync::Weak<PgStore>)>> = Mutex::new(Vec::new());
        let key = format!("{target:?}");
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(store) = open.iter().find(|(k, _)| *k == key).and_then(|(_, w)| w.upgrade()) {
            return Ok(store);
        }
        let store = PgStore::open(target, options)?;
        open.push((key, Arc::downgrade(&store)));
        Ok(store)
    }

    fn run<T, F>(&self, f: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut deadpool_postgres::Client,
                Ctx,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'c>,
            > + Send
            + 'static,
    {
        let pool = self.pool.clone();
        let ctx = Ctx { used: self.used.clone(), options: self.options };
        Box::pin(async move {
            let mut client = pool.get().await.map_err(|e| StoreError::Storage(format!("PostgreSQL: {e}")))?;
            f(&mut client, ctx).await
        })
    }
}

/// What a write needs besides the connection.
#[derive(Clone)]
struct Ctx {
    used: Arc<AtomicU64>,
    options: StoreOptions,
}

impl Ctx {
    /// Adds `bytes` to the total when it stays within the bound (in the caller's
    /// transaction: the counter row is locked until it commits).
    async fn reserve(&self, tx: &impl GenericClient, bytes: u64) -> Result<(), StoreError> {
        let limit = int(self.options.max_total_bytes);
        let row = tx
            .query_opt(
                "UPDATE picoclaw_usage SET used = used + $1 WHERE id = 1 AND used + $1 <= $2 RETURNING used",
                &[&int(bytes), &limit],
            )
            .await
            .map_err(db)?;
        match row {
            Some(r) => {
                self.used.store(uint(r.get(0)), Ordering::Release);
                Ok(())
            }
            None => {
                let r =
                    tx.query_one("SELECT used FROM picoclaw_usage WHERE id = 1", &[]).await.map_err(db)?;
                let used = uint(r.get(0));
                self.used.store(used, Ordering::Release);
                Err(StoreError::Full { used, limit: self.options.max_total_bytes })
            }
        }
    }

    async fn release(&self, tx: &impl GenericClient, bytes: u64) -> Result<(), StoreError> {
        let r = tx
            .query_one(
                "UPDATE picoclaw_usage SET used = GREATEST(used - $1, 0) WHERE id = 1 RETURNING used",
                &[&int(bytes)],
            )
            .await
            .map_err(db)?;
        self.used.store(uint(r.get(0)), Ordering::Release);
        Ok(())
    }
}

fn row_message(r: &Row) -> Message {
    let role: String = r.get(1);
    Message {
        seq: uint(r.get(0)),
        role: Role::parse(&role).unwrap_or(Role::User),
        content: r.get(2),
        message_id: r.get(3),
        ts_ms: uint(r.get(4)),
    }
}

fn row_session(r: &Row) -> SessionInfo {
    SessionInfo {
        id: r.get(0),
        owner: r.get(1),
        created_ms: uint(r.get(2)),
        last_ms: uint(r.get(3)),
        messages: uint(r.get(4)),
        bytes: uint(r.get(5)),
    }
}

async fn claim(
    client: &mut deadpool_postgres::Client,
    ctx: Ctx,
    session: String,
    principal: String,
) -> Result<Claim, StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    // New: owned by the claimer. Imported without an owner (''): its first claimer's.
    // Owned: unchanged (no row returned). `xmax = 0` marks a row this statement inserted.
    let row = tx
        .query_opt(
            "INSERT INTO picoclaw_sessions (id, owner, created_ms, last_ms) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner WHERE picoclaw_sessions.owner = '' \
             RETURNING owner, last_seq, (xmax = 0) AS inserted",
            &[&session, &principal, &now_ms()],
        )
        .await
        .map_err(db)?;
    let claim = match row {
        Some(r) => {
            if r.get::<_, bool>(2) {
                ctx.reserve(&tx, SESSION_ROW_BYTES).await?;
            }
            Claim { owner: r.get(0), last_seq: uint(r.get(1)) }
        }
        None => {
            let r = tx
                .query_one("SELECT owner, last_seq FROM picoclaw_sessions WHERE id = $1", &[&session])
                .await
                .map_err(db)?;
            Claim { owner: r.get(0), last_seq: uint(r.get(1)) }
        }
    };
    tx.commit().await.map_err(db)?;
    Ok(claim)
}

async fn record(
    client: &mut deadpool_postgres::Client,
    ctx: Ctx,
    turn: TurnRecord,
) -> Result<(), StoreError> {
    let (user_seq, user) = &turn.user;
    let (answer_seq, message_id, answer) = &turn.answer;
    let added = (user.len() + answer.len()) as u64;
    if ctx.used.load(Ordering::Acquire).saturating_add(added) > ctx.options.max_total_bytes {
        // A fast refusal; the counter row below is the authority.
        return Err(StoreError::Full {
            used: ctx.used.load(Ordering::Acquire),
            limit: ctx.options.max_total_bytes,
        });
    }
    let now = int(turn.ts_ms);
    let tx = client.transaction().await.map_err(db)?;
    let inserted = tx
        .execute(
            "INSERT INTO picoclaw_sessions (id, owner, created_ms, last_ms) VALUES ($1, '', $2, $2) \
             ON CONFLICT (id) DO NOTHING",
            &[&turn.session, &now],
        )
        .await
        .map_err(db)?;
    // The session row's lock orders the turns of one session across replicas.
    let last: i64 = tx
        .query_one("SELECT last_seq FROM picoclaw_sessions WHERE id = $1 FOR UPDATE", &[&turn.session])
        .await
        .map_err(db)?
        .get(0);
    let user_seq = (*user_seq).max(uint(last) + 1);
    let answer_seq = (*answer_seq).max(user_seq + 1);
    let insert = tx
        .prepare_cached(
            "INSERT INTO picoclaw_messages (session, seq, role, content, message_id, ts_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(db)?;
    tx.execute(
        &insert,
        &[&turn.session, &int(user_seq), &Role::User.as_str(), user, &Option::<String>::None, &now],
    )
    .await
    .map_err(db)?;
    tx.execute(
        &insert,
        &[&turn.session, &int(answer_seq), &Role::Assistant.as_str(), answer, message_id, &now],
    )
    .await
    .map_err(db)?;
    let bytes: i64 = tx
        .query_one(
            "UPDATE picoclaw_sessions SET last_ms = $2, last_seq = $3, messages = messages + 2, bytes = bytes + $4 \
             WHERE id = $1 RETURNING bytes",
            &[&turn.session, &now, &int(answer_seq), &int(added)],
        )
        .await
        .map_err(db)?
        .get(0);
    // The per-session bound: whole turns go, oldest first.
    let mut over = uint(bytes).saturating_sub(ctx.options.max_session_bytes);
    let mut freed = 0u64;
    if over > 0 {
        let rows = tx
            .query(
                "SELECT seq, octet_length(content), role FROM picoclaw_messages WHERE session = $1 ORDER BY seq",
                &[&turn.session],
            )
            .await
            .map_err(db)?;
        let mut cut_to = None;
        let mut count = 0i64;
        for r in rows {
            let (seq, len, role): (i64, i32, String) = (r.get(0), r.get(1), r.get(2));
            if (over == 0 && role == Role::User.as_str()) || seq >= int(user_seq) {
                break;
            }
            let len = u64::try_from(len).unwrap_or(0);
            over = over.saturating_sub(len);
            freed += len;
            count += 1;
            cut_to = Some(seq);
        }
        if let Some(seq) = cut_to {
            tx.execute(
                "DELETE FROM picoclaw_messages WHERE session = $1 AND seq <= $2",
                &[&turn.session, &seq],
            )
            .await
            .map_err(db)?;
            tx.execute(
                "UPDATE picoclaw_sessions SET messages = messages - $2, bytes = bytes - $3 WHERE id = $1",
                &[&turn.session, &count, &int(freed)],
            )
            .await
            .map_err(db)?;
        }
    }
    // Last, so the counter row is locked for the shortest time.
    let row_cost = if inserted > 0 { SESSION_ROW_BYTES } else { 0 };
    let net = added + row_cost;
    if net >= freed {
        ctx.reserve(&tx, net - freed).await?;
    } else {
        ctx.release(&tx, freed - net).await?;
    }
    tx.commit().await.map_err(db)
}

async fn delete(
    client: &mut deadpool_postgres::Client,
    ctx: Ctx,
    session: String,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    let row = tx
        .query_opt("DELETE FROM picoclaw_sessions WHERE id = $1 RETURNING bytes", &[&session])
        .await
        .map_err(db)?;
    let Some(row) = row else { return Ok(false) };
    ctx.release(&tx, uint(row.get(0)) + SESSION_ROW_BYTES).await?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}

impl Store for PgStore {
    fn claim(&self, session: String, principal: String) -> StoreFuture<Claim> {
        self.run(move |c, ctx| Box::pin(claim(c, ctx, session, principal)))
    }

    fn cached_owner(&self, _session: &str) -> Option<Claim> {
        // Another replica may have deleted and re-claimed it: always ask the database.
        None
    }

    fn record_turn(&self, turn: TurnRecord) -> StoreFuture<()> {
        self.run(move |c, ctx| Box::pin(record(c, ctx, turn)))
    }

    fn check_room(&self, _session: &str) -> Result<(), StoreError> {
        let used = self.used.load(Ordering::Acquire);
        if used >= self.options.max_total_bytes {
            return Err(StoreError::Full { used, limit: self.options.max_total_bytes });
        }
        Ok(())
    }

    fn history(&self, session: String, max_messages: usize, max_bytes: usize) -> StoreFuture<Vec<Message>> {
        self.run(move |c, _| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT seq, role, content, message_id, ts_ms FROM picoclaw_messages \
                         WHERE session = $1 AND content <> '' ORDER BY seq DESC LIMIT $2",
                        &[&session, &int(max_messages as u64)],
                    )
                    .await
                    .map_err(db)?;
                let mut out = Vec::new();
                let mut bytes = 0usize;
                for r in &rows {
                    let m = row_message(r);
                    bytes += m.content.len();
                    if bytes > max_bytes && !out.is_empty() {
                        break;
                    }
                    out.push(m);
                }
                out.reverse();
                Ok(out)
            })
        })
    }

    fn sessions(&self, owner: Option<String>, limit: usize) -> StoreFuture<Vec<SessionInfo>> {
        self.run(move |c, _| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT id, owner, created_ms, last_ms, messages, bytes FROM picoclaw_sessions \
                         WHERE $1::TEXT IS NULL OR owner = $1 ORDER BY last_ms DESC LIMIT $2",
                        &[&owner, &int(limit as u64)],
                    )
                    .await
                    .map_err(db)?;
                Ok(rows.iter().map(row_session).collect())
            })
        })
    }

    fn session(&self, session: String) -> StoreFuture<Option<SessionInfo>> {
        self.run(move |c, _| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT id, owner, created_ms, last_ms, messages, bytes FROM picoclaw_sessions WHERE id = $1",
                        &[&session],
                    )
                    .await
                    .map_err(db)?;
                Ok(row.as_ref().map(row_session))
            })
        })
    }

    fn messages(&self, session: String, after_seq: u64, limit: usize) -> StoreFuture<Vec<Message>> {
        self.run(move |c, _| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT seq, role, content, message_id, ts_ms FROM picoclaw_messages \
                         WHERE session = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                        &[&session, &int(after_seq), &int(limit as u64)],
                    )
                    .await
                    .map_err(db)?;
                Ok(rows.iter().map(row_message).collect())
            })
        })
    }

    fn delete(&self, session: String) -> StoreFuture<bool> {
        self.run(move |c, ctx| Box::pin(delete(c, ctx, session)))
    }
}
