//! The OpenAI-compatible endpoints: `POST /v1/chat/completions` (JSON, or server-sent
//! events of `chat.completion.chunk`s with `stream: true`) and `GET /v1/models`.
//!
//! A completion is a turn of a session, run exactly like a Pico `message.send`: the
//! request joins the session in the hub as one more protocol-2 subscriber, the turn takes
//! the session's turn lock, the answer is recorded (durably) before the end, and sockets
//! open on the same session see it live. The last message of the request is the one
//! answered; the agent's context is the session's stored history, not the messages the
//! client resends (docs/gateway.md).
//!
//! The session is the `X-Picoclaw-Session` header, else the `user` field, else a new
//! one; the answer's `X-Picoclaw-Session` header names it. Ownership is the Pico
//! channel's: a session belongs to the credential that opened it first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use picoclaw_pico::{Frame, kind};
use picoclaw_wire::openai::{
    AssistantMessage, Choice, Chunk, ChunkChoice, Completion, CompletionRequest, Content, Delta, Model,
    ModelList, Usage,
};
use picoclaw_wire::{ApiError, Code};
use tokio::sync::{Semaphore, mpsc};

use crate::authenticated::{Authenticated, Chat};
use crate::conn::{random_id, session_error};
use crate::hub::{CloseReason, ConnHandle};
use crate::outbox::{Bounds, Outbox};
use crate::state::Shared;
use crate::turn::{Turn, run_turn};

/// The header that selects the session (request) and names it (answer).
pub(crate) const SESSION_HEADER: HeaderName = HeaderName::from_static("x-picoclaw-session");

/// Longest accepted request body: clients resend the whole conversation each time.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;

/// What the request body must look like, for error messages.
const EXPECTED: &str =
    r#"{"model": "...", "messages": [{"role": "user", "content": "..."}], "stream": false}"#;

/// `GET /v1/models`: the one model the gateway serves.
pub(crate) async fn models(State(shared): State<Arc<Shared>>, _auth: Authenticated<Chat>) -> Json<ModelList> {
    let model = Model {
        id: shared.live().engine.agent_name().to_owned(),
        object: "model",
        created: unix_secs().saturating_sub(shared.uptime_secs()),
        owned_by: "picoclaw",
    };
    Json(ModelList { object: "list", data: vec![model] })
}

/// `POST /v1/chat/completions`.
pub(crate) async fn completions(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Chat>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CompletionRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Code::BadRequest,
            format!("the body is not a chat completion request ({e}); expected {EXPECTED}"),
        )
    })?;
    let live = shared.live();
    let text = last_user_text(&request)?;
    if text.len() > live.settings.pico.max_frame_bytes {
        return Err(ApiError::new(
            Code::TooLarge,
            format!(
                "the last message is {} bytes; at most {} (channels.pico.max_frame_bytes)",
                text.len(),
                live.settings.pico.max_frame_bytes
            ),
        ));
    }
    let session_id = session_of(&headers, &request)?;
    let stored_seq = match live.engine.claim_cached(&session_id, &auth.principal.id) {
        Some(claimed) => claimed,
        None => live.engine.claim(&session_id, &auth.principal.id).await,
    }
    .map_err(|e| session_error(&e))?;
    if shared.shutting_down.load(Ordering::Acquire) {
        return Err(ApiError::new(Code::ShuttingDown, "the gateway is shutting down"));
    }

    // Join the session as a protocol-2 subscriber and run the turn as a socket would.
    let pico = &live.settings.pico;
    let bounds = Bounds {
        frames: pico.send_queue,
        bytes: pico.send_queue_bytes,
        total_bytes: pico.send_queue_total_bytes,
    };
    let out = Arc::new(Outbox::new(bounds, shared.queued.clone()));
    let (closer, closer_rx) = mpsc::channel::<CloseReason>(1);
    let (closing, closed) = tokio::sync::watch::channel(None);
    let handle = ConnHandle {
        id: shared.hub.next_id(),
        out: out.clone(),
        closer,
        closing: Arc::new(closing),
        v2: true,
        principal: auth.principal.clone(),
    };
    let joined = shared.hub.join(&session_id, handle.clone(), None, stored_seq);
    let member = Member {
        shared: shared.clone(),
        session_id: session_id.clone(),
        conn: handle.id,
        _closer: closer_rx,
    };
    // Checked against the state in force now: a revocation or suspension during the claim
    // swept the hub before this request was in it.
    if let Err(e) = shared.live().verifier.still_valid(&auth.principal) {
        return Err(ApiError::from(e));
    }
    // Unique in this process (the hub's connection id), unguessable across processes.
    let request_id = format!("chatcmpl-{}{}", handle.id, random_id().unwrap_or_default());
    let permit =
        Arc::new(Semaphore::new(1)).try_acquire_owned().map_err(|_| ApiError::internal(crate::LOG))?;
    let turn = Turn {
        session_id: session_id.clone(),
        request_id: Some(request_id.clone()),
        text,
        media: Vec::new(),
        principal: auth.principal.id.clone(),
        reply: handle,
        message_id: crate::turn::new_message_id(),
        cancel: tokio::sync::watch::channel(false).1,
    };
    tokio::spawn(run_turn(shared.clone(), turn, joined.turn_lock, permit));

    let mut answer = Answer { out, closed, request_id, _member: member, text: String::new() };
    let model = live.engine.agent_name().to_owned();
    // Nothing is sent before the turn starts answering, so a refusal (rate limit, full
    // storage, revoked credential) is a plain HTTP error, not a broken stream.
    let first = answer.next().await;
    if let Step::Failed(e) = first {
        return Err(e);
    }
    let created = unix_secs();
    let mut response = if request.stream {
        stream(answer, first, model, created).into_response()
    } else {
        let mut last = first;
        loop {
            match last {
                Step::Done => break,
                Step::Failed(e) => return Err(e),
                Step::Text(_) | Step::Ended => last = answer.next().await,
            }
        }
        let completion = Completion {
            id: answer.request_id.clone(),
            object: "chat.completion",
            created,
            model,
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage { role: "assistant", content: std::mem::take(&mut answer.text) },
                finish_reason: "stop",
            }],
            usage: Usage::default(),
        };
        Json(completion).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&session_id) {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    Ok(response)
}

