//! The history API, `picoclaw sessions`, the `read` scope, the OpenAI-compatible endpoint
//! and the migration of JSONL homes (issue 16), black-box: the real binary, real sockets,
//! real HTTP and WebSocket clients, and OpenAI's own Python client.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::ws::{self, Next};
use crate::support::{self, TestHome};

const PICO: &str = "pico-token-for-history-tests-0123456789abcdef";

fn ok(home: &TestHome, args: &[&str]) -> String {
    let out = home.run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn get(url: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new().get(url).bearer_auth(token).send().await.expect("http");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn delete(url: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new().delete(url).bearer_auth(token).send().await.expect("http");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Waits until a fresh socket has joined its session (its pong comes after the join).
async fn joined(socket: &mut ws::Socket) {
    ws::send(socket, json!({ "type": "ping", "id": "joined" })).await;
    assert_eq!(ws::frame(socket).await["type"], "pong");
}

/// Sends `texts` on a protocol-2 socket of `session` as `token`; answers the `seq` of
/// each turn's `typing.start` and `message.create`, in order.
async fn chat(gw: &support::Gateway, token: &str, session: &str, texts: &[&str]) -> Vec<(u64, u64)> {
    let url = format!("{}?session_id={session}&protocol=2", gw.ws());
    let mut socket = ws::bearer(&url, token).await;
    let mut seqs = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let id = format!("r{i}");
        ws::send(&mut socket, json!({ "type": "message.send", "id": id, "payload": { "content": text } }))
            .await;
        let frames = ws::until(&mut socket, "message.done").await;
        let seq_of = |kind: &str| {
            frames.iter().find(|f| f["type"] == kind).and_then(|f| f["payload"]["seq"].as_u64()).expect(kind)
        };
        seqs.push((seq_of("typing.start"), seq_of("message.create")));
    }
    // A closing handshake answered by the gateway: it has let go of the socket, so later
    // counts of the session's sockets (a delete's `closed_sockets`) do not include it.
    futures_util::SinkExt::close(&mut socket).await.expect("close");
    while let Next::Frame(_) = ws::next(&mut socket, Duration::from_secs(10)).await {}
    seqs
}

#[tokio::test]
async fn history_pages_carry_the_seq_numbers_of_the_socket_frames() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let alice = ok(&home, &["token", "create", "--name", "alice", "--scope", "chat"]);
    let texts = ["one", "two", "three", "four", "five"];
    let seqs = chat(&gw, &alice, "alice-notes", &texts).await;
    let base = format!("{}/api/sessions/alice-notes/messages", gw.http());

    // Pages of 3: user/assistant pairs in order, every seq the one the socket saw.
    let mut got = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let (status, page) = get(&format!("{base}?after_seq={after}&limit=3"), &alice).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for m in page["messages"].as_array().expect("messages") {
            got.push((
                m["seq"].as_u64().unwrap(),
                m["role"].as_str().unwrap().to_owned(),
                m["content"].clone(),
            ));
        }
        match page["next_after_seq"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 4, "10 messages in pages of 3");
    let want: Vec<(u64, String, Value)> = texts
        .iter()
        .zip(&seqs)
        .flat_map(|(text, (user, answer))| {
            [(*user, "user".to_owned(), json!(text)), (*answer, "assistant".to_owned(), json!(text))]
        })
        .collect();
    assert_eq!(got, want, "history disagrees with the frames");

    // The list: alice's session, with its count.
    let (status, list) = get(&format!("{}/api/sessions", gw.http()), &alice).await;
    assert_eq!(status, 200, "{list}");
    let sessions = list["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{list}");
    assert_eq!(sessions[0]["id"], "alice-notes");
    assert_eq!(sessions[0]["messages"], 10);

    // Bad queries name the parameter.
    for (query, needle) in
        [("limit=0", "limit"), ("limit=abc", "limit"), ("after=3", "after"), ("limit=1&limit=2", "twice")]
    {
        let (status, body) = get(&format!("{base}?{query}"), &alice).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{query}: {body}");
    }

    // The CLI reads the same history through the gateway.
    let listed = ok(&home, &["sessions", "list"]);
    assert!(listed.contains("alice-notes") && listed.contains("10"), "{listed}");
    let export = home.file("alice-notes.jsonl");
    ok(&home, &["sessions", "export", "alice-notes", "--output", export.to_str().unwrap()]);
    let lines: Vec<Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSONL"))
        .collect();
    assert_eq!(lines.len(), 10);
    assert_eq!(lines[0]["seq"].as_u64(), Some(seqs[0].0));
    assert_eq!(lines[9]["content"], "five");
    let shown = ok(&home, &["sessions", "show", "alice-notes", "--limit", "2"]);
    assert!(shown.contains("user: one") && shown.contains("assistant: one"), "{shown}");
    assert!(shown.contains("--after-seq"), "a partial page says how to go on: {shown}");
}

#[tokio::test]
async fn another_credential_gets_404_over_http_and_ws_and_delete_closes_sockets() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let alice = ok(&home, &["token", "create", "--name", "alice", "--scope", "chat"]);
    let bob = ok(&home, &["token", "create", "--name", "bob", "--scope", "chat"]);
    chat(&gw, &alice, "alice-private", &["secret plans"]).await;
    let session = format!("{}/api/sessions/alice-private", gw.http());

    // Bob: the same 404 as for an id nobody uses, everywhere.
    let (status, body) = get(&format!("{session}/messages"), &bob).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "session_not_found");
    let (nobody, _) = get(&format!("{}/api/sessions/no-such-session/messages", gw.http()), &alice).await;
    assert_eq!(nobody, 404);
    let (status, _) = delete(&session, &bob).await;
    assert_eq!(status, 404);
    let (_, list) = get(&format!("{}/api/sessions", gw.http()), &bob).await;
    assert_eq!(list["sessions"], json!([]), "bob lists only his own: {list}");
    let auth = format!("Bearer {bob}");
    let (status, body) =
        ws::rejected(&format!("{}?session_id=alice-private", gw.ws()), &[("authorization", &auth)]).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("secret plans"));

    // The operator (the runtime token, as the CLI uses it) sees every session and its owner.
    let (_, list) = get(&format!("{}/api/sessions", gw.http()), &gw.runtime_token()).await;
    assert_eq!(list["sessions"][0]["id"], "alice-private", "{list}");
    assert!(list["sessions"][0]["owner"].as_str().is_some_and(|o| !o.is_empty()));

    // Alice deletes it while a socket of hers is open: the socket is closed with 4004,
    // the history is gone, and the id is free again. (First, the gateway has let go of
    // the sockets used so far, so exactly one is open.)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = get(&format!("{}/status", gw.http()), &gw.runtime_token()).await;
        if status["pico"]["connections"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sockets still open: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut open = ws::bearer(&format!("{}?session_id=alice-private&protocol=2", gw.ws()), &alice).await;
    joined(&mut open).await;
    let (status, body) = delete(&session, &alice).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["closed_sockets"], 1);
    loop {
        match ws::next(&mut open, Duration::from_secs(5)).await {
            Next::Closed(Some((code, _))) => {
                assert_eq!(code, 4004);
                break;
            }
            Next::Frame(_) => continue,
            other => panic!("expected close 4004, got {other:?}"),
        }
    }
    let (status, _) = get(&format!("{session}/messages"), &alice).await;
    assert_eq!(status, 404);
    assert_eq!(support::session_text(&home, "alice-private"), "", "deleted history is gone from the store");
}

