//! pico_client against a scripted remote Pico server (a real tokio-tungstenite server on
//! loopback) that streams a message, drops the connection and comes back.

// The handshake callback signature is fixed by tungstenite.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use picoclaw_agent::{Engine, PicoClientState, spawn_pico_client};
use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};
use picoclaw_credentials::Credentials;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

const TOKEN: &str = "remote-pico-token-CANARY-77";

#[derive(Debug, Clone, Default)]
struct Seen {
    authorization: Option<String>,
    query: String,
}

async fn accept(listener: &TcpListener, seen: &Arc<Mutex<Vec<Seen>>>) -> WebSocketStream<TcpStream> {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("client dials")
        .unwrap();
    let seen = seen.clone();
    tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, resp: Response| {
        seen.lock().unwrap().push(Seen {
            authorization: req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            query: req.uri().query().unwrap_or_default().to_owned(),
        });
        Ok(resp)
    })
    .await
    .unwrap()
}

fn frame(kind: &str, payload: Value) -> Message {
    Message::text(
        json!({ "type": kind, "session_id": "remote-s1", "timestamp": 1, "payload": payload }).to_string(),
    )
}

/// Reads client frames until one arrives (pings are skipped); fails after `within`.
async fn next_client_frame(ws: &mut WebSocketStream<TcpStream>, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg =
            tokio::time::timeout(left, ws.next()).await.expect("a client frame in time").unwrap().unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Asserts the client sends nothing (but pongs) for `d`.
async fn silent_for(ws: &mut WebSocketStream<TcpStream>, d: Duration) {
    if let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(d, ws.next()).await {
        panic!("unexpected frame from the client: {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_answered_once_and_the_client_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::at(home.path());
    let env = MapEnv::new()
        .with("PICOCLAW_CHANNELS_PICO_CLIENT_ENABLED", "true")
        .with("PICOCLAW_CHANNELS_PICO_CLIENT_URL", format!("ws://127.0.0.1:{port}/pico/ws"))
        .with("PICOCLAW_CHANNELS_PICO_CLIENT_TOKEN", TOKEN);
    let layers = Layers::load(&paths, &env, &Flags::new()).unwrap();
    let mut settings = Settings::resolve(&layers).unwrap();
    settings.pico_client.session_id = Some("remote-s1".into());
    let creds = Credentials::resolve(&layers, &settings).unwrap();
    let engine = Engine::from_config(&settings, &creds, &paths).unwrap();
    let status = spawn_pico_client(&settings, &creds, engine.clone()).expect("enabled");
    let seen = Arc::new(Mutex::new(Vec::new()));

    // Connection 1: a streamed message, then a late duplicate update, then a drop.
    let mut ws = accept(&listener, &seen).await;
    ws.send(frame("typing.start", json!({}))).await.unwrap();
    ws.send(frame("message.create", json!({ "message_id": "m1", "content": "Hel" }))).await.unwrap();
    ws.send(frame("message.update", json!({ "message_id": "m1", "content": "Hello" }))).await.unwrap();
    // Not complete yet: typing is open, so even a long pause must not trigger an answer.
    silent_for(&mut ws, Duration::from_millis(2000)).await;
    ws.send(frame("message.update", json!({ "message_id": "m1", "content": "Hello there" }))).await.unwrap();
    ws.send(frame("typing.stop", json!({}))).await.unwrap();
    let answer = next_client_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(answer["type"], "message.send", "{answer}");
    assert_eq!(answer["payload"]["content"], "Hello there", "{answer}");
    assert_eq!(answer["session_id"], "remote-s1");
    // A duplicate of the handled message is ignored.
    ws.send(frame("message.update", json!({ "message_id": "m1", "content": "Hello there" }))).await.unwrap();
    ws.send(frame("typing.stop", json!({}))).await.unwrap();
    silent_for(&mut ws, Duration::from_millis(2500)).await;
    assert_eq!(status.snapshot().state, PicoClientState::Connected);
    drop(ws); // connection lost without a close frame

    // Connection 2: the client comes back by itself.
    let mut ws = accept(&listener, &seen).await;
    // A replay of m1 is ignored; m2 completes with message.done (protocol 2).
    ws.send(frame("message.create", json!({ "message_id": "m1", "content": "Hello there", "seq": 3 })))
        .await
        .unwrap();
    ws.send(frame("message.create", json!({ "message_id": "m2", "content": "sec", "seq": 4 })))
        .await
        .unwrap();
    ws.send(frame("message.update", json!({ "message_id": "m2", "content": "second", "seq": 5 })))
        .await
        .unwrap();
    ws.send(frame("message.done", json!({ "message_id": "m2", "seq": 6 }))).await.unwrap();
    let answer = next_client_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(
        (answer["type"].as_str(), answer["payload"]["content"].as_str()),
        (Some("message.send"), Some("second"))
    );
    // m3: a server with neither typing nor message.done: answered after the quiet period.
    ws.send(frame("message.create", json!({ "message_id": "m3", "content": "third" }))).await.unwrap();
    let answer = next_client_frame(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(
        (answer["type"].as_str(), answer["payload"]["content"].as_str()),
        (Some("message.send"), Some("third"))
    );
    // A server error frame is reported in the status, and the client stays connected.
    ws.send(frame("error", json!({ "code": "unknown_type", "message": "nope" }))).await.unwrap();
    silent_for(&mut ws, Duration::from_millis(500)).await;

    let snap = status.snapshot();
    assert_eq!(snap.state, PicoClientState::Connected);
    assert_eq!(snap.reconnects, 1);
    assert_eq!(snap.messages_answered, 3);
    assert!(snap.last_error.as_deref().is_some_and(|e| e.contains("unknown_type")), "{snap:?}");
    assert_eq!(snap.session_id, "remote-s1");
    let json = serde_json::to_string(&snap).unwrap();
    assert!(!json.contains(TOKEN), "status leaks the token: {json}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
        assert!(s.query.contains("session_id=remote-s1") && s.query.contains("protocol=2"), "{s:?}");
    }
    assert!(!seen[0].query.contains("last_seq"));

    // History of the local session is persisted, one turn per remote message.
    let history = engine.history("pico_client-remote-s1").await;
    let texts: Vec<&str> = history.iter().map(|t| t.content.as_str()).collect();
    assert_eq!(texts, ["Hello there", "Hello there", "second", "second", "third", "third"]);

    status.stop();
    silent_for(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn disabled_client_is_not_started() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::at(home.path());
    let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
    let settings = Settings::resolve(&layers).unwrap();
    let creds = Credentials::resolve(&layers, &settings).unwrap();
    assert!(spawn_pico_client(&settings, &creds, Engine::echo()).is_none());
}

#[tokio::test]
async fn unreachable_remote_backs_off_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::at(home.path());
    let env = MapEnv::new()
        .with("PICOCLAW_CHANNELS_PICO_CLIENT_ENABLED", "true")
        .with("PICOCLAW_CHANNELS_PICO_CLIENT_URL", format!("ws://127.0.0.1:{port}/pico/ws"))
        .with("PICOCLAW_CHANNELS_PICO_CLIENT_TOKEN", TOKEN);
    let layers = Layers::load(&paths, &env, &Flags::new()).unwrap();
    let settings = Settings::resolve(&layers).unwrap();
    let creds = Credentials::resolve(&layers, &settings).unwrap();
    let status = spawn_pico_client(&settings, &creds, Engine::echo()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let snap = status.snapshot();
        if snap.state == PicoClientState::BackingOff {
            let err = snap.last_error.unwrap_or_default();
            assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
            assert!(!err.contains(TOKEN));
            assert!(snap.session_id.starts_with("pc"), "random session id: {}", snap.session_id);
            break;
        }
        assert!(Instant::now() < deadline, "never backed off: {snap:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    status.stop();
}
