//! The gateway's router, built from the endpoint table, and its HTTP endpoints other than
//! the Pico channel and the token API.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, post};
use picoclaw_auth::endpoints::{self, EndpointId, Server};
use picoclaw_config::BasePath;
use picoclaw_wire::body;

use crate::authenticated::{Admin, Authenticated, PicoMedia, Read};
use crate::conn;
use crate::history;
use crate::openai;
use crate::pairing;
use crate::reload;
use crate::state::Shared;
use crate::tokens_api;
use picoclaw_wire::{ApiError, Code};

/// Longest accepted request body (none of these endpoints needs a large one).
const MAX_BODY: usize = 64 * 1024;

/// The served router: [`router`] at the root and, with `gateway.base_path` set, also under
/// that prefix (`/picoclaw/gateway/pico/ws` is routed as `/pico/ws`), for a proxy or
/// tunnel that forwards the prefixed path unchanged. The gateway answers no URL, cookie or
/// redirect of its own, so the same routes serve both; local tools, probes and the
/// launcher keep using the root. Read at start (a change needs a restart).
pub(crate) fn served(shared: Arc<Shared>, base: &BasePath) -> Router {
    let inner = router(shared);
    if base.is_root() {
        return inner;
    }
    let strip = axum::middleware::map_request_with_state(base.clone(), under_base);
    Router::new().fallback_service(tower_layer::Layer::layer(&strip, inner))
}

/// `/prefix/x` → `/x`; anything else is left as it is (the root routes).
async fn under_base(State(base): State<BasePath>, mut req: axum::extract::Request) -> axum::extract::Request {
    if let Some(rest) = base.strip(req.uri().path()) {
        let rewritten = match req.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        let mut parts = req.uri().clone().into_parts();
        // A path cut from a valid one at a `/` is itself valid; if not, the request stays
        // as it was (and is not found).
        if let Ok(pq) = rewritten.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// The router: one route per gateway row of the endpoint table, each to its handler.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for endpoint in endpoints::of(Server::Gateway) {
        router = router.route(endpoint.path, handler(endpoint.id));
    }
    router.fallback(not_found).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY)).with_state(shared)
}

/// The handler of each gateway endpoint. Exhaustive: a new row of the table does not
/// compile until it has a handler here, and a handler cannot be routed without a row.
fn handler(id: EndpointId) -> MethodRouter<Arc<Shared>> {
    match id {
        EndpointId::Health => get(health),
        EndpointId::Ready => get(ready),
        EndpointId::Reload => post(reload_handler).fallback(method_not_allowed),
        EndpointId::Whoami => get(whoami),
        EndpointId::Status => get(status),
        EndpointId::Ticket => post(tokens_api::ticket).fallback(method_not_allowed),
        EndpointId::Tokens => get(tokens_api::list).post(tokens_api::create),
        EndpointId::Token => delete(tokens_api::revoke),
        EndpointId::TokenRotate => post(tokens_api::rotate),
        EndpointId::Pair => post(pairing::issue).fallback(method_not_allowed),
        EndpointId::PairRedeem => post(pairing::redeem).fallback(method_not_allowed),
        EndpointId::PairPage => get(pairing::page),
        EndpointId::PairScript => get(pairing::script),
        EndpointId::PicoSocket | EndpointId::PicoSocketSlash | EndpointId::PicoSocketShort => {
            any(conn::upgrade)
        }
        EndpointId::PicoMedia => get(media),
        EndpointId::Sessions => get(history::list),
        EndpointId::Session => delete(history::delete),
        EndpointId::SessionMessages => get(history::messages),
        EndpointId::ChatCompletions => post(openai::completions)
            .layer(axum::extract::DefaultBodyLimit::max(openai::MAX_BODY))
            .fallback(method_not_allowed),
        EndpointId::Models => get(openai::models),
        // Launcher rows are served by the launcher.
        EndpointId::LauncherLogin
        | EndpointId::LauncherLoginCode
        | EndpointId::LauncherLogout
        | EndpointId::LauncherSetup
        | EndpointId::LauncherPages
        | EndpointId::LauncherApi
        | EndpointId::LauncherPicoSocket
        | EndpointId::LauncherPicoMedia => any(not_found_here),
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> Json<body::Health> {
    Json(body::Health { status: "ok", uptime_s: shared.uptime_secs(), version: env!("CARGO_PKG_VERSION") })
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    let live = shared.live();
    let pico = if live.settings.pico.enabled { "serving" } else { "disabled" };
    let shared_tokens = shared.shared_tokens_state();
    if shared.is_ready() {
        let checks = body::ReadyChecks { http: "serving", pico: Some(pico), shared_tokens };
        (StatusCode::OK, Json(body::Ready { status: "ready", checks })).into_response()
    } else {
        let http = if shared.shutting_down.load(std::sync::atomic::Ordering::Acquire) {
            "draining"
        } else if shared.ready.load(std::sync::atomic::Ordering::Acquire) {
            "serving"
        } else {
            "starting"
        };
        let checks = body::ReadyChecks { http, pico: None, shared_tokens };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body::Ready { status: "not ready", checks })).into_response()
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "use POST")
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(Code::NotFound, format!("no such endpoint: {}", uri.path()))
}

