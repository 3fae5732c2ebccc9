//! The protocol conformance kit: the checks of docs/protocol.md run against any Pico
//! server (picoclaw's or upstream PicoClaw's) over real WebSockets, one result per feature.
//!
//! Checks are of two levels: [`Level::Core`] is Pico v1 as upstream PicoClaw serves it
//! (what every client may rely on); [`Level::Extension`] is this project's protocol 2
//! (`seq`, `message.done`, replay), which an upstream server is expected to fail. Every
//! check opens its own sockets, so one failure cannot hide another.
//!
//! The credential is a [`Secret`] handed in by the caller; it travels only in the
//! `Authorization` header or the `token.<t>` subprotocol offer, never in a URL, a result
//! or an error text.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use picoclaw_credentials::Secret;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::dial::{WsConnectError, WsStream, connect_ws, ws_request};
use crate::{Frame, kind};

/// Largest frame the kit accepts from the server under test.
const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Frames read while waiting for one that is expected (bounds a chatty server).
const MAX_FRAMES_PER_WAIT: usize = 10_000;

/// What to test.
#[derive(Debug, Clone)]
pub struct Target {
    /// The socket's `ws://` / `wss://` URL (e.g. `ws://127.0.0.1:18790/pico/ws`), without
    /// `session_id`, `protocol`, `last_seq` or `token` query parameters.
    pub url: String,
    /// The token presented (Bearer header or `token.<t>` offer).
    pub token: Secret,
    /// How long one step (a handshake, an awaited frame) may take.
    pub step_timeout: Duration,
}

/// Why a target cannot be tested at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// Not a `ws://` / `wss://` URL.
    #[error("{0:?} is not a ws:// or wss:// URL (e.g. ws://127.0.0.1:18790/pico/ws)")]
    NotWebSocket(String),
    /// The URL carries a query parameter the kit sets itself, or a credential.
    #[error(
        "the URL must not carry the {0:?} query parameter: the checks set the session and protocol themselves, and the token is given with --token-env or --token-stdin, never in a URL"
    )]
    ReservedParameter(String),
}

impl Target {
    /// Checks `url` and builds the target.
    pub fn new(url: &str, token: Secret, step_timeout: Duration) -> Result<Target, TargetError> {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(TargetError::NotWebSocket(url.to_owned()));
        }
        if let Some((_, query)) = url.split_once('?') {
            for pair in query.split('&') {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                if ["token", "session_id", "protocol", "last_seq"].contains(&name) {
                    return Err(TargetError::ReservedParameter(name.to_owned()));
                }
            }
        }
        Ok(Target { url: url.to_owned(), token, step_timeout })
    }

    fn with_query(&self, extra: &str) -> String {
        if extra.is_empty() {
            self.url.clone()
        } else if self.url.contains('?') {
            format!("{}&{extra}", self.url)
        } else {
            format!("{}?{extra}", self.url)
        }
    }
}

/// Whether a check is part of Pico v1 or this project's protocol 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Pico v1 as upstream PicoClaw serves it.
    Core,
    /// picoclaw's protocol 2 (`?protocol=2`).
    Extension,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The server behaved as documented.
    Pass,
    /// It did not.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Stable id, e.g. `auth.bearer`.
    pub id: &'static str,
    /// Core or extension.
    pub level: Level,
    /// What is checked, in one line.
    pub title: &'static str,
    /// Pass or fail.
    pub outcome: Outcome,
    /// What was seen (on failure: what was expected and what came instead).
    pub detail: String,
}