/// The SSE answer: the first event already read, then the rest as they come.
fn stream(answer: Answer, first: Step, model: String, created: u64) -> impl IntoResponse {
    let id = answer.request_id.clone();
    let chunk = move |delta: Delta<'_>, finish: Option<&'static str>| {
        let chunk = Chunk {
            id: &id,
            object: "chat.completion.chunk",
            created,
            model: &model,
            choices: [ChunkChoice { index: 0, delta, finish_reason: finish }],
        };
        Event::default().data(serde_json::to_string(&chunk).unwrap_or_default())
    };
    let opening = chunk(Delta { role: Some("assistant"), content: Some("") }, None);
    let state = (answer, Some(first), false);
    let events = futures_util::stream::unfold(state, move |(mut answer, pending, finished)| {
        let chunk = chunk.clone();
        async move {
            if finished {
                return None;
            }
            let event = match pending {
                Some(event) => event,
                None => answer.next().await,
            };
            let out = match event {
                Step::Text(delta) => (chunk(Delta { role: None, content: Some(&delta) }, None), false),
                Step::Done => {
                    // The closing chunk, then OpenAI's end marker.
                    let last = chunk(Delta::default(), Some("stop"));
                    return Some((
                        Ok::<_, std::convert::Infallible>(last),
                        (answer, Some(Step::Ended), false),
                    ));
                }
                Step::Ended => (Event::default().data("[DONE]"), true),
                Step::Failed(e) => (Event::default().data(e.to_json()), true),
            };
            Some((Ok(out.0), (answer, None, out.1)))
        }
    });
    let events = futures_util::stream::once(async move { Ok(opening) }).chain(events);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// What the turn produced next, for this request.
enum Step {
    /// New text of the answer.
    Text(String),
    /// The answer is complete (and recorded).
    Done,
    /// After [`Step::Done`] in a stream: `[DONE]`.
    Ended,
    /// The turn failed or was refused.
    Failed(ApiError),
}

/// The frames of the turn, as they reach this request.
struct Answer {
    out: Arc<Outbox>,
    closed: tokio::sync::watch::Receiver<Option<u16>>,
    request_id: String,
    _member: Member,
    /// The answer so far (frames carry the whole text so far; deltas are cut from it).
    text: String,
}

impl Answer {
    async fn next(&mut self) -> Step {
        loop {
            let frame = tokio::select! {
                biased;
                _ = self.closed.changed() => return Step::Failed(self.closed_error()),
                frame = self.out.recv() => frame,
            };
            let Some(frame) = frame else { return Step::Failed(self.closed_error()) };
            let Ok(frame) = Frame::parse(frame.as_str()) else { continue };
            let ours = [frame.payload.get("reply_to"), frame.payload.get("request_id")]
                .into_iter()
                .flatten()
                .any(|v| v.as_str() == Some(self.request_id.as_str()));
            if !ours {
                continue;
            }
            match frame.kind.as_str() {
                // The reasoning bubble is not the answer.
                kind::MESSAGE_CREATE | kind::MESSAGE_UPDATE if frame.is_thought_or_tool_calls() => {}
                kind::MESSAGE_CREATE | kind::MESSAGE_UPDATE => {
                    let full = frame.payload.get("content").and_then(|c| c.as_str()).unwrap_or("");
                    let delta = match full.get(self.text.len()..) {
                        Some(delta) if full.starts_with(self.text.as_str()) => delta.to_owned(),
                        _ => continue,
                    };
                    if delta.is_empty() {
                        continue;
                    }
                    self.text.push_str(&delta);
                    return Step::Text(delta);
                }
                kind::MESSAGE_DONE => return Step::Done,
                kind::ERROR => return Step::Failed(frame_error(&frame)),
                _ => {}
            }
        }
    }

    fn closed_error(&self) -> ApiError {
        ApiError::new(
            Code::SessionStorage,
            "the turn ended without an answer (session deleted or credential revoked)",
        )
    }
}

/// The request's place in the hub: left when the answer is done or the client goes away
/// (the turn itself finishes and is recorded either way).
struct Member {
    shared: Arc<Shared>,
    session_id: String,
    conn: u64,
    _closer: mpsc::Receiver<CloseReason>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.shared.hub.leave(&self.session_id, self.conn);
    }
}

