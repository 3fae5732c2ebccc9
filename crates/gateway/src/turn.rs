//! One chat turn: `typing.start`, the agent's streamed answer as `message.create` +
//! throttled `message.update`s (full text so far), `typing.stop`, and for protocol-2
//! sockets `message.done`. Every frame of the turn carries `reply_to` = the client's `id`.
//! A turn cancelled by its client (`message.delete`) stops its agent call and ends with
//! `message.delete` for its `message_id` (what upstream sends for a cancelled partial
//! answer), `typing.stop` and, for protocol 2, `message.done` with `cancelled: true`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use picoclaw_agent::Delta;
use picoclaw_pico::Frame;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::hub::close;
use crate::state::Shared;

/// Minimum spacing of `message.update` frames for one answer.
const UPDATE_EVERY: Duration = Duration::from_millis(100);

/// A request to answer.
pub(crate) struct Turn {
    pub session_id: String,
    pub request_id: Option<String>,
    pub text: String,
    pub media: Vec<String>,
    pub principal: String,
    /// The socket that sent it (refusals go only there; a turn still waiting for the
    /// session when that socket's session was deleted or its credential revoked does not
    /// run).
    pub reply: crate::hub::ConnHandle,
    /// The `message_id` of the answer.
    pub message_id: String,
    /// Turns true when the client cancels the answer.
    pub cancel: tokio::sync::watch::Receiver<bool>,
}

