//! The dashboard's chat history: the session list and a session's messages, read from the
//! running gateway's history API (`GET /api/sessions`, `GET /api/sessions/{id}/messages`,
//! `DELETE /api/sessions/{id}`) with the runtime token, like the tokens panel.
//!
//! The dashboard's chat sockets are proxied with the runtime token, so the gateway records
//! their sessions as owned by the principal `runtime`; the runtime token is an operator
//! credential and the gateway lists every session to it. The launcher shows only the
//! dashboard's own: owner `runtime` and an id the page made (`dashboard-` and 1–64
//! lowercase hex digits or letters). Any other id is 404 without contacting the gateway, and
//! the upstream path is built from the validated id and numbers only.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::Method;
use picoclaw_wire::{ApiError, Code};
use serde::Serialize;
use serde_json::Value;

use crate::state::AppState;
use crate::tokens::gateway_json;

/// The gateway principal that owns the dashboard's sessions (the runtime token's id).
const OWNER: &str = "runtime";
/// The prefix of the session ids the dashboard makes.
const PREFIX: &str = "dashboard-";
/// Sessions asked of the gateway (it lists every session to an operator).
const LISTED: usize = 200;
/// Sessions shown.
const SHOWN: usize = 50;
/// Characters of the first user message kept as a session's title.
const TITLE_CHARS: usize = 60;
/// Most messages per page (the gateway's bound).
const MAX_PAGE: u64 = 1000;

/// A session id the dashboard made: `dashboard-` and 1–64 of `[a-z0-9]`.
struct DashboardSession(String);

impl DashboardSession {
    fn parse(raw: &str) -> Option<DashboardSession> {
        let rest = raw.strip_prefix(PREFIX)?;
        let ok = (1..=64).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
        ok.then(|| DashboardSession(raw.to_owned()))
    }
}

/// One row of the session list.
#[derive(Serialize)]
struct SessionRow {
    id: String,
    /// The first user message, cut to 60 characters; `New chat` when there is none yet.
    title: String,
    created: Value,
    last_activity: Value,
    messages: Value,
}

/// `GET /api/chat/sessions`.
#[derive(Serialize)]
struct SessionsAnswer {
    /// Newest first.
    sessions: Vec<SessionRow>,
}

fn gateway_down() -> Response {
    ApiError::new(Code::GatewayUnavailable, "the gateway is not running; start it to see past chats")
        .into_response()
}

fn unreachable() -> Response {
    ApiError::new(Code::GatewayUnreachable, "cannot reach the gateway").into_response()
}

fn no_such_session() -> Response {
    ApiError::new(Code::NotFound, "no such dashboard chat: expected an id of the form dashboard-<hex>")
        .into_response()
}