/// Passed / total for one level.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tally {
    /// Checks that passed.
    pub passed: usize,
    /// Checks run.
    pub total: usize,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The URL tested (never with a credential: [`Target::new`] refuses one).
    pub url: String,
    /// One entry per check, in [`CHECKS`] order.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// Passed / total of `level`.
    pub fn tally(&self, level: Level) -> Tally {
        let of_level = self.results.iter().filter(|r| r.level == level);
        Tally {
            passed: of_level.clone().filter(|r| r.outcome == Outcome::Pass).count(),
            total: of_level.count(),
        }
    }

    /// True when every check of `level` passed.
    pub fn all_passed(&self, level: Level) -> bool {
        let t = self.tally(level);
        t.passed == t.total
    }

    /// The report as JSON (`url`, `results`, `summary.core`, `summary.extension`).
    pub fn to_json(&self) -> Value {
        json!({
            "url": self.url,
            "results": self.results,
            "summary": {
                "core": self.tally(Level::Core),
                "extension": self.tally(Level::Extension),
            },
        })
    }
}

/// A check: its id, level and title. The order is the order they run and print in.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Stable id.
    pub id: &'static str,
    /// Core or extension.
    pub level: Level,
    /// One line.
    pub title: &'static str,
}

const fn core(id: &'static str, title: &'static str) -> Check {
    Check { id, level: Level::Core, title }
}

const fn extension(id: &'static str, title: &'static str) -> Check {
    Check { id, level: Level::Extension, title }
}

/// Every check, in order.
pub const CHECKS: &[Check] = &[
    core("auth.bearer", "Authorization: Bearer <token> opens the socket"),
    core("auth.subprotocol", "a token.<token> subprotocol offer opens the socket and is echoed in the 101"),
    core("auth.missing", "a socket without a credential is refused with HTTP 401"),
    core("auth.wrong", "a wrong token is refused with HTTP 401"),
    core("envelope", "every server frame has a type and a millisecond timestamp"),
    core("ping", "ping is answered by pong with the same id"),
    core(
        "chat.turn",
        "message.send is answered: typing.start, message.create (message.update of that id while streaming), typing.stop",
    ),
    core("chat.v1_frames_only", "a protocol-1 socket gets no protocol-2 frame (message.done)"),
    core(
        "error.invalid_message",
        "a frame that is not JSON gets error invalid_message and the socket stays open",
    ),
    core("error.unknown_type", "an unknown frame type gets error unknown_type"),
    core("error.empty_content", "an empty message gets error empty_content with the request id"),
    core("error.invalid_media", "an SVG data URL gets error invalid_media with the request id"),
    core("session.query", "?session_id= selects the session: the answer carries it"),
    core("session.envelope", "without ?session_id=, the first message's envelope session_id is the session"),
    core("session.fanout", "every socket of a session receives the session's answers"),
    extension(
        "v2.turn",
        "?protocol=2: a turn's frames carry increasing seq and reply_to, and end with message.done",
    ),
    extension("v2.replay", "?protocol=2&last_seq=N replays the session's frames after N on reconnect"),
];

/// Runs every check against `target`.
pub async fn run(target: &Target) -> Report {
    let mut results = Vec::with_capacity(CHECKS.len());
    let tag = random_tag();
    for check in CHECKS {
        let outcome = run_one(target, check.id, &tag).await;
        let (outcome, detail) = match outcome {
            Ok(detail) => (Outcome::Pass, detail),
            Err(detail) => (Outcome::Fail, detail),
        };
        results.push(CheckResult { id: check.id, level: check.level, title: check.title, outcome, detail });
    }
    Report { url: target.url.clone(), results }
}

type Step = Result<String, String>;

