//! Pico protocol parity with upstream PicoClaw (issue 17): what an upstream client sends,
//! black-box against the real gateway over real WebSockets.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::TestHome;
use crate::support::ws::{self, Next};

const PICO: &str = "pico-token-for-protocol-tests-0123456789";

fn ok(home: &TestHome, args: &[&str]) -> String {
    let out = home.run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The ids of `token`'s sessions (`GET /api/sessions`).
async fn sessions_of(base: &str, token: &str) -> Vec<String> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .expect("http");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("json");
    let mut ids: Vec<String> = body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

/// A `message.send` shaped like upstream's pico_client sends it: the envelope carries the
/// session id (and a timestamp), the URL none.
fn upstream_send(id: &str, session: &str, content: &str) -> Value {
    json!({ "type": "message.send", "id": id, "session_id": session, "timestamp": 1_718_000_000_000i64,
            "payload": { "content": content } })
}

/// The frames of one answered turn, up to `typing.stop`; panics on an `error`.
async fn answer(socket: &mut ws::Socket) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let f = ws::frame(socket).await;
        assert_ne!(f["type"], "error", "{f}");
        let done = f["type"] == "typing.stop";
        frames.push(f);
        if done {
            return frames;
        }
    }
}

async fn error_code(socket: &mut ws::Socket) -> (String, Value) {
    let f = ws::frame(socket).await;
    assert_eq!(f["type"], "error", "{f}");
    (f["payload"]["code"].as_str().unwrap_or_default().to_owned(), f["payload"]["request_id"].clone())
}

/// Issue 17 part 3: a socket opened without `?session_id=` takes the first envelope's
/// session (subject to ownership) and is bound to it after; a socket that never chats
/// leaves no session behind.
#[tokio::test]
async fn an_upstream_client_binds_its_socket_with_the_first_envelope_session() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let alice = ok(&home, &["token", "create", "--name", "alice", "--scope", "chat"]);
    let bob = ok(&home, &["token", "create", "--name", "bob", "--scope", "chat"]);

    // An idle socket (ping only) claims nothing.
    let mut idle = ws::bearer(&gw.ws(), &alice).await;
    ws::send(&mut idle, json!({ "type": "ping", "id": "p1" })).await;
    assert_eq!(ws::frame(&mut idle).await["type"], "pong");
    drop(idle);

    let mut s = ws::bearer(&gw.ws(), &alice).await;
    ws::send(&mut s, upstream_send("r1", "up-1", "hello from upstream")).await;
    let frames = answer(&mut s).await;
    let create = frames.iter().find(|f| f["type"] == "message.create").expect("message.create");
    assert_eq!(create["session_id"], "up-1");
    assert_eq!(create["payload"]["content"], "hello from upstream");
    // Bound now: the same id again, or none, is that session; another is refused.
    ws::send(&mut s, upstream_send("r2", "up-1", "again")).await;
    answer(&mut s).await;
    ws::send(&mut s, json!({ "type": "message.send", "id": "r3", "payload": { "content": "no envelope" } }))
        .await;
    let frames = answer(&mut s).await;
    assert!(frames.iter().all(|f| f["session_id"] == "up-1"), "{frames:?}");
    ws::send(&mut s, upstream_send("r4", "up-2", "elsewhere")).await;
    assert_eq!(error_code(&mut s).await, ("session_mismatch".to_owned(), json!("r4")));

    // Another credential's session is not found, a pico_client id is reserved; the socket
    // stays open and unbound, and a free id then binds it.
    let mut b = ws::bearer(&gw.ws(), &bob).await;
    ws::send(&mut b, upstream_send("b1", "up-1", "let me in")).await;
    assert_eq!(error_code(&mut b).await, ("session_not_found".to_owned(), json!("b1")));
    ws::send(&mut b, upstream_send("b2", "pico_client-up", "squat")).await;
    assert_eq!(error_code(&mut b).await, ("reserved_session_id".to_owned(), json!("b2")));
    ws::send(&mut b, upstream_send("b3", "bob-own", "mine")).await;
    let frames = answer(&mut b).await;
    assert!(frames.iter().any(|f| f["payload"]["content"] == "mine" && f["session_id"] == "bob-own"));

    // A socket whose first message names no session uses (and only then claims) its own.
    let mut own = ws::bearer(&gw.ws(), &alice).await;
    ws::send(&mut own, json!({ "type": "message.send", "id": "o1", "payload": { "content": "x" } })).await;
    let frames = answer(&mut own).await;
    let random = frames[0]["session_id"].as_str().expect("session_id").to_owned();
    assert!(random.len() >= 32, "{random}");

    let mut want = vec!["up-1".to_owned(), random];
    want.sort();
    assert_eq!(sessions_of(&gw.http(), &alice).await, want, "the idle socket left a session behind");
    assert_eq!(sessions_of(&gw.http(), &bob).await, vec!["bob-own".to_owned()]);
    // The history of the bound session has the turns.
    let text = crate::support::session_text(&home, "up-1");
    assert!(text.contains("user: hello from upstream") && text.contains("user: no envelope"), "{text}");
    assert!(matches!(ws::next(&mut s, Duration::from_millis(200)).await, Next::Timeout));
    // Nor does the hub keep the provisional sessions: up-1, bob-own and own's.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status: Value = reqwest::Client::new()
            .get(format!("{}/status", gw.http()))
            .bearer_auth(gw.runtime_token())
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        if status["pico"]["sessions"] == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "provisional sessions kept: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 17 part 2: inline images are checked as upstream checks them; a bad one is an
/// `error` `invalid_media` with the request id, and the socket stays open. Good images
/// (in `media` or `attachments`, through `media.send` too) make a turn.
#[tokio::test]
async fn inline_images_are_validated_like_upstream() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let mut s = ws::bearer(&format!("{}?session_id=img", gw.ws()), PICO).await;
    for (i, media) in [
        json!("data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="),
        json!(["data:text/plain;base64,aGVsbG8="]),
        json!(["data:image/png,not-base64"]),
        json!("data:image/png;base64,***"),
        json!("data:image/png;base64,"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("m{i}");
        ws::send(
            &mut s,
            json!({ "type": "message.send", "id": id, "payload": { "content": "see", "media": media } }),
        )
        .await;
        assert_eq!(error_code(&mut s).await, ("invalid_media".to_owned(), json!(id)), "{media}");
    }
    let png = "data:image/png;base64,iVBORw0KGgo=";
    ws::send(
        &mut s,
        json!({ "type": "media.send", "id": "ok1", "payload": { "content": "a picture",
                "attachments": [{ "type": "image", "data_url": png }, { "type": "file", "url": "/x" }] } }),
    )
    .await;
    let frames = answer(&mut s).await;
    assert!(frames.iter().any(|f| f["payload"]["content"] == "a picture"), "{frames:?}");
}

