//! Black-box tests of `picoclaw gateway`: a real process, real HTTP and WebSocket clients.
//! Covers seed 001's Pico auth and options tables, DESIGN §5 and §8.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::ws::{self, Next};
use crate::support::{self, TestHome, wait_for_record};

const PICO: &str = "pico-token-for-tests-0123456789";
const GATEWAY: &str = "gateway-token-for-tests-0123456789";

fn home_with(options: Value) -> TestHome {
    TestHome::with_pico(PICO, options)
}

async fn http(method: &str, url: &str, token: Option<&str>) -> (u16, Value, reqwest::header::HeaderMap) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("http");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn health_ready_and_reload_auth() {
    let home = home_with(json!({})).env("PICOCLAW_GATEWAY_TOKEN", GATEWAY);
    let gw = home.spawn_gateway(&[]);
    let base = gw.http();

    let (code, body, _) = http("GET", &format!("{base}/health"), None).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "ok");
    assert!(body["uptime_s"].is_u64() && body["version"].is_string());
    assert!(body.get("pid").is_none(), "/health must not reveal the pid");
    assert_eq!(http("GET", &format!("{base}/ready"), None).await.0, 200);

    let (code, body, headers) = http("POST", &format!("{base}/reload"), None).await;
    assert_eq!((code, body["error"]["code"].as_str()), (401, Some("missing_credential")));
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(
        http("POST", &format!("{base}/reload"), Some("wrong")).await.1["error"]["code"],
        "invalid_credential"
    );
    assert_eq!(http("GET", &format!("{base}/reload"), Some(GATEWAY)).await.0, 405);
    assert_eq!(http("POST", &format!("{base}/reload"), Some(PICO)).await.0, 403, "pico token is chat-only");
    assert_eq!(http("POST", &format!("{base}/reload"), Some(GATEWAY)).await.0, 200);
    assert_eq!(http("POST", &format!("{base}/reload"), Some(&gw.runtime_token())).await.0, 200);
}

#[tokio::test]
async fn whoami_names_kind_source_and_fingerprint_never_the_value() {
    let home = home_with(json!({})).env("PICOCLAW_GATEWAY_TOKEN", GATEWAY);
    let gw = home.spawn_gateway(&[]);
    let url = format!("{}/auth/whoami", gw.http());
    let (code, g, _) = http("GET", &url, Some(GATEWAY)).await;
    assert_eq!(code, 200);
    assert_eq!((g["kind"].as_str(), g["scope"].as_str()), (Some("gateway"), Some("admin")));
    assert_eq!(g["source"], "env:PICOCLAW_GATEWAY_TOKEN");
    assert_eq!(g["fingerprint"].as_str().map(str::len), Some(8));
    let (_, p, _) = http("GET", &url, Some(PICO)).await;
    assert_eq!((p["kind"].as_str(), p["scope"].as_str()), (Some("pico"), Some("chat")));
    assert_eq!(p["source"], ".security.yml:channels.pico.token");
    let (_, r, _) = http("GET", &url, Some(&gw.runtime_token())).await;
    assert_eq!(r["kind"], "runtime");
    for body in [&g, &p, &r] {
        let text = body.to_string();
        assert!(!text.contains(GATEWAY) && !text.contains(PICO) && !text.contains(&gw.runtime_token()));
    }
}