async fn run_one(t: &Target, id: &str, tag: &str) -> Step {
    match id {
        "auth.bearer" => auth_bearer(t).await,
        "auth.subprotocol" => auth_subprotocol(t).await,
        "auth.missing" => expect_refused(t, How::Nothing).await,
        "auth.wrong" => expect_refused(t, How::WrongBearer).await,
        "envelope" => envelope(t, tag).await,
        "ping" => ping(t).await,
        "chat.turn" => chat_turn(t, tag).await,
        "chat.v1_frames_only" => v1_frames_only(t, tag).await,
        "error.invalid_message" => invalid_message(t).await,
        "error.unknown_type" => {
            error_for(t, json!({"type": "conformance.no_such_type", "id": "u1"}), "unknown_type", false).await
        }
        "error.empty_content" => {
            error_for(
                t,
                json!({"type": kind::MESSAGE_SEND, "id": "e1", "payload": {"content": ""}}),
                "empty_content",
                true,
            )
            .await
        }
        "error.invalid_media" => {
            let svg = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=";
            error_for(
                t,
                json!({"type": kind::MESSAGE_SEND, "id": "m1", "payload": {"content": "look", "media": [svg]}}),
                "invalid_media",
                true,
            )
            .await
        }
        "session.query" => session_query(t, tag).await,
        "session.envelope" => session_envelope(t, tag).await,
        "session.fanout" => fanout(t, tag).await,
        "v2.turn" => v2_turn(t, tag).await,
        "v2.replay" => v2_replay(t, tag).await,
        other => Err(format!("no such check {other:?}")),
    }
}

/// How a socket presents (or does not present) the credential.
#[derive(Clone, Copy)]
enum How {
    Bearer,
    Subprotocol,
    Nothing,
    WrongBearer,
}

async fn open(t: &Target, query: &str, how: How) -> Result<(WsStream, Option<String>), WsConnectError> {
    let mut request = ws_request(&t.with_query(query))?;
    let header = |v: String| {
        HeaderValue::from_str(&v)
            .map_err(|_| WsConnectError::Url("the token is not a valid HTTP header value".into()))
    };
    match how {
        How::Bearer => {
            request.headers_mut().insert("authorization", header(format!("Bearer {}", t.token.expose()))?);
        }
        How::Subprotocol => {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", header(format!("token.{}", t.token.expose()))?);
        }
        How::WrongBearer => {
            request
                .headers_mut()
                .insert("authorization", header(format!("Bearer conformance-wrong-{}", random_tag()))?);
        }
        How::Nothing => {}
    }
    let (ws, response) = connect_ws(request, t.step_timeout, MAX_FRAME).await?;
    let echoed =
        response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok((ws, echoed))
}

/// Opens with the Bearer header; a failure is a check failure naming the handshake error.
async fn open_ok(t: &Target, query: &str) -> Result<WsStream, String> {
    open(t, query, How::Bearer).await.map(|(ws, _)| ws).map_err(|e| format!("cannot open the socket: {e}"))
}

async fn auth_bearer(t: &Target) -> Step {
    let mut ws = open_ok(t, "").await?;
    ping_pong(t, &mut ws, "b1").await?;
    Ok("101, and the socket answers a ping".into())
}

async fn auth_subprotocol(t: &Target) -> Step {
    let (mut ws, echoed) = open(t, "", How::Subprotocol).await.map_err(|e| match e {
        WsConnectError::SubprotocolNotEchoed(_) => {
            "the 101 has no Sec-WebSocket-Protocol answering the token.<token> offer: browsers and Node's ws abort such a handshake".to_owned()
        }
        other => format!("cannot open the socket: {other}"),
    })?;
    // Compared without printing: the offer carries the token.
    let expected = format!("token.{}", t.token.expose());
    match echoed {
        Some(e) if e == expected => {}
        Some(_) => return Err("the 101 echoed a subprotocol other than the token.<token> offer".into()),
        None => {
            return Err(
                "the 101 has no Sec-WebSocket-Protocol: browsers and Node's ws abort such a handshake".into(),
            );
        }
    }
    ping_pong(t, &mut ws, "s1").await?;
    Ok("101 with the offer echoed".into())
}

async fn expect_refused(t: &Target, how: How) -> Step {
    match open(t, "", how).await {
        Err(WsConnectError::Refused { status: 401, .. }) => Ok("HTTP 401".into()),
        Err(WsConnectError::Refused { status, .. }) => Err(format!("expected HTTP 401, got HTTP {status}")),
        Err(other) => Err(format!("expected HTTP 401, got: {other}")),
        Ok(_) => Err("expected HTTP 401, the socket was opened".into()),
    }
}

