//! One-time pairing, end to end against a live gateway (real process, real sockets):
//! `picoclaw pair` prints a link whose fragment carries a code; redeeming it over HTTP
//! gives a named token of exactly the asked scope, once; the code expires at its TTL, dies
//! with the credential that issued it, and never appears in a log, the audit file, the
//! gateway's stderr or any process's command line.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::ws;
use crate::support::{self, TestHome};

fn ok(home: &TestHome, args: &[&str]) -> (String, String) {
    let out = home.run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed: {err}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), err)
}

/// The code in a link's fragment (`…/pair#code=<code>`).
fn code_of(link: &str) -> String {
    let (_, code) = link.split_once("#code=").unwrap_or_else(|| panic!("no #code= in {link}"));
    assert_eq!(code.len(), 43, "{link}");
    assert!(!link.contains('?'), "the code is never in a query: {link}");
    code.to_owned()
}

async fn redeem(base: &str, code: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/pair/redeem"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .expect("http");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

async fn whoami(base: &str, token: &str) -> Value {
    let resp =
        reqwest::Client::new().get(format!("{base}/auth/whoami")).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Every process's command line, to show the code is in none of them.
fn all_cmdlines() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
            all.push_str(&String::from_utf8_lossy(&bytes));
            all.push('\n');
        }
    }
    all
}