async fn not_found_here() -> ApiError {
    ApiError::new(Code::NotFound, "no such endpoint on the gateway")
}

async fn reload_handler(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Admin>,
) -> Result<Json<body::Reloaded>, ApiError> {
    match reload::reload(&shared, &format!("POST /reload by {}", auth.principal.id)).await {
        Ok(summary) => Ok(Json(body::Reloaded {
            status: "reloaded",
            closed_sockets: summary.closed_sockets,
            warnings: summary.warnings,
        })),
        Err(message) => Err(ApiError::new(
            Code::InvalidConfig,
            format!("reload rejected, the previous configuration stays in effect: {message}"),
        )),
    }
}

async fn whoami(auth: Authenticated<Read>) -> Json<body::Whoami> {
    let p = auth.principal;
    Json(body::Whoami {
        kind: p.kind,
        id: p.id,
        name: p.name,
        scope: p.scope,
        source: p.source,
        fingerprint: p.fingerprint,
        presented_as: auth.how,
    })
}

async fn status(State(shared): State<Arc<Shared>>, _auth: Authenticated<Admin>) -> Json<body::Status> {
    let live = shared.live();
    let (sessions, sockets) = shared.hub.counts();
    Json(body::Status {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: shared.uptime_secs(),
        ready: shared.is_ready(),
        agent: live.engine.agent_name().to_owned(),
        pico: body::PicoStatus {
            enabled: live.settings.pico.enabled,
            connections: sockets,
            max_connections: live.settings.pico.max_connections,
            sessions,
        },
        pico_client: shared.pico_client_status(),
    })
}

/// `/pico/media/<id>`: a file of an answer, for the principal whose turn produced it
/// (anyone else, an unknown or an expired id: the same 404). Raster images are shown
/// inline, anything else is a download; never sniffed, never cached, sandboxed.
async fn media(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<PicoMedia>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Some(item) = shared.media.get(&id, &auth.principal.id) else {
        return ApiError::new(Code::NotFound, "no such media (files of an answer are kept one hour)")
            .into_response();
    };
    let inline = picoclaw_pico::is_raster_image_type(&item.content_type);
    let content_type = if inline { item.content_type.as_str() } else { "application/octet-stream" };
    let filename: String = item
        .filename
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .take(100)
        .collect();
    let disposition = format!("{}; filename=\"{filename}\"", if inline { "inline" } else { "attachment" });
    let headers = [
        (axum::http::header::CONTENT_TYPE, content_type.to_owned()),
        (axum::http::header::CONTENT_DISPOSITION, disposition),
        (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (axum::http::header::CACHE_CONTROL, "private, no-store".to_owned()),
        (axum::http::header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'".to_owned()),
    ];
    (headers, axum::body::Bytes::from_owner(item.bytes)).into_response()
}
