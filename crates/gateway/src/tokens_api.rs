//! The admin token API (used by `picoclaw token`, the dashboard and scripts) and the
//! WebSocket ticket endpoint.
//!
//! | route | auth | |
//! |---|---|---|
//! | `GET /api/tokens` | admin | `Listed`: `{"tokens":[summary…],"credentials":[pico, gateway]}` — ids, names, scopes, fingerprints, dates; never a secret |
//! | `POST /api/tokens` | admin | `{"name","scope":"read"|"chat"|"admin","expires":"30d"?}` → 201 `Created`, with the token shown once |
//! | `DELETE /api/tokens/{id or name}` | admin | revoke → `Revoked` |
//! | `POST /api/tokens/{id, name, pico or gateway}/rotate` | admin | `{"grace":"10m"?}` → `Rotated`, with the new token shown once |
//! | `POST /auth/ticket` | chat or admin, Bearer only | a single-use `ticket.<t>` for `Sec-WebSocket-Protocol`, 30 s, bound to the Origin and to the credential that asked |
//!
//! The token routes are thin: they parse the request and call
//! `picoclaw_auth::named::ops`, the service `picoclaw token` calls too, so both take the
//! same input and answer with the same JSON (docs/tokens.md), the same errors
//! (`TokenOpError`: its code and status, as `{"error":{"code","message"}}`) and the same
//! audit line. Changes are written to `.security.yml` (atomic, 0600, locked) and applied at
//! once by a reload (`Shared::apply`): sockets of a revoked credential are closed with 4001
//! and its outstanding tickets dropped.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use picoclaw_auth::audit::{AuditEvent, AuditSink};
use picoclaw_auth::named::ops::{
    CreateRequest, Listed, Requester, Revoked, RotateRequest, Rotated, TokenKey, TokenOpError, TokenOps,
};

use crate::LOG;
use crate::authenticated::{Admin, Authenticated, Chat};
use crate::reload::reload;
use crate::state::Shared;
use picoclaw_wire::{ApiError, Code, body};

impl AuditSink for Shared {
    fn record(&self, event: &AuditEvent) {
        self.audit(event.clone());
    }
}

/// The token service for this gateway, with the credentials it runs with.
fn ops(shared: &Shared) -> TokenOps {
    let live = shared.live();
    TokenOps::new(
        picoclaw_store::token_records(&shared.paths, &live.settings, &live.credentials),
        live.credentials.clone(),
    )
}

/// Runs a token operation (file I/O under a lock) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TokenOpError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| ApiError::internal(LOG))?.map_err(ApiError::from)
}

/// Reloads so the change is in effect before the answer is sent. When the reload is
/// rejected (another part of the configuration is invalid), the change is written but not
/// in effect: the caller is told so (409 `not_applied`), never "done".
///
/// With `storage.url` the change is in PostgreSQL (the named tokens are the replicas'
/// shared ones; per-home rotations are refused before this): only the named tokens are
/// read back, as every other replica does on the change's notification.
pub(crate) async fn apply(shared: &Arc<Shared>, what: &str) -> Result<(), ApiError> {
    if shared.shares_tokens.load(std::sync::atomic::Ordering::Acquire) {
        return crate::reload::refresh_shared_tokens(shared).await.map_err(|message| {
            ApiError::new(
                Code::NotApplied,
                format!(
                    "the change was stored in PostgreSQL (storage.url) but this replica could not read it back \
                     ({message}); it retries, and the other replicas apply it on their own"
                ),
            )
        });
    }
    reload(shared, what).await.map(|_| ()).map_err(|message| {
        ApiError::new(
            Code::NotApplied,
            format!(
                "the change was written to .security.yml but is not in effect: the configuration does not \
                 reload ({message}); fix it and run `picoclaw gateway reload`"
            ),
        )
    })
}

/// `GET /api/tokens`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    _auth: Authenticated<Admin>,
) -> Result<Json<Listed>, ApiError> {
    let ops = ops(&shared);
    Ok(Json(blocking(move || ops.list()).await?))
}

/// `POST /api/tokens`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Admin>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ops = ops(&shared);
    let request = CreateRequest::from_json(&body, ops.now())?;
    let by = Requester::api(&auth.principal, Some(auth.client.to_string()));
    let sink = shared.clone();
    let created = blocking(move || ops.create(&request, &by, &*sink)).await?;
    apply(&shared, "token created").await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `DELETE /api/tokens/{key}`.
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Admin>,
    Path(key): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    let key = TokenKey::parse(&key)?;
    let ops = ops(&shared);
    let by = Requester::api(&auth.principal, Some(auth.client.to_string()));
    let sink = shared.clone();
    let revoked = blocking(move || ops.revoke(&key, &by, &*sink)).await?;
    apply(&shared, "token revoked").await?;
    Ok(Json(revoked))
}

/// `POST /api/tokens/{key}/rotate`.
pub(crate) async fn rotate(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Admin>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Rotated>, ApiError> {
    let request = RotateRequest::from_json(&key, &body)?;
    let ops = ops(&shared);
    let by = Requester::api(&auth.principal, Some(auth.client.to_string()));
    let sink = shared.clone();
    let rotated = blocking(move || ops.rotate(&request, &by, &*sink)).await?;
    apply(&shared, "token rotated").await?;
    Ok(Json(rotated))
}

/// `POST /auth/ticket`.
pub(crate) async fn ticket(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Chat>,
    headers: HeaderMap,
) -> Result<Json<body::TicketIssued>, ApiError> {
    let principal = auth.principal;
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let (ticket, expires) = shared
        .tickets
        .issue(&principal, origin)
        .map_err(|_| ApiError::new(Code::RandomFailed, "cannot generate a ticket"))?;
    // With replicas, the socket may land on another one: the ticket is shared, once.
    crate::replicated::share(&shared, &shared.tickets, &ticket.digest(), &principal).await?;
    Ok(Json(body::TicketIssued {
        ticket: ticket.expose().to_owned(),
        protocol: format!("ticket.{}", ticket.expose()),
        expires_at: expires.unix(),
        origin: origin.map(str::to_owned),
        single_use: true,
    }))
}
