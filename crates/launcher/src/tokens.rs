//! The tokens panel: every credential's source and fingerprint (from
//! `picoclaw_auth::explain`, never a value), plus the hook for named-token
//! management: exactly three operations are forwarded to the running gateway's admin API
//! with the runtime token — `POST /api/tokens` (create), `DELETE /api/tokens/{key}`
//! (revoke) and `POST /api/tokens/{key}/rotate` — where `key` is `pico`, `gateway`, a
//! named-token id or name. Any other path under `/api/tokens` is 404 without contacting
//! the gateway (the runtime token reaches everything: a forwarder that passed the request
//! path on could reach `/auth/ticket` or `/reload` through `..`). A gateway without that
//! API answers 404, which the dashboard shows as "not available in this build".
//!
//! "Pair a device" is one more fixed forward: `POST /api/pair` → the gateway's
//! `POST /api/pair`; the answer gains `qr_svg`, the link drawn as an SVG QR code for the
//! dashboard to show as an image (the link is shown to the admin who asked, once; the
//! answer is `no-store`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use picoclaw_auth::explain::{Explanation, Extra, explain, named_token_counts};
use picoclaw_auth::named::{TokenId, TokenName};
use picoclaw_config::{Flags, ProcessEnv};
use picoclaw_credentials::runtime::RuntimeRecord;
use serde_json::{Value, json};

use crate::LOG;
use crate::state::AppState;
use picoclaw_wire::{ApiError, Code};

/// Largest gateway answer relayed.
const MAX_ANSWER: usize = 256 * 1024;

/// One client for every call to the gateway (the chat list makes one call per chat).
fn client() -> Option<reqwest::Client> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    // Loopback only: never route the runtime token through an HTTP proxy from the env.
    CLIENT
        .get_or_init(|| reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().ok())
        .clone()
}

fn explanation(
    paths: &picoclaw_config::Paths,
    runtime: Option<&RuntimeRecord>,
) -> Result<Explanation, String> {
    let loaded = picoclaw_credentials::load(paths, &ProcessEnv, &Flags::new()).map_err(|e| e.to_string())?;
    let launcher = loaded.launcher_token();
    let named =
        named_token_counts(&picoclaw_store::token_records(paths, &loaded.settings, &loaded.credentials));
    let password = loaded.dashboard_password().ok().flatten();
    let extra = Extra { runtime, launcher: launcher.as_ref(), password: password.as_ref(), named };
    Ok(explain(&loaded.settings, &loaded.credentials, &extra))
}

pub(crate) async fn gateway_json(
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
            return ApiError::new(Code::ConfigError, message).into_response();
        }
        Err(_) => return ApiError::internal(LOG).into_response(),
    };
    let named = match &record {
        Some(r) => match gateway_json(r, Method::GET, "/api/tokens", Bytes::new()).await {
            Some((status, body)) if status.is_success() => Some(body),
            _ => None,
        },
        None => None,
    };
    let management = named.is_some();
    Json(TokensPanel {
        credentials: explained.credentials,
        endpoints: explained.endpoints,
        warnings: explained.warnings,
        named,
        management,
    })
    .into_response()
}

/// `GET /api/tokens`: the credentials table of `auth explain`, and the gateway's
/// named-token list when it runs.
#[derive(serde::Serialize)]
struct TokensPanel {
    credentials: Vec<picoclaw_auth::explain::CredentialRow>,
    endpoints: Vec<picoclaw_auth::explain::EndpointRow>,
    warnings: Vec<String>,
    named: Option<Value>,
    management: bool,
}

/// A credential the dashboard may revoke or rotate, as one path segment: `pico`,
/// `gateway`, a named-token id or a named-token name. Parsed from the (decoded) path
/// parameter, so `..`, `%2e%2e`, `a/b` and anything starting with `.` never become part
/// of an upstream URL.
struct TokenKey(String);

impl TokenKey {
    fn parse(raw: &str) -> Option<TokenKey> {
        if matches!(raw, "pico" | "gateway") {
            return Some(TokenKey(raw.to_owned()));
        }
        if raw.starts_with('.') {
            return None;
        }
        if let Ok(id) = TokenId::parse(raw) {
            return Some(TokenKey(id.as_str().to_owned()));
        }
        // A name is 1-64 of `[A-Za-z0-9._-]` (not starting with `.`, checked above): no
        // `/`, `%` or `\`, so the url crate cannot read it as anything but one segment.
        TokenName::parse(raw).ok().map(|name| TokenKey(name.as_str().to_owned()))
    }
}

