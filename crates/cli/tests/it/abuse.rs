//! Abuse tests against a real `picoclaw gateway` process: credential spraying from many
//! loopback source addresses, slow handshakes and slowloris headers/bodies, a slow
//! consumer sharing a session with a fast one, and cross-site WebSocket hijacking.
//! Figures and how to run them: RELIABILITY.md. Basic cases (403 for a foreign Origin,
//! 503 over `max_connections`, 1009 for an oversized frame, a never-reading client) are
//! in gateway.rs; these extend them.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::support::ws::{self, Next};
use crate::support::{self, TestHome};

const PICO: &str = "pico-token-for-abuse-tests-0123456789abcdef";

fn home_with(options: Value) -> TestHome {
    TestHome::with_pico(PICO, options)
}

fn socket_addr(gw: &support::Gateway) -> SocketAddr {
    gw.addr().parse().expect("the record names an IP address and port")
}

/// A TCP connection to `gw` from the loopback source address `src` (all of 127/8 is local).
async fn connect_from(src: Ipv4Addr, gw: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((src, 0))).expect("bind a loopback source address");
    socket.connect(gw).await.expect("connect to the gateway")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Upgraded,
    Rejected { status: u16, retry_after: Option<u64> },
}

/// One WebSocket handshake on `/pico/ws` from `src`, with `token` as a Bearer credential.
async fn attempt(
    src: Ipv4Addr,
    gw: SocketAddr,
    token: Option<&str>,
) -> (Outcome, Option<tokio_tungstenite::WebSocketStream<TcpStream>>) {
    let stream = connect_from(src, gw).await;
    let mut request = format!("ws://{gw}/pico/ws").into_client_request().expect("request");
    if let Some(t) = token {
        request.headers_mut().insert("authorization", format!("Bearer {t}").parse().expect("header"));
    }
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => (Outcome::Upgraded, Some(socket)),
        Err(WsError::Http(resp)) => {
            let retry_after =
                resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
            (Outcome::Rejected { status: resp.status().as_u16(), retry_after }, None)
        }
        Err(e) => panic!("handshake from {src} failed at the transport level: {e}"),
    }
}