async fn ping(t: &Target) -> Step {
    let mut ws = open_ok(t, "").await?;
    ping_pong(t, &mut ws, "conformance-ping-7").await?;
    Ok("pong echoed the id".into())
}

async fn ping_pong(t: &Target, ws: &mut WsStream, id: &str) -> Result<(), String> {
    send(ws, json!({"type": kind::PING, "id": id})).await?;
    let pong = wait_for(t, ws, |f| f.kind == kind::PONG, "pong").await?;
    match pong.id.as_deref() {
        Some(got) if got == id => Ok(()),
        other => Err(format!("pong carries id {other:?}, expected {id:?}")),
    }
}

async fn envelope(t: &Target, tag: &str) -> Step {
    let session = format!("conf-env-{tag}");
    let mut ws = open_ok(t, &format!("session_id={session}")).await?;
    send(&mut ws, send_frame("r-env", None, "envelope check")).await?;
    let frames = read_turn(t, &mut ws, false).await?;
    send(&mut ws, json!({"type": kind::PING, "id": "env-p"})).await?;
    let pong = wait_for(t, &mut ws, |f| f.kind == kind::PONG, "pong").await?;
    for f in frames.iter().chain(std::iter::once(&pong)) {
        match f.timestamp {
            Some(ms) if ms > 1_000_000_000_000 => {}
            Some(other) => {
                return Err(format!("{} has timestamp {other}, expected Unix milliseconds", f.kind));
            }
            None => return Err(format!("{} has no timestamp", f.kind)),
        }
    }
    Ok(format!("{} frames checked", frames.len() + 1))
}

async fn chat_turn(t: &Target, tag: &str) -> Step {
    let session = format!("conf-turn-{tag}");
    let text = format!("conformance {tag}");
    let mut ws = open_ok(t, &format!("session_id={session}")).await?;
    send(&mut ws, send_frame("r-turn", None, &text)).await?;
    let frames = read_turn(t, &mut ws, false).await?;
    let answer = Answer::of(&frames)?;
    let echo = if answer.text == text { ", the echo of the message" } else { "" };
    Ok(format!("{} frames, an answer of {} chars{echo}", frames.len(), answer.text.chars().count()))
}

async fn v1_frames_only(t: &Target, tag: &str) -> Step {
    let session = format!("conf-v1-{tag}");
    let mut ws = open_ok(t, &format!("session_id={session}")).await?;
    send(&mut ws, send_frame("r-v1", None, "v1 only")).await?;
    read_turn(t, &mut ws, false).await?;
    // A v2-only frame would follow typing.stop at once: give it a moment, then ping.
    send(&mut ws, json!({"type": kind::PING, "id": "v1-p"})).await?;
    let mut seen = Vec::new();
    let pong = wait_for_logged(t, &mut ws, |f| f.kind == kind::PONG, "pong", &mut seen).await?;
    drop(pong);
    if seen.iter().any(|k| k == kind::MESSAGE_DONE) {
        return Err("a protocol-1 socket received message.done".into());
    }
    Ok("no message.done after the turn".into())
}

async fn invalid_message(t: &Target) -> Step {
    let mut ws = open_ok(t, "").await?;
    ws.send(Message::text("this is not JSON")).await.map_err(|e| format!("send failed: {e}"))?;
    let err = wait_for(t, &mut ws, |f| f.kind == kind::ERROR, "error").await?;
    check_code(&err, "invalid_message")?;
    ping_pong(t, &mut ws, "after-invalid").await.map_err(|e| format!("the socket did not stay open: {e}"))?;
    Ok("error invalid_message, then a pong".into())
}