fn no_such_token() -> Response {
    ApiError::new(
        Code::NotFound,
        "no such token: expected pico, gateway, a token id or a token name \
         (letters, digits, `.`, `_`, `-`; not starting with `.`)",
    )
    .into_response()
}

/// `POST /api/tokens`: create a named token.
pub(crate) async fn create(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    forward(&st, Method::POST, "/api/tokens".to_owned(), body).await
}

/// `DELETE /api/tokens/{key}`: revoke.
pub(crate) async fn revoke(
    State(st): State<Arc<AppState>>,
    key: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(key) = key.ok().and_then(|Path(k)| TokenKey::parse(&k)) else { return no_such_token() };
    forward(&st, Method::DELETE, format!("/api/tokens/{}", key.0), Bytes::new()).await
}

/// `POST /api/tokens/{key}/rotate`: rotate.
pub(crate) async fn rotate(
    State(st): State<Arc<AppState>>,
    key: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let Some(key) = key.ok().and_then(|Path(k)| TokenKey::parse(&k)) else { return no_such_token() };
    let fixed = matches!(key.0.as_str(), "pico" | "gateway");
    let answer = forward(&st, Method::POST, format!("/api/tokens/{}/rotate", key.0), body).await;
    if fixed { without_value(answer).await } else { answer }
}

/// A rotation of the pico or gateway token, without the new value: the browser never
/// receives a gateway or pico token (docs/launcher.md). The value is in `.security.yml`
/// (the answer says where); a named token's new value is shown once, since it is made for
/// a device the user is setting up.
/// `POST /api/pair`: a one-time pairing link for a device, with its QR code.
pub(crate) async fn pair(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let Some(record) = st.gateway.record().await else {
        return ApiError::new(
            Code::GatewayUnavailable,
            "the gateway is not running; start it to pair a device",
        )
        .into_response();
    };
    let mut response = match gateway_json(&record, Method::POST, "/api/pair", body).await {
        Some((StatusCode::CREATED, mut answer)) => {
            if let Some(svg) = answer["link"].as_str().and_then(qr_svg) {
                answer["qr_svg"] = Value::from(svg);
            }
            (StatusCode::CREATED, Json(answer)).into_response()
        }
        Some((StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED, _)) => {
            ApiError::new(Code::TokensApiUnavailable, "this gateway cannot pair devices (no /api/pair)")
                .into_response()
        }
        Some((status, body)) => (status, Json(body)).into_response(),
        None => ApiError::new(Code::GatewayUnreachable, "cannot reach the gateway").into_response(),
    };
    response.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

/// `link` as an SVG QR code (dark modules on white, with the quiet zone).
fn qr_svg(link: &str) -> Option<String> {
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

async fn without_value(answer: Response) -> Response {
    let status = answer.status();
    let Ok(bytes) = axum::body::to_bytes(answer.into_body(), MAX_ANSWER).await else {
        return ApiError::internal(LOG).into_response();
    };
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&bytes) else {
        return (status, bytes).into_response();
    };
    if body.remove("token").is_some() {
        body.insert(
            "token_shown".into(),
            Value::from(
                "no: the new value is in .security.yml; `picoclaw token rotate` on the host prints it",
            ),
        );
    }
    (status, Json(Value::Object(body))).into_response()
}

/// Forwards one allowed operation to the gateway's named-token admin API with the runtime
/// token. `path` is built from validated parts only, never from the request's path, and
/// the request's query string is not forwarded.
async fn forward(st: &AppState, method: Method, path: String, body: Bytes) -> Response {
    let Some(record) = st.gateway.record().await else {
        return ApiError::new(
            Code::GatewayUnavailable,
            "the gateway is not running; start it to manage tokens",
        )
        .into_response();
    };
    let create = path == "/api/tokens";
    match gateway_json(&record, method, &path, body).await {
        Some((StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED, _)) if create => ApiError::new(
            Code::TokensApiUnavailable,
            "this gateway has no named-token API yet; tokens are shown read-only",
        )
        .into_response(),
        Some((status, body)) => (status, Json(body)).into_response(),
        None => ApiError::new(Code::GatewayUnreachable, "cannot reach the gateway").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_keys_are_one_safe_segment() {
        for ok in ["pico", "gateway", "phone", "tablet.v2", "a..b", "my_token-1", "abcdefghijk2"] {
            assert!(TokenKey::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "../reload",
            "..%2f",
            "%2e%2e",
            "a/b",
            "a\\b",
            "a%2fb",
            "a b",
            "runtime",
            "x?y",
            "x#y",
        ] {
            assert!(TokenKey::parse(bad).is_none(), "{bad}");
        }
        assert!(TokenKey::parse(&"n".repeat(65)).is_none());
    }
}