/// Sends a ping on a raw client socket and expects the pong.
async fn ping_pong(socket: &mut tokio_tungstenite::WebSocketStream<TcpStream>, id: &str) {
    let ping = json!({"type": "ping", "id": id}).to_string();
    socket.send(Message::text(ping)).await.expect("send ping");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no pong");
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                if v["type"] == "pong" {
                    assert_eq!(v["id"], id);
                    return;
                }
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

/// 10,000 wrong tokens from 2,320 loopback addresses: every one is rejected, the per-address
/// lockout and the global budget engage (429 with Retry-After), an address that only sent
/// no credential is not penalised, a clean address with the right token gets in, and the
/// gateway's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_wrong_tokens_from_many_addresses() {
    const LOCKED_ADDRS: u32 = 320; // 25 attempts each: 8,000
    const PER_ADDR: u32 = 25;
    const FRESH_ADDRS: u32 = 2_000; // 1 attempt each: 2,000
    const WORKERS: u32 = 32;
    let home = home_with(json!({}));
    let gw = home.spawn_gateway(&[]);
    let addr = socket_addr(&gw);
    let pid = gw.child.id();

    // Warm up, so the baseline includes a served socket and the runtime's pools.
    let (outcome, socket) = attempt(Ipv4Addr::new(127, 0, 0, 1), addr, Some(PICO)).await;
    assert_eq!(outcome, Outcome::Upgraded);
    ping_pong(&mut socket.expect("socket"), "warm").await;

    // A missing credential is not a failure: 40 of them leave the address clean.
    let quiet = Ipv4Addr::new(127, 3, 0, 1);
    for _ in 0..40 {
        let (outcome, _) = attempt(quiet, addr, None).await;
        assert_eq!(outcome, Outcome::Rejected { status: 401, retry_after: None });
    }
    let rss_before = support::rss_kib(pid);
    let started = Instant::now();

    // Phase A: each address tries 25 wrong tokens (past its own limit of 20).
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for n in (w..LOCKED_ADDRS).step_by(WORKERS as usize) {
                let src = Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250 + 1) as u8);
                let mut per_addr = Vec::new();
                for k in 0..PER_ADDR {
                    let wrong = format!("wrong-{n}-{k}-{PICO}");
                    per_addr.push(attempt(src, addr, Some(&wrong)).await.0);
                }
                results.push(per_addr);
            }
            results
        }));
    }
    let mut phase_a = Vec::new();
    for t in tasks {
        phase_a.extend(t.await.expect("worker"));
    }
    // Phase B: 2,000 fresh addresses, one wrong token each.
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for n in (w..FRESH_ADDRS).step_by(WORKERS as usize) {
                let src = Ipv4Addr::new(127, 2, (n / 250) as u8, (n % 250 + 1) as u8);
                results.push(attempt(src, addr, Some("wrong-fresh-token-0000")).await.0);
            }
            results
        }));
    }
    let mut phase_b = Vec::new();
    for t in tasks {
        phase_b.extend(t.await.expect("worker"));
    }
    let elapsed = started.elapsed();

    let all: Vec<Outcome> = phase_a.iter().flatten().chain(phase_b.iter()).copied().collect();
    assert_eq!(all.len(), 10_000);
    let count = |status: u16| {
        all.iter().filter(|o| matches!(o, Outcome::Rejected { status: s, .. } if *s == status)).count()
    };
    let (unauthorized, limited) = (count(401), count(429));
    assert_eq!(unauthorized + limited, 10_000, "every wrong token is rejected with 401 or 429: {all:?}");
    for o in &all {
        if let Outcome::Rejected { status: 429, retry_after } = o {
            assert!(matches!(retry_after, Some(1..=60)), "429 without a sane Retry-After: {retry_after:?}");
        }
    }
    // Per-address lockout: every address of phase A ends locked out.
    for (n, per_addr) in phase_a.iter().enumerate() {
        assert!(
            matches!(per_addr.last(), Some(Outcome::Rejected { status: 429, .. })),
            "address #{n} was never locked out: {per_addr:?}"
        );
    }
    // Global budget (1,000 failures a minute): past it, a failing address gets no more tries,
    // so phase A yields at most the budget plus one 401 per address (plus in-flight races).
    let a_unauthorized =
        phase_a.iter().flatten().filter(|o| matches!(o, Outcome::Rejected { status: 401, .. })).count();
    let bound = 1_000 + LOCKED_ADDRS as usize + WORKERS as usize;
    assert!(a_unauthorized <= bound, "{a_unauthorized} wrong tokens were verified, bound {bound}");

    // A clean address with the right token still gets in, and so does the address that only
    // ever sent no credential.
    for src in [Ipv4Addr::new(127, 4, 0, 1), quiet] {
        let (outcome, socket) = attempt(src, addr, Some(PICO)).await;
        assert_eq!(outcome, Outcome::Upgraded, "legitimate client from {src}");
        ping_pong(&mut socket.expect("socket"), "legit").await;
    }
    // A locked-out address still gets in with a token that cannot be guessed (this pico
    // token is 40+ random-looking characters): the lockout limits guessing, it does not lock
    // out real credentials (docs/credentials.md, "Failure lockout"). A guessable token
    // stays refused: `lockout_spares_unguessable_credentials` in security.rs.
    let (outcome, _) = attempt(Ipv4Addr::new(127, 1, 0, 1), addr, Some(PICO)).await;
    assert_eq!(outcome, Outcome::Upgraded, "an unguessable token from a locked-out address");

    let rss_after = support::rss_kib(pid);
    eprintln!(
        "spray: 10000 wrong tokens from {} addresses in {:.1}s: {unauthorized}x401 {limited}x429; \
         RSS {rss_before} KiB -> {rss_after} KiB",
        LOCKED_ADDRS + FRESH_ADDRS,
        elapsed.as_secs_f64()
    );
    assert!(
        rss_after <= rss_before + 32 * 1024,
        "gateway RSS grew from {rss_before} KiB to {rss_after} KiB under the spray"
    );
    // The token never reaches the log, even while failures are logged.
    assert!(!home.gateway_stderr().contains(PICO));
}

