//! The baseline server: a bare WebSocket echo on the same stack as the gateway (tokio,
//! hyper via axum, tokio-tungstenite) with no auth and no protocol — the practical limit
//! every gateway figure is divided by. Runs as a child process of the bench
//! (`picoclaw-bench baseline-server`), so it is measured exactly like the gateway. Like the
//! gateway it sets TCP_NODELAY and a 4 KiB WebSocket read buffer; every other setting is
//! the default.

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
pub fn serve(port_file: &Path) -> Result<()> {
    crate::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("bind 127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let tmp = port_file.with_extension("tmp");
        std::fs::write(&tmp, port.to_string()).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, port_file).with_context(|| format!("rename to {}", port_file.display()))?;
        let app = Router::new().route("/ws", get(upgrade)).route("/ready", get(|| async { "ready" }));
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
