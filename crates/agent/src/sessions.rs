//! Session history: bounded in memory, appended to `sessions/<id>.jsonl` on disk.
//!
//! File format (one JSON object per line, append-only):
//! - an owner record, normally line 1: `{"v":1,"owner":"<principal id>","created_ms":N}` —
//!   written and `fdatasync`ed when a principal first claims the session, before the claim
//!   returns. Ownership is decided by what is on disk: the in-memory cache only holds
//!   copies of durable owners, so evicting a session from it can never make the session
//!   look unowned (the takeover the security review found, RELIABILITY.md);
//! - then one line per message: `{"role":"user"|"assistant","content":"...","ts_ms":N}`.
//!   A finished turn (user line + assistant line) is written with one `write` and one
//!   `fsync`, so a turn is either on disk or not.
//!
//! A crash can leave a torn last line; it is ignored on load and cut off before the next
//! append, so it can never glue itself to a later record. The directory is 0700 and the
//! files 0600 (chat history is private).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Role, Turn};

/// How much history is kept in memory per session and fed to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most recent messages kept (a turn is two messages).
    pub max_messages: usize,
    /// Upper bound on the summed `content` bytes of those messages.
    pub max_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits { max_messages: 40, max_bytes: 256 * 1024 }
    }
}

/// Sessions kept in memory at once; others are reloaded from disk when used again.
const MAX_CACHED_SESSIONS: usize = 128;

/// Longest line read back from a session file (longer lines are skipped as corrupt).
const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// A failure of the session store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing a session file failed.
    #[error("session store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct Header {
    v: u32,
    owner: String,
    created_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Line {
    role: Role,
    content: String,
    #[serde(default)]
    ts_ms: u64,
}

struct Session {
    /// The owner as recorded on disk (never a claim that is not durable yet).
    owner: Option<String>,
    turns: VecDeque<Turn>,
    bytes: usize,
    last_used: u64,
}

impl Session {
    fn empty() -> Session {
        Session { owner: None, turns: VecDeque::new(), bytes: 0, last_used: 0 }
    }

    fn push(&mut self, turn: Turn, limits: HistoryLimits) {
        self.bytes += turn.content.len();
        self.turns.push_back(turn);
        while self.turns.len() > limits.max_messages
            || (self.bytes > limits.max_bytes && self.turns.len() > 1)
        {
            if let Some(old) = self.turns.pop_front() {
                self.bytes -= old.content.len();
            }
        }
    }
}

struct Inner {
    sessions: HashMap<String, Session>,
    tick: u64,
}

impl Inner {
    /// Caches `session` as `id`, evicting the least recently used session when full (it
    /// is reloaded from disk when needed; everything it holds is on disk).
    fn insert(&mut self, id: &str, session: Session) {
        if self.sessions.len() >= MAX_CACHED_SESSIONS
            && let Some(oldest) =
                self.sessions.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| k.clone())
        {
            self.sessions.remove(&oldest);
        }
        self.sessions.insert(id.to_owned(), session);
    }

    /// The cached session `id`, marked as just used.
    fn touch(&mut self, id: &str) -> Option<&mut Session> {
        self.tick += 1;
        let tick = self.tick;
        let session = self.sessions.get_mut(id)?;
        session.last_used = tick;
        Some(session)
    }
}

/// The history of every session under one `sessions/` directory.
///
/// One store exists per directory in a process ([`SessionStore::open`] hands out the same
/// instance), so an engine rebuilt by a reload and the one finishing an in-flight turn
/// never hold diverging copies of a session.
pub struct SessionStore {
    dir: PathBuf,
    limits: Mutex<HistoryLimits>,
    inner: Mutex<Inner>,
    /// One writer per stripe at a time: sessions hash onto many stripes, so turns of
    /// different sessions rarely wait for each other's `fdatasync`.
    write_locks: Box<[Mutex<()>]>,
    /// Session files kept open between turns (taken out while written, under the
    /// session's stripe lock, so a file never has two handles).
    open_files: Mutex<OpenFiles>,
    /// The directory exists with mode 0700 (checked once, not on every turn).
    dir_ready: AtomicBool,
}

