//! The outbound `channels.pico_client` channel: the gateway dials a remote Pico server as
//! a client and answers the messages it receives.
//!
//! - Dial `url` with `?session_id=<id>&protocol=2` (plus `last_seq` after a reconnect),
//!   presenting `channels.pico_client.token` as `Authorization: Bearer`. An upstream
//!   PicoClaw server ignores the extra query fields; a picoclaw-rs server then sends
//!   `message.done` and replays frames missed while disconnected.
//! - A `user:password@` in `url` is a credential, resolved by the credentials crate: it is
//!   sent as `Authorization: Basic` when no token is set (ignored, with a warning naming
//!   the key, when one is), never in the dialed URL, and the URL is shown and logged with
//!   the password as `***`.
//! - Inbound: the remote's `message.create` / `message.update` frames are the user's
//!   message, keyed by `message_id` (updates carry the full text so far), except those
//!   marked `payload.kind` `thought` or `tool_calls` (or the legacy `thought: true`),
//!   which are never user input, nor is a `placeholder: true` text (until an update
//!   replaces it); a `message.delete` withdraws its `message_id` (a
//!   cancelled partial answer is never answered, nor are later frames of it). A message is
//!   handled once, when complete: on `message.done` for its id, on `typing.stop`, or —
//!   for servers that send neither — after [`QUIET_PERIOD`] without a change while no
//!   `typing.start` is open (capped at [`TYPING_CAP`]). Handled ids are remembered
//!   (bounded), so replays and duplicates are ignored.
//! - Outbound: only `message.send` (a PicoClaw server answers anything else with
//!   `unknown_type`); liveness uses WebSocket control pings every `ping_interval`, and a
//!   connection silent for `read_timeout` is dropped and redialed.
//! - Reconnect: capped exponential backoff with jitter (1 s doubling to 60 s, each wait
//!   drawn uniformly from its upper half). Answers produced while disconnected are queued
//!   (bounded) and sent after the reconnect.
//! - Two agents talking to each other would answer forever, so at most
//!   [`MAX_ANSWERS_PER_MINUTE`] messages are answered per minute; the rest are dropped
//!   and reported in `last_error`.
//!
//! The client only speaks the protocol; what answers is an [`Answer`] (in the gateway,
//! the agent's engine: turns run in the local session `pico_client-<session_id>` owned by
//! the principal `pico_client`, so the history is persisted like any other session).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use picoclaw_config::Settings;
use picoclaw_config::schema;
use picoclaw_credentials::{Credentials, Secret};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::dial::{WsConnectError, WsStream, connect_ws, ws_request};
use crate::{Frame, kind};

/// What answers the remote server's messages, one at a time, in order.
pub trait Answer: Send + Sync + 'static {
    /// The local session the answers of remote session `remote` are kept in.
    fn local_session(&self, remote: &str) -> String;

    /// The full answer to `text` in `session`, or `None` when there is none to send (the
    /// reason recorded with [`PicoClientStatus::error`]; an empty answer is not sent
    /// either).
    fn answer<'a>(
        &'a self,
        session: &'a str,
        text: String,
        status: &'a PicoClientStatus,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;
}
/// Quiet time after which a message without typing indicators counts as complete.
pub const QUIET_PERIOD: Duration = Duration::from_millis(1500);
/// Longest wait for `typing.stop` / `message.done` before a message is taken as is.
pub const TYPING_CAP: Duration = Duration::from_secs(300);
/// Answer budget per minute (guards against two agents answering each other forever).
pub const MAX_ANSWERS_PER_MINUTE: usize = 30;

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(60);
const MAX_FRAME: usize = 1024 * 1024;
const MAX_PENDING_MESSAGES: usize = 64;
const MAX_REMEMBERED_IDS: usize = 4096;
const MAX_QUEUED_TURNS: usize = 32;
const MAX_QUEUED_ANSWERS: usize = 32;
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// Connection state of the pico_client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PicoClientState {
    /// Dialing the remote server.
    Connecting,
    /// Connected and serving.
    Connected,
    /// Waiting before the next attempt.
    BackingOff,
    /// Stopped (gateway shutdown or reload).
    Stopped,
}

