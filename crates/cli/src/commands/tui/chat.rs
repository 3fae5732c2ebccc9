//! The chat pane's connection: one Pico socket (protocol 2) to the local gateway with its
//! runtime token, dialled on the first message and again after it drops, exactly as
//! `picoclaw chat` dials it. Answers are reported as [`ChatEvent`]s.

use futures_util::{SinkExt, StreamExt};
use picoclaw_agent::net::WsStream;
use picoclaw_config::Paths;
use picoclaw_credentials::Credentials;
use picoclaw_credentials::client::{Endpoint, Target, choose};
use picoclaw_pico::{Frame, kind};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::work::Done;

/// How long one answer may take (as `picoclaw chat`'s default `--timeout`).
const TURN_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// What the chat pane shows next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// Connected to a gateway (its pid), session `session`.
    Connected { pid: u32, session: String },
    /// Bubble `id` now reads `content`.
    Message { id: String, content: String },
    /// The turn ended.
    TurnDone,
    /// Something failed (an `error` frame, a lost connection).
    Error(String),
}

/// The outgoing side of the chat task.
pub struct ChatHandle {
    tx: mpsc::Sender<String>,
}

impl ChatHandle {
    /// Queues `text` (dropped with an error event when a turn is still queued).
    pub fn send(&self, text: String) {
        let _ = self.tx.try_send(text);
    }
}

/// Starts the chat task.
pub fn spawn(paths: Paths, done: mpsc::Sender<Done>) -> ChatHandle {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(run(paths, rx, done));
    ChatHandle { tx }
}

async fn emit(done: &mpsc::Sender<Done>, event: ChatEvent) {
    let _ = done.send(Done::Chat(event)).await;
}

async fn run(paths: Paths, mut rx: mpsc::Receiver<String>, done: mpsc::Sender<Done>) {
    let session = super::super::chat::random_id("tui-");
    let mut ws: Option<WsStream> = None;
    loop {
        // While idle, keep reading the socket so pings are answered and a close is seen.
        let text = match ws.as_mut() {
            Some(socket) => tokio::select! {
                text = rx.recv() => text,
                frame = socket.next() => {
                    if matches!(frame, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                        ws = None;
                    }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(text) = text else { return };
        if ws.is_none() {
            match connect(&paths, &session).await {
                Ok((socket, pid)) => {
                    ws = Some(socket);
                    emit(&done, ChatEvent::Connected { pid, session: session.clone() }).await;
                }
                Err(e) => {
                    emit(&done, ChatEvent::Error(format!("{e:#}"))).await;
                    continue;
                }
            }
        }
        let Some(socket) = ws.as_mut() else { continue };
        if let Err(e) = turn(socket, &session, &text, &done).await {
            ws = None;
            emit(&done, ChatEvent::Error(e)).await;
        }
    }
}

async fn connect(paths: &Paths, session: &str) -> anyhow::Result<(WsStream, u32)> {
    let gateway = picoclaw_lifecycle::running(paths).map_err(|e| match e {
        picoclaw_lifecycle::LifecycleError::NotRunning { .. } => {
            anyhow::anyhow!("no gateway is running — press s to start one")
        }
        other => anyhow::anyhow!("cannot chat with the local gateway: {other}"),
    })?;
    let record = gateway.record();
    let presented = choose(Endpoint::Chat, Target::Local(record), &Credentials::default())?;
    let url = record.base_url().replacen("http://", "ws://", 1) + "/pico/ws";
    let ws = super::super::chat::connect(&url, &presented.secret, session, true).await?;
    Ok((ws, record.pid))
}

/// Sends `text`, reports the answer until the turn ends; `Err` when the socket is lost.
async fn turn(ws: &mut WsStream, session: &str, text: &str, done: &mpsc::Sender<Done>) -> Result<(), String> {
    let id = super::super::chat::random_id("c");
    let frame = Frame {
        kind: kind::MESSAGE_SEND.to_owned(),
        id: Some(id.clone()),
        session_id: Some(session.to_owned()),
        timestamp: Some(picoclaw_pico::now_ms()),
        payload: Default::default(),
    }
    .with("content", text);
    ws.send(Message::text(frame.encode())).await.map_err(|e| format!("cannot send the message: {e}"))?;
    let deadline = tokio::time::Instant::now() + TURN_LIMIT;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("no complete answer within {} s", TURN_LIMIT.as_secs()))?;
        let text = match next {
            None => return Err("the gateway closed the connection".to_owned()),
            Some(Err(e)) => return Err(format!("connection lost: {e}")),
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(c))) => {
                let why = c.map(|c| format!(": {}", c.reason)).unwrap_or_default();
                return Err(format!("the gateway closed the connection{why}"));
            }
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = Frame::parse(&text) else { continue };
        if frame.text("reply_to").is_some_and(|r| r != id) {
            continue;
        }
        match frame.kind.as_str() {
            kind::MESSAGE_CREATE | kind::MESSAGE_UPDATE if frame.is_thought_or_tool_calls() => {}
            kind::MESSAGE_CREATE | kind::MESSAGE_UPDATE => {
                if let (Some(mid), Some(content)) = (frame.text("message_id"), frame.text("content")) {
                    let event = ChatEvent::Message { id: mid.to_owned(), content: content.to_owned() };
                    emit(done, event).await;
                }
            }
            kind::ERROR => {
                if frame.text("request_id").is_some_and(|r| r != id) {
                    continue;
                }
                let message = format!(
                    "{} ({})",
                    frame.text("message").unwrap_or("the gateway reported an error"),
                    frame.text("code").unwrap_or("error")
                );
                emit(done, ChatEvent::Error(message)).await;
                if frame.text("request_id").is_none() && frame.text("reply_to").is_none() {
                    emit(done, ChatEvent::TurnDone).await;
                    return Ok(());
                }
            }
            kind::TYPING_STOP | kind::MESSAGE_DONE => {
                emit(done, ChatEvent::TurnDone).await;
                return Ok(());
            }
            _ => {}
        }
    }
}