/// The session files kept open, at most [`MAX_OPEN_FILES`]. An open file's cursor sits
/// after its last whole line, so a turn costs one `write` and one `fdatasync` instead of
/// open + stat + tail scan + seek + write + sync + close.
#[derive(Default)]
struct OpenFiles {
    files: HashMap<String, (u64, File)>,
    tick: u64,
}

struct OpenFile {
    id: String,
    /// Positioned just past the last complete line.
    file: File,
}

impl OpenFiles {
    /// Takes the open file of `id` out of the cache (it is put back after a good write).
    fn take(&mut self, id: &str) -> Option<OpenFile> {
        let (id, (_, file)) = self.files.remove_entry(id)?;
        Some(OpenFile { id, file })
    }

    /// Puts a file back as the most recently used, closing the least recently used one
    /// when [`MAX_OPEN_FILES`] are already open.
    fn put(&mut self, open: OpenFile) {
        if self.files.len() >= MAX_OPEN_FILES
            && let Some(oldest) = self.files.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone())
        {
            self.files.remove(&oldest);
        }
        self.tick += 1;
        self.files.insert(open.id, (self.tick, open.file));
    }
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Number of write locks sessions are spread over. With 64, about a third of a hundred
/// busy sessions share a stripe and wait for another session's `fdatasync`; with 1,024
/// few do (BENCHMARKS.md, F4). A lock is 4 bytes.
const WRITE_STRIPES: usize = 1024;

/// Session files kept open at once (file descriptors).
const MAX_OPEN_FILES: usize = 256;