/// An `error` frame of the turn as an HTTP error.
fn frame_error(frame: &Frame) -> ApiError {
    let code = frame.payload.get("code").and_then(|c| c.as_str()).unwrap_or("internal");
    let message = frame.payload.get("message").and_then(|m| m.as_str()).unwrap_or("the turn failed");
    match code {
        "storage_full" => ApiError::new(Code::StorageFull, message),
        "rate_limited" => {
            let ms = frame.payload.get("retry_after_ms").and_then(|v| v.as_u64()).unwrap_or(1000);
            ApiError::rate_limited(ms.div_ceil(1000).max(1), message)
        }
        "session_storage" => ApiError::new(Code::SessionStorage, message),
        "shutting_down" => ApiError::new(Code::ShuttingDown, message),
        other => ApiError::new(Code::AgentFailed, format!("{other}: {message}")),
    }
}

/// The text of the last message, which must be the user's.
fn last_user_text(request: &CompletionRequest) -> Result<String, ApiError> {
    let Some(last) = request.messages.last() else {
        return Err(ApiError::new(Code::BadRequest, format!("`messages` is empty; expected {EXPECTED}")));
    };
    if last.role != "user" {
        return Err(ApiError::new(
            Code::BadRequest,
            format!(
                "the last message has role `{}`; the last message must be the user's (role `user`)",
                last.role
            ),
        ));
    }
    match &last.content {
        Some(Content::Text(text)) => Ok(text.clone()),
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(ApiError::new(
                            Code::BadRequest,
                            format!("content part of type `{kind}` is not supported; send text parts only"),
                        ));
                    }
                }
            }
            Ok(text)
        }
        None => Err(ApiError::new(Code::BadRequest, "the last message has no `content`")),
    }
}

/// The session: the header, else `user`, else a new id.
fn session_of(headers: &HeaderMap, request: &CompletionRequest) -> Result<String, ApiError> {
    let from_header = match headers.get(&SESSION_HEADER) {
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::new(
                Code::InvalidSessionId,
                "X-Picoclaw-Session is not a valid session id (1-128 safe characters)",
            )
        })?),
        None => None,
    };
    let chosen = from_header.map(str::to_owned).or_else(|| request.user.clone().filter(|u| !u.is_empty()));
    let id = match chosen {
        Some(id) => id,
        None => random_id().ok_or_else(|| {
            ApiError::new(
                Code::NoRandomness,
                "the OS random number generator failed; cannot make a session id",
            )
        })?,
    };
    picoclaw_agent::validate_session_id(&id).map_err(|e| session_error(&e))?;
    Ok(id)
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
