//! `/pico/ws` on the launcher: the browser is authenticated by its session cookie (checked
//! by the gate) and a same-origin check; the launcher then dials the gateway's `/pico/ws`
//! itself with the runtime token from `.picoclaw.pid`, and relays text/binary frames both
//! ways. The browser never sees a gateway or pico token.
//!
//! Handshake compatibility: when the browser offers subprotocols, the 101 echoes its first
//! offer (as upstream PicoClaw's launcher does); browsers and Node's `ws` abort a handshake
//! that offered subprotocols and got none back. The offers are never forwarded upstream:
//! the launcher authenticates to the gateway itself.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, protocol::WebSocketConfig};

use crate::LOG;
use crate::net::{self, Client};
use crate::session::SessionId;
use crate::state::AppState;
use picoclaw_wire::{ApiError, Code};

/// Largest message relayed either way (the gateway's own default limit).
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// How often a relayed socket re-checks that its dashboard session is still live.
const SESSION_CHECK: Duration = Duration::from_secs(2);

type Upstream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The upgrade handler.
pub(crate) async fn pico_ws(
    State(st): State<Arc<AppState>>,
    Extension(client): Extension<Client>,
    Extension(session): Extension<SessionId>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !net::same_origin(&headers, &client) {
        return ApiError::new(Code::BadOrigin, "the Origin header must match the dashboard's address")
            .into_response();
    }
    if let Some(why) = net::cross_site(&headers, &client) {
        return ApiError::new(Code::BadOrigin, why.message()).into_response();
    }
    let offer = match first_offer(&headers) {
        Ok(offer) => offer,
        Err(()) => {
            return ApiError::new(
                Code::BadSubprotocol,
                "Sec-WebSocket-Protocol must be a comma-separated list of tokens (RFC 6455 §4.1)",
            )
            .into_response();
        }
    };
    let Some(record) = st.gateway.record().await else {
        return ApiError::new(
            Code::GatewayUnavailable,
            "the gateway is not running; start it from the dashboard",
        )
        .into_response();
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let mut url = format!("{}/pico/ws", record.base_url().replacen("http://", "ws://", 1));
    if let Some(query) = upstream_query(uri.query()) {
        url.push('?');
        url.push_str(&query);
    }
    let Ok(mut request) = url.into_client_request() else {
        return ApiError::new(Code::BadQuery, "session_id must be URL-encoded").into_response();
    };
    // Presenting the runtime token to the gateway it belongs to.
    let Ok(mut auth) = HeaderValue::from_str(&format!("Bearer {}", record.token.expose())) else {
        return ApiError::internal(LOG).into_response();
    };
    auth.set_sensitive(true);
    request.headers_mut().insert(http::header::AUTHORIZATION, auth);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .max_write_buffer_size(4 * MAX_MESSAGE);
    let upstream = match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
        Ok((socket, _)) => socket,
        Err(tungstenite::Error::Http(resp)) => {
            tracing::warn!(status = resp.status().as_u16(), "the gateway refused the proxied socket");
            // At its connection limit or shutting down: "try later", not "broken".
            let code = if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
                Code::GatewayUnavailable
            } else {
                Code::GatewayRefused
            };
            return ApiError::new(code, "the gateway refused the chat connection").into_response();
        }
        Err(e) => {
            tracing::warn!("cannot reach the gateway's /pico/ws: {e}");
            return ApiError::new(Code::GatewayUnreachable, "cannot reach the gateway").into_response();
        }
    };
    let upgrade = match offer {
        Some(offer) => upgrade.protocols([offer]),
        None => upgrade,
    };
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .max_write_buffer_size(4 * MAX_MESSAGE)
        .on_upgrade(move |socket| relay(socket, upstream, st, session))
}