/// A point-in-time view of the pico_client, for `GET /status` and `gateway status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PicoClientSnapshot {
    /// Current state.
    pub state: PicoClientState,
    /// The remote URL without its query string, with any password as `***`.
    pub url: String,
    /// The session id used on the remote server.
    pub session_id: String,
    /// The last connection or protocol problem (never contains a token).
    pub last_error: Option<String>,
    /// Reconnects since start (0 while the first connection holds).
    pub reconnects: u64,
    /// Remote messages answered since start.
    pub messages_answered: u64,
}

/// Live status of the pico_client, shared with the gateway; also stops it.
#[derive(Debug)]
pub struct PicoClientStatus {
    inner: Mutex<PicoClientSnapshot>,
    stop: Notify,
}

impl PicoClientStatus {
    /// The current status.
    pub fn snapshot(&self) -> PicoClientSnapshot {
        lock(&self.inner).clone()
    }

    /// Stops the client (closes the connection, ends the reconnect loop).
    pub fn stop(&self) {
        self.stop.notify_one();
        self.update(|s| s.state = PicoClientState::Stopped);
    }

    fn update(&self, f: impl FnOnce(&mut PicoClientSnapshot)) {
        f(&mut lock(&self.inner));
    }

    /// Records a problem (shown as `last_error`, logged as a warning; never a token).
    pub fn error(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(channel = "pico_client", "{message}");
        self.update(|s| s.last_error = Some(message));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the pico_client when `channels.pico_client.enabled` (must be called inside a
/// tokio runtime), answering with `answer`; `None` when disabled.
pub fn spawn(
    settings: &Settings,
    creds: &Credentials,
    answer: Arc<dyn Answer>,
) -> Option<Arc<PicoClientStatus>> {
    let cfg = &settings.pico_client;
    if !cfg.enabled {
        return None;
    }
    let url = cfg.url.as_ref().map(|u| u.dial().to_owned()).unwrap_or_default();
    let shown = cfg.url.as_ref().map_or("", |u| u.shown());
    let session_id =
        cfg.session_id.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(random_session_id);
    let status = Arc::new(PicoClientStatus {
        inner: Mutex::new(PicoClientSnapshot {
            state: PicoClientState::Connecting,
            url: shown.split(['?', '#']).next().unwrap_or_default().to_owned(),
            session_id: session_id.clone(),
            last_error: None,
            reconnects: 0,
            messages_answered: 0,
        }),
        stop: Notify::new(),
    });
    let auth = match (creds.pico_client(), creds.pico_client_basic()) {
        (Some(token), basic) => {
            if basic.is_some() {
                status.error(
                    "channels.pico_client.url carries a user:password, which is ignored: channels.pico_client.token is set and is sent instead",
                );
            }
            Some(Auth::Bearer(token.secret.clone()))
        }
        (None, Some(basic)) => Some(Auth::Basic(basic.secret.clone())),
        (None, None) => {
            status.error("no token configured for channels.pico_client (set PICOCLAW_CHANNELS_PICO_CLIENT_TOKEN or channels.pico_client.token in .security.yml); connecting without one");
            None
        }
    };
    let client = Client {
        url,
        auth,
        session_id: session_id.clone(),
        local_session: answer.local_session(&session_id),
        ping_interval: cfg.ping_interval,
        read_timeout: cfg.read_timeout,
        status: status.clone(),
    };
    tokio::spawn(client.run(answer));
    Some(status)
}

/// `pc` + 16 random hex digits.
fn random_session_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    format!("pc{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What the client presents to the remote server.
enum Auth {
    /// `channels.pico_client.token`, as `Authorization: Bearer`.
    Bearer(Secret),
    /// The userinfo of `channels.pico_client.url` (`user:password`), as `Authorization: Basic`.
    Basic(Secret),
}

impl Auth {
    /// The header value, marked sensitive (a `Debug` of the request does not show it).
    fn header(&self) -> Result<HeaderValue, String> {
        use base64::Engine as _;
        let (text, key) = match self {
            Auth::Bearer(token) => {
                (format!("Bearer {}", token.expose()), schema::CHANNELS_PICO_CLIENT_TOKEN.path)
            }
            Auth::Basic(userinfo) => (
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(userinfo.expose())),
                "the user:password of channels.pico_client.url",
            ),
        };
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| format!("{key} contains characters not allowed in a header"))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Which credential a 401 rejected.
    fn key(&self) -> &'static str {
        match self {
            Auth::Bearer(_) => schema::CHANNELS_PICO_CLIENT_TOKEN.path,
            Auth::Basic(_) => "the user:password of channels.pico_client.url",
        }
    }
}

struct Client {
    /// The URL to dial: no userinfo.
    url: String,
    auth: Option<Auth>,
    session_id: String,
    local_session: String,
    ping_interval: Duration,
    read_timeout: Duration,
    status: Arc<PicoClientStatus>,
}

/// What survives reconnects.
struct Memory {
    handled: HashSet<String>,
    handled_order: VecDeque<String>,
    last_seq: Option<u64>,
    unsent: Option<String>,
    answers_at: VecDeque<Instant>,
}

impl Memory {
    fn remember(&mut self, id: &str) {
        if self.handled.insert(id.to_owned()) {
            self.handled_order.push_back(id.to_owned());
            while self.handled_order.len() > MAX_REMEMBERED_IDS {
                if let Some(old) = self.handled_order.pop_front() {
                    self.handled.remove(&old);
                }
            }
        }
    }

    /// True when another answer fits in the per-minute budget (and counts it).
    fn budget(&mut self) -> bool {
        let now = Instant::now();
        while self.answers_at.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60)) {
            self.answers_at.pop_front();
        }
        if self.answers_at.len() >= MAX_ANSWERS_PER_MINUTE {
            return false;
        }
        self.answers_at.push_back(now);
        true
    }
}

