//! The Pico channel endpoint: the upgrade checks (credential → origin → capacity) and the
//! life of one socket (reader loop, writer task with per-write deadline, pings, bounded
//! send queue bounded in frames and bytes (`outbox`), close codes).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use picoclaw_auth::Principal;

use crate::authenticated::{Authenticated, PicoSocket};
use picoclaw_pico::{ClientFrame, Frame, decode_client};
use tokio::sync::{Semaphore, mpsc};

use crate::hub::{CloseReason, ConnHandle, close};
use crate::outbox::{Bounds, Outbox};
use crate::state::Shared;
use crate::turn::{Turn, run_turn};
use picoclaw_wire::{ApiError, Code};

/// Initial read buffer of one socket (see `upgrade`).
const READ_BUFFER: usize = 4 * 1024;

/// Bytes of queued frames the socket buffers before writing them out (a larger frame
/// is written at once).
const WRITE_BUFFER: usize = 16 * 1024;

/// Most queued frames sent in one batch (one flush).
const WRITE_BATCH_FRAMES: usize = 32;

/// Turns one socket may have queued or running at once.
const TURNS_PER_SOCKET: usize = 4;

/// Query parameters of `/pico/ws`.
#[derive(Debug, Default)]
struct WsQuery {
    session_id: Option<String>,
    protocol: Option<String>,
    last_seq: Option<u64>,
}

fn parse_query(query: Option<&str>) -> WsQuery {
    let mut q = WsQuery::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "session_id" if !v.is_empty() => q.session_id = Some(v.into_owned()),
            "protocol" => q.protocol = Some(v.into_owned()),
            "last_seq" => q.last_seq = v.parse().ok(),
            _ => {}
        }
    }
    q
}

/// A new session id: 128 random bits, so no session file can already hold it. `None`
/// when the OS has no randomness to give (the socket is refused rather than handed a
/// guessable or shared id).
pub(crate) fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

/// Releases a connection slot when dropped.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `GET /pico/ws` (also `/pico/ws/` and `/pico`). The gate (credential, in the order the
/// endpoint table gives) runs first, as the extractor; then origin, session ownership and
/// capacity.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<PicoSocket>,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let live = shared.live();
    let pico = live.settings.pico.clone();
    let Authenticated { principal, echo, .. } = auth;
    if let Err(e) = check_origin(&headers, &pico.allow_origins) {
        return e.into_response();
    }
    let query = parse_query(uri.query());
    // Without `?session_id=` the socket starts unbound, on a random id that is neither
    // claimed nor stored: the first `message.send` binds it (to its envelope `session_id`,
    // as upstream clients send it, or to that random id), so a socket that never chats
    // leaves no session behind.
    let bound = query.session_id.is_some();
    let Some(session_id) = query.session_id.or_else(random_id) else {
        return ApiError::new(
            Code::NoRandomness,
            "the OS random number generator failed; cannot make a session id",
        )
        .into_response();
    };
    let stored_seq = if bound {
        match claim(&live.engine, &session_id, &principal).await {
            Ok(seq) => seq,
            Err(e) => return session_error(&e).into_response(),
        }
    } else {
        0
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::new(
                Code::WebSocketRequired,
                "this endpoint needs a WebSocket upgrade (GET with Connection: Upgrade, Upgrade: websocket)",
            )
            .into_response();
        }
    };
    // Reserve a connection slot before upgrading, so the 101 is only sent when it fits.
    let before = shared.connections.fetch_add(1, Ordering::AcqRel);
    let slot = Slot(shared.clone());
    if before >= pico.max_connections {
        return ApiError::new(
            Code::TooManyConnections,
            format!("the Pico channel is at its limit of {} connections", pico.max_connections),
        )
        .into_response();
    }
    let v2 = query.protocol.as_deref() == Some("2");
    let ws = ws
        .max_frame_size(pico.max_frame_bytes)
        .max_message_size(pico.max_frame_bytes)
        // tungstenite allocates (and zeroes) its read buffer up front: the 128 KiB default
        // was ~134 KiB of RSS per idle socket. Frames larger than this still grow it.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(pico.max_frame_bytes.saturating_mul(2).max(64 * 1024));
    let ws = match echo {
        Some(offer) => ws.protocols([offer]),
        None => ws,
    };
    let params = Params {
        stored_seq,
        session_id,
        bound,
        principal,
        v2,
        last_seq: query.last_seq,
        bounds: Bounds {
            frames: pico.send_queue,
            bytes: pico.send_queue_bytes,
            total_bytes: pico.send_queue_total_bytes,
        },
        ping_interval: pico.ping_interval,
        read_timeout: pico.read_timeout,
        write_timeout: pico.write_timeout,
    };
    ws.on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| serve_socket(shared, socket, params, slot))
}

