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
