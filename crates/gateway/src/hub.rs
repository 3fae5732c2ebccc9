//! Sessions and their sockets: fan-out of server frames to every socket of a session,
//! per-session sequence numbers, and a bounded replay buffer for protocol-2 clients that
//! reconnect with `last_seq`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use picoclaw_auth::Principal;
use picoclaw_pico::Frame;
use tokio::sync::mpsc;

use crate::outbox::{Outbox, Refused};

/// Replay buffer bounds per session.
const REPLAY_FRAMES: usize = 256;
const REPLAY_BYTES: usize = 512 * 1024;
/// Sessions kept before the oldest idle ones (no socket) are dropped.
const MAX_IDLE_SESSIONS: usize = 4096;
/// How many sessions below the bound one eviction goes, so the scan it costs is paid once
/// per this many closed sockets, not on every close.
const EVICT_SLACK: usize = MAX_IDLE_SESSIONS / 8;

/// Why a socket is being closed: a WebSocket close code and a reason.
#[derive(Debug, Clone)]
pub(crate) struct CloseReason {
    pub code: u16,
    pub reason: String,
}

/// Close codes used by the gateway (documented in docs/protocol.md, "Close codes").
pub(crate) mod close {
    /// Server shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Client stopped reading: its send queue passed its frame or byte budget (or the
    /// budget of all queues together).
    pub const POLICY: u16 = 1008;
    /// Frame larger than `max_frame_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// The socket's named token cannot be checked right now (a replica that lost track of
    /// the shared named tokens): reconnect, here later or through another replica.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The credential this socket authenticated with is no longer valid.
    pub const CREDENTIAL_REVOKED: u16 = 4001;
    /// The session was deleted (`DELETE /api/sessions/{id}`, `picoclaw sessions delete`).
    pub const SESSION_DELETED: u16 = 4004;

    /// Whether `code` closed a socket because its credential no longer opens anything here
    /// (revoked, or cannot be checked): its answers in flight end with it.
    pub fn credential_ended(code: u16) -> bool {
        matches!(code, CREDENTIAL_REVOKED | TRY_AGAIN_LATER)
    }

    /// How to close a socket of credential `id` that the verifier refuses with `e`.
    pub(crate) fn for_refused(id: &str, e: &picoclaw_auth::AuthError) -> super::CloseReason {
        match e {
            picoclaw_auth::AuthError::Unverifiable { .. } => super::CloseReason {
                code: TRY_AGAIN_LATER,
                reason: format!("credential {id} cannot be checked right now; reconnect"),
            },
            e => super::CloseReason {
                code: CREDENTIAL_REVOKED,
                reason: format!("credential {id} is no longer valid ({})", e.code()),
            },
        }
    }
}

/// One socket as the hub sees it.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub id: u64,
    /// The socket's send queue (bounded in frames and bytes; see `outbox`).
    pub out: Arc<Outbox>,
    pub closer: mpsc::Sender<CloseReason>,
    /// Set (with the close code) the moment a close is requested: the socket's reader
    /// stops at once, so a socket told to close takes no further frame.
    pub closing: Arc<tokio::sync::watch::Sender<Option<u16>>>,
    pub v2: bool,
    /// Who authenticated the socket (re-checked on reload and as credentials expire).
    pub principal: Principal,
}

