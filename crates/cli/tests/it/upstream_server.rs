//! A small Pico server on loopback that behaves like upstream PicoClaw's Pico channel
//! (written from the behaviour of upstream's `pkg/channels/pico/pico.go` and
//! `protocol.go` as recorded in shared/reference/picoclaw.md §1–2; no upstream code):
//!
//! - `/pico/ws` (and `/pico/ws/`); credential `Authorization: Bearer <t>`, then a
//!   `token.<t>` subprotocol offer (echoed); otherwise HTTP 401 `unauthorized`;
//! - `?session_id=` or a server-made id; a `message.send`'s envelope `session_id`
//!   overrides the connection's;
//! - `ping` → `pong` echoing `id`; not JSON → `error invalid_message`; another type →
//!   `error unknown_type`; empty content → `error empty_content` + `request_id`; a
//!   non-raster inline image → `error invalid_media` + `request_id`;
//! - a message is answered with `typing.start`, `message.create` (a new `message_id`,
//!   the echo of the text, `model_name`), `typing.stop`, broadcast to every socket of the
//!   session; no `seq`, no `reply_to`, no `message.done`, `?protocol=2` ignored, no replay.
//!
//! [`Quirk`] makes it misbehave in one way, to show the conformance kit notices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

/// One way to deviate from upstream's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// Behave like upstream.
    None,
    /// Accept a `token.<t>` offer without echoing it in the 101.
    NoSubprotocolEcho,
    /// Close the socket on a frame that is not JSON instead of answering `error`.
    CloseOnInvalidJson,
}

type Sessions = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<String>>>>>;

/// Starts the server; returns its `ws://127.0.0.1:<port>/pico/ws` URL. It runs until the
/// test's runtime ends.
pub async fn start(token: &'static str, quirk: Quirk) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sessions: Sessions = Arc::default();
    tokio::spawn(async move {
        let mut next_conn = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            next_conn += 1;
            tokio::spawn(serve(tcp, token, quirk, sessions.clone(), next_conn));
        }
    });
    format!("ws://127.0.0.1:{port}/pico/ws")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn frame(kind: &str, session: &str, payload: Value) -> String {
    let mut f = json!({ "type": kind, "session_id": session, "timestamp": now_ms() });
    if payload.as_object().is_some_and(|p| !p.is_empty()) {
        f["payload"] = payload;
    }
    f.to_string()
}

fn error(code: &str, message: &str, request_id: Option<&str>) -> String {
    let mut payload = json!({ "code": code, "message": message });
    if let Some(id) = request_id.filter(|id| !id.is_empty()) {
        payload["request_id"] = json!(id);
    }
    json!({ "type": "error", "timestamp": now_ms(), "payload": payload }).to_string()
}

#[expect(clippy::result_large_err, reason = "the handshake callback's signature is fixed by tungstenite")]
async fn serve(tcp: tokio::net::TcpStream, token: &'static str, quirk: Quirk, sessions: Sessions, conn: u64) {
    let mut session = format!("srv-{conn}");
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path();
        if path != "/pico/ws" && path != "/pico/ws/" {
            let mut r = ErrorResponse::new(Some("not found".into()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return Err(r);
        }
        if let Some(q) = req.uri().query() {
            for pair in q.split('&') {
                if let Some(v) = pair.strip_prefix("session_id=") {
                    session = v.to_owned();
                }
            }
        }
        let bearer = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if bearer == Some(format!("Bearer {token}").as_str()) {
            return Ok(resp);
        }
        let offers = req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or("");
        let wanted = format!("token.{token}");
        if offers.split(',').map(str::trim).any(|o| o == wanted) {
            if quirk != Quirk::NoSubprotocolEcho {
                resp.headers_mut()
                    .insert("sec-websocket-protocol", HeaderValue::from_str(&wanted).expect("value"));
            }
            return Ok(resp);
        }
        let mut r = ErrorResponse::new(Some("unauthorized".into()));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        Err(r)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut joined: Vec<String> = Vec::new();
    let join = |s: &str, joined: &mut Vec<String>| {
        if !joined.iter().any(|j| j == s) {
            sessions.lock().unwrap().entry(s.to_owned()).or_default().push(tx.clone());
            joined.push(s.to_owned());
        }
    };
    join(&session, &mut joined);
    let mut message_ids = 0u64;
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
            if quirk == Quirk::CloseOnInvalidJson {
                break;
            }
            let _ = tx.send(error("invalid_message", "invalid JSON", None));
            continue;
        };
        let id = value["id"].as_str().unwrap_or_default().to_owned();
        match value["type"].as_str().unwrap_or_default() {
            "ping" => {
                let mut pong = json!({ "type": "pong", "session_id": session, "timestamp": now_ms() });
                if !id.is_empty() {
                    pong["id"] = json!(id);
                }
                let _ = tx.send(pong.to_string());
            }
            "message.send" | "media.send" => {
                let target =
                    value["session_id"].as_str().filter(|s| !s.is_empty()).unwrap_or(&session).to_owned();
                let content = value["payload"]["content"].as_str().unwrap_or_default().trim().to_owned();
                let media: Vec<String> = match &value["payload"]["media"] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) => {
                        items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
                    }
                    _ => Vec::new(),
                };
                if media.iter().any(|m| !raster_data_url(m)) {
                    let _ = tx.send(error("invalid_media", "unsupported media", Some(&id)));
                    continue;
                }
                if content.is_empty() && media.is_empty() {
                    let _ = tx.send(error("empty_content", "message content is empty", Some(&id)));
                    continue;
                }
                join(&target, &mut joined);
                message_ids += 1;
                let message_id = format!("m-{conn}-{message_ids}");
                let out = [
                    frame("typing.start", &target, json!({})),
                    frame(
                        "message.create",
                        &target,
                        json!({ "message_id": message_id, "content": content, "model_name": "scripted" }),
                    ),
                    frame("typing.stop", &target, json!({})),
                ];
                let sockets = sessions.lock().unwrap().get(&target).cloned().unwrap_or_default();
                for f in out {
                    for s in &sockets {
                        let _ = s.send(f.clone());
                    }
                }
            }
            _ => {
                let _ = tx.send(error("unknown_type", "unknown message type", None));
            }
        }
    }
    for senders in sessions.lock().unwrap().values_mut() {
        senders.retain(|s| !s.same_channel(&tx));
    }
    drop(tx);
    let _ = writer.await;
}

/// Upstream accepts `data:image/{jpeg,png,gif,webp,bmp};base64,…` only.
fn raster_data_url(url: &str) -> bool {
    ["jpeg", "png", "gif", "webp", "bmp"].iter().any(|t| url.starts_with(&format!("data:image/{t};base64,")))
}