/// Checks that `principal` may use `session_id`, claiming it when new: a cached session
/// knows its durable owner; a new one is claimed in the store (the owner committed with
/// the other writes waiting). Answers the last stored `seq` of the session.
async fn claim(
    engine: &picoclaw_agent::Engine,
    session_id: &str,
    principal: &Principal,
) -> Result<u64, picoclaw_agent::SessionError> {
    match engine.claim_cached(session_id, &principal.id) {
        Some(claimed) => claimed,
        None => engine.claim(session_id, &principal.id).await,
    }
}

/// The HTTP answer for a session that cannot be used.
pub(crate) fn session_error(e: &picoclaw_agent::SessionError) -> ApiError {
    use picoclaw_agent::SessionError as E;
    let code = match e {
        E::NotFound => Code::NoSuchSession,
        E::Reserved => Code::ReservedSessionId,
        E::InvalidId(_) => Code::InvalidSessionId,
        E::Full(_) => Code::StorageFull,
        E::RateLimited { .. } => Code::RateLimited,
        _ => Code::SessionStorage,
    };
    ApiError::new(code, e.to_string())
}

fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    if allowed.is_empty() || allowed.iter().any(|o| o == "*") {
        return Ok(());
    }
    // Non-browser clients send no Origin; cross-site hijacking needs a browser, which always does.
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("");
    // Patterns: exact, `scheme://*`, `scheme://*.domain` (picoclaw_config::origin).
    if picoclaw_config::origin::origin_allowed(allowed, origin) {
        Ok(())
    } else {
        Err(ApiError::new(Code::OriginNotAllowed, "this Origin is not in channels.pico.allow_origins"))
    }
}

struct Params {
    /// The highest `seq` the store holds for the session (frames continue after it).
    stored_seq: u64,
    session_id: String,
    /// False: opened without `?session_id=`; `session_id` is a provisional random id,
    /// unclaimed, until the first `message.send` binds the socket.
    bound: bool,
    principal: Principal,
    v2: bool,
    last_seq: Option<u64>,
    /// Send queue bounds (frames, bytes, bytes of all sockets).
    bounds: Bounds,
    ping_interval: Duration,
    read_timeout: Duration,
    write_timeout: Duration,
}