/// Reads from `stream` until the peer closes it (or `limit` passes); returns when, and
/// the bytes the server sent.
async fn until_closed(mut read: impl AsyncReadExt + Unpin, limit: Duration) -> (Option<Duration>, Vec<u8>) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), read.read(&mut buf)).await {
            Err(_) => return (None, seen),
            Ok(Ok(0) | Err(_)) => return (Some(started.elapsed()), seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Writes `chunk` every `every` until the write fails or `stop` is set.
async fn drip(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    chunk: &'static [u8],
    every: Duration,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        if write.write_all(chunk).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

/// Connections that never finish their request headers — silent, half a request line,
/// headers dripped a line every 300 ms — are cut off by the 5 s header timeout, while a
/// normal client is served throughout. A request whose body is dripped is answered at
/// once (no endpoint waits for a body) and its connection does not linger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handshakes_and_slowloris_are_cut_off() {
    const LIMIT: Duration = Duration::from_secs(20);
    let home = home_with(json!({}));
    let gw = home.spawn_gateway(&[]);
    let addr = socket_addr(&gw);
    let stop = Arc::new(AtomicBool::new(false));

    let silent = TcpStream::connect(addr).await.expect("connect");
    let mut half = TcpStream::connect(addr).await.expect("connect");
    half.write_all(b"GET /pico/ws HTT").await.expect("write");
    let (loris_read, mut loris_write) = TcpStream::connect(addr).await.expect("connect").into_split();
    loris_write.write_all(b"GET /pico/ws HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let loris_drip =
        tokio::spawn(drip(loris_write, b"X-Slow: 1\r\n", Duration::from_millis(300), stop.clone()));
    let (body_read, mut body_write) = TcpStream::connect(addr).await.expect("connect").into_split();
    body_write
        .write_all(b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .expect("write");
    let body_drip = tokio::spawn(drip(body_write, b"a", Duration::from_millis(300), stop.clone()));

    let waits = [
        tokio::spawn(until_closed(silent, LIMIT)),
        tokio::spawn(until_closed(half, LIMIT)),
        tokio::spawn(until_closed(loris_read, LIMIT)),
        tokio::spawn(until_closed(body_read, LIMIT)),
    ];
    // Meanwhile a normal client is served.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut s = ws::bearer(&gw.ws(), PICO).await;
    ws::send(&mut s, json!({"type": "ping", "id": "during"})).await;
    assert_eq!(ws::frame(&mut s).await["id"], "during");

    let mut results = Vec::new();
    for w in waits {
        results.push(w.await.expect("reader"));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = (loris_drip.await, body_drip.await);
    let names = ["silent connection", "half a request line", "slowloris headers", "slowloris body"];
    for (name, (closed, bytes)) in names.iter().zip(&results) {
        let closed = closed.unwrap_or_else(|| panic!("{name}: still open after {LIMIT:?}"));
        let text = String::from_utf8_lossy(bytes);
        eprintln!("{name}: closed after {:.1}s, server sent {:?}", closed.as_secs_f64(), text.lines().next());
        if *name == "slowloris body" {
            assert!(text.starts_with("HTTP/1.1 401"), "{name}: expected an immediate 401, got {text:?}");
            assert!(closed < Duration::from_secs(12), "{name}: lingered {closed:?}");
        } else {
            assert!(
                closed >= Duration::from_secs(4) && closed < Duration::from_secs(8),
                "{name}: cut off after {closed:?}, expected the 5 s header timeout"
            );
            assert!(!text.contains("101"), "{name}: must not be upgraded");
        }
    }
}

/// One session, two sockets: one never reads, the other chats. The slow socket is
/// dropped once its bounded queue fills; the fast one receives every reply on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_in_a_shared_session_does_not_stall_the_others() {
    const MESSAGES: usize = 60;
    let home = home_with(json!({ "send_queue": 4, "write_timeout": 2, "max_frame_bytes": 1_048_576 }));
    let gw = home.spawn_gateway(&[]);
    let url = format!("{}?session_id=shared", gw.ws());
    let mut slow = ws::bearer(&url, PICO).await;
    let mut fast = ws::bearer(&url, PICO).await;
    let big = "z".repeat(256 * 1024);
    let started = Instant::now();
    for n in 0..MESSAGES {
        let content = format!("{n}:{big}");
        ws::send(
            &mut fast,
            json!({"type": "message.send", "id": format!("m{n}"), "payload": {"content": content}}),
        )
        .await;
        // The reply to this message reaches the fast socket while the slow one stalls.
        let frames = tokio::time::timeout(Duration::from_secs(10), ws::until(&mut fast, "typing.stop"))
            .await
            .unwrap_or_else(|_| panic!("reply {n} did not reach the reading socket within 10 s"));
        let text = frames
            .iter()
            .filter(|f| f["type"] == "message.create" || f["type"] == "message.update")
            .filter_map(|f| f["payload"]["content"].as_str())
            .next_back()
            .unwrap_or_default()
            .to_owned();
        assert!(text.starts_with(&format!("{n}:")), "reply {n} carries its text");
    }
    let fast_elapsed = started.elapsed();
    // The slow socket was given up on: it ends before it could have read every reply.
    let mut replies = 0;
    loop {
        match ws::next(&mut slow, Duration::from_secs(10)).await {
            Next::Frame(f) if f["type"] == "message.create" => replies += 1,
            Next::Frame(_) => {}
            Next::Closed(_) | Next::Ended => break,
            Next::Timeout => panic!("the never-reading socket was not disconnected ({replies} replies)"),
        }
    }
    eprintln!(
        "slow consumer: dropped after {replies}/{MESSAGES} replies; fast socket done in {fast_elapsed:?}"
    );
    assert!(replies < MESSAGES, "the slow socket received everything: its queue is not bounded");
    // The fast socket is still served.
    ws::send(&mut fast, json!({"type": "ping", "id": "still"})).await;
    assert_eq!(ws::frame(&mut fast).await["id"], "still");
}

/// Cross-site WebSocket hijacking: a page on another origin holding a valid credential —
/// in every presentation a browser can make — is refused when `allow_origins` is set.
#[tokio::test]
async fn cross_site_websocket_hijacking_is_refused() {
    let home = home_with(json!({ "allow_origins": ["https://app.example"], "allow_token_query": true }));
    let gw = home.spawn_gateway(&[]);
    let offer = format!("token.{PICO}");
    let query_url = format!("{}?token={PICO}", gw.ws());
    let foreign = [
        "https://evil.example",
        "null",
        "https://app.example.evil.example",
        "http://app.example",
        "https://app.example:8443",
        "https://evil.example/https://app.example",
    ];
    for origin in foreign {
        let (status, body) =
            ws::rejected(&gw.ws(), &[("sec-websocket-protocol", &offer), ("origin", origin)]).await;
        assert_eq!(status, 403, "subprotocol credential from {origin}: {body}");
        assert!(body.contains("origin_not_allowed"), "{body}");
        let (status, _) = ws::rejected(&query_url, &[("origin", origin)]).await;
        assert_eq!(status, 403, "query credential from {origin}");
    }
    // The allowed origin (case-insensitive, as browsers may differ in host case) is served,
    // and the accepted subprotocol offer is echoed.
    for origin in ["https://app.example", "https://APP.example"] {
        let (_, response) = ws::connect(&gw.ws(), &[("sec-websocket-protocol", &offer), ("origin", origin)])
            .await
            .unwrap_or_else(|(s, b)| panic!("{origin} refused with {s}: {b}"));
        assert_eq!(
            response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
            Some(offer.as_str())
        );
    }
}
