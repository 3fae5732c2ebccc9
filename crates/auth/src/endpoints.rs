//! The one table of every endpoint: its server, path, methods, what guards it and how a
//! credential may be presented there.
//!
//! - The gateway's router is built from it: `crates/gateway/src/api.rs` routes each
//!   [`EndpointId`] of the gateway to its handler (an exhaustive `match`, so a handler
//!   cannot be routed without a row), and each protected handler takes the
//!   `Authenticated<…>` extractor matching its row's [`Guard`]. An in-process test sends
//!   every credential kind to every row and checks the answer against the row.
//! - `picoclaw auth explain` prints it ([`crate::explain`]).
//! - docs/credentials.md carries it as a table that a test compares with
//!   [`markdown_table`].

use serde::Serialize;

use crate::extract::Presentations;
use crate::verify::Scope;

/// Which server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// The gateway (default `localhost:18790`).
    Gateway,
    /// The launcher / dashboard (default `localhost:18800`).
    Launcher,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Server::Gateway => "gateway",
            Server::Launcher => "launcher",
        })
    }
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Guard {
    /// Nothing: open to anyone who can reach the server.
    Open,
    /// A gateway credential of at least `scope`, presented as `Authorization: Bearer` or
    /// one of `presentations`.
    Credential {
        /// The scope needed.
        scope: Scope,
        /// Ways of presenting it besides `Authorization: Bearer`.
        presentations: Presentations,
    },
    /// The launcher token (the dashboard's login form).
    LauncherToken,
    /// A one-time login code from a `login#code=` link (the launcher's console, the tray).
    LoginCode,
    /// A dashboard session cookie; state changes must also be same-origin.
    DashboardSession,
}

/// Names of the endpoints, one per row of [`ENDPOINTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointId {
    /// `GET /health`.
    Health,
    /// `GET /ready`.
    Ready,
    /// `POST /reload`.
    Reload,
    /// `GET /auth/whoami`.
    Whoami,
    /// `GET /status`.
    Status,
    /// `POST /auth/ticket`.
    Ticket,
    /// `GET|POST /api/tokens`.
    Tokens,
    /// `DELETE /api/tokens/{key}`.
    Token,
    /// `POST /api/tokens/{key}/rotate`.
    TokenRotate,
    /// `POST /api/pair` (issue a one-time pairing code).
    Pair,
    /// `POST /api/pair/redeem` (exchange a pairing code for a named token).
    PairRedeem,
    /// `GET /pair` (the page a pairing link opens).
    PairPage,
    /// `GET /pair.js` (that page's script).
    PairScript,
    /// `GET /pico/ws`.
    PicoSocket,
    /// `GET /pico/ws/`.
    PicoSocketSlash,
    /// `GET /pico` (the URL of seed 001's own example).
    PicoSocketShort,
    /// `GET /pico/media/{id}`.
    PicoMedia,
    /// `GET /api/sessions`.
    Sessions,
    /// `DELETE /api/sessions/{id}`.
    Session,
    /// `GET /api/sessions/{id}/messages`.
    SessionMessages,
    /// `POST /v1/chat/completions` (OpenAI-compatible).
    ChatCompletions,
    /// `GET /v1/models` (OpenAI-compatible).
    Models,
    /// Launcher `POST /login`.
    LauncherLogin,
    /// Launcher `POST /login/code`.
    LauncherLoginCode,
    /// Launcher `POST /logout`.
    LauncherLogout,
    /// Launcher `POST /setup`.
    LauncherSetup,
    /// Launcher pages (`/`, `/index.html`).
    LauncherPages,
    /// Launcher `/api/*`.
    LauncherApi,
    /// Launcher `/pico/ws` (the dashboard's chat, proxied to the gateway).
    LauncherPicoSocket,
    /// Launcher `GET /pico/media/{id}` (files of the dashboard's chat, from the gateway).
    LauncherPicoMedia,
}

/// One endpoint.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Endpoint {
    /// Its name.
    pub id: EndpointId,
    /// The server.
    pub server: Server,
    /// HTTP methods it answers (others get 405 or 404).
    pub methods: &'static [&'static str],
    /// The path, in axum syntax (`{id}` is one segment).
    pub path: &'static str,
    /// What it needs.
    pub guard: Guard,
    /// What it does.
    pub note: &'static str,
}

const fn admin() -> Guard {
    Guard::Credential { scope: Scope::Admin, presentations: Presentations::BEARER }
}

const fn read() -> Guard {
    Guard::Credential { scope: Scope::Read, presentations: Presentations::BEARER }
}

const fn chat() -> Guard {
    Guard::Credential { scope: Scope::Chat, presentations: Presentations::BEARER }
}

const SOCKET: Guard = Guard::Credential { scope: Scope::Chat, presentations: Presentations::SOCKET };