/// Completes when `cancel` turns true; never when its sender is gone (a socket that
/// closed lets its turns finish).
async fn cancelled(cancel: &mut tokio::sync::watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Counts a running turn, for the shutdown drain.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active_turns.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) async fn run_turn(
    shared: Arc<Shared>,
    turn: Turn,
    lock: Arc<tokio::sync::Mutex<()>>,
    _permit: OwnedSemaphorePermit,
) {
    shared.active_turns.fetch_add(1, Ordering::AcqRel);
    let _active = Active(shared.clone());
    let mut cancel = turn.cancel.clone();
    let session = turn.session_id.as_str();
    let tag = |frame: Frame| match &turn.request_id {
        Some(id) => frame.with("reply_to", id.as_str()),
        None => frame,
    };
    let send = |frame: Frame| shared.hub.broadcast(session, tag(frame), false);
    let _serial = tokio::select! {
        serial = lock.lock() => serial,
        () = cancelled(&mut cancel) => {
            // Cancelled while waiting for the session: nothing ran, nothing is recorded.
            send(Frame::message_delete(session, &turn.message_id));
            let done = Frame::message_done(session, &turn.message_id).with("cancelled", true);
            shared.hub.broadcast(session, tag(done), true);
            return;
        }
    };
    if turn.reply.closing.borrow().is_some_and(|c| c == close::SESSION_DELETED || close::credential_ended(c))
    {
        return;
    }
    let engine = shared.live().engine.clone();

    // Refused before any work: over the credential's message rate, or no room left in the
    // history. Only the socket that sent it hears why.
    if let Err(e) = engine.begin_turn(session, &turn.principal) {
        let mut frame = Frame::error(Some(session), e.code(), &e.to_string(), turn.request_id.as_deref());
        if let picoclaw_agent::SessionError::RateLimited { retry_after_ms } = e {
            frame = frame.with("retry_after_ms", retry_after_ms);
        }
        turn.reply.send(axum::extract::ws::Utf8Bytes::from(frame.encode()), None);
        return;
    }
    let user_seq = send(Frame::typing_start(session));
    let message_id = turn.message_id.clone();
    let model = engine.agent_name().to_owned();
    let mut answer_seq = 0;
    let mut stream = engine.run_turn(session, turn.text.clone(), turn.media).await;
    let mut full = String::new();
    let mut created = false;
    let mut dirty = false;
    let mut last_sent = Instant::now();
    let mut failed = false;
    let mut was_cancelled = false;
    let mut thought = Thought::new(&message_id);
    let mut files: Vec<serde_json::Value> = Vec::new();
    loop {
        let flush_at = last_sent + UPDATE_EVERY;
        let next = tokio::select! {
            next = stream.next() => next,
            () = cancelled(&mut cancel) => {
                was_cancelled = true;
                break;
            }
            _ = tokio::time::sleep_until(flush_at), if dirty => {
                send(Frame::message_update(session, &message_id, &full).with("model_name", model.as_str()));
                last_sent = Instant::now();
                dirty = false;
                continue;
            }
        };
        match next {
            Some(Ok(Delta::Thought(delta))) => {
                thought.text.push_str(&delta);
                thought.send(&send, session, &model, false);
            }
            Some(Ok(Delta::Text(delta))) => {
                // The reasoning is complete once the answer starts.
                thought.send(&send, session, &model, true);
                full.push_str(&delta);
                if !created {
                    answer_seq = send(
                        Frame::message_create(session, &message_id, &full).with("model_name", model.as_str()),
                    );
                    created = true;
                    last_sent = Instant::now();
                } else if Instant::now() >= flush_at {
                    send(
                        Frame::message_update(session, &message_id, &full).with("model_name", model.as_str()),
                    );
                    last_sent = Instant::now();
                    dirty = false;
                } else {
                    dirty = true;
                }
            }
            Some(Ok(Delta::Attachment(file))) => {
                let (name, content_type) = (file.filename.clone(), file.content_type.clone());
                let kind = if content_type.starts_with("image/") { "image" } else { "file" };
                match shared.media.put(&turn.principal, session, file) {
                    Some(id) => files.push(serde_json::json!({
                        "type": kind,
                        "url": format!("/pico/media/{id}"),
                        "filename": name,
                        "content_type": content_type,
                    })),
                    None => tracing::warn!(session = %session, "a file of the answer is too large to keep"),
                }
            }
            Some(Err(e)) => {
                tracing::warn!(session = %session, code = e.code, "agent failed: {}", e.message);
                send(Frame::error(Some(session), e.code, &e.message, turn.request_id.as_deref()));
                failed = true;
                break;
            }
            None => break,
        }
    }
    // Dropping the stream stops the agent call of a cancelled turn.
    drop(stream);
    if was_cancelled {
        // The withdrawn answer is recorded empty: the question stays in the history, the
        // partial answer (deleted on every client) does not reach the model.
        full.clear();
        dirty = false;
        if thought.created {
            send(Frame::message_delete(session, &thought.id));
        }
    } else {
        thought.send(&send, session, &model, true);
    }
    if dirty {
        send(Frame::message_update(session, &message_id, &full).with("model_name", model.as_str()));
    }
    if !created && !failed && !was_cancelled {
        answer_seq = send(Frame::message_create(session, &message_id, "").with("model_name", model.as_str()));
    }
    // Files come as upstream sends them: a message of their own carrying `attachments`.
    if !files.is_empty() && !was_cancelled {
        send(
            Frame::message_create(session, &format!("{message_id}-files"), "")
                .with("attachments", serde_json::Value::Array(files))
                .with("model_name", model.as_str()),
        );
    }
    // Recorded (committed with the turns of the other sockets, one sync) before the
    // end-of-turn frames: a turn a client saw finish is on disk.
    let chars = full.len();
    let record = picoclaw_agent::TurnRecord {
        session: turn.session_id.clone(),
        user: (user_seq, turn.text),
        answer: (answer_seq, message_id.clone(), full),
        ts_ms: now_ms(),
    };
    if let Err(e) = engine.finish_turn(record).await {
        tracing::error!(session = %session, "the turn was not recorded: {e}");
        send(Frame::error(Some(session), e.code(), &e.to_string(), turn.request_id.as_deref()));
        send(Frame::typing_stop(session));
        return;
    }
    let mut done = Frame::message_done(session, &message_id);
    if was_cancelled {
        send(Frame::message_delete(session, &message_id));
        done = done.with("cancelled", true);
    }
    send(Frame::typing_stop(session));
    shared.hub.broadcast(session, tag(done), true);
    tracing::debug!(session = %turn.session_id, principal = %turn.principal, chars, "turn done");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The turn's reasoning bubble: `message.create` / `message.update` with `kind: thought`
/// (and upstream's legacy `thought: true`), its own `message_id`, updates at most every
/// [`UPDATE_EVERY`] and the full text once the answer starts or the turn ends. The
/// reasoning is not recorded in the history.
struct Thought {
    id: String,
    text: String,
    created: bool,
    sent_len: usize,
    last_sent: Instant,
}

impl Thought {
    fn new(message_id: &str) -> Thought {
        Thought {
            id: format!("{message_id}-thought"),
            text: String::new(),
            created: false,
            sent_len: 0,
            last_sent: Instant::now(),
        }
    }

    /// Sends what is new, if it is time (or `now`).
    fn send(&mut self, send: &impl Fn(Frame) -> u64, session: &str, model: &str, now: bool) {
        if self.text.len() == self.sent_len
            || (self.created && !now && self.last_sent.elapsed() < UPDATE_EVERY)
        {
            return;
        }
        let kind = if self.created {
            picoclaw_pico::kind::MESSAGE_UPDATE
        } else {
            picoclaw_pico::kind::MESSAGE_CREATE
        };
        send(
            Frame::server(kind, session)
                .with("message_id", self.id.as_str())
                .with("content", self.text.as_str())
                .with("kind", picoclaw_pico::message_kind::THOUGHT)
                .with("thought", true)
                .with("model_name", model),
        );
        self.created = true;
        self.sent_len = self.text.len();
        self.last_sent = Instant::now();
    }
}

pub(crate) fn new_message_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    format!("m{}", hex::encode(bytes))
}