async fn error_for(t: &Target, frame: Value, code: &str, request_id: bool) -> Step {
    let id = frame["id"].as_str().unwrap_or_default().to_owned();
    let mut ws = open_ok(t, "").await?;
    send(&mut ws, frame).await?;
    let err = wait_for(t, &mut ws, |f| f.kind == kind::ERROR, "error").await?;
    check_code(&err, code)?;
    if request_id && err.text("request_id") != Some(id.as_str()) {
        return Err(format!("error {code} carries request_id {:?}, expected {id:?}", err.text("request_id")));
    }
    ping_pong(t, &mut ws, "after-error").await.map_err(|e| format!("the socket did not stay open: {e}"))?;
    Ok(if request_id { format!("error {code} with request_id") } else { format!("error {code}") })
}

fn check_code(err: &Frame, expected: &str) -> Result<(), String> {
    match err.text("code") {
        Some(c) if c == expected => Ok(()),
        other => Err(format!("expected error code {expected:?}, got {other:?} ({:?})", err.text("message"))),
    }
}

async fn session_query(t: &Target, tag: &str) -> Step {
    let session = format!("conf-q-{tag}");
    let mut ws = open_ok(t, &format!("session_id={session}")).await?;
    send(&mut ws, send_frame("r-q", None, "which session")).await?;
    let frames = read_turn(t, &mut ws, false).await?;
    all_in_session(&frames, &session)?;
    Ok(format!("the answer carries session_id {session}"))
}

async fn session_envelope(t: &Target, tag: &str) -> Step {
    let session = format!("conf-e-{tag}");
    let mut ws = open_ok(t, "").await?;
    send(&mut ws, send_frame("r-e", Some(&session), "envelope session")).await?;
    let frames = read_turn(t, &mut ws, false).await?;
    all_in_session(&frames, &session)?;
    Ok(format!("the answer carries session_id {session}"))
}

fn all_in_session(frames: &[Frame], session: &str) -> Result<(), String> {
    for f in frames {
        if f.session_id.as_deref() != Some(session) {
            return Err(format!("{} carries session_id {:?}, expected {session:?}", f.kind, f.session_id));
        }
    }
    Ok(())
}

async fn fanout(t: &Target, tag: &str) -> Step {
    let session = format!("conf-fan-{tag}");
    let mut a = open_ok(t, &format!("session_id={session}")).await?;
    let mut b = open_ok(t, &format!("session_id={session}")).await?;
    // Both sockets are registered once each has answered a ping.
    ping_pong(t, &mut a, "fa").await?;
    ping_pong(t, &mut b, "fb").await?;
    send(&mut a, send_frame("r-fan", None, "to every socket")).await?;
    let on_a = read_turn(t, &mut a, false).await?;
    let on_b = read_turn(t, &mut b, false).await.map_err(|e| format!("the second socket: {e}"))?;
    let (a, b) = (Answer::of(&on_a)?, Answer::of(&on_b).map_err(|e| format!("the second socket: {e}"))?);
    if a.text != b.text {
        return Err("the two sockets received different answers".into());
    }
    Ok("both sockets received the answer".into())
}

async fn v2_turn(t: &Target, tag: &str) -> Step {
    let session = format!("conf-v2-{tag}");
    let mut ws = open_ok(t, &format!("session_id={session}&protocol=2")).await?;
    send(&mut ws, send_frame("r-v2", None, "protocol two")).await?;
    // Up to typing.stop first: a server without protocol 2 fails here at once, on `seq`.
    let mut frames = read_turn(t, &mut ws, false).await?;
    check_seq_and_reply_to(&frames, "r-v2")?;
    let done =
        wait_for(t, &mut ws, |f| f.kind == kind::MESSAGE_DONE, "message.done after typing.stop").await?;
    frames.push(done);
    check_seq_and_reply_to(&frames, "r-v2")?;
    Ok(format!("{} frames with increasing seq, ending with message.done", frames.len()))
}