const fn gateway(
    id: EndpointId,
    methods: &'static [&'static str],
    path: &'static str,
    guard: Guard,
    note: &'static str,
) -> Endpoint {
    Endpoint { id, server: Server::Gateway, methods, path, guard, note }
}

const fn launcher(
    id: EndpointId,
    methods: &'static [&'static str],
    path: &'static str,
    guard: Guard,
    note: &'static str,
) -> Endpoint {
    Endpoint { id, server: Server::Launcher, methods, path, guard, note }
}

/// Every endpoint of the gateway and the launcher.
pub const ENDPOINTS: &[Endpoint] = &[
    gateway(
        EndpointId::Health,
        &["GET"],
        "/health",
        Guard::Open,
        "status, uptime and version; no pid, no secret",
    ),
    gateway(EndpointId::Ready, &["GET"], "/ready", Guard::Open, "503 until every enabled channel serves"),
    gateway(
        EndpointId::Reload,
        &["POST"],
        "/reload",
        admin(),
        "re-read config.json, .security.yml and the environment",
    ),
    gateway(
        EndpointId::Whoami,
        &["GET"],
        "/auth/whoami",
        read(),
        "the caller's kind, id, scope, source and fingerprint",
    ),
    gateway(
        EndpointId::Status,
        &["GET"],
        "/status",
        admin(),
        "pid, uptime, sockets, sessions, pico_client state",
    ),
    gateway(
        EndpointId::Ticket,
        &["POST"],
        "/auth/ticket",
        chat(),
        "a single-use 30 s ticket that opens /pico/ws once; a ticket cannot mint another",
    ),
    gateway(EndpointId::Tokens, &["GET", "POST"], "/api/tokens", admin(), "list or create named tokens"),
    gateway(EndpointId::Token, &["DELETE"], "/api/tokens/{key}", admin(), "revoke a named token"),
    gateway(
        EndpointId::TokenRotate,
        &["POST"],
        "/api/tokens/{key}/rotate",
        admin(),
        "rotate a named token, the pico token or the gateway token",
    ),
    gateway(
        EndpointId::Pair,
        &["POST"],
        "/api/pair",
        admin(),
        "a one-time pairing code (scope chat or read, 1 s to 1 h, default 10 min) and its link `…/pair#code=…`",
    ),
    gateway(
        EndpointId::PairRedeem,
        &["POST"],
        "/api/pair/redeem",
        Guard::Open,
        "the code in the JSON body (never a query) → a named token of the code's scope, once; `no-store`",
    ),
    gateway(
        EndpointId::PairPage,
        &["GET"],
        "/pair",
        Guard::Open,
        "the page a pairing link opens: drops the fragment, redeems it, shows the token once",
    ),
    gateway(EndpointId::PairScript, &["GET"], "/pair.js", Guard::Open, "the pairing page's script"),
    gateway(EndpointId::PicoSocket, &["GET"], "/pico/ws", SOCKET, "the Pico channel"),
    gateway(EndpointId::PicoSocketSlash, &["GET"], "/pico/ws/", SOCKET, "the Pico channel"),
    gateway(EndpointId::PicoSocketShort, &["GET"], "/pico", SOCKET, "the Pico channel (seed 001's URL)"),
    gateway(
        EndpointId::PicoMedia,
        &["GET"],
        "/pico/media/{id}",
        Guard::Credential { scope: Scope::Chat, presentations: Presentations::MEDIA },
        "a file of an answer (`attachments` of a `message.create`), for the principal whose turn made it; kept 1 h",
    ),
    gateway(
        EndpointId::Sessions,
        &["GET"],
        "/api/sessions",
        read(),
        "the caller's sessions (scopes admin and read: every session): id, owner, created, last activity, messages",
    ),
    gateway(
        EndpointId::Session,
        &["DELETE"],
        "/api/sessions/{id}",
        chat(),
        "delete one of the caller's sessions (admin: any) and close its sockets (4004)",
    ),
    gateway(
        EndpointId::SessionMessages,
        &["GET"],
        "/api/sessions/{id}/messages",
        read(),
        "history, `?after_seq=N&limit=M`, numbered like protocol 2's `seq`; another chat credential's session is 404",
    ),
    gateway(
        EndpointId::ChatCompletions,
        &["POST"],
        "/v1/chat/completions",
        chat(),
        "OpenAI-compatible chat (JSON or `stream: true` SSE), answered by the agent and recorded in a session",
    ),
    gateway(
        EndpointId::Models,
        &["GET"],
        "/v1/models",
        chat(),
        "OpenAI-compatible list of the one model served",
    ),
    launcher(
        EndpointId::LauncherLogin,
        &["POST"],
        "/login",
        Guard::LauncherToken,
        "sets an HttpOnly session cookie",
    ),
    launcher(
        EndpointId::LauncherLoginCode,
        &["POST"],
        "/login/code",
        Guard::LoginCode,
        "a one-time login link's code (valid once, 2 min); sets the session cookie like `/login`",
    ),
    launcher(
        EndpointId::LauncherLogout,
        &["POST"],
        "/logout",
        Guard::DashboardSession,
        "ends the caller's session server-side",
    ),
    launcher(
        EndpointId::LauncherSetup,
        &["POST"],
        "/setup",
        Guard::DashboardSession,
        "sets a custom launcher token",
    ),
    launcher(
        EndpointId::LauncherPages,
        &["GET"],
        "/",
        Guard::DashboardSession,
        "the dashboard; `?token=` logs in and redirects without it",
    ),
    launcher(
        EndpointId::LauncherApi,
        &["GET", "POST", "DELETE"],
        "/api/*",
        Guard::DashboardSession,
        "gateway control, tokens, pairing (`POST /api/pair`, forwarded with the runtime token) and chat history",
    ),
    launcher(
        EndpointId::LauncherPicoSocket,
        &["GET"],
        "/pico/ws",
        Guard::DashboardSession,
        "the dashboard's chat; the launcher authenticates upstream with the runtime token",
    ),
    launcher(
        EndpointId::LauncherPicoMedia,
        &["GET"],
        "/pico/media/{id}",
        Guard::DashboardSession,
        "files of the dashboard's chat, fetched from the gateway with the runtime token",
    ),
];

