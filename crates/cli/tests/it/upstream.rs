//! Homes written by upstream PicoClaw (v0.2.7, v0.2.9, main after v0.2.9) are read as they
//! are: config schema version 3 (`channel_list.pico.settings`), the pico token in
//! `.security.yml` under `channel_list.pico.settings.token`, upstream's launcher keys.
//! The fixtures are in `fixtures/upstream-*` (see `fixtures/README.md`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{TestHome, write_private, ws};

/// The pico token of every fixture (in its `.security.yml` only).
const PICO: &str = "upstream-pico-token-5f0c9a1e7b3d4c2a8e6f1b0d9c7a5e3f";
const FIXTURES: &[&str] = &["upstream-v0.2.7", "upstream-v0.2.9", "upstream-v0.3"];
const FILES: &[&str] = &["config.json", ".security.yml", "launcher-config.json"];

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures").join(name)
}

/// A temporary home holding a copy of fixture `name` (files mode 0600, as upstream writes them).
fn home_from(name: &str) -> TestHome {
    let home = TestHome::new();
    for file in FILES {
        let text = std::fs::read_to_string(fixture_dir(name).join(file)).unwrap();
        write_private(&home.file(file), &text);
    }
    copy_auth_db(name, &home);
    home
}

/// Upstream's SQLite password store, when the fixture has one.
fn copy_auth_db(name: &str, home: &TestHome) {
    let db = fixture_dir(name).join("launcher-auth.db");
    if db.exists() {
        std::fs::copy(&db, home.file("launcher-auth.db")).unwrap();
    }
}

fn doctor(home: &TestHome, fix: bool) -> (Value, i32) {
    let mut args = vec!["doctor", "--json"];
    if fix {
        args.push("--fix");
    }
    let out = home.run(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains(PICO), "doctor printed the token: {text}");
    (serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")), out.status.code().unwrap_or(-1))
}

fn findings<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"].as_array().unwrap().iter().filter(|f| f["code"] == code).collect()
}

/// One chat round trip over `/pico/ws` with the fixture's token.
async fn chat(home: &TestHome) {
    let gw = home.spawn_gateway(&[]);
    let mut s = ws::bearer(&format!("{}?session_id=u1", gw.ws()), PICO).await;
    ws::send(&mut s, json!({"type": "message.send", "id": "r1", "payload": {"content": "hello upstream"}}))
        .await;
    let frames = ws::until(&mut s, "typing.stop").await;
    assert!(
        frames.iter().any(|f| f["type"] == "message.create" && f["payload"]["content"] == "hello upstream"),
        "{frames:?}"
    );
    assert!(!home.gateway_stderr().contains(PICO), "the token reached the log");
}

#[tokio::test]
async fn the_gateway_enables_pico_with_the_upstream_token() {
    for name in FIXTURES {
        let home = home_from(name);
        let shown = home.run(&["config", "show", "--origin"]);
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "{name}: {}", String::from_utf8_lossy(&shown.stderr));
        assert!(text.contains("config.json:channel_list.pico.enabled"), "{name}: {text}");
        assert!(text.contains(".security.yml:channel_list.pico.settings.token"), "{name}: {text}");
        assert!(!text.contains(PICO), "{name}: config show printed the token");
        chat(&home).await;
    }
}