impl ConnHandle {
    /// Queues a frame for this socket (`update_of`: the `message_id` of a `message.update`,
    /// which replaces an older queued update of that message). A socket over its send
    /// budget is closed with 1008; false when the frame was not queued.
    pub fn send(&self, text: Utf8Bytes, update_of: Option<&str>) -> bool {
        match self.out.push(text, update_of) {
            Ok(()) => true,
            Err(Refused::Overflow) => {
                self.close(close::POLICY, "send queue over its budget: the client is not reading");
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    /// Closes the socket: its reader stops taking frames now, and the writer sends the
    /// close frame (never blocks; only the first request counts).
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        let first = self.closing.send_if_modified(|closing| {
            if closing.is_some() {
                return false;
            }
            *closing = Some(code);
            true
        });
        if first {
            let _ = self.closer.try_send(CloseReason { code, reason: reason.into() });
        }
    }
}

struct Session {
    conns: Vec<ConnHandle>,
    seq: u64,
    buffer: VecDeque<(u64, Utf8Bytes)>,
    buffer_bytes: usize,
    idle_since: Option<Instant>,
    turn_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Session {
    fn new() -> Session {
        Session {
            conns: Vec::new(),
            seq: 0,
            buffer: VecDeque::new(),
            buffer_bytes: 0,
            idle_since: None,
            turn_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// All sessions.
#[derive(Default)]
pub(crate) struct Hub {
    sessions: Mutex<HashMap<String, Session>>,
    next_id: AtomicU64,
    /// With `storage.url`: every frame is also published to the other replicas.
    relay: std::sync::OnceLock<picoclaw_store::PgBus>,
}

/// What joining a session yields.
pub(crate) struct Joined {
    /// Serializes turns within the session, so history stays in order.
    pub turn_lock: Arc<tokio::sync::Mutex<()>>,
    /// Frames a protocol-2 client missed (`seq > last_seq`), oldest first.
    pub replay: Vec<Utf8Bytes>,
    /// True when frames after `last_seq` were already dropped from the buffer.
    pub replay_gap: bool,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes every frame from now on to the other replicas (set once, at start).
    pub fn relay_to(&self, bus: picoclaw_store::PgBus) {
        let _ = self.relay.set(bus);
    }

    /// Delivers a frame another replica sent to a session: to this replica's sockets of it
    /// and its replay buffer (so a client that reconnects here with `last_seq` gets it),
    /// with the session's `seq` moved past it.
    pub fn deliver_remote(&self, frame: picoclaw_store::Envelope) {
        let mut sessions = self.lock();
        let session = sessions.entry(frame.session).or_insert_with(|| {
            let mut s = Session::new();
            s.idle_since = Some(Instant::now());
            s
        });
        session.seq = session.seq.max(frame.seq);
        let text = Utf8Bytes::from(frame.body);
        push_replay(session, frame.seq, &text);
        for conn in &session.conns {
            if frame.v2_only && !conn.v2 {
                continue;
            }
            conn.send(text.clone(), frame.update_of.as_deref());
        }
        if sessions.len() > MAX_IDLE_SESSIONS {
            evict_idle(&mut sessions);
        }
    }

    /// A fresh connection id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds a socket to a session.
    /// Adds a socket to a session. `stored_seq` is the highest `seq` the store holds for
    /// it: frames are numbered after it, so numbers never repeat across restarts.
    pub fn join(&self, session_id: &str, conn: ConnHandle, last_seq: Option<u64>, stored_seq: u64) -> Joined {
        let mut sessions = self.lock();
        let session = sessions.entry(session_id.to_owned()).or_insert_with(Session::new);
        session.seq = session.seq.max(stored_seq);
        session.idle_since = None;
        let (replay, replay_gap) = match last_seq {
            Some(last) if conn.v2 => {
                let oldest = session.buffer.front().map(|(seq, _)| *seq);
                let gap = oldest.is_some_and(|o| o > last.saturating_add(1)) && last < session.seq;
                let frames =
                    session.buffer.iter().filter(|(seq, _)| *seq > last).map(|(_, f)| f.clone()).collect();
                (frames, gap)
            }
            _ => (Vec::new(), false),
        };
        session.conns.push(conn);
        Joined { turn_lock: session.turn_lock.clone(), replay, replay_gap }
    }

    /// Moves a socket from its provisional session (opened without `?session_id=`) to
    /// the session its first message named, already claimed. It joins `to` before it
    /// leaves `from`, so a sweep never misses it; `from` is forgotten if nothing uses it.
    /// Answers the turn lock of `to`.
    pub fn rebind(
        &self,
        from: &str,
        from_lock: Arc<tokio::sync::Mutex<()>>,
        conn: ConnHandle,
        to: &str,
        stored_seq: u64,
    ) -> Arc<tokio::sync::Mutex<()>> {
        if from == to {
            // Bound to its own provisional id: it stays where it is.
            if let Some(s) = self.lock().get_mut(to) {
                s.seq = s.seq.max(stored_seq);
            }
            return from_lock;
        }
        let id = conn.id;
        let joined = self.join(to, conn, None, stored_seq);
        self.leave(from, id);
        self.forget_unused(from, from_lock);
        joined.turn_lock
    }

    /// Forgets a session nothing uses: no socket, no frame ever sent, no turn holding its
    /// lock (`lock`, the caller's handle on it, is released first). A socket's provisional
    /// session, never used, leaves nothing behind.
    pub fn forget_unused(&self, session_id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut sessions = self.lock();
        drop(lock);
        if let Some(s) = sessions.get(session_id)
            && s.conns.is_empty()
            && s.seq == 0
            && Arc::strong_count(&s.turn_lock) == 1
        {
            sessions.remove(session_id);
        }
    }

    /// Removes a socket.
    pub fn leave(&self, session_id: &str, conn_id: u64) {
        let mut sessions = self.lock();
        if let Some(session) = sessions.get_mut(session_id) {
            session.conns.retain(|c| c.id != conn_id);
            if session.conns.is_empty() {
                session.idle_since = Some(Instant::now());
            }
        }
        if sessions.len() > MAX_IDLE_SESSIONS {
            evict_idle(&mut sessions);
        }
    }

    /// Sends a frame to every socket of the session (protocol-2 only frames skip v1
    /// sockets). Every frame gets the session's next `seq` and is kept for replay. A socket
    /// over its send budget is closed: it stopped reading, and nobody else waits for it.
    /// A `message.update` replaces the socket's queued update of the same message.
    pub fn broadcast(&self, session_id: &str, mut frame: Frame, v2_only: bool) -> u64 {
        let update_of = (frame.kind == picoclaw_pico::kind::MESSAGE_UPDATE)
            .then(|| frame.payload.get("message_id").and_then(|v| v.as_str()).map(str::to_owned))
            .flatten();
        let mut sessions = self.lock();
        let session = sessions.entry(session_id.to_owned()).or_insert_with(Session::new);
        session.seq += 1;
        let seq = session.seq;
        frame.payload.insert("seq".into(), seq.into());
        let text = Utf8Bytes::from(frame.encode());
        push_replay(session, seq, &text);
        if let Some(bus) = self.relay.get() {
            bus.publish(picoclaw_store::Envelope {
                session: session_id.to_owned(),
                seq,
                v2_only,
                update_of: update_of.clone(),
                body: text.as_str().to_owned(),
            });
        }
        for conn in &session.conns {
            if v2_only && !conn.v2 {
                continue;
            }
            conn.send(text.clone(), update_of.as_deref());
        }
        seq
    }

    /// Calls `check` for every socket; closes those for which it returns a reason.
    pub fn sweep(&self, check: impl Fn(&ConnHandle) -> Option<CloseReason>) -> usize {
        let sessions = self.lock();
        let mut closed = 0;
        for conn in sessions.values().flat_map(|s| s.conns.iter()) {
            if let Some(reason) = check(conn) {
                conn.close(reason.code, reason.reason);
                closed += 1;
            }
        }
        closed
    }

    /// Closes every socket.
    pub fn close_all(&self, code: u16, reason: &str) {
        let sessions = self.lock();
        for conn in sessions.values().flat_map(|s| s.conns.iter()) {
            conn.close(code, reason);
        }
    }

    /// The turn lock of a session the hub holds (`None`: no socket has it open and no turn
    /// of it runs).
    pub fn turn_lock(&self, session_id: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        self.lock().get(session_id).map(|s| s.turn_lock.clone())
    }

    /// Tells the other replicas (with `storage.url`) that `session_id` was deleted, so
    /// they close their sockets of it too.
    pub fn relay_deleted(&self, session_id: &str) {
        if let Some(bus) = self.relay.get() {
            bus.publish_deleted(session_id);
        }
    }

    /// Closes every socket of a session with `code` and forgets the session (its history
    /// was deleted); answers how many sockets were closed.
    pub fn forget(&self, session_id: &str, code: u16, reason: &str) -> usize {
        let Some(session) = self.lock().remove(session_id) else { return 0 };
        for conn in &session.conns {
            conn.close(code, reason);
        }
        session.conns.len()
    }

    /// (sessions, sockets).
    pub fn counts(&self) -> (usize, usize) {
        let sessions = self.lock();
        (sessions.len(), sessions.values().map(|s| s.conns.len()).sum())
    }
}

/// Keeps a frame for replay, within the buffer's bounds.
fn push_replay(session: &mut Session, seq: u64, text: &Utf8Bytes) {
    session.buffer_bytes += text.len();
    session.buffer.push_back((seq, text.clone()));
    while session.buffer.len() > REPLAY_FRAMES || session.buffer_bytes > REPLAY_BYTES {
        match session.buffer.pop_front() {
            Some((_, old)) => session.buffer_bytes -= old.len(),
            None => break,
        }
    }
}

/// Drops the longest-idle sessions until [`EVICT_SLACK`] below the bound (sessions with a
/// socket stay). One pass over the map and a partial selection, no full sort.
fn evict_idle(sessions: &mut HashMap<String, Session>) {
    let excess = sessions.len().saturating_sub(MAX_IDLE_SESSIONS - EVICT_SLACK);
    if excess == 0 {
        return;
    }
    let mut idle: Vec<(Instant, &String)> =
        sessions.iter().filter_map(|(k, s)| Some((s.idle_since?, k))).collect();
    if idle.is_empty() {
        return;
    }
    let take = excess.min(idle.len());
    if take < idle.len() {
        idle.select_nth_unstable(take - 1);
    }
    let doomed: Vec<String> = idle[..take].iter().map(|(_, k)| (*k).clone()).collect();
    for key in doomed {
        sessions.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_sessions_with_sockets_and_drops_the_longest_idle() {
        let mut sessions = HashMap::new();
        let start = Instant::now();
        for i in 0..MAX_IDLE_SESSIONS + 10 {
            let mut s = Session::new();
            s.idle_since = Some(start + std::time::Duration::from_millis(i as u64));
            sessions.insert(format!("idle{i}"), s);
        }
        sessions.insert("busy".to_owned(), Session::new());
        evict_idle(&mut sessions);
        assert_eq!(sessions.len(), MAX_IDLE_SESSIONS - EVICT_SLACK);
        assert!(sessions.contains_key("busy"), "a session with a socket was evicted");
        let newest = format!("idle{}", MAX_IDLE_SESSIONS + 9);
        assert!(sessions.contains_key(&newest), "the most recently idle session was evicted");
        assert!(!sessions.contains_key("idle0"), "the longest idle session was kept");
        // Below the bound nothing more goes.
        evict_idle(&mut sessions);
        assert_eq!(sessions.len(), MAX_IDLE_SESSIONS - EVICT_SLACK);
    }
}
