//! Dialing a Pico server: the one TLS configuration of picoclaw's outbound connections
//! (rustls with the `ring` provider and the Mozilla roots compiled in; the agent's HTTP
//! client for model providers uses it too) and WebSocket dialing (`ws://` and `wss://`)
//! within one time limit.
//!
//! The crypto provider is passed explicitly, never installed process-wide, so nothing
//! else in the binary changes behaviour because this module exists.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The TLS client configuration shared by every outbound connection.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports TLS 1.2 and 1.3")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// A byte stream that is either plain TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A client WebSocket over plain TCP or TLS.
pub type WsStream = WebSocketStream<Box<dyn Io>>;

/// Why a WebSocket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsConnectError {
    /// The URL is not a usable `ws://` / `wss://` URL.
    #[error("invalid URL: {0}")]
    Url(String),
    /// TCP or TLS failed.
    #[error("could not connect to {host}: {reason}")]
    Connect {
        /// `host:port`.
        host: String,
        /// The OS or TLS error.
        reason: String,
    },
    /// Nothing happened within the time limit.
    #[error("no answer from {0} within the time limit")]
    Timeout(String),
    /// The server answered the upgrade with an HTTP error.
    #[error("the server refused the WebSocket upgrade with HTTP {status}{body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// `": <first part of the body>"` or empty.
        body: String,
    },
    /// Subprotocols were offered and the `101` answered none of them (or another one):
    /// browsers and Node's `ws` abort such a handshake too.
    #[error("the server's 101 did not echo one of the offered subprotocols ({0})")]
    SubprotocolNotEchoed(String),
    /// The WebSocket handshake failed otherwise.
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),
}

/// Builds the upgrade request for `url` (`ws://` or `wss://`).
pub fn ws_request(url: &str) -> Result<Request, WsConnectError> {
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(WsConnectError::Url(format!("{url:?}: expected a ws:// or wss:// URL")));
    }
    url.into_client_request().map_err(|e| WsConnectError::Url(format!("{e}")))
}

/// Opens a WebSocket for `request` (from [`ws_request`], with any headers added), within
/// `limit` for TCP + TLS + upgrade together. Frames larger than `max_frame` are refused.
pub async fn connect_ws(
    request: Request,
    limit: Duration,
    max_frame: usize,
) -> Result<(WsStream, Response), WsConnectError> {
    let uri = request.uri().clone();
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(WsConnectError::Url("the URL has no host".into()));
    }
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let label = format!("{host}:{port}");
    let work = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| WsConnectError::Connect { host: label.clone(), reason: e.to_string() })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = if tls {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| WsConnectError::Url(format!("{host:?} is not a valid TLS server name")))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(|e| WsConnectError::Connect { host: label.clone(), reason: e.to_string() })?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let config =
            WebSocketConfig::default().max_message_size(Some(max_frame)).max_frame_size(Some(max_frame));
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await.map_err(
            |e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => {
                    let body = resp
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).trim().to_owned())
                        .filter(|b| !b.is_empty())
                        .map(|b| format!(": {b}"))
                        .unwrap_or_default();
                    WsConnectError::Refused { status: resp.status().as_u16(), body }
                }
                tokio_tungstenite::tungstenite::Error::Protocol(
                    p @ tokio_tungstenite::tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
                ) => WsConnectError::SubprotocolNotEchoed(p.to_string()),
                other => WsConnectError::Handshake(other.to_string()),
            },
        )
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(WsConnectError::Timeout(label)),
    }
}