#[tokio::test]
async fn every_presentation_of_every_credential() {
    let home = home_with(json!({})).env("PICOCLAW_GATEWAY_TOKEN", GATEWAY);
    let gw = home.spawn_gateway(&[]);
    let url = gw.ws();
    // Authorization: Bearer with the pico, gateway (seed 000) and runtime tokens.
    for token in [PICO, GATEWAY, &gw.runtime_token()] {
        let mut s = ws::bearer(&url, token).await;
        ws::send(&mut s, json!({"type":"ping","id":"p"})).await;
        assert_eq!(ws::frame(&mut s).await["type"], "pong");
    }
    // Sec-WebSocket-Protocol: token.<t>, echoed in the 101.
    let offer = format!("token.{PICO}");
    let (_, resp) = ws::connect(&url, &[("sec-websocket-protocol", &offer)]).await.expect("subprotocol auth");
    assert_eq!(resp.headers()["sec-websocket-protocol"], offer.as_str());
    // ?token= is off by default: refused with a message saying how to enable it.
    let (status, body) = ws::rejected(&format!("{url}?token={PICO}"), &[]).await;
    assert_eq!(status, 401);
    assert!(body.contains("allow_token_query"), "{body}");
    // Missing and wrong.
    assert_eq!(ws::rejected(&url, &[]).await.0, 401);
    let (status, body) = ws::rejected(&url, &[("authorization", "Bearer nope")]).await;
    assert_eq!(status, 401);
    assert!(body.contains("invalid_credential"), "{body}");
    // Never composed (the upstream "pico-" + runtime + configured form is just wrong).
    let composed = format!("Bearer pico-{}{PICO}", gw.runtime_token());
    assert_eq!(ws::rejected(&url, &[("authorization", &composed)]).await.0, 401);
    // Trailing slash path works too.
    ws::bearer(&format!("{url}/"), PICO).await;
}

#[tokio::test]
async fn query_token_works_when_enabled() {
    let home = home_with(json!({ "allow_token_query": true }));
    let gw = home.spawn_gateway(&[]);
    let (mut s, _) =
        ws::connect(&format!("{}?token={PICO}&session_id=q1", gw.ws()), &[]).await.expect("query auth");
    ws::send(&mut s, json!({"type":"message.send","id":"r1","payload":{"content":"via query"}})).await;
    let frames = ws::until(&mut s, "typing.stop").await;
    assert!(frames.iter().any(|f| f["type"] == "message.create" && f["payload"]["content"] == "via query"));
    // The token must not reach the log.
    assert!(!home.gateway_stderr().contains(PICO));
}

#[tokio::test]
async fn origins_and_max_connections() {
    let home = home_with(json!({ "allow_origins": ["https://app.example"], "max_connections": 2 }));
    let gw = home.spawn_gateway(&[]);
    let auth = format!("Bearer {PICO}");
    let (status, _) =
        ws::rejected(&gw.ws(), &[("authorization", &auth), ("origin", "https://evil.example")]).await;
    assert_eq!(status, 403);
    let a = ws::connect(&gw.ws(), &[("authorization", &auth), ("origin", "https://app.example")])
        .await
        .expect("allowed");
    let b = ws::connect(&gw.ws(), &[("authorization", &auth)]).await.expect("no Origin: not a browser");
    let (status, body) = ws::rejected(&gw.ws(), &[("authorization", &auth)]).await;
    assert_eq!(status, 503, "{body}");
    drop((a, b));
    // Slots are released when sockets close.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if ws::connect(&gw.ws(), &[("authorization", &auth)]).await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn disabled_channel_answers_404() {
    let home = TestHome::new();
    home.write_config(&json!({ "channels": { "pico": { "enabled": false } } }));
    let gw = home.spawn_gateway(&[]);
    let (status, body) = ws::rejected(&gw.ws(), &[("authorization", "Bearer x")]).await;
    assert_eq!(status, 404);
    assert!(body.contains("channel_disabled"), "{body}");
}

#[tokio::test]
async fn protocol_v1_frames_and_errors_keep_the_socket_open() {
    let home = home_with(json!({}));
    let gw = home.spawn_gateway(&[]);
    let mut s = ws::bearer(&format!("{}?session_id=s1", gw.ws()), PICO).await;

    ws::send(&mut s, json!({"type":"message.send","id":"r1","payload":{"content":"hello there"}})).await;
    let frames = ws::until(&mut s, "typing.stop").await;
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"typing.start"));
    assert_eq!(kinds.last(), Some(&"typing.stop"));
    let create = frames.iter().find(|f| f["type"] == "message.create").expect("message.create");
    assert_eq!(create["payload"]["content"], "hello there");
    assert_eq!(create["session_id"], "s1");
    assert!(create["payload"]["message_id"].is_string());
    assert!(create["timestamp"].as_i64().unwrap() > 1_600_000_000_000, "timestamp in ms");
    assert!(!kinds.contains(&"message.done"), "v1 clients never get message.done");

    ws::send(&mut s, json!({"type":"ping","id":"p7"})).await;
    let pong = ws::frame(&mut s).await;
    assert_eq!((pong["type"].as_str(), pong["id"].as_str()), (Some("pong"), Some("p7")));

    s.send_text("not json").await;
    assert_eq!(ws::frame(&mut s).await["payload"]["code"], "invalid_message");
    ws::send(&mut s, json!({"type":"teleport","id":"t"})).await;
    assert_eq!(ws::frame(&mut s).await["payload"]["code"], "unknown_type");
    ws::send(&mut s, json!({"type":"message.send","id":"r2","payload":{"content":""}})).await;
    let err = ws::frame(&mut s).await;
    assert_eq!(err["payload"]["code"], "empty_content");
    assert_eq!(err["payload"]["request_id"], "r2");
    // Still open and working.
    ws::send(&mut s, json!({"type":"ping","id":"p8"})).await;
    assert_eq!(ws::frame(&mut s).await["id"], "p8");
}

