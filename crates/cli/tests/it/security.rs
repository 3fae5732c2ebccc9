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
    assert_eq!(code, 404, "bob must not open alice's session: {body}");
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
    assert_eq!(code, 404, "ownership survives a restart");
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

/// A WebSocket client over a raw TCP stream that never answers a close frame (the
/// red-team's "zombie"): upgrade, then masked text frames written by hand.
mod raw {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    pub fn upgrade(addr: &str, path: &str, bearer: &str) -> TcpStream {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Authorization: Bearer {bearer}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed during the handshake");
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        s
    }

    /// Writes one masked text frame; `false` when the write failed (the server hung up).
    pub fn send_text(s: &mut TcpStream, text: &str) -> bool {
        let payload = text.as_bytes();
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        s.write_all(&frame).is_ok()
    }

    /// Reads until a close frame from the server arrives; its code.
    pub fn close_code(s: &mut TcpStream) -> Option<u16> {
        let mut buf = [0u8; 65536];
        let mut data = Vec::new();
        loop {
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            data.extend_from_slice(&buf[..n]);
            // Walk the unmasked server frames.
            let mut i = 0;
            while i + 2 <= data.len() {
                let opcode = data[i] & 0x0f;
                let (len, header) = match data[i + 1] & 0x7f {
                    126 if i + 4 <= data.len() => {
                        (u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize, 4)
                    }
                    127 => return None,
                    126 => break,
                    n => (n as usize, 2),
                };
                if i + header + len > data.len() {
                    break;
                }
                if opcode == 0x8 && len >= 2 {
                    return Some(u16::from_be_bytes([data[i + header], data[i + header + 1]]));
                }
                i += header + len;
            }
        }
    }
}

/// Red team R1: a socket told to close (its credential was revoked) takes no further frame,
/// even from a client that never answers the close: no turn runs, nothing is written to
/// the session.
#[tokio::test]
async fn a_revoked_socket_that_ignores_the_close_runs_no_more_turns() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let named = ok(&home, &["token", "create", "--name", "zombie", "--scope", "chat"]);
    let addr = gw.addr();
    let mut raw = raw::upgrade(&addr, "/pico/ws?session_id=zombie1", &named);
    assert!(raw::send_text(
        &mut raw,
        r#"{"type":"message.send","id":"m0","payload":{"content":"before revoke"}}"#
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !support::session_text(&home, "zombie1").contains("before revoke") {
        assert!(Instant::now() < deadline, "the first turn was recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ok(&home, &["token", "revoke", "zombie"]);
    let code = tokio::task::spawn_blocking(move || {
        let code = raw::close_code(&mut raw);
        // Keep talking as if nothing happened.
        for i in 0..5 {
            let frame = format!(
                r#"{{"type":"message.send","id":"z{i}","payload":{{"content":"after revoke {i}"}}}}"#
            );
            if !raw::send_text(&mut raw, &frame) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        code
    })
    .await
    .unwrap();
    assert_eq!(code, Some(4001));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let history = support::session_text(&home, "zombie1");
    assert!(!history.contains("after revoke"), "a revoked socket ran a turn:\n{history}");
}

/// Red team R2/R3: every loopback address is one client, and every wrong secret a request
/// carries is one guess — many source addresses or eight offers per request buy nothing.
#[tokio::test]
async fn loopback_addresses_and_extra_offers_buy_no_extra_guesses() {
    let weak = "weak-pico";
    let home = TestHome::with_pico(weak, json!({}));
    let gw = home.spawn_gateway(&[]);
    let port: u16 = gw.record["port"].as_u64().unwrap() as u16;
    let mut limited_at = None;
    for n in 0..10u8 {
        let src = std::net::Ipv4Addr::new(127, 9, n, 1);
        let offers: Vec<String> = (0..8).map(|g| format!("token.guess-{n}-{g}")).collect();
        let status = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let socket = bound_to(src);
            let mut s = socket.connect_to(port);
            let req = format!(
                "GET /pico/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nSec-WebSocket-Protocol: {}\r\n\r\n",
                offers.join(", ")
            );
            s.write_all(req.as_bytes()).unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()).unwrap_or(0)
        })
        .await
        .unwrap();
        if status == 429 {
            limited_at.get_or_insert(n);
        }
    }
    // 20 guesses a minute: the third request (24 guesses) is already over.
    assert!(limited_at.is_some_and(|n| n <= 3), "limited from request {limited_at:?}");
    // The weak token, right, from yet another loopback address: still this machine, locked.
    let http =
        reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 9, 200, 1])).build().unwrap();
    let code = status_of(http.get(format!("{}/auth/whoami", gw.http())).bearer_auth(weak)).await;
    assert_eq!(code, 429);
}

/// A TCP socket bound to a chosen loopback source address.
fn bound_to(src: std::net::Ipv4Addr) -> Bound {
    Bound(src)
}

