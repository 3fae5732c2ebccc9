//! Black-box tests of the agent behind the gateway: the OpenAI-compatible provider (a real
//! SSE server on loopback, including misbehaving ones), persisted history across a
//! restart, and session ownership between named principals.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_provider::{FakeProvider, Reply};
use crate::support::TestHome;
use crate::support::ws::{self, Next};

const PICO: &str = "pico-token-for-agent-tests-0123456789";
const GATEWAY: &str = "gateway-token-for-agent-tests-012345";
const KEY: &str = "sk-CANARY-model-key-for-agent-tests-9c1d";

/// A home with the Pico channel on and the default model served by `fake`.
fn home_with_model(fake: &FakeProvider) -> TestHome {
    let home = TestHome::new();
    home.write_config(&json!({
        "channels": { "pico": { "enabled": true } },
        "model_list": [{ "model_name": "test-model", "model": "gpt-test", "api_base": fake.base }],
        "agents": { "defaults": { "model": "test-model" } }
    }));
    home.write_security(&format!(
        "gateway:\n  token: \"{GATEWAY}\"\nchannels:\n  pico:\n    token: \"{PICO}\"\nmodel_list:\n  test-model:\n    api_keys: [\"{KEY}\"]\n"
    ));
    home
}

fn send(id: &str, content: &str) -> Value {
    json!({ "type": "message.send", "id": id, "payload": { "content": content } })
}

/// Sends a message and returns every frame up to and including `typing.stop`.
async fn turn(socket: &mut ws::Socket, id: &str, content: &str) -> Vec<Value> {
    ws::send(socket, send(id, content)).await;
    ws::until(socket, "typing.stop").await
}

fn kinds(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["type"].as_str().unwrap_or("?")).collect()
}

