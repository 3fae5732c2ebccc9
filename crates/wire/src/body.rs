//! The JSON bodies of the answers, as types: a field cannot be misspelled in one handler
//! and right in another, and docs/gateway.md documents these.

use picoclaw_auth::{CredentialKind, Presentation, Scope};
use serde::Serialize;

/// `GET /health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// Seconds since start.
    pub uptime_s: u64,
    /// picoclaw version.
    pub version: &'static str,
}

/// `GET /ready`.
#[derive(Debug, Serialize)]
pub struct Ready {
    /// `ready` or `not ready`.
    pub status: &'static str,
    /// Per part: `http` is `serving`, `starting` or `draining`; `pico` is `serving` or
    /// `disabled` (when ready).
    pub checks: ReadyChecks,
}

/// The parts of [`Ready`].
#[derive(Debug, Serialize)]
pub struct ReadyChecks {
    /// The HTTP server.
    pub http: &'static str,
    /// The Pico channel (omitted while not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pico: Option<&'static str>,
    /// With `storage.url`: `current`, or `stale` while a change of the replicas' shared
    /// named tokens could not be read (the replica is then not ready, so a load balancer
    /// stops sending it clients whose token may have been revoked elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_tokens: Option<&'static str>,
}

/// `POST /reload`.
#[derive(Debug, Serialize)]
pub struct Reloaded {
    /// Always `reloaded`.
    pub status: &'static str,
    /// Sockets closed because their credential ended.
    pub closed_sockets: usize,
    /// Configuration warnings (names only).
    pub warnings: Vec<String>,
}

/// `GET /auth/whoami`: the caller, never its secret.
#[derive(Debug, Serialize)]
pub struct Whoami {
    /// Kind of credential.
    pub kind: CredentialKind,
    /// Stable id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Where it is configured.
    pub source: String,
    /// First 8 hex of its SHA-256.
    pub fingerprint: String,
    /// How it was presented.
    pub presented_as: Presentation,
}

/// `GET /status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The gateway's pid.
    pub pid: u32,
    /// picoclaw version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Serving and not draining.
    pub ready: bool,
    /// The agent answering (`echo` or a model name).
    pub agent: String,
    /// The Pico channel.
    pub pico: PicoStatus,
    /// The outbound `pico_client` channel (`null` when disabled).
    pub pico_client: serde_json::Value,
}

/// The Pico channel part of [`Status`].
#[derive(Debug, Serialize)]
pub struct PicoStatus {
    /// Channel on.
    pub enabled: bool,
    /// Open sockets.
    pub connections: usize,
    /// `channels.pico.max_connections`.
    pub max_connections: usize,
    /// Sessions the hub holds.
    pub sessions: usize,
}

/// `POST /auth/ticket`.
#[derive(Debug, Serialize)]
pub struct TicketIssued {
    /// The ticket (shown once).
    pub ticket: String,
    /// `ticket.<t>`, the `Sec-WebSocket-Protocol` offer to make.
    pub protocol: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The Origin it is bound to.
    pub origin: Option<String>,
    /// Always true.
    pub single_use: bool,
}

/// A plain success: `{"status":"ok"}`.
#[derive(Debug, Serialize)]
pub struct Done {
    /// `ok`.
    pub status: &'static str,
}

impl Done {
    /// `{"status":"ok"}`.
    pub const OK: Done = Done { status: "ok" };
}

/// One session, as `GET /api/sessions` lists it.
#[derive(Debug, Serialize)]
pub struct SessionSummary {
    /// Its id (the `session_id` of the Pico channel).
    pub id: String,
    /// The principal id that owns it.
    pub owner: String,
    /// When it was first opened (RFC 3339).
    pub created: String,
    /// Its last turn, or its first claim (RFC 3339).
    pub last_activity: String,
    /// Messages stored.
    pub messages: u64,
    /// Bytes of message text stored.
    pub bytes: u64,
}

/// `GET /api/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionList {
    /// Most recent first.
    pub sessions: Vec<SessionSummary>,
    /// True when more sessions exist than `limit` allowed.
    pub truncated: bool,
}

/// One stored message.
#[derive(Debug, Serialize)]
pub struct HistoryMessage {
    /// The protocol-2 `seq` of the frame that carried it (a user message: its turn's
    /// `typing.start`; an answer: its `message.create`).
    pub seq: u64,
    /// `user` or `assistant`.
    pub role: &'static str,
    /// The text.
    pub content: String,
    /// The answer's `message_id` (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// When it was recorded (RFC 3339).
    pub at: String,
}

/// `GET /api/sessions/{id}/messages`.
#[derive(Debug, Serialize)]
pub struct MessagesPage {
    /// The session.
    pub session_id: String,
    /// Oldest first, every `seq` greater than the request's `after_seq`.
    pub messages: Vec<HistoryMessage>,
    /// The `after_seq` of the next page; `null` when this page is the last.
    pub next_after_seq: Option<u64>,
}

/// `DELETE /api/sessions/{id}`.
#[derive(Debug, Serialize)]
pub struct SessionDeleted {
    /// `deleted`.
    pub status: &'static str,
    /// The session.
    pub session_id: String,
    /// Sockets of the session that were closed (code 4004).
    pub closed_sockets: usize,
}

/// `POST /api/pair`: a one-time pairing code, as the link that carries it.
#[derive(Debug, Serialize)]
pub struct PairIssued {
    /// The code's public id (8 hex; audit lines name it).
    pub id: String,
    /// `<public_url>/pair#code=<code>`: open it on the device (shown once; the code is in
    /// the fragment, which no browser sends to a server).
    pub link: String,
    /// The base URL in the link.
    pub public_url: String,
    /// Where that URL came from: `request` (the body's `public_url`), `forwarded` (a
    /// trusted proxy's `X-Forwarded-Host`) or `host` (the request's `Host`).
    pub public_url_source: &'static str,
    /// The scope of the token the device will get.
    pub scope: Scope,
    /// Its name.
    pub name: String,
    /// Unix seconds after which the code is refused.
    pub expires_at: u64,
    /// The lifetime, in seconds.
    pub ttl_s: u64,
    /// Always true.
    pub single_use: bool,
}