/// A home whose agent is the fake provider `fake` (model `test-model`), Pico on with [`PICO`].
fn home_with_model(fake: &crate::fake_provider::FakeProvider) -> TestHome {
    let home = TestHome::new();
    home.write_config(&json!({
        "channels": { "pico": { "enabled": true } },
        "model_list": [{ "model_name": "test-model", "model": "gpt-test", "api_base": fake.base }],
        "agents": { "defaults": { "model": "test-model" } }
    }));
    home.write_security(&format!(
        "channels:\n  pico:\n    token: \"{PICO}\"\nmodel_list:\n  test-model:\n    api_keys: [\"sk-test-key-0123456789\"]\n"
    ));
    home
}

/// Issue 17 part 2: `message.delete` from the client cancels its running answer (named by
/// the answer's `message_id` or by the request `id`): the agent call stops, the answer is
/// withdrawn with `message.delete` as upstream withdraws a cancelled partial, the turn
/// ends (`typing.stop`, protocol 2 `message.done` with `cancelled`), and the partial
/// answer is not kept in the history. A queued message is cancelled before it runs.
#[tokio::test]
async fn message_delete_cancels_a_running_answer() {
    use crate::fake_provider::{FakeProvider, Reply};
    let fake = FakeProvider::start(Reply::stream(&["fine"]));
    fake.then(Reply::Stall { deltas: vec!["partial ans".into(), "wer".into()] });
    let home = home_with_model(&fake);
    let gw = home.spawn_gateway(&[]);
    let mut s = ws::bearer(&format!("{}?session_id=cancel-me&protocol=2", gw.ws()), PICO).await;
    let send =
        |id: &str, text: &str| json!({ "type": "message.send", "id": id, "payload": { "content": text } });
    ws::send(&mut s, send("r1", "question")).await;
    let create = ws::until(&mut s, "message.create").await.pop().expect("create");
    let message_id = create["payload"]["message_id"].as_str().expect("message_id").to_owned();
    assert_eq!(create["payload"]["model_name"], "test-model");
    // r2 waits behind r1; cancelled by its request id, it never runs.
    ws::send(&mut s, send("r2", "never asked")).await;
    ws::send(&mut s, json!({ "type": "message.delete", "id": "d1", "payload": { "message_id": "r2" } }))
        .await;
    let frames = ws::until(&mut s, "message.done").await;
    let done = frames.last().expect("done");
    assert_eq!(
        (done["payload"]["reply_to"].as_str(), done["payload"]["cancelled"].as_bool()),
        (Some("r2"), Some(true))
    );
    assert!(
        frames.iter().any(|f| f["type"] == "message.delete" && f["payload"]["reply_to"] == "r2"),
        "{frames:?}"
    );

    // r1, streaming, cancelled by its message_id.
    ws::send(
        &mut s,
        json!({ "type": "message.delete", "id": "d2", "payload": { "message_id": message_id } }),
    )
    .await;
    let frames = ws::until(&mut s, "message.done").await;
    let kinds: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    let at = kinds.iter().position(|k| *k == "message.delete").unwrap_or_else(|| panic!("{kinds:?}"));
    assert_eq!(frames[at]["payload"]["message_id"], json!(message_id));
    assert_eq!(frames[at]["payload"]["reply_to"], "r1");
    assert_eq!(&kinds[at..], ["message.delete", "typing.stop", "message.done"], "{frames:?}");
    assert_eq!(frames.last().unwrap()["payload"]["cancelled"], true);

    // Nothing is running now; the socket still works.
    ws::send(
        &mut s,
        json!({ "type": "message.delete", "id": "d3", "payload": { "message_id": message_id } }),
    )
    .await;
    assert_eq!(error_code(&mut s).await, ("message_not_found".to_owned(), json!("d3")));
    ws::send(&mut s, json!({ "type": "message.delete", "id": "d4", "payload": {} })).await;
    assert_eq!(error_code(&mut s).await, ("invalid_message".to_owned(), json!("d4")));
    ws::send(&mut s, send("r3", "and now")).await;
    let frames = answer(&mut s).await;
    assert!(frames.iter().any(|f| f["payload"]["content"] == "fine"), "{frames:?}");

    assert_eq!(fake.requests().len(), 2, "the cancelled queued message never reached the provider");
    let history = crate::support::session_text(&home, "cancel-me");
    assert!(history.contains("user: question") && history.contains("user: and now"), "{history}");
    assert!(!history.contains("never asked") && !history.contains("partial"), "{history}");
}