/// Everything the gateway wrote: its logs, the audit file and its stderr.
async fn everything_logged(home: &TestHome) -> String {
    // The audit writer is a background thread: let it catch up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut all = home.gateway_stderr();
    for dir in ["logs"] {
        for entry in std::fs::read_dir(home.file(dir)).into_iter().flatten().flatten() {
            all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    all
}

#[tokio::test]
async fn a_pairing_link_works_once_and_gives_exactly_its_scope() {
    let home = TestHome::onboarded();
    let gw = home.spawn_gateway(&[]);
    let (out, err) = ok(&home, &["pair", "--scope", "chat", "--name", "phone", "--json"]);
    let answer: Value = serde_json::from_str(&out).expect(&out);
    let link = answer["link"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/pair#code=", gw.http())), "{link}");
    assert_eq!((answer["scope"].as_str(), answer["name"].as_str()), (Some("chat"), Some("phone")));
    assert_eq!(answer["ttl_s"], 600, "the default lifetime is 10 minutes");
    assert!(err.contains("loopback"), "a loopback link is explained: {err}");
    let code = code_of(link);
    assert!(!all_cmdlines().contains(&code), "the code is in no process's argv");

    let (status, headers, created) = redeem(&gw.http(), &code).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let token = created["token"].as_str().expect("the token, once").to_owned();
    let me = whoami(&gw.http(), &token).await;
    assert_eq!(
        (me["kind"].as_str(), me["name"].as_str(), me["scope"].as_str()),
        (Some("named"), Some("phone"), Some("chat")),
        "{me}"
    );
    // It chats.
    let mut socket = ws::bearer(&format!("{}?session_id=paired", gw.ws()), &token).await;
    ws::send(
        &mut socket,
        json!({ "type": "message.send", "id": "1", "payload": { "content": "paired hello" } }),
    )
    .await;
    let frames = ws::until(&mut socket, "typing.stop").await;
    assert!(frames.iter().any(|f| f["type"] == "message.create"), "{frames:?}");

    // Once only.
    let (status, _, again) = redeem(&gw.http(), &code).await;
    assert_eq!((status, again["error"]["code"].as_str()), (404, Some("pairing_code_unknown")), "{again}");

    // A read code gives read: history yes, the chat socket no.
    let (out, _) = ok(&home, &["pair", "--scope", "read", "--name", "tablet"]);
    let code = code_of(out.trim());
    let (status, _, created) = redeem(&gw.http(), &code).await;
    assert_eq!(status, 201, "{created}");
    let reader = created["token"].as_str().unwrap().to_owned();
    assert_eq!(whoami(&gw.http(), &reader).await["scope"], "read");
    let sessions = reqwest::Client::new()
        .get(format!("{}/api/sessions", gw.http()))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(sessions.status(), 200);
    let auth = format!("Bearer {reader}");
    let (status, body) = ws::rejected(&gw.ws(), &[("authorization", &auth)]).await;
    assert_eq!(status, 403, "{body}");

    // Never admin, and a taken name is refused before a code is spent.
    let out = home.run(&["pair", "--scope", "admin"]);
    assert_eq!(out.status.code(), Some(2), "admin is not a pairing scope");
    let out = home.run(&["pair", "--name", "phone"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("already exists"), "{err}");

    let (list, _) = ok(&home, &["token", "list"]);
    assert!(list.contains("phone") && list.contains("tablet"), "{list}");
    let logged = everything_logged(&home).await;
    assert!(!logged.contains(&code) && !logged.contains(&code_of(link)), "no code in any log");
    assert!(!logged.contains(&token[17..60]) && !logged.contains(&reader[17..60]), "no token in any log");
    let audit = std::fs::read_to_string(home.file("logs/audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"pair\"") && audit.contains("\"pairing_id\""), "{audit}");
    assert!(audit.contains("/api/pair/redeem"), "the redemption's create line: {audit}");
}

#[tokio::test]
async fn a_code_expires_at_its_ttl_and_dies_with_its_issuer() {
    let home = TestHome::onboarded();
    let gw = home.spawn_gateway(&[]);
    let (out, _) = ok(&home, &["pair", "--ttl", "1s", "--name", "late"]);
    let late = code_of(out.trim());
    // Well past its second: refused as expired, whatever the machine's load.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _, body) = redeem(&gw.http(), &late).await;
    assert_eq!((status, body["error"]["code"].as_str()), (410, Some("pairing_code_expired")), "{body}");

    // A code issued by a named admin token dies when that token is revoked.
    let (admin, _) = ok(&home, &["token", "create", "--name", "ops", "--scope", "admin"]);
    let admin = admin.trim().to_owned();
    let issued = reqwest::Client::new()
        .post(format!("{}/api/pair", gw.http()))
        .bearer_auth(&admin)
        .json(&json!({ "name": "orphan" }))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 201);
    let issued: Value = issued.json().await.unwrap();
    let orphan = code_of(issued["link"].as_str().unwrap());
    ok(&home, &["token", "revoke", "ops"]);
    let (status, _, body) = redeem(&gw.http(), &orphan).await;
    assert!(matches!(status, 403 | 404), "a code of a revoked issuer is refused: {status} {body}");
    let (list, _) = ok(&home, &["token", "list"]);
    assert!(!list.contains("orphan"), "{list}");

    // A chat credential cannot issue codes; bad input names what was wrong.
    let client = reqwest::Client::new();
    let pico = client
        .post(format!("{}/api/pair", gw.http()))
        .bearer_auth(gw.runtime_token())
        .json(&json!({ "name": "x", "ttl": "2h" }))
        .send()
        .await
        .unwrap();
    assert_eq!(pico.status(), 400);
    assert!(pico.text().await.unwrap().contains("between 1 s and 1 h"));
    let out = home.run(&["pair", "--ttl", "soon"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(400)") && err.contains("`ttl`"), "a bad --ttl names the field: {err}");
    // One outstanding code per name.
    ok(&home, &["pair", "--name", "twice"]);
    let out = home.run(&["pair", "--name", "twice"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(409)") && err.contains("already outstanding"), "{err}");
    let (status, _, body) = redeem(&gw.http(), "short").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_pairing_code")), "{body}");
    let out = home.run(&["pair", "--public-url", "https://user:pw@pc.example.com"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("public_url") && !err.contains("pw@"), "{err}");
}

#[tokio::test]
async fn the_link_carries_the_public_url_and_the_qr_code_draws_it() {
    let home = TestHome::onboarded().env("PICOCLAW_GATEWAY_TRUSTED_PROXIES", "127.0.0.1");
    let gw = home.spawn_gateway(&[]);
    let (out, err) = ok(&home, &["pair", "--public-url", "https://pc.example.com/gw/", "--qr"]);
    let mut lines = out.lines();
    let link = lines.next().unwrap();
    assert!(link.starts_with("https://pc.example.com/gw/pair#code="), "{link}");
    let qr: Vec<&str> = lines.collect();
    assert!(qr.len() > 15 && qr.iter().any(|l| l.contains('█')), "a QR code follows the link: {out}");
    assert!(!err.contains("loopback"), "{err}");

    // Behind a trusted proxy, the forwarded host is the link's.
    let issued: Value = reqwest::Client::new()
        .post(format!("{}/api/pair", gw.http()))
        .bearer_auth(gw.runtime_token())
        .header("x-forwarded-host", "chat.example.org")
        .header("x-forwarded-proto", "https")
        .json(&json!({ "name": "fwd" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(issued["public_url_source"], "forwarded", "{issued}");
    assert!(issued["link"].as_str().unwrap().starts_with("https://chat.example.org/pair#code="), "{issued}");
    // The /pair page is public, not cached and sends no Referer.
    let page = reqwest::get(format!("{}/pair", gw.http())).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("connect-src 'self'"));
    let _ = support::bin();
}
