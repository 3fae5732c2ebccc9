//! The tokens panel: every credential's source and fingerprint (from
//! `picoclaw_auth::explain`, never a value), plus the hook for named-token
//! management: `POST /api/tokens…` and `DELETE /api/tokens/…` are forwarded to the running
//! gateway's `/api/tokens` admin API with the runtime token. A gateway without that API
//! answers 404, which the dashboard shows as "not available in this build".

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, Uri};
use picoclaw_auth::explain::{Explanation, Extra, explain, named_token_counts};
use picoclaw_config::{Flags, Layers, ProcessEnv, Settings};
use picoclaw_credentials::Credentials;
use picoclaw_credentials::runtime::RuntimeRecord;
use serde_json::{Value, json};

use crate::routes::ApiError;
use crate::state::AppState;

/// Largest gateway answer relayed.
const MAX_ANSWER: usize = 256 * 1024;

fn client() -> Option<reqwest::Client> {
    // Loopback only: never route the runtime token through an HTTP proxy from the env.
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().ok()
}

fn explanation(
    paths: &picoclaw_config::Paths,
    runtime: Option<&RuntimeRecord>,
) -> Result<Explanation, String> {
    let layers = Layers::load(paths, &ProcessEnv, &Flags::new()).map_err(|e| e.to_string())?;
    let settings = Settings::resolve(&layers).map_err(|e| e.to_string())?;
    let creds = Credentials::resolve(&layers, &settings).map_err(|e| e.to_string())?;
    let launcher = picoclaw_credentials::launcher::peek(&layers);
    let (named_admin, named_chat) = named_token_counts(&layers);
    Ok(explain(&settings, &creds, &Extra { runtime, launcher: launcher.as_ref(), named_admin, named_chat }))
}

async fn gateway_json(
    record: &RuntimeRecord,
    method: Method,
    path_and_query: &str,
    body: Bytes,
) -> Option<(StatusCode, Value)> {
    let client = client()?;
    let url = format!("{}{path_and_query}", record.base_url());
    let mut req = client.request(method, url).bearer_auth(record.token.expose());
    if !body.is_empty() {
        req = req.header(http::header::CONTENT_TYPE, "application/json").body(body);
    }
    let resp = req.send().await.ok()?;
    let status = resp.status();
    let bytes = resp.bytes().await.ok()?;
    if bytes.len() > MAX_ANSWER {
        return Some((
            StatusCode::BAD_GATEWAY,
            json!({ "error": { "code": "too_large", "message": "the gateway's answer is too large" } }),
        ));
    }
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Some((status, value))
}

/// `GET /api/tokens`.
pub(crate) async fn list(State(st): State<Arc<AppState>>) -> Response {
    let record = st.gateway.record().await;
    let paths = st.paths.clone();
    let rec = record.clone();
    let explained = tokio::task::spawn_blocking(move || explanation(&paths, rec.as_ref())).await;
    let explained = match explained {
        Ok(Ok(e)) => e,
        Ok(Err(message)) => {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "config_error", message).into_response();
        }
        Err(_) => return ApiError::internal().into_response(),
    };
    let named = match &record {
        Some(r) => match gateway_json(r, Method::GET, "/api/tokens", Bytes::new()).await {
            Some((status, body)) if status.is_success() => Some(body),
            _ => None,
        },
        None => None,
    };
    Json(json!({
        "credentials": explained.credentials,
        "endpoints": explained.endpoints,
        "warnings": explained.warnings,
        "named": named,
        "management": named.is_some(),
    }))
    .into_response()
}

/// `POST /api/tokens`, `POST /api/tokens/...`, `DELETE /api/tokens/...`: forwarded to the
/// gateway's named-token admin API.
pub(crate) async fn forward(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let Some(record) = st.gateway.record().await else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "gateway_unavailable",
            "the gateway is not running; start it to manage tokens",
        )
        .into_response();
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str()).to_owned();
    match gateway_json(&record, method, &path, body).await {
        Some((StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED, _))
            if !path.contains("/api/tokens/") =>
        {
            ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "tokens_api_unavailable",
                "this gateway has no named-token API yet; tokens are shown read-only",
            )
            .into_response()
        }
        Some((status, body)) => (status, Json(body)).into_response(),
        None => ApiError::new(StatusCode::BAD_GATEWAY, "gateway_unreachable", "cannot reach the gateway")
            .into_response(),
    }
}
