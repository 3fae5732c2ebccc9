//! Accepting HTTP connections for the gateway and the launcher: each connection is counted
//! in the pre-authentication budget ([`admission`]: per address and in total, separate
//! from authenticated WebSockets, idle ones evicted first), must send its first request
//! head within [`admission::HEADER_READ_TIMEOUT`] and each later one within
//! [`admission::KEEP_ALIVE_IDLE`], and is served with upgrades. [`sources`] notices
//! changes of the files a server reads its settings and credentials from.

pub mod admission;
pub mod sources;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::admission::{Admission, Admitted};

/// Accepts connections on `listener` and serves `router` on each (HTTP/1.1 with upgrades;
/// every request carries `ConnectInfo<SocketAddr>` of its peer) until `stop` changes.
/// Every connection is counted in `admission` until it closes or is upgraded; over its
/// bounds the oldest idle connection is closed to make room (see [`admission`]). When
/// `stop` changes, each connection is shut down gracefully (at most 2 s).
pub async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
    admission: Arc<Admission>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(ok) => ok,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (stream, waiting) = request_waiting(stream);
        let Some(stream) = stream else { continue };
        let Some(admitted) = admission.admit(peer.ip(), waiting) else {
            // Every counted connection is busy answering a request.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (state, table) = (admitted.state(), admitted.admission());
        let busy = state.clone();
        let service = router
            .clone()
            .map_request(move |req: hyper::Request<hyper::body::Incoming>| {
                Admitted::busy(&busy);
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            })
            .map_response({
                let state = state.clone();
                move |resp: axum::response::Response| {
                    // A 101 hands the connection to its WebSocket: it stays busy until the
                    // hand-over completes and it leaves the budget.
                    if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
                        Admitted::idle(&state, &table);
                    }
                    resp
                }
            });
        let mut stop = stop.clone();
        let accepted_at = tokio::time::Instant::now();
        tokio::spawn(async move {
            let _admitted = admitted;
            let mut builder = hyper::server::conn::http1::Builder::new();
            // hyper's deadline bounds every request head, idle wait included; the first
            // request's shorter one is `first_request_late` below.
            builder.timer(TokioTimer::new()).header_read_timeout(admission::KEEP_ALIVE_IDLE);
            let conn = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Its slot went to a newer connection: close it now.
                () = state.evicted() => {}
                // No complete first request head within HEADER_READ_TIMEOUT.
                () = state.first_request_late(accepted_at) => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.as_mut()).await;
                }
            }
        });
        // Let the new connection read its request before the next accept: a real request
        // is then already busy (not evictable) when a flood's connections pile in behind it.
        tokio::task::yield_now().await;
    }
}

/// Whether the client's first bytes have already arrived (a real request usually has by
/// the time a busy server accepts it; a flood's silent connections have not). Peeks
/// without consuming; `None` when the socket could not be handed back to the runtime.
fn request_waiting(stream: TcpStream) -> (Option<TcpStream>, bool) {
    let Ok(std) = stream.into_std() else { return (None, false) };
    let waiting = matches!(std.peek(&mut [0u8; 1]), Ok(n) if n > 0);
    (TcpStream::from_std(std).ok(), waiting)
}
