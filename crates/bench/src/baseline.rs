//! The baseline server: a bare WebSocket echo on the same stack as the gateway (tokio,
//! hyper via axum, tokio-tungstenite) with no auth and no protocol — the practical limit
//! every gateway figure is divided by. Runs as a child process of the bench
//! (`picoclaw-bench baseline-server`), so it is measured exactly like the gateway. Like the
//! gateway it sets TCP_NODELAY and a 4 KiB WebSocket read buffer; every other setting is
//! the default. With `--pico-frames` it answers each message with the three frames of a
//! gateway echo turn instead, so the protocol's own cost can be told from the gateway's.

use std::path::Path;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};

/// Serves `/ws` (echo) and `/ready` on 127.0.0.1:0 and writes the bound port to
/// `port_file` (write-then-rename, so a reader never sees half a number). Runs until
/// SIGTERM/SIGINT.
pub fn serve(port_file: &Path, pico_frames: bool) -> Result<()> {
    crate::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("bind 127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let tmp = port_file.with_extension("tmp");
        std::fs::write(&tmp, port.to_string()).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, port_file).with_context(|| format!("rename to {}", port_file.display()))?;
        let ws = if pico_frames { get(upgrade_pico) } else { get(upgrade) };
        let app = Router::new().route("/ws", ws).route("/ready", get(|| async { "ready" }));
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        // TCP_NODELAY as the gateway sets it: without it Nagle's algorithm and delayed ACKs
        // add tens of milliseconds to small-frame round trips.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            tokio::select! {
                _ = term => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        });
        serve.await.context("baseline server failed")
    })
}

async fn upgrade(ws: WebSocketUpgrade) -> Response {
    // The gateway's read buffer size: tungstenite zero-fills up to this much before every
    // read, so its 128 KiB default would make the baseline slower, not a limit.
    ws.read_buffer_size(4 * 1024).on_upgrade(echo)
}

async fn echo(socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

async fn upgrade_pico(ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(4 * 1024).write_buffer_size(16 * 1024).on_upgrade(pico_turns)
}

/// Answers every text frame as a gateway echo turn does: `typing.start`, `message.create`
/// with the content, `typing.stop`, each with `reply_to` and `seq`, written with one flush.
/// No auth, sessions, storage or agent: the protocol's own cost.
async fn pico_turns(socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let session = "0123456789abcdef0123456789abcdef";
    let mut seq = 0u64;
    while let Some(Ok(message)) = stream.next().await {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(request) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { break };
        let reply_to = request["id"].as_str().unwrap_or_default().to_owned();
        let content = request["payload"]["content"].as_str().unwrap_or_default().to_owned();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut frame = |kind: &str, mut payload: serde_json::Value| {
            seq += 1;
            payload["reply_to"] = reply_to.clone().into();
            payload["seq"] = seq.into();
            serde_json::json!({"type": kind, "session_id": session, "timestamp": now, "payload": payload})
                .to_string()
        };
        let frames = [
            frame("typing.start", serde_json::json!({})),
            frame(
                "message.create",
                serde_json::json!({"message_id": "m0123456789abcdef", "content": content, "model_name": "echo"}),
            ),
            frame("typing.stop", serde_json::json!({})),
        ];
        let mut failed = false;
        for f in frames {
            failed |= sink.feed(Message::Text(f.into())).await.is_err();
        }
        if failed || sink.flush().await.is_err() {
            break;
        }
    }
}