async fn serve_socket(shared: Arc<Shared>, socket: WebSocket, p: Params, slot: Slot) {
    let _slot = slot;
    let out = Arc::new(Outbox::new(p.bounds, shared.queued.clone()));
    let (closer, closer_rx) = mpsc::channel::<CloseReason>(1);
    let (closing, mut closed) = tokio::sync::watch::channel(None);
    let id = shared.hub.next_id();
    let handle = ConnHandle {
        id,
        out: out.clone(),
        closer: closer.clone(),
        closing: Arc::new(closing),
        v2: p.v2,
        principal: p.principal.clone(),
    };
    let joined = shared.hub.join(&p.session_id, handle.clone(), p.last_seq, p.stored_seq);
    // A reload that ran between the gate and the join swept the hub before this socket
    // was in it: check the credential against the state in force now.
    if let Err(e) = shared.live().verifier.still_valid(&p.principal) {
        let why = close::for_refused(&p.principal.id, &e);
        handle.close(why.code, why.reason);
    }
    tracing::debug!(conn = id, session = %p.session_id, credential = %p.principal.id, v2 = p.v2, "pico socket open");
    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, out.clone(), closer_rx, p.ping_interval, p.write_timeout));

    if joined.replay_gap {
        let gap = Frame::error(
            Some(&p.session_id),
            "replay_gap",
            "some frames after last_seq are no longer buffered",
            None,
        );
        handle.send(Utf8Bytes::from(gap.encode()), None);
    }
    for frame in joined.replay {
        if !handle.send(frame, None) {
            break;
        }
    }

    let mut session = p.session_id.clone();
    let mut bound = p.bound;
    let mut turn_lock = joined.turn_lock;
    let turns = Arc::new(Semaphore::new(TURNS_PER_SOCKET));
    let mut running: Vec<Running> = Vec::new();
    loop {
        if closed.borrow_and_update().is_some() {
            break;
        }
        let next = tokio::select! {
            biased;
            _ = closed.changed() => break,
            next = tokio::time::timeout(p.read_timeout, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                handle.close(close::GOING_AWAY, "read timeout: no frame or pong within read_timeout");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let (code, reason) = classify(&e);
                handle.close(code, reason);
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => {
                running.retain(|t| !t.task.is_finished());
                let decoded = decode_client(text.as_str());
                if !bound && let Ok(ClientFrame::Send { id: request_id, session_id: envelope, .. }) = &decoded
                {
                    let target = envelope.clone().unwrap_or_else(|| session.clone());
                    match claim(&shared.live().engine, &target, &p.principal).await {
                        Ok(stored_seq) => {
                            turn_lock =
                                shared.hub.rebind(&session, turn_lock, handle.clone(), &target, stored_seq);
                            tracing::debug!(conn = id, session = %target, "pico socket bound by its first message");
                            session = target;
                            bound = true;
                        }
                        Err(e) => {
                            // The socket stays unbound: the client may try another id.
                            let frame =
                                Frame::error(Some(&session), e.code(), &e.to_string(), request_id.as_deref());
                            // Over its budget the socket was closed (1008) by `send`.
                            if !handle.send(Utf8Bytes::from(frame.encode()), None) {
                                break;
                            }
                            continue;
                        }
                    }
                }
                match on_text(&shared, &session, &handle, &turn_lock, &turns, &running, decoded) {
                    // Over its budget the socket was closed (1008) by `send`.
                    Reply::Frame(frame) if !handle.send(Utf8Bytes::from(frame.encode()), None) => break,
                    Reply::Frame(_) | Reply::Nothing => {}
                    Reply::Turn(turn) => running.push(turn),
                }
            }
            Message::Binary(_) => {
                let frame = Frame::error(
                    Some(&session),
                    "invalid_message",
                    "binary frames are not supported; send JSON text frames",
                    None,
                );
                handle.send(Utf8Bytes::from(frame.encode()), None);
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    // A socket closed because its credential ended takes its answers in flight with it;
    // one the client closed lets them finish (other sockets of the session get them).
    if closed.borrow().is_some_and(close::credential_ended) {
        for turn in &running {
            turn.task.abort();
        }
    }
    shared.hub.leave(&session, id);
    if !bound {
        shared.hub.forget_unused(&session, turn_lock);
    }
    out.finish();
    drop(handle);
    drop(closer);
    // Give the writer a moment to flush the close frame, then drop the socket regardless:
    // a client that never reads must not keep it open.
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(2), &mut writer).await.is_err() {
        writer.abort();
    }
    tracing::debug!(conn = id, "pico socket closed");
}

/// Maps a read error to a close code.
fn classify(e: &axum::Error) -> (u16, &'static str) {
    let text = e.to_string().to_ascii_lowercase();
    if text.contains("too long")
        || text.contains("too big")
        || text.contains("capacity")
        || text.contains("size")
    {
        (close::TOO_BIG, "frame larger than channels.pico.max_frame_bytes")
    } else if text.contains("utf") {
        (1007, "text frame is not valid UTF-8")
    } else {
        (1002, "protocol error")
    }
}

/// What a text frame from the client produced.
enum Reply {
    /// A frame for this socket only (pong, error).
    Frame(Frame),
    /// A turn was started.
    Turn(Running),
    /// Nothing to answer here (a cancelled turn answers for itself).
    Nothing,
}

/// A turn this socket started (at most [`TURNS_PER_SOCKET`]), cancellable with
/// `message.delete` naming its `message_id` or its request id.
struct Running {
    task: tokio::task::AbortHandle,
    message_id: String,
    request_id: Option<String>,
    cancel: tokio::sync::watch::Sender<bool>,
}

fn on_text(
    shared: &Arc<Shared>,
    session_id: &str,
    handle: &ConnHandle,
    turn_lock: &Arc<tokio::sync::Mutex<()>>,
    turns: &Arc<Semaphore>,
    running: &[Running],
    decoded: Result<ClientFrame, picoclaw_pico::DecodeError>,
) -> Reply {
    match decoded {
        Ok(ClientFrame::Delete { id, message_id }) => {
            let turn = running.iter().find(|t| {
                !t.task.is_finished()
                    && !*t.cancel.borrow()
                    && (t.message_id == message_id || t.request_id.as_deref() == Some(&message_id))
            });
            match turn {
                Some(turn) => {
                    let _ = turn.cancel.send(true);
                    Reply::Nothing
                }
                None => Reply::Frame(Frame::error(
                    Some(session_id),
                    "message_not_found",
                    "no answer with this message_id is running for this socket",
                    id.as_deref(),
                )),
            }
        }
        Err(e) => Reply::Frame(Frame::error(Some(session_id), e.code(), &e.to_string(), e.request_id())),
        Ok(ClientFrame::Ping { id }) => Reply::Frame(Frame::pong(session_id, id)),
        Ok(ClientFrame::Send { id, session_id: envelope, content, media }) => {
            if envelope.as_deref().is_some_and(|s| s != session_id) {
                return Reply::Frame(Frame::error(
                    Some(session_id),
                    "session_mismatch",
                    "frame session_id differs from the session this socket is bound to; open another socket for it",
                    id.as_deref(),
                ));
            }
            if shared.shutting_down.load(Ordering::Acquire) {
                return Reply::Frame(Frame::error(
                    Some(session_id),
                    "shutting_down",
                    "the gateway is shutting down",
                    id.as_deref(),
                ));
            }
            let Ok(permit) = turns.clone().try_acquire_owned() else {
                return Reply::Frame(Frame::error(
                    Some(session_id),
                    "busy",
                    "too many messages in flight on this socket; wait for the previous answers",
                    id.as_deref(),
                ));
            };
            let (cancel, cancel_rx) = tokio::sync::watch::channel(false);
            let message_id = crate::turn::new_message_id();
            let turn = Turn {
                session_id: session_id.to_owned(),
                request_id: id.clone(),
                message_id: message_id.clone(),
                cancel: cancel_rx,
                text: content,
                media,
                principal: handle.principal.id.clone(),
                reply: handle.clone(),
            };
            let task = tokio::spawn(run_turn(shared.clone(), turn, turn_lock.clone(), permit)).abort_handle();
            Reply::Turn(Running { task, message_id, request_id: id, cancel })
        }
    }
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    out: Arc<Outbox>,
    mut closer: mpsc::Receiver<CloseReason>,
    ping_interval: Duration,
    write_timeout: Duration,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    loop {
        let message = tokio::select! {
            biased;
            reason = closer.recv() => {
                let frame = reason.map(|r| CloseFrame { code: r.code, reason: Utf8Bytes::from(truncate(&r.reason)) });
                let _ = tokio::time::timeout(write_timeout, sink.send(Message::Close(frame))).await;
                break;
            }
            text = out.recv() => match text {
                Some(text) => Message::Text(text),
                None => {
                    let _ = tokio::time::timeout(write_timeout, sink.send(Message::Close(None))).await;
                    break;
                }
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        // Frames already queued behind this one (a turn queues typing.start,
        // message.create and typing.stop back to back) leave in the same socket write; the
        // whole batch shares one write deadline.
        let batch = async {
            sink.feed(message).await?;
            for _ in 1..WRITE_BATCH_FRAMES {
                let Some(text) = out.try_recv() else { break };
                sink.feed(Message::Text(text)).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(write_timeout, batch).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::debug!("write timed out; closing socket");
                break;
            }
        }
    }
    // A peer that stopped reading would block a plain close forever and keep the socket.
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
}

/// Close reasons are limited to 123 bytes by the protocol.
fn truncate(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}