/// Issue 17 part 2: a reasoning model's `reasoning_content` streams as its own bubble
/// marked `kind: thought` (and upstream's legacy `thought: true`) with `model_name`; the
/// answer bubble has no `kind`, and only the answer is kept in the history.
#[tokio::test]
async fn reasoning_streams_as_a_thought_bubble() {
    use crate::fake_provider::{FakeProvider, Reply};
    let fake = FakeProvider::start(Reply::Reasoning {
        thoughts: vec!["Let me ".into(), "think.".into()],
        deltas: vec!["Forty".into(), "-two".into()],
    });
    let home = home_with_model(&fake);
    let gw = home.spawn_gateway(&[]);
    let mut s = ws::bearer(&format!("{}?session_id=thinker", gw.ws()), PICO).await;
    ws::send(&mut s, json!({ "type": "message.send", "id": "q", "payload": { "content": "meaning?" } }))
        .await;
    let frames = answer(&mut s).await;
    let bubbles: Vec<&Value> = frames
        .iter()
        .filter(|f| matches!(f["type"].as_str(), Some("message.create" | "message.update")))
        .collect();
    let thought: Vec<&&Value> = bubbles.iter().filter(|f| f["payload"]["kind"] == "thought").collect();
    let answer_frames: Vec<&&Value> = bubbles.iter().filter(|f| f["payload"].get("kind").is_none()).collect();
    assert_eq!(thought.first().map(|f| &f["type"]), Some(&json!("message.create")), "{frames:?}");
    let last_thought = thought.last().expect("a thought");
    assert_eq!(last_thought["payload"]["content"], "Let me think.");
    assert_eq!(last_thought["payload"]["thought"], true);
    assert_eq!(last_thought["payload"]["model_name"], "test-model");
    assert_eq!(last_thought["payload"]["reply_to"], "q");
    let last_answer = answer_frames.last().expect("an answer");
    assert_eq!(last_answer["payload"]["content"], "Forty-two");
    assert_ne!(last_answer["payload"]["message_id"], last_thought["payload"]["message_id"]);
    let history = crate::support::session_text(&home, "thinker");
    assert_eq!(history, "user: meaning?\nassistant: Forty-two\n");
}