/// The browser's first subprotocol offer (the first non-empty element of the first
/// `Sec-WebSocket-Protocol` list), `None` when it offered none, `Err` when an offer is not
/// an RFC 7230 token.
fn first_offer(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let mut first = None;
    for value in headers.get_all(http::header::SEC_WEBSOCKET_PROTOCOL) {
        let value = value.to_str().map_err(|_| ())?;
        for offer in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if !offer.bytes().all(is_tchar) {
                return Err(());
            }
            first.get_or_insert_with(|| offer.to_owned());
        }
    }
    Ok(first)
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Query values passed on to the gateway: RFC 3986 unreserved characters and `:` stay as
/// they are (valid session ids are `[A-Za-z0-9._:-]`, and the gateway reads the values
/// literally), everything else is percent-encoded.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':');

/// The gateway's query: only `session_id`, `protocol` and `last_seq` (protocol 2's replay
/// point; the first of each), decoded once from the browser's query and re-encoded.
fn upstream_query(query: Option<&str>) -> Option<String> {
    let mut session_id = None;
    let mut protocol = None;
    let mut last_seq = None;
    for (key, value) in form_urlencoded::parse(query?.as_bytes()) {
        let slot = match key.as_ref() {
            "session_id" => &mut session_id,
            "protocol" => &mut protocol,
            "last_seq" => &mut last_seq,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value);
        }
    }
    let pairs: Vec<String> = [("session_id", session_id), ("protocol", protocol), ("last_seq", last_seq)]
        .into_iter()
        .filter_map(|(key, value)| {
            value.map(|v| format!("{key}={}", percent_encoding::utf8_percent_encode(&v, QUERY_VALUE)))
        })
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("&"))
}

async fn relay(browser: WebSocket, upstream: Upstream, st: Arc<AppState>, session: SessionId) {
    let (mut to_browser, mut from_browser) = browser.split();
    let (mut to_gateway, mut from_gateway) = upstream.split();
    let mut check = tokio::time::interval(SESSION_CHECK);
    loop {
        tokio::select! {
            msg = from_browser.next() => {
                let Some(Ok(msg)) = msg else { break };
                let close = matches!(msg, ws::Message::Close(_));
                if let Some(m) = to_tungstenite(msg)
                    && to_gateway.send(m).await.is_err()
                {
                    break;
                }
                if close { break }
            }
            msg = from_gateway.next() => {
                let Some(Ok(msg)) = msg else {
                    let _ = to_browser.send(close_frame(1012, "gateway went away")).await;
                    break;
                };
                let close = matches!(msg, tungstenite::Message::Close(_));
                if let Some(m) = to_axum(msg)
                    && to_browser.send(m).await.is_err()
                {
                    break;
                }
                if close { break }
            }
            _ = check.tick() => {
                if !st.sessions.is_live(session, st.generation()) {
                    let _ = to_browser.send(close_frame(1008, "dashboard session ended")).await;
                    break;
                }
            }
        }
    }
    let _ = to_gateway.close().await;
    let _ = to_browser.close().await;
}

fn close_frame(code: u16, reason: &'static str) -> ws::Message {
    ws::Message::Close(Some(ws::CloseFrame { code, reason: reason.into() }))
}

fn sendable(code: u16) -> bool {
    (1000..5000).contains(&code) && !matches!(code, 1005 | 1006 | 1015)
}

fn to_tungstenite(msg: ws::Message) -> Option<tungstenite::Message> {
    Some(match msg {
        ws::Message::Text(t) => tungstenite::Message::text(t.as_str()),
        ws::Message::Binary(b) => tungstenite::Message::Binary(b),
        ws::Message::Close(frame) => {
            tungstenite::Message::Close(frame.filter(|f| sendable(f.code)).map(|f| {
                tungstenite::protocol::CloseFrame { code: f.code.into(), reason: f.reason.as_str().into() }
            }))
        }
        ws::Message::Ping(_) | ws::Message::Pong(_) => return None,
    })
}

