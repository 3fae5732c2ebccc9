//! HTTP endpoints other than the Pico channel.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use picoclaw_auth::Scope;
use serde_json::json;

use crate::conn;
use crate::error::ApiError;
use crate::reload;
use crate::state::Shared;
use crate::tokens_api;

/// Longest accepted request body (none of these endpoints needs a body).
const MAX_BODY: usize = 64 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/reload", post(reload_handler).fallback(method_not_allowed))
        .route("/auth/whoami", get(whoami))
        .route("/status", get(status))
        .route("/auth/ticket", post(tokens_api::ticket).fallback(method_not_allowed))
        .route("/api/tokens", get(tokens_api::list).post(tokens_api::create))
        .route("/api/tokens/{key}", axum::routing::delete(tokens_api::revoke))
        .route("/api/tokens/{key}/rotate", post(tokens_api::rotate))
        .route("/pico/ws", any(conn::upgrade))
        .route("/pico/ws/", any(conn::upgrade))
        .route("/pico/media/{id}", get(media))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

async fn health(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "uptime_s": shared.uptime_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    let live = shared.live();
    let pico = if live.settings.pico.enabled { "serving" } else { "disabled" };
    if shared.is_ready() {
        (StatusCode::OK, Json(json!({ "status": "ready", "checks": { "http": "serving", "pico": pico } })))
            .into_response()
    } else {
        let http =
            if shared.ready.load(std::sync::atomic::Ordering::Acquire) { "draining" } else { "starting" };
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready", "checks": { "http": http } })))
            .into_response()
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use POST")
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no such endpoint: {}", uri.path()))
}

async fn reload_handler(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (principal, _) = shared.authenticate("/reload", &headers, None, peer.ip(), Scope::Admin, false)?;
    match reload::reload(&shared, &format!("POST /reload by {}", principal.id)).await {
        Ok(summary) => Ok(Json(
            json!({ "status": "reloaded", "closed_sockets": summary.closed_sockets, "warnings": summary.warnings }),
        )),
        Err(message) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            format!("reload rejected, the previous configuration stays in effect: {message}"),
        )),
    }
}

async fn whoami(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (principal, presented) =
        shared.authenticate("/auth/whoami", &headers, None, peer.ip(), Scope::Chat, false)?;
    Ok(Json(json!({
        "kind": principal.kind,
        "id": principal.id,
        "name": principal.name,
        "scope": principal.scope,
        "source": principal.source,
        "fingerprint": principal.fingerprint,
        "presented_as": format!("{:?}", presented.how).to_ascii_lowercase(),
    })))
}

async fn status(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    shared.authenticate("/status", &headers, None, peer.ip(), Scope::Admin, false)?;
    let live = shared.live();
    let (sessions, sockets) = shared.hub.counts();
    Ok(Json(json!({
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": shared.uptime_secs(),
        "ready": shared.is_ready(),
        "agent": live.engine.agent_name(),
        "pico": {
            "enabled": live.settings.pico.enabled,
            "connections": sockets,
            "max_connections": live.settings.pico.max_connections,
            "sessions": sessions,
        },
        "pico_client": shared.pico_client_status(),
    })))
}

/// `/pico/media/<id>`: authenticated like the channel; picoclaw stores no media yet.
async fn media(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let pico = shared.live().settings.pico.clone();
    if !pico.enabled {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "channel_disabled", "the Pico channel is disabled"));
    }
    shared.authenticate(
        "/pico/media",
        &headers,
        uri.query(),
        peer.ip(),
        Scope::Chat,
        pico.allow_token_query,
    )?;
    Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such media"))
}