fn stripe(id: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    (h.finish() as usize) % WRITE_STRIPES
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<SessionStore>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<SessionStore>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl SessionStore {
    /// The store for `dir` (created lazily, 0700, on the first write).
    pub fn open(dir: &Path, limits: HistoryLimits) -> Arc<SessionStore> {
        let mut reg = lock(registry());
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(store) = reg.get(dir).and_then(Weak::upgrade) {
            *lock(&store.limits) = limits;
            return store;
        }
        let store = Arc::new(SessionStore {
            dir: dir.to_owned(),
            limits: Mutex::new(limits),
            inner: Mutex::new(Inner { sessions: HashMap::new(), tick: 0 }),
            write_locks: (0..WRITE_STRIPES).map(|_| Mutex::new(())).collect(),
            open_files: Mutex::new(OpenFiles::default()),
            dir_ready: AtomicBool::new(false),
        });
        reg.insert(dir.to_owned(), Arc::downgrade(&store));
        store
    }

    /// The directory holding the session files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.jsonl"))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io { path: path.to_owned(), source }
    }

    /// Runs `f` on the cached session `id`, loading it from disk first if needed.
    fn with<R>(&self, id: &str, f: impl FnOnce(&mut Session) -> R) -> Result<R, StoreError> {
        let limits = *lock(&self.limits);
        let mut inner = lock(&self.inner);
        if !inner.sessions.contains_key(id) {
            let loaded = self.load(id, limits)?;
            inner.insert(id, loaded);
        }
        inner.touch(id).map(f).ok_or_else(|| StoreError::Io {
            path: self.file(id),
            source: std::io::Error::other("session vanished from the cache"),
        })
    }

    fn load(&self, id: &str, limits: HistoryLimits) -> Result<Session, StoreError> {
        let mut session = Session::empty();
        let path = self.file(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(session),
            Err(e) => return Err(Self::io(&path)(e)),
        };
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(Self::io(&path))?;
            if n == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                if n > MAX_LINE_BYTES {
                    // Skip the rest of an oversized line.
                    reader.skip_until(b'\n').map_err(Self::io(&path))?;
                    continue;
                }
                // A torn last line (crash during a write): ignored, cut before the next append.
                break;
            }
            if let Ok(h) = serde_json::from_slice::<Header>(&buf) {
                // The first owner record wins.
                session.owner.get_or_insert(h.owner);
                continue;
            }
            match serde_json::from_slice::<Line>(&buf) {
                Ok(line) if line.content.is_empty() => {}
                Ok(line) => session.push(Turn { role: line.role, content: line.content }, limits),
                Err(_) => tracing::warn!(session = %id, "skipping an unreadable line in the session file"),
            }
        }
        Ok(session)
    }

    /// The owner of `id` (`None` when the session is new).
    pub fn owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.with(id, |s| s.owner.clone())
    }

    /// Records `principal` as the owner of `id` when it has none, durably (written and
    /// `fdatasync`ed before this returns); returns the owner.
    pub fn claim(&self, id: &str, principal: &str) -> Result<String, StoreError> {
        // The session's stripe lock serializes claims (and appends) of one session: two
        // principals racing for a new session cannot both own it.
        let _one_writer = lock(&self.write_locks[stripe(id)]);
        if let Some(owner) = self.with(id, |s| s.owner.clone())? {
            return Ok(owner);
        }
        let header = Header { v: 1, owner: principal.to_owned(), created_ms: now_ms() };
        let mut bytes = serde_json::to_vec(&header).unwrap_or_default();
        bytes.push(b'\n');
        self.append_locked(id, &bytes)?;
        self.with(id, |s| s.owner.get_or_insert_with(|| principal.to_owned()).clone())
    }

    /// The owner of `id` when the session is cached and owned (no disk access needed);
    /// `None` means call [`claim`](Self::claim), off the async workers.
    pub fn cached_owner(&self, id: &str) -> Option<String> {
        let mut inner = lock(&self.inner);
        inner.touch(id).and_then(|s| s.owner.clone())
    }

    /// Appends a finished turn and fsyncs it.
    pub fn append_turn(&self, id: &str, user: &str, answer: &str) -> Result<(), StoreError> {
        let limits = *lock(&self.limits);
        let ts = now_ms();
        let mut bytes = Vec::new();
        // Both lines always, even for an empty answer: a turn on disk is a user line and
        // its assistant line, so a user line at the end of a file is a turn a crash cut
        // short (a write interrupted by SIGKILL can stop after any byte), and is cut off
        // before the next append.
        let turns = vec![
            Turn { role: Role::User, content: user.to_owned() },
            Turn { role: Role::Assistant, content: answer.to_owned() },
        ];
        for t in &turns {
            let line = Line { role: t.role, content: t.content.clone(), ts_ms: ts };
            bytes.extend(serde_json::to_vec(&line).unwrap_or_default());
            bytes.push(b'\n');
        }
        self.append(id, &bytes)?;
        self.with(id, |s| {
            for t in turns.into_iter().filter(|t| !t.content.is_empty()) {
                s.push(t, limits);
            }
        })
    }

    /// The bounded in-memory history of `id`, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<Turn>, StoreError> {
        self.with(id, |s| s.turns.iter().cloned().collect())
    }

    fn ensure_dir(&self) -> Result<(), StoreError> {
        if self.dir_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&self.dir).map_err(Self::io(&self.dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(&self.dir).map_err(Self::io(&self.dir))?;
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(Self::io(&self.dir))?;
            }
        }
        self.dir_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Opens the file of `id` for appending: created 0600 when missing (and the new
    /// directory entry made durable), a torn tail cut off.
    fn open_for_append(&self, id: &str) -> Result<OpenFile, StoreError> {
        self.ensure_dir()?;
        let path = self.file(id);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = match opts.open(&path) {
            // The directory went away while the gateway ran (someone cleared the history):
            // make it again rather than refusing every new session until a restart.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.dir_ready.store(false, Ordering::Release);
                self.ensure_dir()?;
                opts.open(&path)
            }
            other => other,
        }
        .map_err(Self::io(&path))?;
        let len = file.metadata().map_err(Self::io(&path))?.len();
        if len == 0 {
            // Make the (possibly new) directory entry durable before the first turn lands.
            if let Ok(dir) = File::open(&self.dir) {
                let _ = dir.sync_all();
            }
        }
        let end = valid_end(&mut file, len).map_err(Self::io(&path))?;
        let end = without_torn_turn(&mut file, end).map_err(Self::io(&path))?;
        if end != len {
            file.set_len(end).map_err(Self::io(&path))?;
        }
        // Later appends go on from here: the cursor follows each write.
        file.seek(SeekFrom::Start(end)).map_err(Self::io(&path))?;
        Ok(OpenFile { id: id.to_owned(), file })
    }

    /// Appends `bytes` (whole lines) to the file of `id` and `fdatasync`s it.
    fn append(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        // One writer per session at a time (striped locks: bounded, and turns of different
        // sessions fsync in parallel).
        let _one_writer = lock(&self.write_locks[stripe(id)]);
        self.append_locked(id, bytes)
    }

    /// [`append`](Self::append) for a caller that holds the session's stripe lock.
    fn append_locked(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let cached = lock(&self.open_files).take(id);
        let mut open = match cached {
            Some(open) if still_linked(&open.file) => open,
            // Not open, or its file was deleted meanwhile (history cleared by hand): open
            // the path again, which starts a new file.
            _ => self.open_for_append(id)?,
        };
        // On an error the handle is dropped: the next append reopens the file and cuts
        // whatever part of this write reached it.
        write_at_end(&mut open, bytes).map_err(Self::io(&self.file(id)))?;
        lock(&self.open_files).put(open);
        Ok(())
    }
}