fn final_text(frames: &[Value]) -> String {
    frames
        .iter()
        .rfind(|f| matches!(f["type"].as_str(), Some("message.create" | "message.update")))
        .and_then(|f| f["payload"]["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn provider_answer_streams_in_order_and_chat_prints_it() {
    let fake = FakeProvider::start(Reply::Stream {
        deltas: ["Hel", "lo", ", ", "wor", "ld"].map(String::from).to_vec(),
        gap: Duration::from_millis(120),
        done: true,
    });
    let home = home_with_model(&fake);
    let gw = home.spawn_gateway(&[]);
    let mut socket = ws::bearer(&format!("{}?session_id=stream", gw.ws()), PICO).await;
    let frames = turn(&mut socket, "r1", "hi").await;

    let k = kinds(&frames);
    assert_eq!(k.first(), Some(&"typing.start"), "{k:?}");
    assert_eq!(k.get(1), Some(&"message.create"), "{k:?}");
    assert_eq!(k.last(), Some(&"typing.stop"), "{k:?}");
    assert!(k.iter().filter(|t| **t == "message.update").count() >= 2, "streamed in several updates: {k:?}");
    // One bubble; every update holds the full text so far and only grows.
    let bubble: Vec<&Value> = frames
        .iter()
        .filter(|f| matches!(f["type"].as_str(), Some("message.create" | "message.update")))
        .collect();
    let id = bubble[0]["payload"]["message_id"].as_str().unwrap();
    let mut previous = String::new();
    for f in &bubble {
        assert_eq!(f["payload"]["message_id"], id);
        assert_eq!(f["payload"]["model_name"], "test-model");
        let text = f["payload"]["content"].as_str().unwrap();
        assert!(text.starts_with(&previous), "{previous:?} then {text:?}");
        previous = text.to_owned();
    }
    assert_eq!(previous, "Hello, world");

    let req = &fake.requests()[0];
    assert_eq!(req.authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.body["model"], "gpt-test");

    // The terminal client prints the streamed answer (not a TTY: final text only).
    let out = home.run(&["chat", "hello there"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, world\n");
}

#[tokio::test]
async fn provider_failures_become_error_frames_and_the_session_stays_usable() {
    let fake = FakeProvider::start(Reply::stream(&["recovered"]));
    for reply in [
        Reply::Status { code: 429, message: "slow down".into() },
        Reply::Status { code: 401, message: format!("Incorrect API key provided: {KEY}") },
        Reply::Status { code: 500, message: format!("internal failure near {KEY}") },
        Reply::Stream { deltas: vec!["cut".into()], gap: Duration::from_millis(5), done: false },
        Reply::Stall { deltas: vec!["stuck".into()] },
        Reply::Garbage,
    ] {
        fake.then(reply);
    }
    let home = home_with_model(&fake).env("PICOCLAW_AGENTS_DEFAULTS_PROVIDER_TIMEOUT", "1");
    let gw = home.spawn_gateway(&[]);
    let mut socket = ws::bearer(&format!("{}?session_id=failing", gw.ws()), PICO).await;
    let expected = [
        "provider_rate_limited",
        "provider_auth",
        "provider_error",
        "provider_bad_stream",
        "provider_timeout",
        "provider_bad_stream",
    ];
    for (i, code) in expected.iter().enumerate() {
        let id = format!("r{i}");
        let frames = turn(&mut socket, &id, "question").await;
        let error = frames
            .iter()
            .find(|f| f["type"] == "error")
            .unwrap_or_else(|| panic!("no error frame for {code}: {frames:?}"));
        assert_eq!(error["payload"]["code"], *code, "{error}");
        assert_eq!(error["payload"]["request_id"], id.as_str(), "{error}");
        let text = serde_json::to_string(&frames).unwrap();
        assert!(!text.contains(KEY) && !text.contains("CANARY"), "key leaked to the client: {text}");
    }
    // Same socket, same session: the next turn works.
    let frames = turn(&mut socket, "ok", "again").await;
    assert!(frames.iter().all(|f| f["type"] != "error"), "{frames:?}");
    assert_eq!(final_text(&frames), "recovered");

    // `picoclaw chat` reports an error frame on stderr and exits non-zero.
    fake.then(Reply::Status { code: 429, message: "slow down".into() });
    let out = home.run(&["chat", "--session", "failing-chat", "q"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("provider_rate_limited"), "{stderr}");

    drop(socket);
    drop(gw);
    let mut logs = home.gateway_stderr();
    logs.push_str(&std::fs::read_to_string(home.file("logs/gateway.log")).unwrap_or_default());
    assert!(!logs.contains(KEY) && !logs.contains("CANARY"), "key leaked to the logs");
}

#[tokio::test]
async fn history_survives_a_gateway_restart() {
    let fake = FakeProvider::start(Reply::stream(&["ok"]));
    let home = home_with_model(&fake);
    let mut gw = home.spawn_gateway(&[]);
    let url = format!("{}?session_id=keep", gw.ws());
    let mut socket = ws::bearer(&url, PICO).await;
    assert_eq!(final_text(&turn(&mut socket, "a", "first").await), "ok");
    assert_eq!(final_text(&turn(&mut socket, "b", "second").await), "ok");
    drop(socket);
    assert!(gw.terminate(Duration::from_secs(15)).is_some(), "gateway did not stop");

    let gw = home.spawn_gateway(&[]);
    let mut socket = ws::bearer(&format!("{}?session_id=keep", gw.ws()), PICO).await;
    assert_eq!(final_text(&turn(&mut socket, "c", "third").await), "ok");
    let last = fake.requests().pop().unwrap();
    let messages: Vec<(String, String)> = last.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect();
    let expected: Vec<(String, String)> =
        [("user", "first"), ("assistant", "ok"), ("user", "second"), ("assistant", "ok"), ("user", "third")]
            .iter()
            .map(|(r, c)| (r.to_string(), c.to_string()))
            .collect();
    assert_eq!(messages, expected);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home.file("sessions")), 0o700);
        for f in ["sessions/sessions.db", "sessions/sessions.db-wal"] {
            assert_eq!(mode(&home.file(f)), 0o600, "{f}");
        }
    }
    drop(gw);
}

/// Creates a named chat token and returns it.
fn named_token(home: &TestHome, name: &str) -> String {
    let out = home.run(&["token", "create", "--name", name, "--scope", "chat", "--json"]);
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("token create --json prints JSON");
    v["token"].as_str().expect("token in JSON").to_owned()
}

/// Opens `session` as `token`: `Ok(socket)` or `Err((status, body))`.
async fn open(url: &str, token: &str) -> Result<ws::Socket, (u16, String)> {
    let auth = format!("Bearer {token}");
    ws::connect(url, &[("authorization", &auth)]).await.map(|(s, _)| s).map_err(|(s, b)| (s.as_u16(), b))
}

/// Asserts `token` cannot read or write `session`: refused at the upgrade (404
/// `session_not_found`), or, if the upgrade is accepted, every message gets that error.
async fn assert_forbidden(url: &str, token: &str, secret_text: &str) {
    match open(url, token).await {
        Err((status, body)) => {
            assert_eq!(status, 404, "{body}");
            assert!(body.contains("session_not_found"), "{body}");
            assert!(!body.contains(secret_text), "history leaked: {body}");
        }
        Ok(mut socket) => {
            ws::send(&mut socket, send("x", "let me in")).await;
            let mut saw_forbidden = false;
            while let Next::Frame(f) = ws::next(&mut socket, Duration::from_secs(3)).await {
                let text = f.to_string();
                assert!(!text.contains(secret_text), "history leaked: {text}");
                assert_ne!(f["type"], "message.create", "another principal got an answer: {text}");
                if f["payload"]["code"] == "session_not_found" {
                    saw_forbidden = true;
                }
            }
            assert!(saw_forbidden, "no forbidden error for another principal");
        }
    }
}

#[tokio::test]
async fn sessions_belong_to_the_principal_that_created_them() {
    let fake = FakeProvider::start(Reply::stream(&["alice's secret answer"]));
    let home = home_with_model(&fake);
    let alice = named_token(&home, "alice");
    let bob = named_token(&home, "bob");
    let mut gw = home.spawn_gateway(&[]);
    let url = format!("{}?session_id=alice-private", gw.ws());

    let mut socket = open(&url, &alice).await.expect("alice opens her new session");
    assert_eq!(final_text(&turn(&mut socket, "a1", "my secret question").await), "alice's secret answer");
    drop(socket);

    assert_forbidden(&url, &bob, "secret").await;
    assert_forbidden(&url, PICO, "secret").await;
    // Bob's own session works.
    let mut socket = open(&format!("{}?session_id=bob-own", gw.ws()), &bob).await.expect("bob's own session");
    assert_eq!(final_text(&turn(&mut socket, "b1", "hi").await), "alice's secret answer");
    drop(socket);

    // Ownership survives a restart.
    assert!(gw.terminate(Duration::from_secs(15)).is_some());
    let gw = home.spawn_gateway(&[]);
    let url = format!("{}?session_id=alice-private", gw.ws());
    assert_forbidden(&url, &bob, "secret").await;
    open(&url, &alice).await.expect("alice still owns it");
    // Admin credentials do not enter another principal's session either: whatever an admin
    // wrote there would reach the owner (docs/credentials.md, "Derived credentials").
    assert_forbidden(&url, GATEWAY, "secret").await;
}
