//! The embedded store: SQLite in WAL mode with group commit.
//!
//! One writer thread owns the write connection. Claims, turns and deletions reach it over
//! a channel; it takes every command waiting, runs each in its own savepoint of one
//! transaction, commits once — one `fsync` of the WAL for the whole batch
//! (`synchronous=FULL`) — and only then answers every waiter. So a turn a client saw
//! finish is on disk, and a hundred sockets cost one sync, not a hundred. Readers use
//! their own connection (WAL lets them read while the writer writes).
//!
//! The file is `sessions/sessions.db` (0600, its `-wal` and `-shm` files too) in a 0700
//! directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::{Claim, Message, Role, SessionInfo, Store, StoreError, StoreFuture, TurnRecord};

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// Most commands committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Owners remembered without a query (each a few dozen bytes).
const OWNER_CACHE: usize = 8192;

/// What one session costs against `max_total_bytes` besides its text: its row, its
/// index entry and its owner (an id and a principal of up to 128 bytes each). So claiming
/// sessions that never get a message fills the budget too, instead of the disk.
pub const SESSION_ROW_BYTES: u64 = 512;

/// The bytes counted against `max_total_bytes`: every session's text and its row.
const USED_SQL: &str = "SELECT COALESCE(SUM(bytes), 0) + COUNT(*) * 512 FROM sessions";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    message_id TEXT,
    ts_ms INTEGER NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions (owner, last_ms);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
";

/// Size bounds of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Text bytes kept per session; past it the oldest messages of that session are
    /// dropped (a rolling window).
    pub max_session_bytes: u64,
    /// Text bytes kept in all; past it new turns are refused ([`StoreError::Full`]).
    pub max_total_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_session_bytes: 8 * 1024 * 1024, max_total_bytes: 256 * 1024 * 1024 }
    }
}

enum Command {
    Claim { session: String, principal: String, reply: oneshot::Sender<Result<Claim, StoreError>> },
    Turn { turn: TurnRecord, reply: oneshot::Sender<Result<(), StoreError>> },
    Delete { session: String, reply: oneshot::Sender<Result<bool, StoreError>> },
}

/// The embedded store. Cheap to share behind an `Arc`; dropping the last handle stops the
/// writer after it has committed what it holds.
pub struct SqliteStore {
    writer: Mutex<mpsc::Sender<Command>>,
    reader: Arc<Mutex<Connection>>,
    owners: Arc<Mutex<HashMap<String, Claim>>>,
    used: Arc<AtomicU64>,
    options: StoreOptions,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// SQLite integers are i64; every count and time here fits.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Creates `dir` (0700) and an empty `file` (0600) if missing, so SQLite never creates
/// them with wider modes (its `-wal`/`-shm` files copy the database file's mode).
fn prepare_files(dir: &Path, file: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file)?;
    Ok(())
}