fn to_axum(msg: tungstenite::Message) -> Option<ws::Message> {
    Some(match msg {
        tungstenite::Message::Text(t) => ws::Message::Text(t.as_str().into()),
        tungstenite::Message::Binary(b) => ws::Message::Binary(b),
        tungstenite::Message::Close(frame) => ws::Message::Close(
            frame
                .map(|f| (u16::from(f.code), f.reason))
                .filter(|(code, _)| sendable(*code))
                .map(|(code, reason)| ws::CloseFrame { code, reason: reason.as_str().into() }),
        ),
        _ => return None,
    })
}

/// Largest file relayed from `/pico/media/<id>` (the gateway keeps at most 32 MiB in all).
const MAX_MEDIA: usize = 32 * 1024 * 1024;

/// `GET /pico/media/<id>` on the launcher: a file of an answer in the dashboard's chat,
/// fetched from the gateway with the runtime token (the principal of the dashboard's chat,
/// so the gateway's owner-only rule lets exactly the dashboard's files through).
pub(crate) async fn pico_media(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    // The id is the gateway's 128-bit hex; anything else could reshape the upstream URL.
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return ApiError::new(Code::NotFound, "no such media").into_response();
    }
    let Some(record) = st.gateway.record().await else {
        return ApiError::new(
            Code::GatewayUnavailable,
            "the gateway is not running; start it from the dashboard",
        )
        .into_response();
    };
    // Loopback only: never route the runtime token through an HTTP proxy from the env.
    let Ok(client) = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build() else {
        return ApiError::internal(LOG).into_response();
    };
    let url = format!("{}/pico/media/{id}", record.base_url());
    let answer = match client.get(url).bearer_auth(record.token.expose()).send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("cannot reach the gateway's /pico/media: {e}");
            return ApiError::new(Code::GatewayUnreachable, "cannot reach the gateway").into_response();
        }
    };
    let status = answer.status();
    if answer.content_length().is_some_and(|n| n > MAX_MEDIA as u64) {
        return ApiError::new(Code::GatewayRefused, "the file is too large to relay").into_response();
    }
    let mut headers = HeaderMap::new();
    for name in [http::header::CONTENT_TYPE, http::header::CONTENT_DISPOSITION] {
        if let Some(v) = answer.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    let mut body = Vec::new();
    let mut stream = answer.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::new(Code::GatewayUnreachable, "the gateway's answer broke off").into_response();
        };
        if body.len() + chunk.len() > MAX_MEDIA {
            return ApiError::new(Code::GatewayRefused, "the file is too large to relay").into_response();
        }
        body.extend_from_slice(&chunk);
    }
    (status, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_offer_is_echoed() {
        let offers = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(http::header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(v));
            }
            first_offer(&h)
        };
        assert_eq!(offers(&[]), Ok(None));
        assert_eq!(offers(&["token.whatever, pico"]), Ok(Some("token.whatever".into())));
        assert_eq!(offers(&[" , pico"]), Ok(Some("pico".into())));
        assert_eq!(offers(&["a", "b"]), Ok(Some("a".into())));
        assert_eq!(offers(&["a b"]), Err(()));
        assert_eq!(offers(&["pico, x\"y"]), Err(()));
    }

    #[test]
    fn only_session_id_and_protocol_go_upstream_re_encoded() {
        assert_eq!(upstream_query(None), None);
        assert_eq!(upstream_query(Some("token=x&foo=1")), None);
        assert_eq!(
            upstream_query(Some("protocol=2&session_id=a%3Ab&token=x")).as_deref(),
            Some("session_id=a:b&protocol=2")
        );
        assert_eq!(
            upstream_query(Some("session_id=a%26token%3Dx&session_id=second")).as_deref(),
            Some("session_id=a%26token%3Dx")
        );
        assert_eq!(upstream_query(Some("%73ession_id=a+b")).as_deref(), Some("session_id=a%20b"));
        assert_eq!(
            upstream_query(Some("last_seq=7&session_id=s&protocol=2&last_seq=9")).as_deref(),
            Some("session_id=s&protocol=2&last_seq=7")
        );
        assert_eq!(upstream_query(Some("last_seq=1%26token%3Dx")).as_deref(), Some("last_seq=1%26token%3Dx"));
    }
}
