//! One chat turn: `typing.start`, the agent's streamed answer as `message.create` +
//! throttled `message.update`s (full text so far), `typing.stop`, and for protocol-2
//! sockets `message.done`. Every frame of the turn carries `reply_to` = the client's `id`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
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
    let _serial = lock.lock().await;
    if matches!(*turn.reply.closing.borrow(), Some(close::SESSION_DELETED | close::CREDENTIAL_REVOKED)) {
        return;
    }
    let engine = shared.live().engine.clone();
    let session = turn.session_id.as_str();
    let tag = |frame: Frame| match &turn.request_id {
        Some(id) => frame.with("reply_to", id.as_str()),
        None => frame,
    };
    let send = |frame: Frame| shared.hub.broadcast(session, tag(frame), false);

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
    let message_id = new_message_id();
    let model = engine.agent_name().to_owned();
    let mut answer_seq = 0;
    let mut stream = engine.run_turn(session, turn.text.clone(), turn.media).await;
    let mut full = String::new();
    let mut created = false;
    let mut dirty = false;
    let mut last_sent = Instant::now();
    let mut failed = false;
    loop {
        let flush_at = last_sent + UPDATE_EVERY;
        let next = tokio::select! {
            next = stream.next() => next,
            _ = tokio::time::sleep_until(flush_at), if dirty => {
                send(Frame::message_update(session, &message_id, &full).with("model_name", model.as_str()));
                last_sent = Instant::now();
                dirty = false;
                continue;
            }
        };
        match next {
            Some(Ok(delta)) => {
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
            Some(Err(e)) => {
                tracing::warn!(session = %session, code = e.code, "agent failed: {}", e.message);
                send(Frame::error(Some(session), e.code, &e.message, turn.request_id.as_deref()));
                failed = true;
                break;
            }
            None => break,
        }
    }
    if dirty {
        send(Frame::message_update(session, &message_id, &full).with("model_name", model.as_str()));
    }
    if !created && !failed {
        answer_seq = send(Frame::message_create(session, &message_id, "").with("model_name", model.as_str()));
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
    send(Frame::typing_stop(session));
    shared.hub.broadcast(session, tag(Frame::message_done(session, &message_id)), true);
    tracing::debug!(session = %turn.session_id, principal = %turn.principal, chars, "turn done");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn new_message_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    format!("m{}", hex::encode(bytes))
}