/// A remote message being received.
struct Pending {
    content: String,
    changed: Instant,
    first_seen: Instant,
}

/// Why a connection ended.
enum End {
    Stopped,
    Lost(String),
}

impl Client {
    async fn run(self, answer: Arc<dyn Answer>) {
        let (turn_tx, turn_rx) = mpsc::channel::<String>(MAX_QUEUED_TURNS);
        let (answer_tx, mut answer_rx) = mpsc::channel::<String>(MAX_QUEUED_ANSWERS);
        let worker =
            tokio::spawn(worker(answer, self.local_session.clone(), self.status.clone(), turn_rx, answer_tx));
        let mut memory = Memory {
            handled: HashSet::new(),
            handled_order: VecDeque::new(),
            last_seq: None,
            unsent: None,
            answers_at: VecDeque::new(),
        };
        let mut attempt: u32 = 0;
        let mut connected_before = false;
        loop {
            self.status.update(|s| s.state = PicoClientState::Connecting);
            let end = match self.dial(&memory).await {
                Ok(ws) => {
                    if connected_before {
                        self.status.update(|s| s.reconnects += 1);
                    }
                    connected_before = true;
                    attempt = 0;
                    self.status.update(|s| s.state = PicoClientState::Connected);
                    tracing::info!(channel = "pico_client", url = %self.status.snapshot().url, "connected");
                    self.serve(ws, &mut memory, &turn_tx, &mut answer_rx).await
                }
                Err(e) => End::Lost(e),
            };
            let reason = match end {
                End::Stopped => break,
                End::Lost(reason) => reason,
            };
            self.status.error(reason);
            let wait = backoff(attempt);
            attempt = attempt.saturating_add(1);
            self.status.update(|s| s.state = PicoClientState::BackingOff);
            tokio::select! {
                _ = sleep(wait) => {}
                _ = self.status.stop.notified() => break,
            }
        }
        worker.abort();
        self.status.update(|s| s.state = PicoClientState::Stopped);
    }