struct Bound(std::net::Ipv4Addr);

impl Bound {
    fn connect_to(&self, port: u16) -> std::net::TcpStream {
        // std has no bind-before-connect; tokio's TcpSocket does.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let src = self.0;
        rt.block_on(async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(std::net::SocketAddr::from((src, 0))).unwrap();
            let std = s
                .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .unwrap()
                .into_std()
                .unwrap();
            std.set_nonblocking(false).unwrap();
            std
        })
    }
}

/// Red team R5: the pico_client's sessions are its own; no credential can squat one.
#[tokio::test]
async fn pico_client_sessions_are_reserved() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let auth = format!("Bearer {PICO}");
    let url = format!("{}?session_id=pico_client-remote1", gw.ws());
    let (code, body) = ws::rejected(&url, &[("authorization", &auth)]).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("reserved_session_id"), "{body}");
}

/// Red team R14: a token in the pico_client URL's query is shown as `***`.
#[test]
fn a_token_in_the_pico_client_url_query_is_never_shown() {
    let home = TestHome::new();
    home.write_config(&json!({ "channels": { "pico_client": {
        "enabled": true, "url": "ws://127.0.0.1:9/pico/ws?token=QUERYCANARY123456789&x=1" } } }));
    for args in [&["config", "show"][..], &["config", "show", "--json"], &["config", "show", "--origin"]] {
        let out = home.run(args);
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}: {all}");
        assert!(!all.contains("QUERYCANARY"), "{args:?} printed the token:\n{all}");
        assert!(all.contains("token=***"), "{args:?}: {all}");
    }
    let doctor = home.run(&["doctor", "--json"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("secret-in-url") && !text.contains("QUERYCANARY"), "{text}");
}

/// Red team R4: the gateway takes the pico token from its own environment (a unit, a pod
/// spec) that the operator's shell lacks: `token rotate pico` refuses instead of reporting
/// a rotation that changed nothing.
#[tokio::test]
async fn rotating_a_token_the_gateway_takes_from_its_environment_is_refused() {
    let env_token = "pico-token-from-the-unit-environment-0123456789";
    let home = TestHome::with_pico(PICO, json!({}));
    let log = std::fs::File::create(home.file("test-gateway.stderr")).unwrap();
    let mut child = home
        .cmd(&["gateway", "--port", "0"])
        .env("PICOCLAW_CHANNELS_PICO_TOKEN", env_token)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let record = support::wait_for_record(home.path(), child.id(), Duration::from_secs(20)).expect("started");
    let before = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    let out = home.run(&["token", "rotate", "pico"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the rotation must fail: {err}");
    assert!(err.contains("PICOCLAW_CHANNELS_PICO_TOKEN"), "{err}");
    assert_eq!(std::fs::read_to_string(home.file(".security.yml")).unwrap(), before, "nothing written");
    let base = format!("http://{}:{}", record["host"].as_str().unwrap(), record["port"]);
    let code =
        status_of(reqwest::Client::new().get(format!("{base}/auth/whoami")).bearer_auth(env_token)).await;
    assert_eq!(code, 200);
    let _ = child.kill();
    let _ = child.wait();
}

/// Red team R6: the admin API never answers "done" for a change the gateway could not apply.
#[tokio::test]
async fn a_token_change_that_cannot_be_applied_is_not_reported_done() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let tablet = ok(&home, &["token", "create", "--name", "tablet", "--scope", "chat"]);
    home.write_config(
        &json!({ "channels": { "pico": { "enabled": true } }, "gateway": { "port": "notaport" } }),
    );
    let resp = reqwest::Client::new()
        .delete(format!("{}/api/tokens/tablet", gw.http()))
        .bearer_auth(gw.runtime_token())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not_applied"), "{body}");
    // Fixed, the change takes effect.
    home.write_config(&json!({ "channels": { "pico": { "enabled": true } } }));
    ok(&home, &["gateway", "reload"]);
    let code =
        status_of(reqwest::Client::new().get(format!("{}/auth/whoami", gw.http())).bearer_auth(&tablet))
            .await;
    assert_eq!(code, 401);
}

/// Red team R7: a loopback dashboard answers only for loopback host names (DNS rebinding).
#[tokio::test]
async fn a_loopback_dashboard_refuses_other_host_names() {
    let home = crate::launcher_support::home();
    let l = crate::launcher_support::start(&home, &[]);
    let port: u16 =
        l.url.trim_end_matches('/').rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    for (host, want) in [("attacker.example", 421u16), ("127.0.0.1", 303), ("localhost", 303), ("[::1]", 303)]
    {
        let status = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let req = format!("GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()).unwrap_or(0)
        })
        .await
        .unwrap();
        assert_eq!(status, want, "Host: {host}");
    }
}
