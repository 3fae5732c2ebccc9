//! Black-box tests of the security review's gateway findings (issue 13, RELIABILITY.md
//! "Security review"): every derived credential dies with its parent, session ownership is
//! never decided by a cache, the lockout spares credentials that cannot be guessed,
//! `pcl_`-shaped configured tokens work, the discovery record is published before the
//! first answer, and the handshake accepts what real clients send.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::ws::{self, Next};
use crate::support::{self, TestHome};

const PICO: &str = "pico-token-for-security-tests-0123456789abcdef";

fn ok(home: &TestHome, args: &[&str]) -> String {
    let out = home.run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed: {err}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A ticket minted with `token` (Bearer), from no Origin.
async fn ticket(base: &str, token: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}/auth/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .expect("http");
    assert_eq!(resp.status(), 200, "a ticket for a valid credential");
    let body: Value = resp.json().await.expect("json");
    body["ticket"].as_str().expect("ticket").to_owned()
}

/// Opens the Pico socket with `ticket.<t>`; `Err(status)` when refused.
async fn open_with_ticket(gw: &support::Gateway, ticket: &str) -> Result<ws::Socket, u16> {
    let offer = format!("ticket.{ticket}");
    match ws::connect(&gw.ws(), &[("sec-websocket-protocol", &offer)]).await {
        Ok((socket, resp)) => {
            assert_eq!(resp.headers()["sec-websocket-protocol"], offer.as_str());
            Ok(socket)
        }
        Err((status, _)) => Err(status.as_u16()),
    }
}

/// Waits for the socket to be closed by the server; returns the close code.
async fn closed_code(socket: &mut ws::Socket) -> u16 {
    loop {
        match ws::next(socket, Duration::from_secs(5)).await {
            Next::Closed(Some((code, _))) => return code,
            Next::Frame(_) => continue,
            other => panic!("expected the server to close the socket, got {other:?}"),
        }
    }
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.expect("http").status().as_u16()
}

/// Finding 1: a ticket opens the Pico socket, once, and nothing else: no HTTP endpoint,
/// never another ticket.
#[tokio::test]
async fn a_ticket_opens_the_socket_once_and_nothing_else() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let base = gw.http();
    let http = reqwest::Client::new();

    // Only the socket: never an HTTP endpoint, never a way to mint another ticket.
    let named = ok(&home, &["token", "create", "--name", "app", "--scope", "admin"]);
    for (method, path) in [
        ("GET", "/status"),
        ("POST", "/reload"),
        ("POST", "/auth/ticket"),
        ("POST", "/api/tokens"),
        ("GET", "/auth/whoami"),
    ] {
        let t = ticket(&base, &named).await;
        let offer = format!("ticket.{t}");
        let req = http.request(method.parse().unwrap(), format!("{base}{path}"));
        assert_eq!(
            status_of(req.header("sec-websocket-protocol", &offer)).await,
            401,
            "{method} {path} with a ticket offer"
        );
        let req = http.request(method.parse().unwrap(), format!("{base}{path}"));
        assert_eq!(status_of(req.bearer_auth(&t)).await, 401, "{method} {path} with a ticket as Bearer");
        assert!(open_with_ticket(&gw, &t).await.is_ok(), "the ticket was not spent by the refused requests");
    }
    let once = ticket(&base, &named).await;
    let _first = open_with_ticket(&gw, &once).await.expect("first use");
    assert_eq!(open_with_ticket(&gw, &once).await.err(), Some(401), "a ticket works once");
}

