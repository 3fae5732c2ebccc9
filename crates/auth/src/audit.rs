//! The audit log, `logs/audit.jsonl`: one JSON line per authentication success or
//! failure, token creation, rotation, revocation and reload — time, event, endpoint,
//! client address, credential kind and id, outcome and error code. Never a secret: events
//! are built from [`Principal`]s and [`AuthError`]s, which hold none, and endpoints are
//! cut at `?` so a `?token=` query can never reach the file.
//!
//! The file is mode 0600 and bounded: when a line would make it larger than
//! [`DEFAULT_MAX_BYTES`], it is renamed to `audit.jsonl.1` (replacing the previous one)
//! and a new file is started, so the log never holds more than twice the bound.
//!
//! [`AuditLog`] keeps the gateway's hot path free of file I/O: `record` only formats the
//! line and hands it to a bounded queue (`try_send`, never blocking); a dedicated writer
//! thread appends it. When the queue is full (the disk is stalled), lines are dropped and
//! counted, and the writer notes the count in the file once it catches up — losing an
//! audit line is better than stalling every request behind a slow disk. A thread rather
//! than a task keeps this crate free of any async runtime. Short-lived commands use
//! [`append`] instead.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::named::Timestamp;
use crate::verify::{AuthError, CredentialKind, Principal};

/// Size at which `audit.jsonl` is rotated to `audit.jsonl.1`.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Lines waiting for the writer at most.
pub const DEFAULT_QUEUE: usize = 4096;

/// How long the writer gathers lines after the first of a batch before it writes them.
/// While it waits, queuing a line wakes no thread; a burst of connections costs one
/// wake-up and one `write` per window instead of one per line.
const BATCH_WINDOW: Duration = Duration::from_millis(10);
/// Longest endpoint / client / id text kept in a line.
const MAX_FIELD: usize = 256;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A request or socket was authenticated.
    AuthSuccess,
    /// A request or socket was refused.
    AuthFailure,
    /// A credential was rotated.
    Rotate,
    /// A named token was revoked.
    Revoke,
    /// A named token was created.
    Create,
    /// Configuration and secrets were reloaded (or a reload was rejected).
    Reload,
    /// A one-time pairing code was issued, or a redemption of one was refused (a
    /// successful redemption is the `create` of its token, with `pairing_id` set).
    Pair,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It worked.
    Ok,
    /// It was refused (authentication, scope, env-managed credential, ...).
    Denied,
    /// It failed (bad file, I/O).
    Error,
}

/// One audit line, without its time (added when recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// What happened.
    pub event: AuditKind,
    /// Path of the endpoint (`/pico/ws`), or the command (`cli:token rotate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Client address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Kind of the credential concerned: the one presented (`auth_*`), or the one a
    /// token operation created, revoked or rotated (`create`, `revoke`, `rotate`; who
    /// asked for it is the `actor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_kind: Option<CredentialKind>,
    /// Its public id (`pico`, `gateway`, a named token id). Never in `code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// Who made a change (the principal id of an admin API call, or `cli`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Stable error code ([`AuthError::code`] or similar) when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The public id of the pairing code concerned (8 hex of its digest; never the code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairing_id: Option<String>,
}

fn clip(s: &str) -> String {
    let s = s.split('?').next().unwrap_or_default();
    s.chars().take(MAX_FIELD).filter(|c| !c.is_control()).collect()
}