fn check_seq_and_reply_to(frames: &[Frame], reply_to: &str) -> Result<(), String> {
    let mut last: Option<u64> = None;
    for f in frames {
        let Some(seq) = f.payload.get("seq").and_then(Value::as_u64) else {
            return Err(format!("{} has no payload.seq", f.kind));
        };
        if let Some(previous) = last.filter(|&l| seq <= l) {
            return Err(format!("{} has seq {seq} after {previous}", f.kind));
        }
        last = Some(seq);
        if f.text("reply_to") != Some(reply_to) {
            return Err(format!("{} has reply_to {:?}, expected {reply_to:?}", f.kind, f.text("reply_to")));
        }
    }
    Ok(())
}

async fn v2_replay(t: &Target, tag: &str) -> Step {
    let session = format!("conf-rp-{tag}");
    let query = format!("session_id={session}&protocol=2");
    let mut ws = open_ok(t, &query).await?;
    send(&mut ws, send_frame("r-rp", None, "replay me")).await?;
    let frames = read_turn(t, &mut ws, false).await?;
    let Some(first) = frames.first().and_then(|f| f.payload.get("seq")).and_then(Value::as_u64) else {
        return Err("the turn's first frame has no payload.seq to replay from".into());
    };
    let mut frames = frames;
    frames.push(wait_for(t, &mut ws, |f| f.kind == kind::MESSAGE_DONE, "message.done").await?);
    drop(ws);
    let mut again = open_ok(t, &format!("{query}&last_seq={first}")).await?;
    let replayed = read_turn_from(t, &mut again, true, false).await?;
    let expected: Vec<&str> = frames.iter().skip(1).map(|f| f.kind.as_str()).collect();
    let got: Vec<&str> = replayed.iter().map(|f| f.kind.as_str()).collect();
    if got != expected {
        return Err(format!("replayed {got:?}, expected {expected:?}"));
    }
    Ok(format!("{} frames replayed after seq {first}", replayed.len()))
}

/// The text of a turn's answer: the last content of each non-thought bubble, in order,
/// bubbles withdrawn by `message.delete` left out.
struct Answer {
    text: String,
}

impl Answer {
    fn of(frames: &[Frame]) -> Result<Answer, String> {
        let mut bubbles: Vec<(String, String)> = Vec::new();
        let mut created = false;
        for f in frames {
            match f.kind.as_str() {
                k if k == kind::MESSAGE_CREATE => {
                    let id = f
                        .text("message_id")
                        .filter(|id| !id.is_empty())
                        .ok_or("message.create has no message_id")?;
                    let content = f.text("content").ok_or("message.create has no string content")?;
                    created = true;
                    if !f.is_thought_or_tool_calls() {
                        bubbles.push((id.to_owned(), content.to_owned()));
                    }
                }
                k if k == kind::MESSAGE_UPDATE => {
                    let id = f.text("message_id").ok_or("message.update has no message_id")?;
                    let content = f.text("content").ok_or("message.update has no string content")?;
                    if let Some(b) = bubbles.iter_mut().find(|(b, _)| b == id) {
                        b.1 = content.to_owned();
                    } else if !f.is_thought_or_tool_calls() && !created {
                        return Err(format!("message.update of {id:?} before any message.create"));
                    }
                }
                k if k == kind::MESSAGE_DELETE => {
                    if let Some(id) = f.text("message_id") {
                        bubbles.retain(|(b, _)| b != id);
                    }
                }
                _ => {}
            }
        }
        if bubbles.is_empty() {
            return Err("the turn ended without an answer (no message.create)".into());
        }
        Ok(Answer { text: bubbles.into_iter().map(|(_, c)| c).collect::<Vec<_>>().join("\n") })
    }
}

fn send_frame(id: &str, session: Option<&str>, content: &str) -> Value {
    let mut frame = json!({"type": kind::MESSAGE_SEND, "id": id, "payload": {"content": content}});
    if let Some(s) = session {
        frame["session_id"] = json!(s);
    }
    frame
}