/// The row of `id`.
pub fn endpoint(id: EndpointId) -> &'static Endpoint {
    // Every id has exactly one row (checked by a test); the fallback is never reached.
    ENDPOINTS.iter().find(|e| e.id == id).unwrap_or(&ENDPOINTS[0])
}

/// The endpoints of `server`.
pub fn of(server: Server) -> impl Iterator<Item = &'static Endpoint> {
    ENDPOINTS.iter().filter(move |e| e.server == server)
}

impl Guard {
    /// Credential kinds a row accepts, in words (for docs and `auth explain`).
    pub fn describe(&self) -> String {
        match self {
            Guard::Open => "none".to_owned(),
            Guard::Credential { scope: Scope::Admin, .. } => {
                "gateway token, runtime token, named tokens with scope admin".to_owned()
            }
            Guard::Credential { scope: Scope::Read, .. } => {
                "gateway token, runtime token, pico token, named tokens (read, chat or admin)".to_owned()
            }
            Guard::Credential { scope: Scope::Chat, presentations } => {
                let mut s =
                    "gateway token, runtime token, pico token, named tokens (chat or admin)".to_owned();
                if presentations.ticket {
                    s.push_str(", tickets");
                }
                s
            }
            Guard::LauncherToken => "launcher token".to_owned(),
            Guard::LoginCode => "one-time login code".to_owned(),
            Guard::DashboardSession => "dashboard session cookie".to_owned(),
        }
    }

    /// How a credential may be presented, in words.
    pub fn presented_as(&self) -> &'static str {
        match self {
            Guard::Open => "-",
            Guard::Credential { presentations, .. } if *presentations == Presentations::SOCKET => {
                "Authorization: Bearer, Sec-WebSocket-Protocol token.<t> or ticket.<t>, ?token= when allow_token_query"
            }
            Guard::Credential { presentations, .. } if presentations.query => {
                "Authorization: Bearer, ?token= when allow_token_query"
            }
            Guard::Credential { .. } => "Authorization: Bearer",
            Guard::LauncherToken => "JSON {\"token\"} or form field token",
            Guard::LoginCode => "JSON {\"code\"} from a login#code= link",
            Guard::DashboardSession => "cookie picoclaw_launcher_session; same Origin for state changes",
        }
    }
}

/// The endpoint table as Markdown, exactly as docs/credentials.md carries it.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| server | method | path | accepts | presented as | what it does |\n|---|---|---|---|---|---|\n",
    );
    for e in ENDPOINTS {
        out.push_str(&format!(
            "| {} | {} | `{}` | {} | {} | {} |\n",
            e.server,
            e.methods.join(", "),
            e.path,
            e.guard.describe(),
            e.guard.presented_as().replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;"),
            e.note
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_id_and_per_route() {
        let mut ids = std::collections::HashSet::new();
        let mut routes = std::collections::HashSet::new();
        for e in ENDPOINTS {
            assert!(ids.insert(e.id), "{:?} has two rows", e.id);
            assert!(routes.insert((e.server, e.path)), "{} {} has two rows", e.server, e.path);
            assert!(!e.methods.is_empty());
            assert_eq!(endpoint(e.id).path, e.path);
        }
    }

    #[test]
    fn tickets_open_the_socket_and_nothing_else() {
        for e in of(Server::Gateway) {
            let ticket = matches!(e.guard, Guard::Credential { presentations, .. } if presentations.ticket);
            let socket = matches!(
                e.id,
                EndpointId::PicoSocket | EndpointId::PicoSocketSlash | EndpointId::PicoSocketShort
            );
            assert_eq!(ticket, socket, "{}", e.path);
        }
    }
}