    async fn dial(&self, memory: &Memory) -> Result<WsStream, String> {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        let mut url = format!("{}{sep}session_id={}&protocol=2", self.url, encode_query(&self.session_id));
        if let Some(seq) = memory.last_seq {
            url.push_str(&format!("&last_seq={seq}"));
        }
        let mut request = ws_request(&url).map_err(|e| format!("channels.pico_client.url: {e}"))?;
        if let Some(auth) = &self.auth {
            request.headers_mut().insert("authorization", auth.header()?);
        }
        let rejected = self.auth.as_ref().map_or("the connection without a credential", Auth::key);
        let dial = connect_ws(request, CONNECT_LIMIT, MAX_FRAME);
        tokio::select! {
            r = dial => r.map(|(ws, _)| ws).map_err(|e| match e {
                WsConnectError::Refused { status: 401, .. } => format!(
                    "{e} (the remote server rejected {rejected})"
                ),
                other => other.to_string(),
            }),
            _ = self.status.stop.notified() => Err("stopped".into()),
        }
    }

    async fn serve(
        &self,
        ws: WsStream,
        memory: &mut Memory,
        turns: &mpsc::Sender<String>,
        answers: &mut mpsc::Receiver<String>,
    ) -> End {
        let (mut sink, mut stream) = ws.split();
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let mut typing_open = false;
        let mut last_read = Instant::now();
        let mut next_ping = Instant::now() + self.ping_interval;
        if let Some(text) = memory.unsent.take()
            && let Err(e) = sink.send(Message::text(text.clone())).await
        {
            memory.unsent = Some(text);
            return End::Lost(format!("connection lost while sending: {e}"));
        }
        loop {
            let quiet_at = pending
                .values()
                .map(|p| if typing_open { p.first_seen + TYPING_CAP } else { p.changed + QUIET_PERIOD })
                .min();
            let read_deadline = last_read + self.read_timeout;
            tokio::select! {
                _ = self.status.stop.notified() => {
                    let _ = sink.send(Message::Close(None)).await;
                    return End::Stopped;
                }
                answer = answers.recv() => {
                    let Some(content) = answer else { return End::Stopped };
                    let frame = Frame {
                        kind: kind::MESSAGE_SEND.to_owned(),
                        id: Some(random_session_id().replacen("pc", "r", 1)),
                        session_id: Some(self.session_id.clone()),
                        timestamp: Some(crate::now_ms()),
                        payload: Default::default(),
                    }
                    .with("content", content)
                    .encode();
                    if let Err(e) = sink.send(Message::text(frame.clone())).await {
                        memory.unsent = Some(frame);
                        return End::Lost(format!("connection lost while sending: {e}"));
                    }
                }
                _ = sleep_until(next_ping) => {
                    next_ping = Instant::now() + self.ping_interval;
                    if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                        return End::Lost(format!("connection lost: {e}"));
                    }
                }
                _ = sleep_until(read_deadline) => {
                    return End::Lost(format!(
                        "nothing received for {} s (channels.pico_client.read_timeout); reconnecting",
                        self.read_timeout.as_secs()
                    ));
                }
                _ = sleep_until(quiet_at.unwrap_or(read_deadline)), if quiet_at.is_some() => {
                    let now = Instant::now();
                    let due: Vec<String> = pending
                        .iter()
                        .filter(|(_, p)| {
                            if typing_open { now >= p.first_seen + TYPING_CAP } else { now >= p.changed + QUIET_PERIOD }
                        })
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in due {
                        self.complete(&id, &mut pending, memory, turns);
                    }
                }
                msg = stream.next() => {
                    last_read = Instant::now();
                    let text = match msg {
                        None => return End::Lost("the remote server closed the connection".into()),
                        Some(Err(e)) => return End::Lost(format!("connection lost: {e}")),
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(c))) => {
                            let why = c.map(|c| format!(" ({} {})", u16::from(c.code), c.reason)).unwrap_or_default();
                            return End::Lost(format!("the remote server closed the connection{why}"));
                        }
                        Some(Ok(_)) => continue, // ping/pong/binary
                    };
                    let Ok(frame) = Frame::parse(&text) else {
                        self.status.error("the remote server sent a frame that is not a JSON object");
                        continue;
                    };
                    if let Some(seq) = frame.payload.get("seq").and_then(serde_json::Value::as_u64) {
                        memory.last_seq = Some(memory.last_seq.map_or(seq, |s| s.max(seq)));
                    }
                    match frame.kind.as_str() {
                        kind::MESSAGE_CREATE | kind::MESSAGE_UPDATE => {
                            let Some(id) = frame.text("message_id") else { continue };
                            if memory.handled.contains(id) {
                                continue; // duplicate or replay of a handled (or withdrawn) message
                            }
                            if frame.is_thought_or_tool_calls() {
                                // Reasoning and tool calls are not the remote user's words.
                                pending.remove(id);
                                memory.remember(id);
                                continue;
                            }
                            let Some(content) = frame.text("content") else { continue };
                            // A placeholder ("Thinking...") is not the message; the update
                            // that replaces it is.
                            let placeholder =
                                frame.payload.get("placeholder").and_then(serde_json::Value::as_bool) == Some(true);
                            let content = if placeholder { "" } else { content };
                            if !pending.contains_key(id) && pending.len() >= MAX_PENDING_MESSAGES {
                                self.status.error("too many unfinished remote messages; dropping the newest");
                                continue;
                            }
                            let now = Instant::now();
                            let p = pending.entry(id.to_owned()).or_insert_with(|| Pending {
                                content: String::new(),
                                changed: now,
                                first_seen: now,
                            });
                            p.content = content.to_owned();
                            p.changed = now;
                        }
                        kind::MESSAGE_DELETE => {
                            // A withdrawn (cancelled) partial message is never answered,
                            // nor are later frames of its id.
                            if let Some(id) = frame.text("message_id") {
                                pending.remove(id);
                                memory.remember(id);
                            }
                        }
                        kind::MESSAGE_DONE => {
                            if let Some(id) = frame.text("message_id").map(str::to_owned) {
                                self.complete(&id, &mut pending, memory, turns);
                            }
                        }
                        kind::TYPING_START => typing_open = true,
                        kind::TYPING_STOP => {
                            typing_open = false;
                            let ids: Vec<String> = pending.keys().cloned().collect();
                            for id in ids {
                                self.complete(&id, &mut pending, memory, turns);
                            }
                        }
                        kind::ERROR => {
                            let code = frame.text("code").unwrap_or("unknown");
                            let message: String = frame.text("message").unwrap_or("").chars().take(200).collect();
                            self.status.error(format!("the remote server reported {code}: {message}"));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Hands a complete remote message to the worker (once).
    fn complete(
        &self,
        id: &str,
        pending: &mut HashMap<String, Pending>,
        memory: &mut Memory,
        turns: &mpsc::Sender<String>,
    ) {
        let Some(p) = pending.remove(id) else { return };
        memory.remember(id);
        if p.content.trim().is_empty() {
            return;
        }
        if !memory.budget() {
            self.status.error(format!(
                "more than {MAX_ANSWERS_PER_MINUTE} remote messages in a minute; message {id} was not answered"
            ));
            return;
        }
        if turns.try_send(p.content).is_err() {
            self.status.error(format!("too many remote messages waiting; message {id} was not answered"));
        }
    }
}

/// Answers queued remote messages one at a time, in order.
async fn worker(
    answerer: Arc<dyn Answer>,
    session: String,
    status: Arc<PicoClientStatus>,
    mut turns: mpsc::Receiver<String>,
    answers: mpsc::Sender<String>,
) {
    while let Some(text) = turns.recv().await {
        let Some(answer) = answerer.answer(&session, text, &status).await else { continue };
        if answer.is_empty() {
            continue;
        }
        if answers.send(answer).await.is_err() {
            return;
        }
        status.update(|s| s.messages_answered += 1);
    }
}

/// Wait before reconnect attempt `attempt` (0-based): uniform in the upper half of
/// min(cap, start × 2^attempt).
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_START.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_CAP);
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let frac = f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
    ceiling.mul_f64(0.5 + 0.5 * frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        for attempt in 0..40 {
            let d = backoff(attempt);
            let ceiling = BACKOFF_START.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_CAP);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(30) <= BACKOFF_CAP);
    }
}