async fn send(ws: &mut WsStream, frame: Value) -> Result<(), String> {
    ws.send(Message::text(frame.to_string())).await.map_err(|e| format!("send failed: {e}"))
}

/// Reads one turn: from `typing.start` (or the first message frame) to `typing.stop`, and
/// with `v2` on to `message.done`. An `error` frame for the turn fails it.
async fn read_turn(t: &Target, ws: &mut WsStream, v2: bool) -> Result<Vec<Frame>, String> {
    read_turn_from(t, ws, v2, true).await
}

async fn read_turn_from(
    t: &Target,
    ws: &mut WsStream,
    v2: bool,
    needs_start: bool,
) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    let mut stopped = false;
    for _ in 0..MAX_FRAMES_PER_WAIT {
        let f = next_frame(t, ws).await.map_err(|e| {
            let seen: Vec<&str> = frames.iter().map(|f: &Frame| f.kind.as_str()).collect();
            let want = if stopped { "message.done" } else { "typing.stop" };
            format!("{e} while waiting for {want} (seen: {seen:?})")
        })?;
        match f.kind.as_str() {
            k if k == kind::PONG => continue,
            k if k == kind::ERROR => {
                return Err(format!("error {:?}: {:?}", f.text("code"), f.text("message")));
            }
            k if k == kind::TYPING_STOP => {
                frames.push(f);
                stopped = true;
                if !v2 {
                    break;
                }
            }
            k if k == kind::MESSAGE_DONE => {
                frames.push(f);
                if v2 && stopped {
                    break;
                }
                if v2 {
                    return Err("message.done came before typing.stop".into());
                }
            }
            _ => frames.push(f),
        }
    }
    if needs_start && frames.first().is_some_and(|f| f.kind != kind::TYPING_START) {
        return Err(format!("the turn began with {}, expected typing.start", frames[0].kind));
    }
    Ok(frames)
}

async fn wait_for(
    t: &Target,
    ws: &mut WsStream,
    want: impl Fn(&Frame) -> bool,
    what: &str,
) -> Result<Frame, String> {
    let mut seen = Vec::new();
    wait_for_logged(t, ws, want, what, &mut seen).await
}

async fn wait_for_logged(
    t: &Target,
    ws: &mut WsStream,
    want: impl Fn(&Frame) -> bool,
    what: &str,
    seen: &mut Vec<String>,
) -> Result<Frame, String> {
    for _ in 0..MAX_FRAMES_PER_WAIT {
        let f =
            next_frame(t, ws).await.map_err(|e| format!("{e} while waiting for {what} (seen: {seen:?})"))?;
        if want(&f) {
            return Ok(f);
        }
        seen.push(f.kind.clone());
    }
    Err(format!("no {what} among {MAX_FRAMES_PER_WAIT} frames"))
}

/// The next text frame as a [`Frame`], within the step timeout.
async fn next_frame(t: &Target, ws: &mut WsStream) -> Result<Frame, String> {
    let deadline = Instant::now() + t.step_timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("nothing within {} s", t.step_timeout.as_secs_f32()))?;
        match msg {
            Some(Ok(Message::Text(text))) => {
                return Frame::parse(&text)
                    .map_err(|_| "the server sent a text frame that is not a JSON object".into());
            }
            Some(Ok(Message::Binary(_))) => return Err("the server sent a binary frame".into()),
            Some(Ok(Message::Close(close))) => {
                return Err(match close {
                    Some(c) => format!("the server closed the socket ({} {})", u16::from(c.code), c.reason),
                    None => "the server closed the socket".into(),
                });
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("the socket failed: {e}")),
            None => return Err("the socket ended".into()),
        }
    }
}

/// 8 random hex digits: each run's sessions are its own.
fn random_tag() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