trait SendText {
    async fn send_text(&mut self, text: &str);
}

impl SendText for ws::Socket {
    async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.send(tokio_tungstenite::tungstenite::Message::text(text)).await.unwrap();
    }
}

#[tokio::test]
async fn fan_out_to_every_socket_of_a_session() {
    let home = home_with(json!({}));
    let gw = home.spawn_gateway(&[]);
    let url = format!("{}?session_id=shared", gw.ws());
    let mut a = ws::bearer(&url, PICO).await;
    let mut b = ws::bearer(&url, PICO).await;
    let mut other = ws::bearer(&format!("{}?session_id=other", gw.ws()), PICO).await;
    ws::send(&mut a, json!({"type":"message.send","id":"x","payload":{"content":"to both"}})).await;
    for s in [&mut a, &mut b] {
        let frames = ws::until(s, "typing.stop").await;
        assert!(frames.iter().any(|f| f["payload"]["content"] == "to both"));
    }
    assert!(matches!(ws::next(&mut other, Duration::from_millis(300)).await, Next::Timeout));
}

#[tokio::test]
async fn protocol_v2_reply_to_done_and_replay() {
    let home = home_with(json!({}));
    let gw = home.spawn_gateway(&[]);
    let url = format!("{}?session_id=v2s&protocol=2", gw.ws());
    let mut s = ws::bearer(&url, PICO).await;
    ws::send(&mut s, json!({"type":"message.send","id":"req-1","payload":{"content":"one"}})).await;
    let frames = ws::until(&mut s, "message.done").await;
    assert!(frames.iter().all(|f| f["payload"]["reply_to"] == "req-1"), "{frames:?}");
    let seqs: Vec<u64> = frames.iter().map(|f| f["payload"]["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let last = *seqs.last().unwrap();
    drop(s);

    // While away, another socket of the session gets an answer.
    let mut v1 = ws::bearer(&format!("{}?session_id=v2s", gw.ws()), PICO).await;
    ws::send(&mut v1, json!({"type":"message.send","id":"req-2","payload":{"content":"two"}})).await;
    ws::until(&mut v1, "typing.stop").await;

    let mut back = ws::bearer(&format!("{url}&last_seq={last}"), PICO).await;
    let replayed = ws::until(&mut back, "message.done").await;
    assert!(replayed.iter().all(|f| f["payload"]["seq"].as_u64().unwrap() > last));
    assert!(replayed.iter().any(|f| f["payload"]["content"] == "two"));
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let home = home_with(json!({ "max_frame_bytes": 1024 }));
    let gw = home.spawn_gateway(&[]);
    let mut s = ws::bearer(&gw.ws(), PICO).await;
    let big = "x".repeat(4096);
    ws::send(&mut s, json!({"type":"message.send","payload":{"content": big}})).await;
    match ws::next(&mut s, Duration::from_secs(5)).await {
        Next::Closed(Some((code, _))) => assert_eq!(code, 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // Others are unaffected.
    let mut t = ws::bearer(&gw.ws(), PICO).await;
    ws::send(&mut t, json!({"type":"ping","id":"ok"})).await;
    assert_eq!(ws::frame(&mut t).await["type"], "pong");
}

#[tokio::test]
async fn idle_reader_is_closed_after_read_timeout() {
    let home = home_with(json!({ "read_timeout": 1, "ping_interval": 30 }));
    let gw = home.spawn_gateway(&[]);
    let mut s = ws::bearer(&gw.ws(), PICO).await;
    let started = std::time::Instant::now();
    match ws::next(&mut s, Duration::from_secs(10)).await {
        Next::Closed(_) | Next::Ended => {}
        other => panic!("expected the idle socket to be closed, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn client_that_never_reads_is_disconnected_others_unaffected() {
    let home = home_with(json!({ "send_queue": 2, "write_timeout": 1, "max_frame_bytes": 1_048_576 }));
    let gw = home.spawn_gateway(&[]);
    let mut slow = ws::bearer(&format!("{}?session_id=slow", gw.ws()), PICO).await;
    let payload = "y".repeat(512 * 1024);
    // Keep sending big messages and never read the echoes.
    let mut closed = false;
    for _ in 0..200 {
        use futures_util::SinkExt;
        let frame = json!({"type":"message.send","payload":{"content": payload}}).to_string();
        let sent = tokio::time::timeout(
            Duration::from_secs(15),
            slow.send(tokio_tungstenite::tungstenite::Message::text(frame)),
        )
        .await
        .expect("the gateway neither read nor closed the socket within 15 s");
        if sent.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !closed {
        // The server must have given up on us: draining now ends in a close, not endless frames.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Next::Frame(_) = ws::next(&mut slow, Duration::from_secs(5)).await {
            assert!(std::time::Instant::now() < deadline, "never disconnected");
        }
    }
    let mut fine = ws::bearer(&gw.ws(), PICO).await;
    ws::send(&mut fine, json!({"type":"ping","id":"alive"})).await;
    assert_eq!(ws::frame(&mut fine).await["id"], "alive");
}

#[test]
fn second_gateway_fails_fast_and_sigkill_recovers() {
    let home = home_with(json!({}));
    let gw = home.spawn_gateway(&[]);
    let pid = gw.record["pid"].as_u64().unwrap();
    let second = home.run(&["gateway", "--port", "0"]);
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&format!("already running (pid {pid})")), "{stderr}");

    // SIGKILL leaves a stale record; the next start replaces it at once.
    support::unsafe_free_kill(pid as u32, "KILL");
    drop(gw);
    let status = home.run(&["gateway", "status"]);
    assert_eq!(status.status.code(), Some(3), "{}", String::from_utf8_lossy(&status.stdout));
    let again = home.spawn_gateway(&[]);
    assert_ne!(again.record["pid"].as_u64().unwrap(), pid);
}

#[test]
fn pid_record_is_private_json_with_runtime_token() {
    let home = home_with(json!({}));
    let gw = home.spawn_gateway(&[]);
    for key in ["pid", "version", "host", "port", "started_at", "token"] {
        assert!(gw.record.get(key).is_some(), "missing {key}");
    }
    assert_eq!(gw.runtime_token().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.file(".picoclaw.pid")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn start_status_stop_as_a_new_user() {
    let home = TestHome::onboarded();
    let start = home.run(&["gateway", "start", "--port", "0"]);
    assert!(start.status.success(), "{}", String::from_utf8_lossy(&start.stderr));
    let status = home.run(&["gateway", "status"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{out}");
    assert!(out.contains("running") && out.contains("ready:    yes"), "{out}");
    let reload = home.run(&["gateway", "reload"]);
    assert!(reload.status.success(), "{}", String::from_utf8_lossy(&reload.stderr));
    let stop = home.run(&["gateway", "stop"]);
    assert!(stop.status.success());
    assert_eq!(home.run(&["gateway", "status"]).status.code(), Some(3));
    assert!(
        wait_for_record(home.path(), 0, Duration::from_millis(10)).is_none(),
        "record removed on clean stop"
    );
    let log = std::fs::read_to_string(home.file("logs/gateway.log")).unwrap();
    assert!(log.contains("accepting the pico token from .security.yml:channels.pico.token"), "{log}");
}

#[test]
fn startup_log_names_sources_never_values() {
    let home = home_with(json!({})).env("PICOCLAW_GATEWAY_TOKEN", GATEWAY);
    let gw = home.spawn_gateway(&[]);
    drop(gw);
    let log = home.gateway_stderr();
    assert!(log.contains("accepting the gateway token from env:PICOCLAW_GATEWAY_TOKEN"), "{log}");
    assert!(log.contains("on every endpoint (including /pico/ws)"), "{log}");
    assert!(!log.contains(GATEWAY) && !log.contains(PICO), "a token value reached the log");
}

#[test]
fn config_errors_exit_78_and_pico_without_token_is_refused() {
    let home = TestHome::new();
    support::write_private(&home.file("config.json"), "{\"gateway\": {\"port\": \"x\"}}");
    let out = home.run(&["gateway", "--port", "0"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gateway.port"));

    let home = TestHome::new();
    home.write_config(&json!({ "channels": { "pico": { "enabled": true } } }));
    let out = home.run(&["gateway", "--port", "0"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token is configured"));
}

#[test]
fn public_bind_without_credentials_is_refused() {
    let home = TestHome::new();
    home.write_config(&json!({ "gateway": { "host": "0.0.0.0" } }));
    let out = home.run(&["gateway", "--port", "0"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to bind"));
}

#[tokio::test]
async fn no_token_reaches_the_log_even_at_trace_level() {
    let home = home_with(json!({ "allow_token_query": true }))
        .env("PICOCLAW_LOG_LEVEL", "trace")
        .env("PICOCLAW_GATEWAY_TOKEN", GATEWAY);
    let gw = home.spawn_gateway(&["--log-format", "json"]);
    let offer = format!("token.{PICO}");
    ws::connect(&gw.ws(), &[("sec-websocket-protocol", &offer)]).await.expect("subprotocol");
    ws::connect(&format!("{}?token={PICO}", gw.ws()), &[]).await.expect("query");
    let mut s = ws::bearer(&gw.ws(), GATEWAY).await;
    ws::send(&mut s, json!({"type":"message.send","id":"r","payload":{"content":"hi"}})).await;
    ws::until(&mut s, "typing.stop").await;
    ws::rejected(&gw.ws(), &[("authorization", "Bearer wrong-CANARY-value")]).await;
    ws::rejected(&gw.ws(), &[("cookie", "session=CANARYcookie")]).await;
    http("POST", &format!("{}/reload", gw.http()), Some(GATEWAY)).await;
    drop(s);
    drop(gw);
    let log = home.gateway_stderr();
    let file_log = std::fs::read_to_string(home.file("logs/gateway.log")).unwrap_or_default();
    for text in [&log, &file_log] {
        assert!(!text.is_empty());
        for secret in [PICO, GATEWAY, "CANARY"] {
            assert!(!text.contains(secret), "log contains {secret}:\n{text}");
        }
    }
    // --log-format json: every line is a JSON object.
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()), "not JSON: {line}");
    }
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007_and_malformed_upgrades_are_refused() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let home = home_with(json!({}));
    let gw = home.spawn_gateway(&[]);
    let mut s = ws::bearer(&gw.ws(), PICO).await;
    let bad = Frame::message(vec![0x7b, 0xff, 0xfe, 0x7d], OpCode::Data(Data::Text), true);
    s.send(Message::Frame(bad)).await.unwrap();
    match ws::next(&mut s, Duration::from_secs(5)).await {
        Next::Closed(Some((code, _))) => assert_eq!(code, 1007),
        other => panic!("expected close 1007, got {other:?}"),
    }

    // A plain GET with a valid credential but no upgrade, and an upgrade without a key.
    let client = reqwest::Client::new();
    let plain = client.get(gw.ws().replace("ws://", "http://")).bearer_auth(PICO).send().await.unwrap();
    assert_eq!(plain.status().as_u16(), 426);
    let body: Value = plain.json().await.unwrap();
    assert_eq!(body["error"]["code"], "websocket_required");
    let keyless = client
        .get(gw.ws().replace("ws://", "http://"))
        .bearer_auth(PICO)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .send()
        .await
        .unwrap();
    assert!(keyless.status().is_client_error(), "{}", keyless.status());

    // The gateway keeps serving everyone else.
    let mut t = ws::bearer(&gw.ws(), PICO).await;
    ws::send(&mut t, json!({"type":"ping","id":"still"})).await;
    assert_eq!(ws::frame(&mut t).await["id"], "still");
}