#[tokio::test]
async fn a_read_token_reads_every_history_and_cannot_send_or_delete() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let alice = ok(&home, &["token", "create", "--name", "alice", "--scope", "chat"]);
    let reader = ok(&home, &["token", "create", "--name", "backup", "--scope", "read"]);
    chat(&gw, &alice, "alice-diary", &["dear diary"]).await;

    let (status, list) = get(&format!("{}/api/sessions", gw.http()), &reader).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["sessions"][0]["id"], "alice-diary");
    let (status, page) = get(&format!("{}/api/sessions/alice-diary/messages", gw.http()), &reader).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["content"], "dear diary");
    let (status, who) = get(&format!("{}/auth/whoami", gw.http()), &reader).await;
    assert_eq!((status, who["scope"].as_str()), (200, Some("read")));

    // No socket, no completion, no deletion, no ticket.
    let auth = format!("Bearer {reader}");
    let (status, _) =
        ws::rejected(&format!("{}?session_id=alice-diary", gw.ws()), &[("authorization", &auth)]).await;
    assert_eq!(status, 403);
    let client = reqwest::Client::new();
    let completion = client
        .post(format!("{}/v1/chat/completions", gw.http()))
        .bearer_auth(&reader)
        .json(&json!({ "model": "echo", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(completion.status(), 403);
    let (status, _) = delete(&format!("{}/api/sessions/alice-diary", gw.http()), &reader).await;
    assert_eq!(status, 403);
    let ticket = client.post(format!("{}/auth/ticket", gw.http())).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(ticket.status(), 403);
    assert!(support::session_text(&home, "alice-diary").contains("dear diary"), "nothing was deleted");
}

#[tokio::test]
async fn chat_completions_answer_as_json_and_sse_and_are_recorded_in_the_session() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let alice = ok(&home, &["token", "create", "--name", "alice", "--scope", "chat"]);
    let bob = ok(&home, &["token", "create", "--name", "bob", "--scope", "chat"]);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", gw.http());
    let body = |text: &str, stream: bool| {
        json!({ "model": "gpt-whatever", "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": text }
        ], "stream": stream, "user": "alice-api" })
    };

    // A socket on the same session sees the HTTP turn live.
    let mut watcher = ws::bearer(&format!("{}?session_id=alice-api&protocol=2", gw.ws()), &alice).await;
    joined(&mut watcher).await;

    let resp = client.post(&url).bearer_auth(&alice).json(&body("hello json", false)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-picoclaw-session"], "alice-api");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "echo");
    assert_eq!(answer["choices"][0]["message"]["content"], "hello json");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let seen = ws::until(&mut watcher, "message.done").await;
    assert!(
        seen.iter().any(|f| f["type"] == "message.create" && f["payload"]["content"] == "hello json"),
        "{seen:?}"
    );

    let resp = client.post(&url).bearer_auth(&alice).json(&body("hello stream", true)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(streamed, "hello stream");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");

    // Both turns are in the session's history, committed before the answers ended.
    let history = support::session_text(&home, "alice-api");
    assert_eq!(
        history,
        "user: hello json\nassistant: hello json\nuser: hello stream\nassistant: hello stream\n"
    );

    // Bob cannot write into alice's session; bad bodies say what was expected.
    let resp = client.post(&url).bearer_auth(&bob).json(&body("intruder", false)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    for (bad, needle) in [
        (json!({ "messages": [] }), "empty"),
        (json!({ "messages": [{ "role": "assistant", "content": "x" }] }), "user"),
        (json!({ "model": 3 }), "expected"),
    ] {
        let resp = client.post(&url).bearer_auth(&alice).json(&bad).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let e: Value = resp.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().contains(needle), "{bad}: {e}");
    }
    assert!(!support::session_text(&home, "alice-api").contains("intruder"));

    let (status, models) = get(&format!("{}/v1/models", gw.http()), &alice).await;
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "echo");
}

