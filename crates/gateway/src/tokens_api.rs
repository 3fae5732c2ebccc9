//! The admin token API (used by `picoclaw token`, the dashboard and scripts) and the
//! WebSocket ticket endpoint.
//!
//! | route | auth | |
//! |---|---|---|
//! | `GET /api/tokens` | admin | `{"tokens":[summary…]}` — ids, names, scopes, fingerprints, dates; never a secret |
//! | `POST /api/tokens` | admin | `{"name","scope":"chat"|"admin","expires":"30d"?}` → 201 with the token, shown once |
//! | `DELETE /api/tokens/{id or name}` | admin | revoke |
//! | `POST /api/tokens/{id, name, pico or gateway}/rotate` | admin | `{"grace":"10m"?}` → the new token, shown once |
//! | `POST /auth/ticket` | chat or admin, Bearer only | a single-use `ticket.<t>` for `Sec-WebSocket-Protocol`, 30 s, bound to the Origin and to the credential that asked |
//!
//! Changes are written to `.security.yml` (atomic, 0600, locked) and applied at once by a
//! reload (`Shared::apply`): sockets of a revoked credential are closed with 4001 and its
//! outstanding tickets dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use picoclaw_auth::Scope;
use picoclaw_auth::audit::{AuditEvent, AuditKind, Outcome};
use picoclaw_auth::named::{FixedCredential, Timestamp, TokenFile, TokenStoreError, parse_duration};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authenticated::{Admin, Authenticated, Chat};
use crate::error::ApiError;
use crate::reload::reload;
use crate::state::Shared;

fn store_error(e: TokenStoreError) -> ApiError {
    ApiError::new(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.code(),
        e.to_string(),
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TokenStoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))?
        .map_err(store_error)
}

async fn apply(shared: &Arc<Shared>, what: &str) {
    // The file watcher would also notice; reloading here makes the change effective
    // before the response is sent.
    let _ = reload(shared, what).await;
}

/// `GET /api/tokens`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    _auth: Authenticated<Admin>,
) -> Result<Json<Value>, ApiError> {
    let file = TokenFile::new(shared.paths.security_file());
    let tokens = blocking(move || file.list(Timestamp::now())).await?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    scope: String,
    #[serde(default)]
    expires: Option<String>,
}

fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body)
        .map_err(|e| bad_request("invalid_body", format!("expected JSON {expected}: {e}")))
}

/// `POST /api/tokens`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Admin>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let actor = auth.principal.id;
    let body: CreateBody =
        parse_body(&body, r#"{"name": "...", "scope": "chat"|"admin", "expires": "30d"}"#)?;
    let scope = match body.scope.as_str() {
        "chat" => Scope::Chat,
        "admin" => Scope::Admin,
        _ => return Err(bad_request("invalid_scope", "scope must be \"chat\" or \"admin\"")),
    };
    let now = Timestamp::now();
    let expires = match &body.expires {
        Some(text) => {
            Some(now.after(parse_duration(text).map_err(|e| bad_request("invalid_expires", e.to_string()))?))
        }
        None => None,
    };
    let file = TokenFile::new(shared.paths.security_file());
    let name = body.name.clone();
    let (record, secret) = blocking(move || file.create(&name, scope, expires, now)).await?;
    shared.audit(AuditEvent::new(AuditKind::Create, Outcome::Ok).actor(&actor).code(record.id.as_str()));
    apply(&shared, "token created").await;
    Ok((StatusCode::CREATED, Json(record.shown_once(now, &secret))).into_response())
}

/// `DELETE /api/tokens/{key}`.
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Admin>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = auth.principal.id;
    if FixedCredential::from_name(&key).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_revocable",
            format!("{key} is a configured credential; rotate it instead (POST /api/tokens/{key}/rotate)"),
        ));
    }
    let file = TokenFile::new(shared.paths.security_file());
    let now = Timestamp::now();
    let record = blocking(move || file.revoke(&key, now)).await?;
    let summary = record.summary(now);
    shared.audit(AuditEvent::new(AuditKind::Revoke, Outcome::Ok).actor(&actor).code(&summary.id));
    apply(&shared, "token revoked").await;
    Ok(Json(json!({ "revoked": summary })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateBody {
    #[serde(default)]
    grace: Option<String>,
}

/// `POST /api/tokens/{key}/rotate`.
pub(crate) async fn rotate(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Admin>,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let actor = auth.principal.id;
    let body: RotateBody = parse_body(&body, r#"{"grace": "10m"}"#)?;
    let grace = match &body.grace {
        Some(text) => parse_duration(text).map_err(|e| bad_request("invalid_grace", e.to_string()))?,
        None => Duration::ZERO,
    };
    let file = TokenFile::new(shared.paths.security_file());
    let now = Timestamp::now();
    let out = match FixedCredential::from_name(&key) {
        Some(cred) => {
            let current = shared.live().credentials.clone();
            let rotation =
                blocking(move || file.rotate_fixed(cred, &current, grace, now)).await.inspect_err(|e| {
                    shared.audit(
                        AuditEvent::new(AuditKind::Rotate, Outcome::Denied).actor(&actor).code(e.code),
                    );
                })?;
            json!({
                "id": key,
                "fingerprint": rotation.secret.fingerprint().to_string(),
                "token": rotation.secret.expose(),
                "old_valid_until": rotation.old_valid_until.map(Timestamp::unix),
                "old_source": rotation.old_source.to_string(),
            })
        }
        None => {
            let (record, secret) = blocking(move || file.rotate(&key, grace, now)).await?;
            record.shown_once(now, &secret)
        }
    };
    shared.audit(
        AuditEvent::new(AuditKind::Rotate, Outcome::Ok).actor(&actor).code(out["id"].as_str().unwrap_or("")),
    );
    apply(&shared, "token rotated").await;
    Ok(Json(out))
}

/// `POST /auth/ticket`.
pub(crate) async fn ticket(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Chat>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = auth.principal;
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let (ticket, expires) = shared.tickets.issue(&principal, origin).map_err(|_| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "random_failed", "cannot generate a ticket")
    })?;
    Ok(Json(json!({
        "ticket": ticket.expose(),
        "protocol": format!("ticket.{}", ticket.expose()),
        "expires_at": expires.unix(),
        "origin": origin,
        "single_use": true,
    })))
}