/// The title of a session: its first user message, on one line, cut to [`TITLE_CHARS`].
fn title(page: &Value) -> String {
    let first = page["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let line: String = first.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "New chat".to_owned();
    }
    if line.chars().count() <= TITLE_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(TITLE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// `GET /api/chat/sessions`: the dashboard's sessions, newest first, each titled by its
/// first user message.
pub(crate) async fn list(State(st): State<Arc<AppState>>) -> Response {
    let Some(record) = st.gateway.record().await else { return gateway_down() };
    let path = format!("/api/sessions?limit={LISTED}");
    let listed = match gateway_json(&record, Method::GET, &path, Bytes::new()).await {
        Some((status, body)) if status.is_success() => body,
        Some((status, body)) => return (status, Json(body)).into_response(),
        None => return unreachable(),
    };
    let ours = listed["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["owner"] == OWNER)
        .filter_map(|s| Some((DashboardSession::parse(s["id"].as_str()?)?, s)))
        .take(SHOWN);
    let mut sessions = Vec::new();
    for (id, s) in ours {
        let path = format!("/api/sessions/{}/messages?limit=4", id.0);
        let title = match gateway_json(&record, Method::GET, &path, Bytes::new()).await {
            Some((status, page)) if status.is_success() => title(&page),
            _ => "New chat".to_owned(),
        };
        sessions.push(SessionRow {
            id: id.0,
            title,
            created: s["created"].clone(),
            last_activity: s["last_activity"].clone(),
            messages: s["messages"].clone(),
        });
    }
    Json(SessionsAnswer { sessions }).into_response()
}

/// `after_seq` and `limit` of a page request, parsed: unknown or repeated parameters and
/// numbers out of range are refused with a message naming them.
fn page_query(query: Option<&str>) -> Result<String, ApiError> {
    let bad = |m: String| ApiError::new(Code::BadQuery, m);
    let mut after = None;
    let mut limit = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let (slot, max) = match key.as_ref() {
            "after_seq" => (&mut after, u64::MAX),
            "limit" => (&mut limit, MAX_PAGE),
            other => return Err(bad(format!("unknown parameter `{other}`: expected after_seq and limit"))),
        };
        if slot.is_some() {
            return Err(bad(format!("`{key}` is given twice")));
        }
        let n = value.parse::<u64>().ok().filter(|n| *n <= max && (key != "limit" || *n >= 1));
        let Some(n) = n else {
            return Err(bad(format!("`{key}` must be a whole number (limit 1-{MAX_PAGE})")));
        };
        *slot = Some(n);
    }
    Ok(format!("after_seq={}&limit={}", after.unwrap_or(0), limit.unwrap_or(200)))
}

/// `GET /api/chat/sessions/{id}/messages?after_seq=N&limit=M`: one page, oldest first.
pub(crate) async fn messages(
    State(st): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(id) = id.ok().and_then(|Path(id)| DashboardSession::parse(&id)) else {
        return no_such_session();
    };
    let query = match page_query(query.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let Some(record) = st.gateway.record().await else { return gateway_down() };
    let path = format!("/api/sessions/{}/messages?{query}", id.0);
    match gateway_json(&record, Method::GET, &path, Bytes::new()).await {
        Some((status, body)) => (status, Json(body)).into_response(),
        None => unreachable(),
    }
}

/// `DELETE /api/chat/sessions/{id}`: deletes a dashboard chat and its history.
pub(crate) async fn delete(
    State(st): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = id.ok().and_then(|Path(id)| DashboardSession::parse(&id)) else {
        return no_such_session();
    };
    let Some(record) = st.gateway.record().await else { return gateway_down() };
    let path = format!("/api/sessions/{}", id.0);
    match gateway_json(&record, Method::DELETE, &path, Bytes::new()).await {
        Some((status, body)) => (status, Json(body)).into_response(),
        None => unreachable(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_ids_the_dashboard_makes() {
        for ok in ["dashboard-0123456789abcdef", "dashboard-a"] {
            assert!(DashboardSession::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "dashboard-",
            "dashboard-ABC",
            "dashboard-a/b",
            "dashboard-..",
            "pico_client-x",
            "other",
            "dashboard-a%2f",
            &format!("dashboard-{}", "a".repeat(65)),
        ] {
            assert!(DashboardSession::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn titles_are_the_first_user_message_on_one_line() {
        let page = json!({ "messages": [
            { "role": "assistant", "content": "hi" },
            { "role": "user", "content": "  how\n do   I\tdeploy?  " },
        ]});
        assert_eq!(title(&page), "how do I deploy?");
        assert_eq!(title(&json!({ "messages": [] })), "New chat");
        let long = json!({ "messages": [{ "role": "user", "content": "é".repeat(100) }] });
        assert_eq!(title(&long).chars().count(), TITLE_CHARS);
        assert!(title(&long).ends_with('…'));
    }

    #[test]
    fn page_queries_are_checked() {
        assert_eq!(page_query(None).unwrap(), "after_seq=0&limit=200");
        assert_eq!(page_query(Some("after_seq=5&limit=10")).unwrap(), "after_seq=5&limit=10");
        for bad in [
            "limit=0",
            "limit=1001",
            "after_seq=-1",
            "after_seq=x",
            "foo=1",
            "limit=1&limit=2",
            "after_seq=1%26x",
        ] {
            assert!(page_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