fn connect(file: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(file).map_err(storage)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(storage)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(storage)?;
    // FULL in WAL mode: every commit syncs the WAL, so a committed turn survives power loss.
    conn.pragma_update(None, "synchronous", "FULL").map_err(storage)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(storage)?;
    // Memory and disk the database may hold beyond the history itself: a page cache of at
    // most 1 MiB per connection (two connections), and a WAL truncated back to 4 MiB after
    // each checkpoint (SQLite checkpoints every 1,000 pages).
    conn.pragma_update(None, "cache_size", -1024).map_err(storage)?;
    conn.pragma_update(None, "journal_size_limit", 4 * 1024 * 1024).map_err(storage)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating when needed) `dir/sessions.db`, importing the `*.jsonl` session files
    /// of older versions found in `dir` once, and starts the writer.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Arc<SqliteStore>, StoreError> {
        let path = dir.join("sessions.db");
        prepare_files(dir, &path).map_err(|e| storage(format!("{}: {e}", path.display())))?;
        let mut conn = connect(&path)?;
        migrate(&conn)?;
        crate::jsonl::import(&mut conn, dir)?;
        let used: i64 = conn.query_row(USED_SQL, [], |r| r.get(0)).map_err(storage)?;
        let used = Arc::new(AtomicU64::new(uint(used)));
        let reader = Arc::new(Mutex::new(connect(&path)?));
        let owners = Arc::new(Mutex::new(HashMap::new()));
        let (tx, rx) = mpsc::channel();
        let writer = Writer { conn, options, used: used.clone(), owners: owners.clone() };
        std::thread::Builder::new()
            .name("picoclaw-store".into())
            .spawn(move || writer.run(rx))
            .map_err(storage)?;
        Ok(Arc::new(SqliteStore { writer: Mutex::new(tx), reader, owners, used, options, path }))
    }

    /// The store of `dir` in this process: opened at the first call, the same instance
    /// after (one writer per database, whatever rebuilds its engine). `options` of a later
    /// call are ignored while the first store lives: size bounds change at a restart.
    pub fn shared(dir: &Path, options: StoreOptions) -> Result<Arc<SqliteStore>, StoreError> {
        static OPEN: Mutex<Vec<(PathBuf, std::sync::Weak<SqliteStore>)>> = Mutex::new(Vec::new());
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(store) = open.iter().find(|(d, _)| d == dir).and_then(|(_, w)| w.upgrade()) {
            return Ok(store);
        }
        let store = SqliteStore::open(dir, options)?;
        open.push((dir.to_owned(), Arc::downgrade(&store)));
        Ok(store)
    }

    /// Every message of `session` in the database of `dir`, read without a store (no
    /// writer, no import): for tools and tests that look at a home another process serves.
    pub fn read_messages(dir: &Path, session: &str) -> Result<Vec<Message>, StoreError> {
        let path = dir.join("sessions.db");
        if !path.exists() {
            return Ok(Vec::new());
        }
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(storage)?;
        let mut stmt = conn
            .prepare(
                "SELECT seq, role, content, message_id, ts_ms FROM messages WHERE session = ?1 ORDER BY seq",
            )
            .map_err(storage)?;
        let rows = stmt.query_map(params![session], row_message).map_err(storage)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(storage)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(command)
            .map_err(|_| StoreError::Closed)
    }

    /// Runs `f` with the read connection, off the async workers.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<T> {
        let reader = self.reader.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&reader.lock().unwrap_or_else(PoisonError::into_inner)))
                .await
                .map_err(|_| StoreError::Closed)?
        })
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(storage)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Storage(format!(
            "sessions.db has schema version {version}, newer than this picoclaw ({SCHEMA_VERSION}); upgrade picoclaw"
        )));
    }
    conn.execute_batch(SCHEMA).map_err(storage)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(storage)?;
    Ok(())
}

async fn answer<T>(rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
    rx.await.map_err(|_| StoreError::Closed)?
}

impl Store for SqliteStore {
    fn claim(&self, session: String, principal: String) -> StoreFuture<Claim> {
        let (reply, rx) = oneshot::channel();
        let sent = self.send(Command::Claim { session, principal, reply });
        Box::pin(async move {
            sent?;
            answer(rx).await
        })
    }