/// Finding 1: a ticket — and every socket opened with it — dies with its parent, whatever
/// path ends the parent: revoke, rotation without grace (CLI and admin API), removal from
/// the files and a reload.
#[tokio::test]
async fn tickets_and_their_sockets_die_with_their_parent() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gateway_token = "gateway-token-for-security-tests-0123456789abcdef";
    home.write_security(&format!(
        "gateway:\n  token: \"{gateway_token}\"\nchannels:\n  pico:\n    token: \"{PICO}\"\n"
    ));
    let gw = home.spawn_gateway(&[]);
    let base = gw.http();
    let http = reqwest::Client::new();

    // Revoke (CLI): the socket opened with the ticket closes, the outstanding ticket is dead.
    let chat = ok(&home, &["token", "create", "--name", "phone", "--scope", "chat"]);
    let (used, spare) = (ticket(&base, &chat).await, ticket(&base, &chat).await);
    let mut socket = open_with_ticket(&gw, &used).await.expect("ticket socket");
    ok(&home, &["token", "revoke", "phone"]);
    assert_eq!(closed_code(&mut socket).await, 4001, "revoke closes a ticket's socket");
    assert_eq!(open_with_ticket(&gw, &spare).await.err(), Some(401), "revoke kills outstanding tickets");

    // Rotate without grace (CLI), named token.
    let bot = ok(&home, &["token", "create", "--name", "bot", "--scope", "chat"]);
    let (used, spare) = (ticket(&base, &bot).await, ticket(&base, &bot).await);
    let mut socket = open_with_ticket(&gw, &used).await.expect("ticket socket");
    ok(&home, &["token", "rotate", "bot"]);
    assert_eq!(closed_code(&mut socket).await, 4001, "rotation closes a ticket's socket");
    assert_eq!(open_with_ticket(&gw, &spare).await.err(), Some(401), "rotation kills outstanding tickets");

    // Rotate without grace (admin API), the pico token.
    let (used, spare) = (ticket(&base, PICO).await, ticket(&base, PICO).await);
    let mut socket = open_with_ticket(&gw, &used).await.expect("ticket socket");
    let resp = http
        .post(format!("{base}/api/tokens/pico/rotate"))
        .bearer_auth(gw.runtime_token())
        .json(&json!({}))
        .send()
        .await
        .expect("http");
    assert_eq!(resp.status(), 200);
    assert_eq!(closed_code(&mut socket).await, 4001, "pico rotation closes a ticket's socket");
    assert_eq!(
        open_with_ticket(&gw, &spare).await.err(),
        Some(401),
        "pico rotation kills outstanding tickets"
    );

    // Removed from the files, then reloaded: the gateway token.
    let (used, spare) = (ticket(&base, gateway_token).await, ticket(&base, gateway_token).await);
    let mut socket = open_with_ticket(&gw, &used).await.expect("ticket socket");
    let security = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    let without: String = security
        .lines()
        .map(|line| match line.find("token:") {
            Some(at) if line.contains(gateway_token) => format!("{}host: localhost\n", &line[..at]),
            _ => format!("{line}\n"),
        })
        .collect();
    assert!(
        security.contains(gateway_token) && !without.contains(gateway_token),
        "the test removes the gateway token"
    );
    support::write_private(&home.file(".security.yml"), &without);
    ok(&home, &["gateway", "reload"]);
    assert_eq!(closed_code(&mut socket).await, 4001, "removal closes a ticket's socket");
    assert_eq!(open_with_ticket(&gw, &spare).await.err(), Some(401), "removal kills outstanding tickets");
}

/// Finding 2: another principal cannot take a session over by pushing it out of a cache.
#[tokio::test]
async fn no_number_of_sessions_opened_by_another_principal_changes_an_owner() {
    let home = TestHome::with_pico(PICO, json!({ "max_connections": 400 }));
    let gw = home.spawn_gateway(&[]);
    let alice = ok(&home, &["token", "create", "--name", "alice", "--scope", "chat"]);
    let bob = ok(&home, &["token", "create", "--name", "bob", "--scope", "chat"]);
    let url = |session: &str| format!("{}?session_id={session}&protocol=2", gw.ws());
    // Alice opens a fresh session and says nothing yet.
    let mut alice_socket = ws::bearer(&url("alice-fresh"), &alice).await;
    // Bob opens and closes far more sessions than any cache holds.
    for i in 0..300 {
        let mut s = ws::bearer(&url(&format!("bob-{i}")), &bob).await;
        let _ = futures_util::SinkExt::close(&mut s).await;
    }
    let auth = format!("Bearer {bob}");
    let (code, body) = ws::rejected(&url("alice-fresh"), &[("authorization", &auth)]).await;
    assert_eq!(code, 403, "bob must not open alice's session: {body}");
    ws::send(
        &mut alice_socket,
        json!({ "type": "message.send", "id": "a1", "payload": { "content": "mine" } }),
    )
    .await;
    let frames = ws::until(&mut alice_socket, "message.done").await;
    assert!(frames.iter().any(|f| f["payload"]["content"] == "mine"), "{frames:?}");
    // After a restart too.
    drop(alice_socket);
    drop(gw);
    let gw = home.spawn_gateway(&[]);
    let url = |session: &str| format!("{}?session_id={session}", gw.ws());
    let (code, _) = ws::rejected(&url("alice-fresh"), &[("authorization", &auth)]).await;
    assert_eq!(code, 403, "ownership survives a restart");
    ws::bearer(&url("alice-fresh"), &alice).await;
}

