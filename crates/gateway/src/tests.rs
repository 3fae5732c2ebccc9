//! The route × credential matrix, in process: every gateway row of the endpoint table,
//! every method it answers, every kind of credential in every way it can be presented —
//! the answer must be what the row's guard says (open, 401, 403 or let through).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use picoclaw_auth::endpoints::{self, Guard, Server};
use picoclaw_auth::named::{Timestamp, TokenFile};
use picoclaw_auth::{Presentations, Scope};
use picoclaw_config::{Flags, Paths};
use tower::ServiceExt;

use crate::{Gateway, Options};

const PICO: &str = "pico-token-for-the-route-matrix-0123456789abcdef";
const GATEWAY: &str = "gateway-token-for-the-route-matrix-0123456789abcdef";

/// One way of presenting one credential.
#[derive(Debug, Clone)]
enum Presenting {
    Nothing,
    Bearer {
        token: String,
        scope: Scope,
    },
    WrongBearer,
    /// `Sec-WebSocket-Protocol: token.<pico token>`.
    Offer,
    /// `?token=<pico token>` (allowed in this home).
    Query,
    /// `Sec-WebSocket-Protocol: ticket.<t>`, minted by a chat credential.
    Ticket,
}

struct Matrix {
    _home: tempfile::TempDir,
    gateway: Gateway,
    named_chat: String,
    named_admin: String,
    named_read: String,
    next_client: AtomicU32,
}

impl Matrix {
    fn new() -> Matrix {
        let home = tempfile::tempdir().expect("tempdir");
        let paths = Paths::at(home.path());
        let config = serde_json::json!({
            "channels": { "pico": { "enabled": true, "allow_token_query": true } }
        });
        std::fs::write(paths.config_file(), config.to_string()).expect("config.json");
        let security =
            format!("gateway:\n  token: \"{GATEWAY}\"\nchannels:\n  pico:\n    token: \"{PICO}\"\n");
        write_private(&paths.security_file(), &security);
        let file = TokenFile::new(paths.security_file());
        let now = Timestamp::now();
        let (_, chat) = file.create("chat-app", Scope::Chat, None, now).expect("named chat token");
        let (_, admin) = file.create("admin-app", Scope::Admin, None, now).expect("named admin token");
        let (_, read) = file.create("read-app", Scope::Read, None, now).expect("named read token");
        let gateway = Gateway::build(Options { paths, flags: Flags::new() }).expect("gateway builds");
        Matrix {
            _home: home,
            gateway,
            named_chat: chat.expose().to_owned(),
            named_admin: admin.expose().to_owned(),
            named_read: read.expose().to_owned(),
            next_client: AtomicU32::new(1),
        }
    }

    /// Every presentation of every credential kind.
    fn presentations(&self) -> Vec<(&'static str, Presenting)> {
        let bearer = |token: &str, scope| Presenting::Bearer { token: token.to_owned(), scope };
        vec![
            ("nothing", Presenting::Nothing),
            ("wrong token", Presenting::WrongBearer),
            ("gateway token", bearer(GATEWAY, Scope::Admin)),
            ("runtime token", bearer(self.gateway.runtime_token().expose(), Scope::Admin)),
            ("pico token", bearer(PICO, Scope::Chat)),
            ("named chat token", bearer(&self.named_chat, Scope::Chat)),
            ("named admin token", bearer(&self.named_admin, Scope::Admin)),
            ("named read token", bearer(&self.named_read, Scope::Read)),
            ("pico token as token.<t>", Presenting::Offer),
            ("pico token as ?token=", Presenting::Query),
            ("ticket", Presenting::Ticket),
        ]
    }

    /// A distinct client address per request, so failures of one check cannot lock out
    /// another.
    fn client(&self) -> SocketAddr {
        let n = self.next_client.fetch_add(1, Ordering::Relaxed);
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), 40000)
    }

    async fn send(&self, method: &str, path: &str, presenting: &Presenting) -> StatusCode {
        let mut uri = path.to_owned();
        let mut req = Request::builder().method(method);
        match presenting {
            Presenting::Nothing => {}
            Presenting::WrongBearer => req = req.header("authorization", "Bearer not-a-configured-token"),
            Presenting::Bearer { token, .. } => req = req.header("authorization", format!("Bearer {token}")),
            Presenting::Offer => req = req.header("sec-websocket-protocol", format!("token.{PICO}")),
            Presenting::Query => uri.push_str(&format!("?token={PICO}")),
            Presenting::Ticket => {
                let ticket = self.ticket().await;
                req = req.header("sec-websocket-protocol", format!("ticket.{ticket}"));
            }
        }
        let req = req.uri(uri).extension(ConnectInfo(self.client())).body(Body::empty()).expect("request");
        self.gateway.router().oneshot(req).await.expect("infallible").status()
    }

    async fn ticket(&self) -> String {
        let req = Request::builder()
            .method("POST")
            .uri("/auth/ticket")
            .header("authorization", format!("Bearer {}", self.named_chat))
            .extension(ConnectInfo(self.client()))
            .body(Body::empty())
            .expect("request");
        let resp = self.gateway.router().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK, "minting a ticket");
        let body = axum::body::to_bytes(resp.into_body(), 64 * 1024).await.expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        json["ticket"].as_str().expect("ticket").to_owned()
    }
}

fn write_private(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

/// What the row's guard says a presentation must get: `None` = let through (anything but
/// 401/403), `Some(status)` = refused with it.
fn expected(guard: &Guard, presenting: &Presenting) -> Option<StatusCode> {
    let Guard::Credential { scope, presentations } = guard else { return None };
    let through = |has: Scope| if has.allows(*scope) { None } else { Some(StatusCode::FORBIDDEN) };
    let presented_as =
        |allowed: bool, has: Scope| if allowed { through(has) } else { Some(StatusCode::UNAUTHORIZED) };
    let p: &Presentations = presentations;
    match presenting {
        Presenting::Nothing | Presenting::WrongBearer => Some(StatusCode::UNAUTHORIZED),
        Presenting::Bearer { scope: has, .. } => through(*has),
        Presenting::Offer => presented_as(p.subprotocol, Scope::Chat),
        Presenting::Query => presented_as(p.query, Scope::Chat),
        Presenting::Ticket => presented_as(p.ticket, Scope::Chat),
    }
}

/// A concrete path for a route pattern.
fn concrete(path: &str) -> String {
    path.replace("{key}", "no-such-token").replace("{id}", "no-such-media")
}

#[tokio::test]
async fn every_route_answers_every_credential_as_its_row_says() {
    let m = Matrix::new();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for endpoint in endpoints::of(Server::Gateway) {
        for method in endpoint.methods {
            for (what, presenting) in m.presentations() {
                let path = concrete(endpoint.path);
                let status = m.send(method, &path, &presenting).await;
                let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
                let ok = match expected(&endpoint.guard, &presenting) {
                    None => !refused && status != StatusCode::TOO_MANY_REQUESTS,
                    Some(want) => status == want,
                };
                if !ok {
                    wrong.push(format!(
                        "{method} {path} with {what}: got {status}, the table says {:?}",
                        expected(&endpoint.guard, &presenting)
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} answers disagree with the table:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked >= 100, "the matrix covers every row ({checked} requests)");
}

#[tokio::test]
async fn a_path_outside_the_table_is_404_whatever_the_credential() {
    let m = Matrix::new();
    for path in ["/admin", "/api/tokens/a/b/c", "/pico/ws/extra", "/../reload", "/login"] {
        for (what, presenting) in m.presentations() {
            let status = m.send("GET", path, &presenting).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "GET {path} with {what}");
        }
    }
}