    fn cached_owner(&self, session: &str) -> Option<Claim> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner).get(session).cloned()
    }

    fn record_turn(&self, turn: TurnRecord) -> StoreFuture<()> {
        let (reply, rx) = oneshot::channel();
        let sent = self.send(Command::Turn { turn, reply });
        Box::pin(async move {
            sent?;
            answer(rx).await
        })
    }

    fn check_room(&self, _session: &str) -> Result<(), StoreError> {
        let used = self.used.load(Ordering::Acquire);
        if used >= self.options.max_total_bytes {
            return Err(StoreError::Full { used, limit: self.options.max_total_bytes });
        }
        Ok(())
    }

    fn history(&self, session: String, max_messages: usize, max_bytes: usize) -> StoreFuture<Vec<Message>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, role, content, message_id, ts_ms FROM messages WHERE session = ?1 AND content <> '' \
                     ORDER BY seq DESC LIMIT ?2",
                )
                .map_err(storage)?;
            let rows = stmt
                .query_map(params![session, int(max_messages as u64)], row_message)
                .map_err(storage)?;
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for row in rows {
                let m = row.map_err(storage)?;
                bytes += m.content.len();
                if bytes > max_bytes && !out.is_empty() {
                    break;
                }
                out.push(m);
            }
            out.reverse();
            Ok(out)
        })
    }

    fn sessions(&self, owner: Option<String>, limit: usize) -> StoreFuture<Vec<SessionInfo>> {
        self.read(move |conn| {
            let sql = "SELECT id, owner, created_ms, last_ms, messages, bytes FROM sessions \
                       WHERE ?1 IS NULL OR owner = ?1 ORDER BY last_ms DESC LIMIT ?2";
            let mut stmt = conn.prepare_cached(sql).map_err(storage)?;
            let rows = stmt.query_map(params![owner, int(limit as u64)], row_session).map_err(storage)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(storage)
        })
    }

    fn session(&self, session: String) -> StoreFuture<Option<SessionInfo>> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, owner, created_ms, last_ms, messages, bytes FROM sessions WHERE id = ?1",
                params![session],
                row_session,
            )
            .optional()
            .map_err(storage)
        })
    }

    fn messages(&self, session: String, after_seq: u64, limit: usize) -> StoreFuture<Vec<Message>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, role, content, message_id, ts_ms FROM messages WHERE session = ?1 AND seq > ?2 \
                     ORDER BY seq LIMIT ?3",
                )
                .map_err(storage)?;
            let rows =
                stmt.query_map(params![session, int(after_seq), int(limit as u64)], row_message).map_err(storage)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(storage)
        })
    }

    fn delete(&self, session: String) -> StoreFuture<bool> {
        let (reply, rx) = oneshot::channel();
        let sent = self.send(Command::Delete { session, reply });
        Box::pin(async move {
            sent?;
            answer(rx).await
        })
    }
}

fn row_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    let role: String = r.get(1)?;
    Ok(Message {
        seq: uint(r.get(0)?),
        role: Role::parse(&role).unwrap_or(Role::User),
        content: r.get(2)?,
        message_id: r.get(3)?,
        ts_ms: uint(r.get(4)?),
    })
}

fn row_session(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: r.get(0)?,
        owner: r.get(1)?,
        created_ms: uint(r.get(2)?),
        last_ms: uint(r.get(3)?),
        messages: uint(r.get(4)?),
        bytes: uint(r.get(5)?),
    })
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    options: StoreOptions,
    used: Arc<AtomicU64>,
    owners: Arc<Mutex<HashMap<String, Claim>>>,
}

