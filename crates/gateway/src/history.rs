//! The history API: `GET /api/sessions`, `GET /api/sessions/{id}/messages`,
//! `DELETE /api/sessions/{id}`.
//!
//! Authorised like the Pico channel: a session belongs to the credential that opened it
//! first, and any other chat credential is told it does not exist (404
//! `session_not_found`, the same answer as for an id nobody uses), so a chat token lists,
//! reads and deletes its own sessions only. Two scopes see every session:
//!
//! - `admin`, the operator: lists, reads and deletes any session (the CLI's
//!   `picoclaw sessions` uses the runtime token), but still cannot join another
//!   credential's session on the socket;
//! - `read`, a history viewer or backup job: lists and reads every session and can do
//!   nothing else — no socket, no message, no deletion, no token.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use picoclaw_auth::{Principal, Scope};
use picoclaw_store::{Message, Role, SessionInfo, Store};
use picoclaw_wire::body;
use picoclaw_wire::{ApiError, Code};

use crate::authenticated::{Authenticated, Chat, Read};
use crate::hub::close;
use crate::state::Shared;

/// Sessions listed when `limit` is not given.
const DEFAULT_SESSIONS: usize = 100;
/// Most sessions one list answers.
const MAX_SESSIONS: usize = 1000;
/// Messages per page when `limit` is not given.
const DEFAULT_MESSAGES: usize = 100;
/// Most messages per page.
const MAX_MESSAGES: usize = 1000;

/// `GET /api/sessions?limit=N`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Read>,
    RawQuery(query): RawQuery,
) -> Result<Json<body::SessionList>, ApiError> {
    let limit =
        Query::parse(query.as_deref(), &["limit"])?.number("limit", DEFAULT_SESSIONS, MAX_SESSIONS)?;
    let store = store(&shared)?;
    let owner = (!is_operator(&auth.principal)).then(|| auth.principal.id.clone());
    let mut sessions = store.sessions(owner, limit + 1).await.map_err(storage)?;
    let truncated = sessions.len() > limit;
    sessions.truncate(limit);
    Ok(Json(body::SessionList { sessions: sessions.into_iter().map(summary).collect(), truncated }))
}

/// `GET /api/sessions/{id}/messages?after_seq=N&limit=M`.
pub(crate) async fn messages(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Read>,
    Path(session_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<body::MessagesPage>, ApiError> {
    let query = Query::parse(query.as_deref(), &["after_seq", "limit"])?;
    let after_seq = query.number("after_seq", 0, u64::MAX)?;
    let limit = query.number("limit", DEFAULT_MESSAGES, MAX_MESSAGES)?;
    let store = store(&shared)?;
    visible(&store, &auth.principal, &session_id).await?;
    let mut messages = store.messages(session_id.clone(), after_seq, limit + 1).await.map_err(storage)?;
    let more = messages.len() > limit;
    messages.truncate(limit);
    let next_after_seq = if more { messages.last().map(|m| m.seq) } else { None };
    Ok(Json(body::MessagesPage {
        session_id,
        messages: messages.into_iter().map(message).collect(),
        next_after_seq,
    }))
}

/// `DELETE /api/sessions/{id}`: waits for the session's running turn, deletes its history
/// and closes its sockets (4004).
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Chat>,
    Path(session_id): Path<String>,
) -> Result<Json<body::SessionDeleted>, ApiError> {
    let store = store(&shared)?;
    visible(&store, &auth.principal, &session_id).await?;
    // Holding the turn lock, no turn of the session is half-recorded while it goes; turns
    // queued behind the lock see their socket closed with 4004 and do not run.
    let lock = shared.hub.turn_lock(&session_id);
    let _serial = match &lock {
        Some(lock) => Some(lock.lock().await),
        None => None,
    };
    let closed_sockets = shared.hub.forget(&session_id, close::SESSION_DELETED, "the session was deleted");
    let deleted = store.delete(session_id.clone()).await.map_err(storage)?;
    shared.media.forget_session(&session_id);
    if !deleted {
        return Err(not_found());
    }
    shared.hub.relay_deleted(&session_id);
    tracing::info!(session = %session_id, by = %auth.principal.id, closed_sockets, "session deleted");
    Ok(Json(body::SessionDeleted { status: "deleted", session_id, closed_sockets }))
}

/// True for the credentials that see every session here: the operator's (scope admin)
/// and history viewers (scope read).
fn is_operator(principal: &Principal) -> bool {
    matches!(principal.scope, Scope::Admin | Scope::Read)
}

/// Ok when `session_id` exists and `principal` may see it; otherwise the one 404.
async fn visible(store: &Arc<dyn Store>, principal: &Principal, session_id: &str) -> Result<(), ApiError> {
    picoclaw_agent::validate_session_id(session_id).map_err(|e| crate::conn::session_error(&e))?;
    match store.session(session_id.to_owned()).await.map_err(storage)? {
        Some(info) if info.owner == principal.id || is_operator(principal) => Ok(()),
        _ => Err(not_found()),
    }
}

fn not_found() -> ApiError {
    crate::conn::session_error(&picoclaw_agent::SessionError::NotFound)
}

fn store(shared: &Shared) -> Result<Arc<dyn Store>, ApiError> {
    let store = shared.live().engine.store().cloned();
    store.ok_or_else(|| ApiError::new(Code::SessionStorage, "this gateway keeps no history"))
}

fn storage(e: picoclaw_store::StoreError) -> ApiError {
    tracing::error!("session store: {e}");
    ApiError::new(Code::SessionStorage, "the session history could not be read (see logs/gateway.log)")
}

fn summary(s: SessionInfo) -> body::SessionSummary {
    body::SessionSummary {
        id: s.id,
        owner: s.owner,
        created: rfc3339(s.created_ms),
        last_activity: rfc3339(s.last_ms),
        messages: s.messages,
        bytes: s.bytes,
    }
}

fn message(m: Message) -> body::HistoryMessage {
    body::HistoryMessage {
        seq: m.seq,
        role: match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        },
        content: m.content,
        message_id: m.message_id,
        at: rfc3339(m.ts_ms),
    }
}

/// Unix milliseconds as RFC 3339 (UTC).
pub(crate) fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// The query parameters of a history request: each known at most once, unknown ones
/// refused (a typo must not silently mean "the default").
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>, known: &[&str]) -> Result<Query, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !known.contains(&k.as_ref()) {
                return Err(ApiError::new(
                    Code::BadQuery,
                    format!("unknown query parameter `{k}` (this endpoint takes {})", known.join(", ")),
                ));
            }
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(ApiError::new(Code::BadQuery, format!("`{k}` is given twice")));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Query(pairs))
    }

    /// The value of `key` as a whole number in `1..=max` (`after_seq`: `0..=max`), or
    /// `default` when absent.
    fn number<T>(&self, key: &str, default: T, max: T) -> Result<T, ApiError>
    where
        T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display + From<u8>,
    {
        let Some((_, text)) = self.0.iter().find(|(k, _)| k == key) else { return Ok(default) };
        let min = if key == "after_seq" { T::from(0) } else { T::from(1) };
        match text.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(ApiError::new(
                Code::BadQuery,
                format!("`{key}` must be a whole number from {min} to {max}, not `{text}`"),
            )),
        }
    }
}