#[test]
fn upstream_launcher_keys_are_the_launchers() {
    let home = home_from("upstream-v0.3");
    let out = home.run(&["config", "show", "--origin"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("launcher-config.json:trusted_proxy_cidrs"), "{text}");
    assert!(text.contains("launcher-config.json:allow_localhost_bypass"), "{text}");
    assert!(
        text.contains("[redacted Bcrypt hash]")
            && text.contains("launcher-config.json:dashboard_password_hash"),
        "{text}"
    );
    assert!(!text.contains("$2a$"), "config show printed the password hash: {text}");
    let out = home.run(&["auth", "explain"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.starts_with("dashboard password")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.contains(" set ") && row.contains("Bcrypt hash (launcher-config.json:dashboard_password_hash)"),
        "{row}"
    );
    assert!(!text.contains("$2a$"), "auth explain printed the password hash: {text}");
}

#[tokio::test]
async fn doctor_explains_and_fix_migrates_keeping_backups() {
    for name in FIXTURES {
        let home = home_from(name);
        let (report, code) = doctor(&home, false);
        let found = findings(&report, "upstream-config-shape");
        assert_eq!(found.len(), 2, "{name}: config.json and .security.yml: {report:#}");
        assert!(
            found.iter().all(|f| f["severity"] == "warning" && f["fixed"] == false),
            "{name}: {report:#}"
        );
        assert_ne!(code, 0, "{name}: a warning is a problem");

        let (report, _) = doctor(&home, true);
        let found = findings(&report, "upstream-config-shape");
        assert!(found.len() == 2 && found.iter().all(|f| f["fixed"] == true), "{name}: {report:#}");
        for file in ["config.json", ".security.yml"] {
            let original = std::fs::read_to_string(fixture_dir(name).join(file)).unwrap();
            let backup = std::fs::read_to_string(home.file(&format!("{file}.upstream.bak"))).unwrap();
            assert_eq!(backup, original, "{name}: the backup of {file} is the file as it was");
        }
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(home.file("config.json")).unwrap()).unwrap();
        assert!(config.get("version").is_none(), "{name}: {config:#}");
        assert!(config.pointer("/channel_list/pico").is_none(), "{name}: {config:#}");
        assert_eq!(config.pointer("/channels/pico/enabled"), Some(&json!(true)), "{name}: {config:#}");
        let security = std::fs::read_to_string(home.file(".security.yml")).unwrap();
        assert!(!security.contains("channel_list"), "{name}: {security}");

        let (report, _) = doctor(&home, false);
        assert!(findings(&report, "upstream-config-shape").is_empty(), "{name}: {report:#}");
        let shown = home.run(&["config", "show", "--origin"]);
        assert!(String::from_utf8_lossy(&shown.stdout).contains(".security.yml:channels.pico.token"));
        // Clients keep the token they had.
        chat(&home).await;
    }
}

#[test]
fn doctor_fix_never_rewrites_a_file_it_cannot_parse() {
    let home = home_from("upstream-v0.2.7");
    write_private(&home.file(".security.yml"), "channel_list: [\n");
    let before = std::fs::read_to_string(home.file("config.json")).unwrap();
    let out = home.run(&["doctor", "--fix"]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(home.file("config.json")).unwrap(), before);
    assert!(!home.file("config.json.upstream.bak").exists());
}

#[tokio::test]
async fn allow_localhost_bypass_false_makes_loopback_pass_allowed_cidrs() {
    use crate::launcher_support as ls;
    for (bypass, refused) in [(Some(false), true), (Some(true), false), (None, false)] {
        let home = ls::home();
        let mut launcher = json!({"allowed_cidrs": ["10.0.0.0/8"]});
        if let Some(b) = bypass {
            launcher["allow_localhost_bypass"] = json!(b);
        }
        write_private(&home.file("launcher-config.json"), &launcher.to_string());
        let mut l = ls::start(&home, &[]);
        let answer = ls::get(&l.at("/login"), None).await;
        assert_eq!(answer.status == 403, refused, "allow_localhost_bypass {bypass:?}: {answer:?}");
        l.stop();
    }
}

/// The dashboard password whose bcrypt hash the fixtures' launcher-config.json holds.
const PASSWORD: &str = "upstream dashboard pass";

#[tokio::test]
async fn the_dashboard_accepts_the_upstream_password_and_stores_a_new_one_as_argon2id() {
    use crate::launcher_support as ls;
    for name in FIXTURES {
        let home = ls::home();
        let upstream = std::fs::read_to_string(fixture_dir(name).join("launcher-config.json")).unwrap();
        write_private(&home.file("launcher-config.json"), &upstream);
        copy_auth_db(name, &home);
        let mut l = ls::start(&home, &[]);

        let wrong = ls::post_json(&l, "/login", None, json!({"password": "not it at all"})).await;
        assert_eq!(
            (wrong.status, wrong.json()["error"]["code"].clone()),
            (401, json!("invalid_password")),
            "{name}: {wrong:?}"
        );
        let ok = ls::post_json(&l, "/login", None, json!({"password": PASSWORD})).await;
        assert_eq!(ok.status, 200, "{name}: {ok:?}");
        let cookie = ok.cookie().expect("session cookie");
        assert_eq!(ls::get(&l.at("/api/session"), Some(&cookie)).await.status, 200, "{name}");
        // The token login stays, side by side.
        let token = l.token();
        assert_eq!(ls::login(&l, &token).await.status, 200, "{name}");

        // A new password set from our dashboard is stored as argon2id, never as given.
        let set = ls::post_json(
            &l,
            "/setup",
            Some(&cookie),
            json!({"password": "a brand new pass", "confirm": "a brand new pass"}),
        )
        .await;
        assert_eq!(set.status, 200, "{name}: {set:?}");
        let stored: Value =
            serde_json::from_str(&std::fs::read_to_string(home.file("launcher-config.json")).unwrap())
                .unwrap();
        let hash = stored["dashboard_password_hash"].as_str().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{name}: {hash}");
        assert!(
            !std::fs::read_to_string(home.file("launcher-config.json")).unwrap().contains("a brand new pass")
        );
        assert_eq!(ls::mode(&home.file("launcher-config.json")), 0o600);
        assert_eq!(
            stored["trusted_proxy_cidrs"],
            serde_json::from_str::<Value>(&upstream).unwrap()["trusted_proxy_cidrs"],
            "{name}: other keys kept"
        );
        let old = ls::post_json(&l, "/login", None, json!({"password": PASSWORD})).await;
        assert_eq!(old.status, 401, "{name}");
        l.stop();
        // After a restart the new hash is read back.
        let mut l = ls::start(&home, &[]);
        let new = ls::post_json(&l, "/login", None, json!({"password": "a brand new pass"})).await;
        assert_eq!(new.status, 200, "{name}: {new:?}");
        assert!(!l.stderr().contains("a brand new pass") && !l.stderr().contains(PASSWORD));
        l.stop();
    }
}

#[tokio::test]
async fn password_login_without_a_password_says_so() {
    use crate::launcher_support as ls;
    let home = ls::home();
    let mut l = ls::start(&home, &[]);
    let answer = ls::post_json(&l, "/login", None, json!({"password": PASSWORD})).await;
    assert_eq!(
        (answer.status, answer.json()["error"]["code"].clone()),
        (409, json!("password_not_set")),
        "{answer:?}"
    );
    l.stop();
}

#[tokio::test]
async fn upstream_secret_references_file_is_followed_enc_is_refused() {
    let home = home_from("upstream-v0.2.7");
    write_private(&home.file("pico.key"), &format!("{PICO}\n"));
    write_private(
        &home.file(".security.yml"),
        "channel_list:\n  pico:\n    settings:\n      token: file://pico.key\n",
    );
    chat(&home).await;

    write_private(
        &home.file(".security.yml"),
        "channel_list:\n  pico:\n    settings:\n      token: enc://c2FsdG5vbmNlY2lwaGVy\n",
    );
    let out = home.run(&["gateway", "--port", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(".security.yml:channel_list.pico.settings.token") && stderr.contains("enc://"),
        "{stderr}"
    );
    assert!(!stderr.contains("c2FsdG5vbmNlY2lwaGVy"), "{stderr}");
}

/// An upstream v0.3 home whose user picked a model: `agents.defaults.model_name` and a
/// provider-prefixed `model` (`openai/…`), its key in `.security.yml`'s `model_list`.
/// Before, the gateway ignored `model_name` (the echo agent answered) and would have sent
/// `openai/…` as the model id; now the model answers and gets the id without the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_model_choice_is_the_model_that_answers() {
    use crate::fake_provider::{FakeProvider, Reply};
    let fake = FakeProvider::start(Reply::stream(&["from ", "the model"]));
    let home = home_from("upstream-v0.3");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(home.file("config.json")).unwrap()).unwrap();
    config["agents"]["defaults"]["model_name"] = json!("gpt-5.4");
    config["model_list"] = json!([
        { "model_name": "gpt-5.4", "model": "openai/gpt-5.4", "api_base": fake.base },
        { "model_name": "claude", "model": "anthropic/claude-sonnet-4.6" },
        { "model_name": "local", "model": "ollama/llama3.2" }
    ]);
    write_private(&home.file("config.json"), &serde_json::to_string_pretty(&config).unwrap());
    let key = "sk-upstream-model-key-0123456789";
    let security = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    write_private(
        &home.file(".security.yml"),
        &format!("{security}model_list:\n  gpt-5.4:\n    api_keys: [\"{key}\"]\n"),
    );

    let shown = home.run(&["config", "show", "--origin"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("config.json:agents.defaults.model_name"), "{text}");

    let gw = home.spawn_gateway(&[]);
    let mut s = ws::bearer(&format!("{}?session_id=m1", gw.ws()), PICO).await;
    ws::send(&mut s, json!({"type": "message.send", "id": "r1", "payload": {"content": "hi"}})).await;
    let frames = ws::until(&mut s, "typing.stop").await;
    let last = frames.iter().rev().find(|f| f["type"] == "message.update" || f["type"] == "message.create");
    assert_eq!(last.map(|f| f["payload"]["content"].clone()), Some(json!("from the model")), "{frames:?}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["model"], "gpt-5.4", "the provider prefix is not sent");
    assert_eq!(requests[0].authorization.as_deref(), Some(format!("Bearer {key}").as_str()));
    drop(gw);

    // A model whose provider picoclaw cannot speak is refused with a message naming it.
    config["agents"]["defaults"]["model_name"] = json!("claude");
    write_private(&home.file("config.json"), &serde_json::to_string_pretty(&config).unwrap());
    let out = home.run(&["config", "show"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("\"claude\"") && err.contains("\"anthropic\"") && err.contains("OpenAI-compatible"),
        "{err}"
    );
}