/// The script the official `openai` Python client runs against the gateway.
const OPENAI_CLIENT: &str = r#"
import os, sys
from openai import OpenAI
client = OpenAI(base_url=os.environ["PICOCLAW_BASE"] + "/v1", api_key=os.environ["PICOCLAW_KEY"])
models = [m.id for m in client.models.list()]
assert models == ["echo"], models
stream = client.chat.completions.create(
    model="echo", messages=[{"role": "user", "content": "streamed through openai"}], stream=True, user="py-session")
parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
print("STREAM:" + "".join(parts))
reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "plain"}], user="py-session")
print("JSON:" + reply.choices[0].message.content)
try:
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}], user="pico_client-x")
    print("RESERVED:accepted")
except Exception as e:
    print("RESERVED:" + type(e).__name__)
"#;

#[tokio::test]
async fn the_official_openai_python_client_streams_an_echo_answer() {
    let python_has_openai =
        Command::new(support::python()).args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    if !python_has_openai {
        assert!(
            std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(),
            "the openai Python package is missing: scripts/test installs it (pip install 'openai>=1.50,<3')"
        );
        eprintln!("skipped: python3 with the openai package is not installed");
        return;
    }
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let key = ok(&home, &["token", "create", "--name", "python", "--scope", "chat"]);
    let gw_base = gw.http();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(support::python())
            .args(["-c", OPENAI_CLIENT])
            .env("PICOCLAW_BASE", gw_base)
            .env("PICOCLAW_KEY", key)
            .env_remove("OPENAI_BASE_URL")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("STREAM:streamed through openai"), "{stdout}");
    assert!(stdout.contains("JSON:plain"), "{stdout}");
    assert!(stdout.contains("RESERVED:PermissionDeniedError"), "reserved ids are refused: {stdout}");
    assert_eq!(
        support::session_text(&home, "py-session"),
        "user: streamed through openai\nassistant: streamed through openai\nuser: plain\nassistant: plain\n"
    );
}

