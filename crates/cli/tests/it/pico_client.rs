//! Black-box test of `channels.pico_client`: the real gateway dials a scripted remote Pico
//! server (tokio-tungstenite on loopback) that streams, drops the connection and comes
//! back; the status shows in `GET /status` and `picoclaw gateway status`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use crate::support::TestHome;

const REMOTE_TOKEN: &str = "remote-pico-token-CANARY-for-pico-client";
const GATEWAY: &str = "gateway-token-for-pico-client-tests-01";

#[expect(clippy::result_large_err, reason = "the handshake callback's signature is fixed by tungstenite")]
async fn accept(
    listener: &TcpListener,
    auth: &Arc<Mutex<Vec<Option<String>>>>,
) -> WebSocketStream<TcpStream> {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(15), listener.accept())
        .await
        .expect("the gateway dials")
        .unwrap();
    let auth = auth.clone();
    tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, resp: Response| {
        auth.lock()
            .unwrap()
            .push(req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned));
        Ok(resp)
    })
    .await
    .unwrap()
}

fn frame(kind: &str, payload: Value) -> Message {
    Message::text(
        json!({ "type": kind, "session_id": "remote-1", "timestamp": 1, "payload": payload }).to_string(),
    )
}

async fn next_text(ws: &mut WebSocketStream<TcpStream>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await.expect("an answer in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn status(base: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/status"))
        .bearer_auth(GATEWAY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A scripted remote Pico server on loopback and a home whose `pico_client` dials it
/// (session `remote-1`, token [`REMOTE_TOKEN`]).
async fn remote_and_home() -> (TcpListener, TestHome) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = TestHome::new();
    home.write_config(&json!({
        "channels": { "pico_client": {
            "enabled": true,
            "url": format!("ws://127.0.0.1:{port}/pico/ws"),
            "session_id": "remote-1"
        } }
    }));
    home.write_security(&format!(
        "gateway:\n  token: \"{GATEWAY}\"\nchannels:\n  pico_client:\n    token: \"{REMOTE_TOKEN}\"\n"
    ));
    (listener, home)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_a_remote_pico_server_and_reconnects() {
    let (listener, home) = remote_and_home().await;
    let gw = home.spawn_gateway(&[]);
    let auth = Arc::new(Mutex::new(Vec::new()));

    let mut ws = accept(&listener, &auth).await;
    ws.send(frame("typing.start", json!({}))).await.unwrap();
    ws.send(frame("message.create", json!({ "message_id": "m1", "content": "stream" }))).await.unwrap();
    ws.send(frame("message.update", json!({ "message_id": "m1", "content": "streamed text" })))
        .await
        .unwrap();
    ws.send(frame("typing.stop", json!({}))).await.unwrap();
    let answer = next_text(&mut ws).await;
    assert_eq!(answer["type"], "message.send", "{answer}");
    assert_eq!(answer["payload"]["content"], "streamed text", "echo of the complete message: {answer}");

    let s = status(&gw.http()).await;
    assert_eq!(s["pico_client"]["state"], "connected", "{s}");
    drop(ws);

    let mut ws = accept(&listener, &auth).await;
    ws.send(frame("message.create", json!({ "message_id": "m1", "content": "streamed text" })))
        .await
        .unwrap();
    ws.send(frame("message.create", json!({ "message_id": "m2", "content": "after reconnect" })))
        .await
        .unwrap();
    ws.send(frame("typing.stop", json!({}))).await.unwrap();
    let answer = next_text(&mut ws).await;
    assert_eq!(answer["payload"]["content"], "after reconnect", "m1 was not answered twice: {answer}");

    let s = status(&gw.http()).await;
    let pc = &s["pico_client"];
    assert_eq!(pc["state"], "connected", "{s}");
    assert_eq!(pc["reconnects"], 1, "{s}");
    assert_eq!(pc["messages_answered"], 2, "{s}");
    assert!(!s.to_string().contains(REMOTE_TOKEN));

    let out = home.run(&["gateway", "status"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.starts_with("pico_client")).unwrap_or_default();
    assert!(
        line.contains("connected") && line.contains("remote-1"),
        "gateway status shows the pico_client: {text}"
    );
    assert!(!text.contains(REMOTE_TOKEN));

    for a in auth.lock().unwrap().iter() {
        assert_eq!(a.as_deref(), Some(format!("Bearer {REMOTE_TOKEN}").as_str()));
    }
    drop(ws);
    drop(gw);
    let mut logs = home.gateway_stderr();
    logs.push_str(&std::fs::read_to_string(home.file("logs/gateway.log")).unwrap_or_default());
    assert!(!logs.contains(REMOTE_TOKEN), "token in the logs");
}

/// Issue 17 part 2: a remote shaped like upstream PicoClaw now streams (no `seq`, no
/// `message.done`): a reasoning bubble (`kind: thought` + legacy `thought: true`), a
/// partial answer it then cancels with `message.delete`, a `kind: tool_calls` bubble,
/// and the final answer in `message.create` + `message.update`s. The pico_client answers
/// exactly once, with the final text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_stream_with_thoughts_and_a_cancelled_partial_is_answered_once() {
    let (listener, home) = remote_and_home().await;
    let gw = home.spawn_gateway(&[]);
    let auth = Arc::new(Mutex::new(Vec::new()));
    let mut ws = accept(&listener, &auth).await;
    let model = |p: Value| {
        let mut p = p;
        p["model_name"] = json!("gpt-5.4");
        p
    };
    for (kind, payload) in [
        ("typing.start", json!({})),
        ("message.create", json!({ "message_id": "ph", "content": "Thinking...", "placeholder": true })),
        (
            "message.create",
            model(json!({ "message_id": "t1", "content": "Let me", "kind": "thought", "thought": true })),
        ),
        (
            "message.update",
            model(
                json!({ "message_id": "t1", "content": "Let me think", "kind": "thought", "thought": true }),
            ),
        ),
        ("message.create", model(json!({ "message_id": "a1", "content": "I will" }))),
        ("message.update", model(json!({ "message_id": "a1", "content": "I will look it up" }))),
        ("message.delete", json!({ "message_id": "a1" })),
        (
            "message.create",
            model(json!({ "message_id": "c1", "content": "", "kind": "tool_calls",
            "tool_calls": [{ "id": "call1", "type": "function", "function": { "name": "web_search", "arguments": "{}" } }] })),
        ),
        (
            "message.create",
            json!({ "message_id": "legacy", "content": "old-style thought", "thought": true }),
        ),
        ("message.create", model(json!({ "message_id": "a2", "content": "The answer" }))),
        ("message.update", model(json!({ "message_id": "a2", "content": "The answer is 42" }))),
        // A late update of the cancelled partial changes nothing.
        ("message.update", model(json!({ "message_id": "a1", "content": "I will look it up again" }))),
        ("typing.stop", json!({})),
    ] {
        ws.send(frame(kind, payload)).await.unwrap();
    }
    let answer = next_text(&mut ws).await;
    assert_eq!(answer["type"], "message.send", "{answer}");
    assert_eq!(answer["payload"]["content"], "The answer is 42", "{answer}");
    // Nothing else: the thoughts, the tool calls and the cancelled partial get no answer.
    let quiet = Duration::from_millis(2500);
    loop {
        match tokio::time::timeout(quiet, ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(t)))) => panic!("a second answer: {t}"),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("connection ended: {other:?}"),
        }
    }
    assert_eq!(status(&gw.http()).await["pico_client"]["messages_answered"], 1);
}