/// A command's outcome, waiting for the commit.
enum Done {
    Claim(oneshot::Sender<Result<Claim, StoreError>>, Result<(String, Claim), StoreError>),
    Turn(oneshot::Sender<Result<(), StoreError>>, Result<(), StoreError>),
    Delete(oneshot::Sender<Result<bool, StoreError>>, Result<(String, bool), StoreError>),
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    /// Runs every command of `batch` in one transaction (each in its own savepoint, so one
    /// failing command leaves the others), commits once, then answers.
    fn commit(&mut self, batch: Vec<Command>) {
        let used_before = self.used.load(Ordering::Acquire);
        let mut used = used_before;
        let options = self.options;
        let mut done = Vec::with_capacity(batch.len());
        let committed = (|| -> Result<(), StoreError> {
            let mut tx = self.conn.transaction().map_err(storage)?;
            for command in batch {
                let mut sp = match tx.savepoint() {
                    Ok(sp) => sp,
                    Err(e) => {
                        let e = storage(e);
                        done.push(fail(command, &e));
                        continue;
                    }
                };
                let outcome = match command {
                    Command::Claim { session, principal, reply } => Done::Claim(
                        reply,
                        claim(&sp, &session, &principal, options, &mut used).map(|c| (session, c)),
                    ),
                    Command::Turn { turn, reply } => {
                        Done::Turn(reply, record(&sp, &turn, options, &mut used))
                    }
                    Command::Delete { session, reply } => {
                        Done::Delete(reply, delete(&sp, &session, &mut used).map(|d| (session, d)))
                    }
                };
                let ok = match &outcome {
                    Done::Claim(_, r) => r.is_ok(),
                    Done::Turn(_, r) => r.is_ok(),
                    Done::Delete(_, r) => r.is_ok(),
                };
                if ok {
                    if let Err(e) = sp.commit() {
                        tracing::error!("session store: {e}");
                    }
                } else {
                    let _ = sp.rollback();
                }
                done.push(outcome);
            }
            tx.commit().map_err(storage)
        })();
        if let Err(e) = &committed {
            tracing::error!("session store: the batch did not commit: {e}");
            // What this batch changed in memory did not happen: count again from the file.
            let recount: Result<i64, _> = self.conn.query_row(USED_SQL, [], |r| r.get(0));
            self.used.store(recount.map_or(used_before, uint), Ordering::Release);
        } else {
            self.used.store(used, Ordering::Release);
        }
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        for outcome in done {
            match outcome {
                Done::Claim(reply, result) => {
                    let result = match (&committed, result) {
                        (Err(e), _) => Err(e.clone()),
                        (Ok(()), Ok((session, claim))) => {
                            if owners.len() >= OWNER_CACHE {
                                owners.clear();
                            }
                            owners.insert(session, claim.clone());
                            Ok(claim)
                        }
                        (Ok(()), Err(e)) => Err(e),
                    };
                    let _ = reply.send(result);
                }
                Done::Turn(reply, result) => {
                    let _ = reply.send(committed.clone().and(result));
                }
                Done::Delete(reply, result) => {
                    let result = match (&committed, result) {
                        (Err(e), _) => Err(e.clone()),
                        (Ok(()), Ok((session, deleted))) => {
                            owners.remove(&session);
                            Ok(deleted)
                        }
                        (Ok(()), Err(e)) => Err(e),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }
}

fn fail(command: Command, e: &StoreError) -> Done {
    match command {
        Command::Claim { reply, .. } => Done::Claim(reply, Err(e.clone())),
        Command::Turn { reply, .. } => Done::Turn(reply, Err(e.clone())),
        Command::Delete { reply, .. } => Done::Delete(reply, Err(e.clone())),
    }
}

fn claim(
    conn: &Connection,
    session: &str,
    principal: &str,
    options: StoreOptions,
    used: &mut u64,
) -> Result<Claim, StoreError> {
    let now = int(now_ms());
    // New: owned by the claimer. Imported without an owner record (owner ''): it belongs to
    // its first claimer. Owned: unchanged. Every statement is prepared once and cached.
    let claimed = conn
        .prepare_cached(
            "INSERT INTO sessions (id, owner, created_ms, last_ms) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (id) DO UPDATE SET owner = excluded.owner WHERE owner = '' \
             RETURNING owner, last_seq, messages = 0 AND created_ms = ?3",
        )
        .and_then(|mut insert| {
            insert.query_row(params![session, principal, now], |r| {
                Ok((Claim { owner: r.get(0)?, last_seq: uint(r.get(1)?) }, r.get::<_, bool>(2)?))
            })
        })
        .optional()
        .map_err(storage)?;
    if let Some((_, true)) = &claimed {
        // A new row: it costs its share of the budget (the savepoint is rolled back when
        // there is no room, so nothing is written).
        if used.saturating_add(SESSION_ROW_BYTES) > options.max_total_bytes {
            return Err(StoreError::Full { used: *used, limit: options.max_total_bytes });
        }
        *used += SESSION_ROW_BYTES;
    }
    claimed.map(|(c, _)| c).map_or_else(
        // An owned session: the upsert changed nothing and returned no row.
        || {
            conn.prepare_cached("SELECT owner, last_seq FROM sessions WHERE id = ?1")
                .and_then(|mut select| {
                    select.query_row(params![session], |r| {
                        Ok(Claim { owner: r.get(0)?, last_seq: uint(r.get(1)?) })
                    })
                })
                .map_err(storage)
        },
        Ok,
    )
}

fn record(
    conn: &Connection,
    turn: &TurnRecord,
    options: StoreOptions,
    used: &mut u64,
) -> Result<(), StoreError> {
    let (user_seq, user) = &turn.user;
    let (answer_seq, message_id, answer) = &turn.answer;
    let added = (user.len() + answer.len()) as u64;
    if used.saturating_add(added) > options.max_total_bytes {
        return Err(StoreError::Full { used: *used, limit: options.max_total_bytes });
    }
    let now = int(turn.ts_ms);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions (id, owner, created_ms, last_ms) VALUES (?1, '', ?2, ?2) ON CONFLICT (id) DO NOTHING",
        )
        .and_then(|mut insert| insert.execute(params![turn.session, now]))
        .map_err(storage)?;
    if inserted > 0 {
        if used.saturating_add(added + SESSION_ROW_BYTES) > options.max_total_bytes {
            return Err(StoreError::Full { used: *used, limit: options.max_total_bytes });
        }
        *used += SESSION_ROW_BYTES;
    }
    let last: i64 = conn
        .prepare_cached("SELECT last_seq FROM sessions WHERE id = ?1")
        .and_then(|mut select| select.query_row(params![turn.session], |r| r.get(0)))
        .map_err(storage)?;
    // Sequence numbers only grow, whatever the caller passed (0 = "the next one").
    let user_seq = (*user_seq).max(uint(last) + 1);
    let answer_seq = (*answer_seq).max(user_seq + 1);
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO messages (session, seq, role, content, message_id, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(storage)?;
    insert
        .execute(params![turn.session, int(user_seq), Role::User.as_str(), user, Option::<String>::None, now])
        .map_err(storage)?;
    insert
        .execute(params![turn.session, int(answer_seq), Role::Assistant.as_str(), answer, message_id, now])
        .map_err(storage)?;
    let bytes: i64 = conn
        .prepare_cached(
            "UPDATE sessions SET last_ms = ?2, last_seq = ?3, messages = messages + 2, bytes = bytes + ?4 \
             WHERE id = ?1 RETURNING bytes",
        )
        .and_then(|mut update| {
            update.query_row(params![turn.session, now, int(answer_seq), int(added)], |r| r.get(0))
        })
        .map_err(storage)?;
    *used += added;
    // The per-session bound: drop the oldest messages until the session fits again.
    let mut over = uint(bytes).saturating_sub(options.max_session_bytes);
    if over > 0 {
        let mut oldest = conn
            .prepare_cached(
                "SELECT seq, length(CAST(content AS BLOB)), role FROM messages WHERE session = ?1 ORDER BY seq",
            )
            .map_err(storage)?;
        let rows = oldest
            .query_map(params![turn.session], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(storage)?;
        let mut cut_to = None;
        let (mut freed, mut count) = (0u64, 0i64);
        for row in rows {
            let (seq, len, role) = row.map_err(storage)?;
            // Whole turns go: stop only where the next message starts one.
            if (over == 0 && role == Role::User.as_str()) || seq >= int(user_seq) {
                break;
            }
            let len = uint(len);
            over = over.saturating_sub(len);
            freed += len;
            count += 1;
            cut_to = Some(seq);
        }
        if let Some(seq) = cut_to {
            conn.execute("DELETE FROM messages WHERE session = ?1 AND seq <= ?2", params![turn.session, seq])
                .map_err(storage)?;
            conn.execute(
                "UPDATE sessions SET messages = messages - ?2, bytes = bytes - ?3 WHERE id = ?1",
                params![turn.session, count, int(freed)],
            )
            .map_err(storage)?;
            *used = used.saturating_sub(freed);
        }
    }
    Ok(())
}

fn delete(conn: &Connection, session: &str, used: &mut u64) -> Result<bool, StoreError> {
    let bytes: Option<i64> = conn
        .query_row("SELECT bytes FROM sessions WHERE id = ?1", params![session], |r| r.get(0))
        .optional()
        .map_err(storage)?;
    let Some(bytes) = bytes else { return Ok(false) };
    conn.execute("DELETE FROM messages WHERE session = ?1", params![session]).map_err(storage)?;
    conn.execute("DELETE FROM sessions WHERE id = ?1", params![session]).map_err(storage)?;
    *used = used.saturating_sub(uint(bytes) + SESSION_ROW_BYTES);
    Ok(true)
}

#[cfg(test)]
mod tests;
