//! Outbound connections of the agent: the HTTP client for model providers, over the one
//! TLS configuration ([`picoclaw_pico::dial::tls_config`]). WebSocket dialing lives with
//! the protocol in `picoclaw_pico::dial` and is re-exported here.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use picoclaw_pico::dial::tls_config;
pub use picoclaw_pico::dial::{Io, WsConnectError, WsStream, connect_ws, ws_request};

/// HTTP(S) client used for model providers.
pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `http://` and `https://` with a bounded connect time.
pub(crate) fn http_client(connect_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls_config()).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        .build(https)
}
