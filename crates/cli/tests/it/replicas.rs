//! Several gateway replicas on one PostgreSQL (issue 20), black-box: a throwaway server
//! (`postgres_support`), two real `picoclaw gateway` processes with different homes and the
//! same `storage.url`, real WebSocket and HTTP clients.

use std::time::Duration;

use serde_json::{Value, json};

use crate::postgres_support::{self, Postgres};
use crate::support::ws;
use crate::support::{Gateway, TestHome, wait_for_record};

const PICO: &str = "pico-token-for-replica-tests-0123456789abcdef";

/// A home whose sessions live in `db` of `pg`; the password comes from
/// PICOCLAW_STORAGE_PASSWORD, or (`from_file`) from PICOCLAW_STORAGE_PASSWORD_FILE.
fn replica_home(pg: &Postgres, db: &str, from_file: bool) -> TestHome {
    on_storage(TestHome::with_pico(PICO, json!({})), pg, db, from_file)
}

/// `home`, now with its sessions and named tokens in `db` of `pg`.
fn on_storage(home: TestHome, pg: &Postgres, db: &str, from_file: bool) -> TestHome {
    let home = home.env("PICOCLAW_STORAGE_URL", &pg.url(db));
    if from_file {
        let file = home.file("storage-password");
        crate::support::write_private(&file, &format!("{}\n", postgres_support::PASSWORD));
        let path = file.to_str().unwrap().to_owned();
        home.env("PICOCLAW_STORAGE_PASSWORD_FILE", &path)
    } else {
        home.env("PICOCLAW_STORAGE_PASSWORD", postgres_support::PASSWORD)
    }
}