/// False when the open file no longer has a name (it was deleted). One `fstat`, cheap
/// next to the `fdatasync` that follows.
fn still_linked(file: &File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().is_ok_and(|m| m.nlink() > 0)
    }
    #[cfg(not(unix))]
    {
        file.metadata().is_ok()
    }
}

/// Writes `bytes` at the file's last line end (where its cursor is) and makes them durable.
fn write_at_end(open: &mut OpenFile, bytes: &[u8]) -> std::io::Result<()> {
    open.file.write_all(bytes)?;
    open.file.sync_data()
}

/// `end` (a line boundary), moved back before a last line that is a user message: its
/// turn's write was cut short after the user line (see `append_turn`).
fn without_torn_turn(file: &mut File, end: u64) -> std::io::Result<u64> {
    if end == 0 {
        return Ok(0);
    }
    let start = valid_end(file, end - 1)?;
    let mut last = vec![0u8; usize::try_from(end - start).unwrap_or(0).min(MAX_LINE_BYTES)];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut last)?;
    let torn = serde_json::from_slice::<Line>(&last).is_ok_and(|l| l.role == Role::User);
    Ok(if torn { start } else { end })
}

/// The length of the file up to and including its last newline (0 when it has none).
fn valid_end(file: &mut File, len: u64) -> std::io::Result<u64> {
    if len == 0 {
        return Ok(0);
    }
    let mut pos = len;
    let mut chunk = [0u8; 4096];
    while pos > 0 {
        let start = pos.saturating_sub(chunk.len() as u64);
        let n = (pos - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Arc<SessionStore> {
        SessionStore::open(dir, HistoryLimits { max_messages: 4, max_bytes: 1000 })
    }

    #[test]
    fn history_survives_reopen_and_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sessions");
        {
            let s = store(&dir);
            assert_eq!(s.claim("a", "alice").unwrap(), "alice");
            for i in 0..3 {
                s.append_turn("a", &format!("q{i}"), &format!("a{i}")).unwrap();
            }
            assert_eq!(s.history("a").unwrap().len(), 4);
        }
        let s = store(&dir);
        assert_eq!(s.owner("a").unwrap().as_deref(), Some("alice"));
        assert_eq!(s.claim("a", "bob").unwrap(), "alice");
        let h = s.history("a").unwrap();
        assert_eq!(h.iter().map(|t| t.content.as_str()).collect::<Vec<_>>(), ["q1", "a1", "q2", "a2"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join("a.jsonl")), 0o600);
        }
    }

    #[test]
    fn torn_last_line_is_ignored_and_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sessions");
        {
            let s = store(&dir);
            s.claim("t", "p").unwrap();
            s.append_turn("t", "one", "uno").unwrap();
        }
        let file = dir.join("t.jsonl");
        let mut f = OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(b"{\"role\":\"user\",\"cont").unwrap();
        drop(f);
        let s = store(&dir);
        assert_eq!(s.history("t").unwrap().len(), 2);
        s.append_turn("t", "two", "dos").unwrap();
        drop(s);
        let s = store(&dir);
        let h = s.history("t").unwrap();
        assert_eq!(h.iter().map(|t| t.content.as_str()).collect::<Vec<_>>(), ["one", "uno", "two", "dos"]);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("\"cont{"), "torn line glued to a record: {text}");
    }

    #[test]
    fn a_turn_cut_after_its_user_line_is_dropped_before_the_next() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sessions");
        {
            let s = store(&dir);
            s.append_turn("c", "one", "uno").unwrap();
        }
        let file = dir.join("c.jsonl");
        let mut f = OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(b"{\"role\":\"user\",\"content\":\"cut\",\"ts_ms\":1}\n{\"role\":\"assis").unwrap();
        drop(f);
        let s = store(&dir);
        s.append_turn("c", "two", "").unwrap();
        drop(s);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("\"cut\"") && !text.contains("assis\n"), "{text}");
        let h = store(&dir).history("c").unwrap();
        assert_eq!(h.iter().map(|t| t.content.as_str()).collect::<Vec<_>>(), ["one", "uno", "two"]);
    }

    #[test]
    fn byte_bound_drops_oldest() {
        let tmp = tempfile::tempdir().unwrap();
        let s = SessionStore::open(tmp.path(), HistoryLimits { max_messages: 100, max_bytes: 10 });
        s.append_turn("b", "12345", "67890").unwrap();
        s.append_turn("b", "abcde", "").unwrap();
        let h = s.history("b").unwrap();
        assert_eq!(h.iter().map(|t| t.content.as_str()).collect::<Vec<_>>(), ["67890", "abcde"]);
    }

    #[test]
    fn appends_survive_closing_open_files() {
        // More sessions than are kept open: files are closed and reopened in between
        // turns, and every turn still lands once, in order.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sessions");
        let sessions = MAX_OPEN_FILES + 50;
        {
            let s = SessionStore::open(&dir, HistoryLimits::default());
            for round in 0..3 {
                for i in 0..sessions {
                    s.append_turn(&format!("s{i}"), &format!("q{round}"), &format!("a{round}")).unwrap();
                }
            }
        }
        let s = SessionStore::open(&dir, HistoryLimits::default());
        for i in [0, sessions / 2, sessions - 1] {
            let h = s.history(&format!("s{i}")).unwrap();
            let texts: Vec<_> = h.iter().map(|t| t.content.as_str()).collect();
            assert_eq!(texts, ["q0", "a0", "q1", "a1", "q2", "a2"], "session s{i}");
        }
    }

    #[test]
    fn a_removed_directory_and_deleted_open_files_are_made_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sessions");
        let s = SessionStore::open(&dir, HistoryLimits::default());
        s.append_turn("before", "q", "a").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        s.append_turn("after", "q2", "a2").unwrap();
        let text = std::fs::read_to_string(dir.join("after.jsonl")).unwrap();
        assert!(text.contains("\"q2\"") && text.contains("\"a2\""), "{text}");
        // The session whose file was open when it was deleted starts a new file.
        s.append_turn("before", "q3", "a3").unwrap();
        let text = std::fs::read_to_string(dir.join("before.jsonl")).unwrap();
        assert!(text.contains("\"q3\"") && !text.contains("\"q\""), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
    }
}