/// A home as picoclaw 0.1 left it: one `sessions/<id>.jsonl` per session.
fn jsonl_home() -> TestHome {
    let home = TestHome::with_pico(PICO, json!({}));
    let dir = home.file("sessions");
    std::fs::create_dir_all(&dir).unwrap();
    let lines = [
        json!({ "v": 1, "owner": "pico", "created_ms": 1_700_000_000_000u64 }),
        json!({ "role": "user", "content": "old question", "ts_ms": 1_700_000_001_000u64 }),
        json!({ "role": "assistant", "content": "old answer", "ts_ms": 1_700_000_002_000u64 }),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("legacy.jsonl"), text).unwrap();
    home
}

#[tokio::test]
async fn a_jsonl_home_is_imported_once_and_served_by_the_history_api() {
    let home = jsonl_home();
    for start in 0..2 {
        let gw = home.spawn_gateway(&[]);
        let (status, page) = get(&format!("{}/api/sessions/legacy/messages", gw.http()), PICO).await;
        assert_eq!(status, 200, "start {start}: {page}");
        let contents: Vec<&str> =
            page["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(contents[..2], ["old question", "old answer"], "start {start}");
        assert_eq!(contents.len(), 2 + 2 * start, "start {start}: imported exactly once: {contents:?}");
        // The pico token owned it before; it still does, and its socket continues it.
        let last_seq = page["messages"].as_array().unwrap().last().unwrap()["seq"].as_u64().unwrap();
        let seqs = chat(&gw, PICO, "legacy", &[&format!("new {start}")]).await;
        assert!(seqs[0].0 > last_seq, "seq continues after the import and across restarts");
        drop(gw);
    }
    assert!(home.file("sessions/jsonl-backup/legacy.jsonl").is_file(), "the original is kept as a backup");
    assert!(!home.file("sessions/legacy.jsonl").exists(), "and moved out of the way");
    assert_eq!(
        support::session_text(&home, "legacy"),
        "user: old question\nassistant: old answer\nuser: new 0\nassistant: new 0\nuser: new 1\nassistant: new 1\n"
    );
}