async fn get(url: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new().get(url).bearer_auth(token).send().await.expect("http");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sends `texts` on a protocol-2 socket of `session`; waits for each answer's own
/// `message.done` (matched by `reply_to`, as a client does: frames of the session's earlier
/// turns on another replica may still be arriving through the fan-out).
async fn chat(gw: &Gateway, session: &str, texts: &[&str]) {
    let url = format!("{}?session_id={session}&protocol=2", gw.ws());
    let mut socket = ws::bearer(&url, PICO).await;
    for text in texts {
        let id = format!("send-{}", text.replace(' ', "-"));
        ws::send(&mut socket, json!({ "type": "message.send", "id": id, "payload": { "content": text } }))
            .await;
        loop {
            let frame = ws::frame(&mut socket).await;
            if frame["type"] == "message.done" && frame["payload"]["reply_to"] == id.as_str() {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_on_replica_a_is_listed_and_readable_through_replica_b() {
    let Some(pg) = Postgres::start() else { return };
    let home_a = replica_home(&pg, "postgres", false);
    let home_b = replica_home(&pg, "postgres", true);
    let a = home_a.spawn_gateway(&[]);
    let b = home_b.spawn_gateway(&[]);

    chat(&a, "shared-notes", &["first on A", "second on A"]).await;

    let (status, list) = get(&format!("{}/api/sessions", b.http()), PICO).await;
    assert_eq!(status, 200, "{list}\n{}", home_b.gateway_stderr());
    let sessions = list["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{list}");
    assert_eq!(sessions[0]["id"], "shared-notes");
    assert_eq!(sessions[0]["messages"], 4);
    let (status, page) = get(&format!("{}/api/sessions/shared-notes/messages", b.http()), PICO).await;
    assert_eq!(status, 200, "{page}");
    let got: Vec<(String, String)> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect();
    let want: Vec<(String, String)> = ["first on A", "second on A"]
        .iter()
        .flat_map(|t| [("user".to_owned(), (*t).to_owned()), ("assistant".to_owned(), (*t).to_owned())])
        .collect();
    assert_eq!(got, want);

    // B continues the session: its seq numbers go on after A's (one row lock orders them).
    chat(&b, "shared-notes", &["third on B"]).await;
    let (_, page) = get(&format!("{}/api/sessions/shared-notes/messages", a.http()), PICO).await;
    let seqs: Vec<u64> =
        page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs.len(), 6, "{page}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq numbers only grow across replicas: {seqs:?}");
    assert_eq!(page["messages"][4]["content"], "third on B");

    // Deleted through A: B's socket of it closes with 4004 (the deletion is relayed).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !home_b.gateway_stderr().contains("listening for frames of other replicas") {
        assert!(std::time::Instant::now() < deadline, "B never listened: {}", home_b.gateway_stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut on_b = ws::bearer(&format!("{}?session_id=shared-notes&protocol=2", b.ws()), PICO).await;
    ws::send(&mut on_b, json!({ "type": "ping", "id": "joined" })).await;
    // The last turn's closing frames (`typing.stop` after `message.done`) may reach the new
    // socket first: it is a member of the session.
    ws::until(&mut on_b, "pong").await;
    let deleted = reqwest::Client::new()
        .delete(format!("{}/api/sessions/shared-notes", a.http()))
        .bearer_auth(PICO)
        .send()
        .await
        .expect("http");
    assert_eq!(deleted.status().as_u16(), 200);
    // Frames of the session's earlier turns may still be arriving (through the fan-out too,
    // docs/storage.md): skipped, the close is what counts.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match ws::next(&mut on_b, left).await {
            ws::Next::Frame(_) => continue,
            ws::Next::Closed(Some((code, _))) => {
                assert_eq!(code, 4004);
                break;
            }
            other => {
                panic!(
                    "B's socket of the deleted session stayed open: {other:?}\n{}",
                    home_b.gateway_stderr()
                )
            }
        }
    }

    // Nothing of the password reached either log.
    for home in [&home_a, &home_b] {
        assert!(!home.gateway_stderr().contains(postgres_support::PASSWORD), "{}", home.gateway_stderr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_when_both_replicas_start_at_the_same_moment() {
    let Some(pg) = Postgres::start() else { return };
    let homes = [replica_home(&pg, "postgres", false), replica_home(&pg, "postgres", false)];
    // Both started before either is waited for.
    let mut children: Vec<_> = homes
        .iter()
        .map(|h| {
            let log = std::fs::File::create(h.file("test-gateway.stderr")).unwrap();
            h.cmd(&["gateway", "--port", "0"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        })
        .collect();
    for (home, child) in homes.iter().zip(&children) {
        assert!(
            wait_for_record(home.path(), child.id(), Duration::from_secs(60)).is_some(),
            "replica did not start: {}",
            home.gateway_stderr()
        );
    }
    let client = pg.client("postgres").await;
    let rows = client
        .query("SELECT version, count(*) FROM picoclaw_migrations GROUP BY version ORDER BY version", &[])
        .await
        .unwrap();
    let versions: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let want: Vec<(i32, i64)> = picoclaw_store::MIGRATIONS.iter().map(|(v, _)| (*v, 1)).collect();
    assert_eq!(versions, want, "one row per version");
    let applied: usize =
        homes.iter().map(|h| h.gateway_stderr().matches("applied PostgreSQL migration").count()).sum();
    assert_eq!(applied, picoclaw_store::MIGRATIONS.len(), "each version applied by one replica only");
    for child in &mut children {
        crate::support::terminate(child);
    }
}

#[test]
fn a_password_inside_storage_url_is_refused_naming_the_key_and_where_it_goes() {
    let home = TestHome::with_pico(PICO, json!({}))
        .env("PICOCLAW_STORAGE_URL", "postgres://pico:URLPASSWORDCANARY@127.0.0.1:5432/picoclaw");
    for args in [&["gateway", "--port", "0"][..], &["config", "show"][..]] {
        let out = home.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted it");
        assert!(stderr.contains("storage.url"), "{args:?}: {stderr}");
        assert!(stderr.contains("PICOCLAW_STORAGE_PASSWORD"), "{args:?}: {stderr}");
        let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
        assert!(!all.contains("URLPASSWORDCANARY"), "{args:?} echoed the password: {all}");
    }
}

#[test]
fn a_wrong_password_stops_the_gateway_with_the_servers_reason_and_no_secret() {
    let Some(pg) = Postgres::start() else { return };
    let home = TestHome::with_pico(PICO, json!({}))
        .env("PICOCLAW_STORAGE_URL", &pg.url("postgres"))
        .env("PICOCLAW_STORAGE_PASSWORD", "WRONGPASSWORDCANARY");
    let out = home.run(&["gateway", "--port", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a wrong password");
    assert!(stderr.contains("storage.url") && stderr.contains("password authentication failed"), "{stderr}");
    assert!(!stderr.contains("WRONGPASSWORDCANARY"), "{stderr}");
}

/// Frames of `socket` until `message.done`, as (type, seq, payload) — pings skipped.
async fn turn_frames(socket: &mut ws::Socket) -> Vec<Value> {
    ws::until(socket, "message.done").await.into_iter().filter(|f| f["type"] != "pong").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_socket_on_replica_b_gets_a_frames_in_order_and_replay_works_on_b() {
    let Some(pg) = Postgres::start() else { return };
    let home_a = replica_home(&pg, "postgres", false);
    let home_b = replica_home(&pg, "postgres", false);
    let a = home_a.spawn_gateway(&[]);
    let b = home_b.spawn_gateway(&[]);
    let url = |gw: &Gateway, extra: &str| format!("{}?session_id=fanout&protocol=2{extra}", gw.ws());

    let mut on_a = ws::bearer(&url(&a, ""), PICO).await;
    let mut on_b = ws::bearer(&url(&b, ""), PICO).await;
    // Both joined (a pong comes after the join).
    for s in [&mut on_a, &mut on_b] {
        ws::send(s, json!({ "type": "ping", "id": "joined" })).await;
        assert_eq!(ws::frame(s).await["type"], "pong");
    }
    // B's listener is up once its log says so (the LISTEN precedes it).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !home_b.gateway_stderr().contains("listening for frames of other replicas") {
        assert!(std::time::Instant::now() < deadline, "B never listened: {}", home_b.gateway_stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let long = "x".repeat(20_000); // past the inline limit: fetched by id
    for (i, text) in ["hello from A", long.as_str()].iter().enumerate() {
        ws::send(
            &mut on_a,
            json!({ "type": "message.send", "id": format!("m{i}"), "payload": { "content": text } }),
        )
        .await;
        let sent = turn_frames(&mut on_a).await;
        let got = turn_frames(&mut on_b).await;
        assert_eq!(got, sent, "B's socket got A's frames, in order, with A's seq numbers");
        assert!(sent.iter().any(|f| f["type"] == "message.create" && f["payload"]["content"] == *text));
    }

    // A client of A reconnects to B with the last seq it saw: B replays the rest.
    ws::send(
        &mut on_a,
        json!({ "type": "message.send", "id": "m-replay", "payload": { "content": "replay me" } }),
    )
    .await;
    let sent = turn_frames(&mut on_a).await;
    turn_frames(&mut on_b).await; // B has all of them now
    let first_seq = sent[0]["payload"]["seq"].as_u64().expect("seq");
    let mut again = ws::bearer(&url(&b, &format!("&last_seq={first_seq}")), PICO).await;
    let replayed = turn_frames(&mut again).await;
    assert_eq!(replayed, sent[1..].to_vec(), "frames after last_seq replayed by the other replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_replica_a_mid_turn_loses_no_answered_turn() {
    let Some(pg) = Postgres::start() else { return };
    let home_a = replica_home(&pg, "postgres", false);
    let home_b = replica_home(&pg, "postgres", false);
    let mut a = home_a.spawn_gateway(&[]);
    let b = home_b.spawn_gateway(&[]);
    let url = format!("{}?session_id=crash&protocol=2", a.ws());
    let mut socket = ws::bearer(&url, PICO).await;
    let mut answered = Vec::new();
    for i in 0..5 {
        let text = format!("answered {i}");
        ws::send(
            &mut socket,
            json!({ "type": "message.send", "id": format!("a{i}"), "payload": { "content": text } }),
        )
        .await;
        ws::until(&mut socket, "message.done").await;
        answered.push(text);
    }
    // A turn in flight, and A dies (SIGKILL: no shutdown, no flush).
    ws::send(
        &mut socket,
        json!({ "type": "message.send", "id": "cut", "payload": { "content": "in flight" } }),
    )
    .await;
    crate::support::unsafe_free_kill(a.child.id(), "KILL");
    let _ = a.child.wait();
    // Every turn A answered is readable through B.
    let (status, page) = get(&format!("{}/api/sessions/crash/messages", b.http()), PICO).await;
    assert_eq!(status, 200, "{page}");
    let users: Vec<String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert!(users.len() >= 5, "{page}");
    assert_eq!(users[..5], answered[..], "answered turns lost or reordered: {page}");
    // And B takes the session over: a new turn there goes on after them.
    chat(&b, "crash", &["after the crash"]).await;
    let (_, page) = get(&format!("{}/api/sessions/crash/messages", b.http()), PICO).await;
    let last = page["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"], "after the crash", "{page}");
}

async fn whoami(gw: &Gateway, token: &str) -> u16 {
    get(&format!("{}/auth/whoami", gw.http()), token).await.0
}

/// An admin API call on `gw` with its runtime token.
async fn admin(gw: &Gateway, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", gw.http()))
        .bearer_auth(gw.runtime_token());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.expect("http");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Waits (up to `within`) until `token` gets `want` from `gw`'s whoami; answers how long.
async fn until_whoami(gw: &Gateway, token: &str, want: u16, within: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if whoami(gw, token).await == want {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn ok(home: &TestHome, args: &[&str]) -> String {
    let out = home.run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_tokens_are_shared_and_a_revocation_on_a_closes_bs_sockets_with_4001_within_a_second() {
    let Some(pg) = Postgres::start() else { return };
    // A's home had a named token before it moved onto PostgreSQL: the first start stores it.
    let before = TestHome::with_pico(PICO, json!({}));
    let laptop = ok(&before, &["token", "create", "--name", "laptop", "--scope", "chat"]).trim().to_owned();
    let home_a = on_storage(before, &pg, "postgres", false);
    let home_b = replica_home(&pg, "postgres", false);
    let a = home_a.spawn_gateway(&[]);
    let b = home_b.spawn_gateway(&[]);
    for home in [&home_a, &home_b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !home.gateway_stderr().contains("shared tokens: listening") {
            assert!(std::time::Instant::now() < deadline, "never listened: {}", home.gateway_stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(whoami(&b, &laptop).await, 200, "A's home token, imported, works on B");

    // Created on A: accepted by B as soon as B heard of it.
    let (status, created) =
        admin(&a, reqwest::Method::POST, "/api/tokens", Some(json!({ "name": "phone", "scope": "chat" })))
            .await;
    assert_eq!(status, 201, "{created}");
    let phone = created["token"].as_str().expect("token shown once").to_owned();
    let took = until_whoami(&b, &phone, 200, Duration::from_secs(1)).await;
    assert!(took.is_some(), "B did not accept A's new token within 1 s: {}", home_b.gateway_stderr());
    let mut phone_on_b = ws::bearer(&format!("{}?session_id=phone-notes&protocol=2", b.ws()), &phone).await;
    let mut laptop_on_b =
        ws::bearer(&format!("{}?session_id=laptop-notes&protocol=2", b.ws()), &laptop).await;
    ws::send(&mut phone_on_b, json!({ "type": "ping", "id": "joined" })).await;
    assert_eq!(ws::frame(&mut phone_on_b).await["type"], "pong");

    // Revoked on A: B closes its socket with 4001 within a second, and refuses the token.
    let (status, revoked) = admin(&a, reqwest::Method::DELETE, "/api/tokens/phone", None).await;
    assert_eq!(status, 200, "{revoked}");
    let revoked_at = std::time::Instant::now();
    match ws::next(&mut phone_on_b, Duration::from_secs(1)).await {
        ws::Next::Closed(Some((code, reason))) => {
            assert_eq!(code, 4001, "{reason}");
            assert!(!reason.contains(&phone[17..]), "{reason}");
        }
        other => panic!(
            "B's socket of the revoked token was not closed within 1 s ({:?}): {other:?}\n{}",
            revoked_at.elapsed(),
            home_b.gateway_stderr()
        ),
    }
    assert_eq!(whoami(&b, &phone).await, 401);
    let auth = format!("Bearer {phone}");
    assert_eq!(ws::rejected(&b.ws(), &[("authorization", &auth)]).await.0, 401);
    // Another token's socket on B is untouched.
    ws::send(&mut laptop_on_b, json!({ "type": "ping", "id": "still" })).await;
    assert_eq!(ws::frame(&mut laptop_on_b).await["type"], "pong");

    // Rotated with grace on B (through the CLI of B's home): both values work on A
    // during the grace, the new one once A heard of it.
    let new_laptop = ok(&home_b, &["token", "rotate", "laptop", "--grace", "1h"]).trim().to_owned();
    assert!(
        until_whoami(&a, &new_laptop, 200, Duration::from_secs(1)).await.is_some(),
        "A did not accept B's rotation within 1 s: {}",
        home_a.gateway_stderr()
    );
    assert_eq!(whoami(&a, &laptop).await, 200, "the old value is in its grace on A too");

    // Every home lists the same records.
    for home in [&home_a, &home_b] {
        let listed: Value = serde_json::from_str(&ok(home, &["token", "list", "--json"])).expect("json");
        let mut states: Vec<(String, String)> = listed["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_owned(), t["state"].as_str().unwrap().to_owned()))
            .collect();
        states.sort();
        assert_eq!(
            states,
            [("laptop".to_owned(), "active".to_owned()), ("phone".to_owned(), "revoked".to_owned())],
            "{listed}"
        );
    }
    // A's home list is no longer what is used, and A says so when it reloads.
    ok(&home_a, &["gateway", "reload"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !home_a.gateway_stderr().contains("`tokens:` list is not used") {
        assert!(std::time::Instant::now() < deadline, "no warning: {}", home_a.gateway_stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The per-home pico token cannot be rotated through one replica.
    let (status, refused) =
        admin(&b, reqwest::Method::POST, "/api/tokens/pico/rotate", Some(json!({}))).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "per_replica", "{refused}");

    // The audit line of each change is on the replica that made it; the other reloaded.
    let audit = |home: &TestHome| std::fs::read_to_string(home.file("logs/audit.jsonl")).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !(audit(&home_a).contains("\"revoke\"") && audit(&home_b).contains("shared tokens changed")) {
        assert!(std::time::Instant::now() < deadline, "A: {}\nB: {}", audit(&home_a), audit(&home_b));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No token value in any log or in the database's notifications.
    for home in [&home_a, &home_b] {
        let logs = format!("{}{}", home.gateway_stderr(), audit(home));
        for secret in [&laptop, &new_laptop, &phone] {
            assert!(!logs.contains(&secret[17..]), "a token value reached a log: {logs}");
        }
    }
    let client = pg.client("postgres").await;
    let stored: String = client.query_one("SELECT tokens FROM picoclaw_tokens", &[]).await.unwrap().get(0);
    for secret in [&laptop, &new_laptop, &phone] {
        assert!(!stored.contains(&secret[17..]), "the database holds hashes only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_a_broken_config_nor_a_newer_schema_keeps_a_token_revoked_elsewhere_alive() {
    let Some(pg) = Postgres::start() else { return };
    let home_a = replica_home(&pg, "postgres", false);
    let home_b = replica_home(&pg, "postgres", false);
    let a = home_a.spawn_gateway(&[]);
    let b = home_b.spawn_gateway(&[]);
    let (status, created) =
        admin(&a, reqwest::Method::POST, "/api/tokens", Some(json!({ "name": "kiosk", "scope": "chat" })))
            .await;
    assert_eq!(status, 201, "{created}");
    let kiosk = created["token"].as_str().expect("token shown once").to_owned();
    assert!(
        until_whoami(&b, &kiosk, 200, Duration::from_secs(5)).await.is_some(),
        "{}",
        home_b.gateway_stderr()
    );
    let (status, ready) = get(&format!("{}/ready", b.http()), PICO).await;
    assert_eq!((status, ready["checks"]["shared_tokens"].clone()), (200, json!("current")), "{ready}");
    let mut on_b = ws::bearer(&format!("{}?session_id=kiosk-notes&protocol=2", b.ws()), &kiosk).await;
    ws::send(&mut on_b, json!({ "type": "ping", "id": "joined" })).await;
    assert_eq!(ws::frame(&mut on_b).await["type"], "pong");

    // B's config.json is broken (its reload is rejected), and a newer picoclaw migrated
    // the database (a rolling upgrade): neither may stop B from applying a revocation.
    std::fs::write(home_b.file("config.json"), "{ this is not JSON").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !home_b.gateway_stderr().contains("reload rejected") {
        assert!(
            std::time::Instant::now() < deadline,
            "B never tried the reload: {}",
            home_b.gateway_stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = pg.client("postgres").await;
    client
        .execute("INSERT INTO picoclaw_migrations (version, applied_ms) VALUES (99, 0)", &[])
        .await
        .unwrap();

    let (status, revoked) = admin(&a, reqwest::Method::DELETE, "/api/tokens/kiosk", None).await;
    assert_eq!(status, 200, "{revoked}");
    match ws::next(&mut on_b, Duration::from_secs(1)).await {
        ws::Next::Closed(Some((code, _))) => assert_eq!(code, 4001),
        other => panic!("B kept the revoked token's socket: {other:?}\n{}", home_b.gateway_stderr()),
    }
    assert_eq!(whoami(&b, &kiosk).await, 401);
    // The CLI still works on the newer schema; a new replica of this version refuses to
    // start on it, naming why.
    let listed = ok(&home_a, &["token", "list", "--json"]);
    assert!(listed.contains("\"revoked\""), "{listed}");
    let home_c = replica_home(&pg, "postgres", false);
    let out = home_c.run(&["gateway", "--port", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("newer than this picoclaw"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_database_refuses_named_tokens_until_it_has_read_them_again() {
    let Some(pg) = Postgres::start() else { return };
    let home_a = replica_home(&pg, "postgres", false);
    let a = home_a.spawn_gateway(&[]);
    // B logs in as a role of its own, so the test can cut B alone off the database (a
    // network partition between B and PostgreSQL) while A goes on.
    let client = pg.client("postgres").await;
    client
        .batch_execute(&format!(
            "CREATE ROLE replica_b LOGIN PASSWORD '{}';
             GRANT CREATE, USAGE ON SCHEMA public TO replica_b;
             GRANT ALL ON ALL TABLES IN SCHEMA public TO replica_b;
             GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO replica_b;",
            postgres_support::PASSWORD
        ))
        .await
        .unwrap();
    let url_b = pg.url("postgres").replacen(&format!("{}@", postgres_support::USER), "replica_b@", 1);
    let home_b = replica_home(&pg, "postgres", false).env("PICOCLAW_STORAGE_URL", &url_b);
    let b = home_b.spawn_gateway(&[]);
    let mut tokens = Vec::new();
    for (name, scope) in [("kiosk", "chat"), ("tablet", "chat"), ("ops", "admin")] {
        let (status, created) =
            admin(&a, reqwest::Method::POST, "/api/tokens", Some(json!({ "name": name, "scope": scope })))
                .await;
        assert_eq!(status, 201, "{created}");
        tokens.push(created["token"].as_str().expect("token shown once").to_owned());
    }
    let (kiosk, tablet, ops) = (tokens[0].clone(), tokens[1].clone(), tokens[2].clone());
    // A pairing code from A, to be redeemed on B.
    assert!(until_whoami(&a, &ops, 200, Duration::from_secs(5)).await.is_some());
    let resp = reqwest::Client::new()
        .post(format!("{}/api/pair", a.http()))
        .bearer_auth(&ops)
        .json(&json!({ "name": "phone", "public_url": "https://chat.example" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let link: Value = resp.json().await.unwrap();
    let code = link["link"].as_str().unwrap().split("#code=").nth(1).unwrap().to_owned();
    let redeem_on_b = || async {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/pair/redeem", b.http()))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    assert!(
        until_whoami(&b, &tablet, 200, Duration::from_secs(5)).await.is_some(),
        "{}",
        home_b.gateway_stderr()
    );
    let mut on_b = ws::bearer(&format!("{}?session_id=kiosk-notes&protocol=2", b.ws()), &kiosk).await;
    ws::send(&mut on_b, json!({ "type": "ping", "id": "joined" })).await;
    assert_eq!(ws::frame(&mut on_b).await["type"], "pong");

    // Cut off: B can no longer hear of a revocation, so it must not accept a named token.
    client
        .batch_execute(
            "ALTER ROLE replica_b NOLOGIN;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'replica_b';",
        )
        .await
        .unwrap();
    match ws::next(&mut on_b, Duration::from_secs(5)).await {
        ws::Next::Closed(Some((code, _))) => assert_eq!(code, 1013, "try again later, not revoked"),
        other => {
            panic!("B kept a named token's socket while cut off: {other:?}\n{}", home_b.gateway_stderr())
        }
    }
    let (status, refused) = get(&format!("{}/auth/whoami", b.http()), &tablet).await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (503, json!("shared_tokens_unavailable")),
        "{refused}"
    );
    let (status, ready) = get(&format!("{}/ready", b.http()), PICO).await;
    assert_eq!((status, ready["checks"]["shared_tokens"].clone()), (503, json!("stale")), "{ready}");
    // A pairing code is refused before it is used up.
    let (status, refused) = redeem_on_b().await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (503, json!("shared_tokens_unavailable")),
        "{refused}"
    );
    // B's own credentials are not shared: they go on working.
    assert_eq!(whoami(&b, PICO).await, 200);
    assert!(home_b.gateway_stderr().contains("every named token is refused"), "{}", home_b.gateway_stderr());

    // A revocation made while B cannot hear of it...
    let (status, revoked) = admin(&a, reqwest::Method::DELETE, "/api/tokens/kiosk", None).await;
    assert_eq!(status, 200, "{revoked}");
    // ...is in force on B the moment B accepts named tokens again.
    client.batch_execute("ALTER ROLE replica_b LOGIN;").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let revoked_status = whoami(&b, &kiosk).await;
        assert_ne!(revoked_status, 200, "B accepted a token revoked while it was cut off");
        if whoami(&b, &tablet).await == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "B never caught up: {}", home_b.gateway_stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(whoami(&b, &kiosk).await, 401);
    let (status, ready) = get(&format!("{}/ready", b.http()), PICO).await;
    assert_eq!((status, ready["checks"]["shared_tokens"].clone()), (200, json!("current")), "{ready}");
    let (status, device) = redeem_on_b().await;
    assert_eq!(status, 201, "the code refused while B was cut off still works: {device}");
}

/// A ticket from `gw` for `token`, bound to `origin`.
async fn ticket(gw: &Gateway, token: &str, origin: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{}/auth/ticket", gw.http()))
        .bearer_auth(token)
        .header("origin", origin)
        .send()
        .await
        .expect("http");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("json");
    body["protocol"].as_str().expect("protocol").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_and_pairing_codes_from_replica_a_work_on_b_once() {
    let Some(pg) = Postgres::start() else { return };
    let origin = "http://app.example";
    let with_origin = |home: TestHome| {
        home.write_config(&json!({ "channels": { "pico": { "enabled": true, "allow_origins": [origin] } } }));
        home
    };
    let home_a = with_origin(replica_home(&pg, "postgres", false));
    let home_b = with_origin(replica_home(&pg, "postgres", false));
    let a = home_a.spawn_gateway(&[]);
    let b = home_b.spawn_gateway(&[]);
    let offer =
        |protocol: &str| vec![("origin", origin.to_owned()), ("sec-websocket-protocol", protocol.to_owned())];
    let connect = |gw: &Gateway, headers: Vec<(&'static str, String)>| {
        let url = gw.ws();
        async move {
            let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            ws::connect(&url, &refs).await.map(|(socket, _)| socket).map_err(|(status, _)| status.as_u16())
        }
    };

    // Issued by A, used on B: accepted once; then refused on B and on A.
    let t = ticket(&a, PICO, origin).await;
    let mut socket = connect(&b, offer(&t)).await.expect("A's ticket opens a socket on B");
    ws::send(&mut socket, json!({ "type": "ping", "id": "p" })).await;
    assert_eq!(ws::frame(&mut socket).await["type"], "pong");
    assert_eq!(connect(&b, offer(&t)).await.err(), Some(401), "used once");
    assert_eq!(connect(&a, offer(&t)).await.err(), Some(401), "not again on the replica that issued it");

    // Issued by A, used on A: it is gone for B.
    let t = ticket(&a, PICO, origin).await;
    connect(&a, offer(&t)).await.expect("on its own replica");
    assert_eq!(connect(&b, offer(&t)).await.err(), Some(401));

    // A ticket of a named token revoked on B after it was issued on A: refused on A.
    let (status, created) =
        admin(&b, reqwest::Method::POST, "/api/tokens", Some(json!({ "name": "web", "scope": "chat" })))
            .await;
    assert_eq!(status, 201, "{created}");
    let web = created["token"].as_str().unwrap().to_owned();
    assert!(until_whoami(&a, &web, 200, Duration::from_secs(5)).await.is_some());
    let t = ticket(&a, &web, origin).await;
    let (status, _) = admin(&b, reqwest::Method::DELETE, "/api/tokens/web", None).await;
    assert_eq!(status, 200);
    assert!(until_whoami(&a, &web, 401, Duration::from_secs(5)).await.is_some());
    assert_eq!(connect(&a, offer(&t)).await.err(), Some(401), "the ticket died with its token");

    // A pairing code issued on A by a shared admin credential is redeemed on B, once.
    let (status, created) =
        admin(&a, reqwest::Method::POST, "/api/tokens", Some(json!({ "name": "ops", "scope": "admin" })))
            .await;
    assert_eq!(status, 201, "{created}");
    let ops = created["token"].as_str().unwrap().to_owned();
    let pair = |gw: &Gateway, token: String, name: &str| {
        let (url, name) = (format!("{}/api/pair", gw.http()), name.to_owned());
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "name": name, "public_url": "https://chat.example" }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 201);
            let body: Value = resp.json().await.unwrap();
            body["link"].as_str().unwrap().split("#code=").nth(1).unwrap().to_owned()
        }
    };
    let redeem = |gw: &Gateway, code: String| {
        let url = format!("{}/api/pair/redeem", gw.http());
        async move {
            let resp = reqwest::Client::new().post(url).json(&json!({ "code": code })).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert!(until_whoami(&a, &ops, 200, Duration::from_secs(5)).await.is_some());
    let code = pair(&a, ops.clone(), "tablet").await;
    let (status, device) = redeem(&b, code.clone()).await;
    assert_eq!(status, 201, "{device}");
    let tablet = device["token"].as_str().unwrap().to_owned();
    assert!(
        until_whoami(&a, &tablet, 200, Duration::from_secs(5)).await.is_some(),
        "the device's token is shared"
    );
    assert_eq!(redeem(&a, code.clone()).await.0, 404, "used once, on any replica");
    assert_eq!(redeem(&b, code).await.0, 404);
    // A code of A's own runtime token stays on A: B does not know it (and does not burn it).
    let code = pair(&a, a.runtime_token(), "watch").await;
    assert_eq!(redeem(&b, code.clone()).await.0, 404);
    assert_eq!(redeem(&a, code).await.0, 201, "still good on the replica that issued it");

    // The table holds digests only, and nothing is left outstanding.
    let client = pg.client("postgres").await;
    let rows = client.query("SELECT kind, digest, payload FROM picoclaw_one_time", &[]).await.unwrap();
    assert!(rows.is_empty(), "every ticket and code taken: {} left", rows.len());
}