impl AuditEvent {
    /// An event of `kind` with `outcome` and nothing else set.
    pub fn new(kind: AuditKind, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            event: kind,
            endpoint: None,
            client: None,
            credential_kind: None,
            credential_id: None,
            actor: None,
            outcome,
            code: None,
            pairing_id: None,
        }
    }

    /// A successful authentication of `principal` at `endpoint` from `client`.
    pub fn auth_success(endpoint: &str, client: Option<&str>, principal: &Principal) -> AuditEvent {
        AuditEvent::new(AuditKind::AuthSuccess, Outcome::Ok)
            .endpoint(endpoint)
            .client(client)
            .credential(principal.kind, &principal.id)
    }

    /// A refused authentication at `endpoint` from `client`. For a real credential that
    /// is not allowed (scope, expired, revoked, rotated) the error's id is recorded too.
    pub fn auth_failure(endpoint: &str, client: Option<&str>, error: &AuthError) -> AuditEvent {
        let mut e =
            AuditEvent::new(AuditKind::AuthFailure, Outcome::Denied).endpoint(endpoint).client(client);
        e.code = Some(error.code().to_owned());
        match error {
            AuthError::Expired { id, .. } | AuthError::Scope { id, .. } | AuthError::Unverifiable { id } => {
                e.credential_id = Some(clip(id));
            }
            _ => {}
        }
        e
    }

    /// Sets the endpoint (cut at `?`).
    pub fn endpoint(mut self, endpoint: &str) -> AuditEvent {
        self.endpoint = Some(clip(endpoint));
        self
    }

    /// Sets the client address.
    pub fn client(mut self, client: Option<&str>) -> AuditEvent {
        self.client = client.map(clip);
        self
    }

    /// Sets the credential concerned.
    pub fn credential(mut self, kind: CredentialKind, id: &str) -> AuditEvent {
        self.credential_kind = Some(kind);
        self.credential_id = Some(clip(id));
        self
    }

    /// Sets who made the change.
    pub fn actor(mut self, actor: &str) -> AuditEvent {
        self.actor = Some(clip(actor));
        self
    }

    /// Sets the error code: one of the stable, static codes (`AuthError::code`,
    /// `TokenOpError::code`), so no id or value can end up in this field.
    pub fn code(mut self, code: &'static str) -> AuditEvent {
        self.code = Some(code.to_owned());
        self
    }

    /// Sets the public id of the pairing code concerned.
    pub fn pairing(mut self, id: &str) -> AuditEvent {
        self.pairing_id = Some(clip(id));
        self
    }

    /// The JSON line (with `ts` first and a trailing newline).
    pub fn to_line(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            ts: String,
            #[serde(flatten)]
            event: &'a AuditEvent,
        }
        let mut line = serde_json::to_string(&Line { ts: now_rfc3339_millis(), event: self })
            .unwrap_or_else(|_| String::from("{\"event\":\"audit_unserializable\"}"));
        line.push('\n');
        line
    }
}

fn now_rfc3339_millis() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let base = Timestamp::from_unix(d.as_secs()).to_string();
    // `...:SSZ` → `...:SS.mmmZ`
    format!("{}.{:03}Z", base.trim_end_matches('Z'), d.subsec_millis())
}

/// The file the lines go to, with its size bound.
struct Sink {
    path: PathBuf,
    max_bytes: u64,
    file: Option<File>,
    size: u64,
}

impl Sink {
    fn new(path: PathBuf, max_bytes: u64) -> Sink {
        Sink { path, max_bytes, file: None, size: 0 }
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                picoclaw_config::files::ensure_dir(dir, 0o700)?;
            }
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let file = options.open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        self.file.as_mut().ok_or_else(|| io::Error::other("audit file not open"))
    }

    fn write(&mut self, text: &str) -> io::Result<()> {
        self.open()?;
        let len = text.len() as u64;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.file = None;
            let mut rotated = self.path.clone().into_os_string();
            rotated.push(".1");
            std::fs::rename(&self.path, PathBuf::from(rotated))?;
            self.open()?;
        }
        let file = self.open()?;
        file.write_all(text.as_bytes())?;
        self.size += len;
        Ok(())
    }
}

/// Where a component sends its audit lines: the gateway's [`AuditLog`] queue, or a
/// command's synchronous [`append`].
pub trait AuditSink {
    /// Records one event. Never fails the operation it describes: a sink that cannot
    /// write says so where its owner reports problems.
    fn record(&self, event: &AuditEvent);
}

impl AuditSink for AuditLog {
    fn record(&self, event: &AuditEvent) {
        AuditLog::record(self, event);
    }
}

/// Appends one event synchronously (for short-lived commands such as `picoclaw token`).
pub fn append(path: &Path, event: &AuditEvent) -> io::Result<()> {
    Sink::new(path.to_owned(), DEFAULT_MAX_BYTES).write(&event.to_line())
}

enum Msg {
    Line(String),
    Flush(SyncSender<()>),
}

/// The gateway's audit log: non-blocking `record`, a writer thread, bounded queue and file.
pub struct AuditLog {
    tx: Option<SyncSender<Msg>>,
    dropped: Arc<AtomicU64>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dropped", &self.dropped()).finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer for `path` (normally `Paths::audit_log()`), with the default
    /// bounds. The file is created (0600) on the first line.
    pub fn open(path: PathBuf) -> io::Result<AuditLog> {
        AuditLog::with_limits(path, DEFAULT_MAX_BYTES, DEFAULT_QUEUE)
    }

    /// Starts the writer with explicit bounds.
    pub fn with_limits(path: PathBuf, max_bytes: u64, queue: usize) -> io::Result<AuditLog> {
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let writer = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            // Reserved address space, resident only as touched. 64 KiB overflowed when
            // jemalloc set up the thread's cache on its first allocation (debug builds).
            .stack_size(256 * 1024)
            .spawn(move || writer_loop(Sink::new(path, max_bytes), rx, counter))?;
        Ok(AuditLog { tx: Some(tx), dropped, writer: Some(writer) })
    }