/// Finding 3: wrong tokens from 127.0.0.1 lock out guessing, not the local tools.
#[tokio::test]
async fn lockout_spares_unguessable_credentials() {
    let weak = "weak-pico";
    let home = TestHome::with_pico(weak, json!({}));
    let gw = home.spawn_gateway(&[]);
    let base = gw.http();
    let http = reqwest::Client::new();
    let named = ok(&home, &["token", "create", "--name", "app", "--scope", "chat"]);
    let mut limited = 0;
    for i in 0..40 {
        let code = status_of(http.get(format!("{base}/auth/whoami")).bearer_auth(format!("wrong-{i}"))).await;
        assert!(code == 401 || code == 429, "{code}");
        limited += usize::from(code == 429);
    }
    assert!(limited > 0, "40 wrong tokens from one address are limited");
    let runtime = gw.runtime_token();
    assert_eq!(
        status_of(http.get(format!("{base}/status")).bearer_auth(&runtime)).await,
        200,
        "runtime token"
    );
    assert_eq!(
        status_of(http.get(format!("{base}/auth/whoami")).bearer_auth(&named)).await,
        200,
        "named token"
    );
    assert_eq!(
        status_of(http.get(format!("{base}/auth/whoami")).bearer_auth(weak)).await,
        429,
        "a guessable token stays refused while the address is locked out"
    );
    ok(&home, &["gateway", "reload"]);
    assert_eq!(ok(&home, &["chat", "still here"]), "still here");
}

/// Finding 7: configured tokens that happen to start with `pcl_` are compared as configured.
#[tokio::test]
async fn pcl_shaped_pico_and_gateway_tokens_work() {
    let pico = "pcl_my-own-pico-token-0123456789abcdef";
    let gateway = "pcl_my-own-gateway-token-0123456789abcdef";
    let home = TestHome::with_pico(pico, json!({}));
    home.write_security(&format!(
        "gateway:\n  token: \"{gateway}\"\nchannels:\n  pico:\n    token: \"{pico}\"\n"
    ));
    let gw = home.spawn_gateway(&[]);
    let http = reqwest::Client::new();
    let me: Value = http
        .get(format!("{}/auth/whoami", gw.http()))
        .bearer_auth(pico)
        .send()
        .await
        .expect("http")
        .json()
        .await
        .expect("json");
    assert_eq!(me["kind"], "pico", "{me}");
    assert_eq!(status_of(http.get(format!("{}/status", gw.http())).bearer_auth(gateway)).await, 200);
    ws::bearer(&gw.ws(), pico).await;
}

/// Finding 11: a gateway that answers can always be discovered, and never through a stale
/// record.
#[test]
fn the_record_is_published_before_the_first_answer() {
    let home = TestHome::with_pico(PICO, json!({}));
    for round in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // A stale record from an earlier crash names another process and port.
        let stale = json!({ "pid": 999_999, "version": "0", "host": "127.0.0.1", "port": 1, "started_at": 0, "token": "stale" });
        support::write_private(&home.file(".picoclaw.pid"), &stale.to_string());
        let log = std::fs::File::create(home.file("test-gateway.stderr")).unwrap();
        let mut child = home
            .cmd(&["gateway", "--port", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let answered = loop {
            assert!(Instant::now() < deadline, "gateway did not answer: {}", home.gateway_stderr());
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    break answer;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let record: Value =
            serde_json::from_str(&std::fs::read_to_string(home.file(".picoclaw.pid")).unwrap())
                .unwrap_or(Value::Null);
        assert_eq!(
            (record["pid"].as_u64(), record["port"].as_u64()),
            (Some(u64::from(child.id())), Some(u64::from(port))),
            "round {round}: /health answered ({}) while .picoclaw.pid held {record}",
            answered.lines().next().unwrap_or("")
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Finding 12: what real clients send — Bearer and an offer together, a reverse proxy's
/// Basic header, a wrong Bearer beside a good offer, seed 001's `/pico` URL.
#[tokio::test]
async fn the_handshake_accepts_what_real_clients_send() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let offer = format!("token.{PICO}");
    let good = format!("Bearer {PICO}");
    for (what, auth) in [
        ("Bearer and offer", good.as_str()),
        ("proxy Basic", "Basic dXNlcjpwYXNz"),
        ("wrong Bearer", "Bearer wrong"),
    ] {
        let (_, resp) = ws::connect(&gw.ws(), &[("authorization", auth), ("sec-websocket-protocol", &offer)])
            .await
            .unwrap_or_else(|(status, body)| panic!("{what}: refused with {status}: {body}"));
        assert_eq!(resp.headers()["sec-websocket-protocol"], offer.as_str(), "{what}: the offer is echoed");
    }
    let seed_url = format!("ws://{}/pico", gw.addr());
    let (mut socket, resp) = ws::connect(&seed_url, &[("sec-websocket-protocol", &offer)])
        .await
        .unwrap_or_else(|(status, body)| panic!("seed 001's /pico URL: {status}: {body}"));
    assert_eq!(resp.headers()["sec-websocket-protocol"], offer.as_str());
    ws::send(
        &mut socket,
        json!({ "type": "message.send", "id": "s1", "payload": { "content": "seed url" } }),
    )
    .await;
    let frames = ws::until(&mut socket, "typing.stop").await;
    assert!(frames.iter().any(|f| f["payload"]["content"] == "seed url"), "{frames:?}");
}