    /// Queues `event`; never blocks. When the queue is full the line is dropped and
    /// counted.
    pub fn record(&self, event: &AuditEvent) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Line(event.to_line())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits (up to `within`) until every line queued before this call is written.
    pub fn flush(&self, within: Duration) -> bool {
        let Some(tx) = &self.tx else { return false };
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if tx.send(Msg::Flush(ack_tx)).is_err() {
            return false;
        }
        ack_rx.recv_timeout(within).is_ok()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain what is queued and exit.
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn writer_loop(mut sink: Sink, rx: Receiver<Msg>, dropped: Arc<AtomicU64>) {
    let mut reported = 0u64;
    let mut failed_once = false;
    loop {
        let msg = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = String::new();
        let mut acks = Vec::new();
        let mut take = |msg: Msg, batch: &mut String| match msg {
            Msg::Line(line) => batch.push_str(&line),
            Msg::Flush(ack) => acks.push(ack),
        };
        if let Some(msg) = msg {
            let flush_requested = matches!(msg, Msg::Flush(_));
            take(msg, &mut batch);
            if !flush_requested {
                std::thread::sleep(BATCH_WINDOW);
            }
        }
        while batch.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(msg) => take(msg, &mut batch),
                Err(_) => break,
            }
        }
        let lost = dropped.load(Ordering::Relaxed);
        if lost > reported {
            batch.push_str(&format!(
                "{{\"ts\":\"{}\",\"event\":\"audit_dropped\",\"count\":{}}}\n",
                now_rfc3339_millis(),
                lost - reported
            ));
            reported = lost;
        }
        if !batch.is_empty()
            && let Err(e) = sink.write(&batch)
            && !failed_once
        {
            // Reported once on stderr (the gateway log): the path is not secret.
            eprintln!("audit log {}: {e}; audit lines are being lost", sink.path.display());
            failed_once = true;
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Scope;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn principal() -> Principal {
        Principal {
            kind: CredentialKind::Named,
            id: "abcdefghijkl".into(),
            name: "phone".into(),
            scope: Scope::Chat,
            source: ".security.yml:tokens".into(),
            fingerprint: "01234567".into(),
            guessable: false,
        }
    }

    #[test]
    fn writes_json_lines_with_0600_and_no_query_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.jsonl");
        let log = AuditLog::open(path.clone()).unwrap();
        log.record(&AuditEvent::auth_success(
            "/pico/ws?token=canary-secret",
            Some("127.0.0.1:5555"),
            &principal(),
        ));
        log.record(&AuditEvent::auth_failure("/reload", Some("10.0.0.1"), &AuthError::Invalid));
        log.record(
            &AuditEvent::new(AuditKind::Rotate, Outcome::Ok)
                .credential(CredentialKind::Pico, "pico")
                .actor("cli"),
        );
        assert!(log.flush(Duration::from_secs(5)));
        let got = lines(&path);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["event"], "auth_success");
        assert_eq!(got[0]["endpoint"], "/pico/ws");
        assert_eq!(got[0]["credential_kind"], "named");
        assert_eq!(got[0]["credential_id"], "abcdefghijkl");
        assert_eq!(got[1]["outcome"], "denied");
        assert_eq!(got[1]["code"], "invalid_credential");
        assert_eq!(got[2]["event"], "rotate");
        assert!(got[0]["ts"].as_str().unwrap().ends_with('Z'));
        assert!(!std::fs::read_to_string(&path).unwrap().contains("canary"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn rotates_at_the_size_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::with_limits(path.clone(), 1000, 64).unwrap();
        for _ in 0..40 {
            log.record(&AuditEvent::auth_failure("/reload", None, &AuthError::Missing));
            assert!(log.flush(Duration::from_secs(5)));
        }
        drop(log);
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let old = dir.path().join("audit.jsonl.1");
        assert!(size(&path) <= 1000 && size(&old) <= 1000, "{} {}", size(&path), size(&old));
        assert!(size(&old) > 0);
        assert!(!lines(&path).is_empty() && !lines(&old).is_empty());
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        // A queue of one line: a burst of 10,000 records outruns the writer.
        let log = AuditLog::with_limits(dir.path().join("audit.jsonl"), DEFAULT_MAX_BYTES, 1).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..10_000 {
            log.record(&AuditEvent::new(AuditKind::Reload, Outcome::Ok));
        }
        assert!(start.elapsed() < Duration::from_secs(5), "record never blocks");
        assert!(log.flush(Duration::from_secs(5)));
        let dropped = log.dropped();
        assert!(dropped > 0, "some lines were dropped");
        let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        assert!(text.contains("audit_dropped"), "the loss is noted in the file");
    }

    #[test]
    fn append_is_synchronous() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        append(
            &path,
            &AuditEvent::new(AuditKind::Create, Outcome::Ok).credential(CredentialKind::Named, "x"),
        )
        .unwrap();
        assert_eq!(lines(&path)[0]["event"], "create");
    }
}
