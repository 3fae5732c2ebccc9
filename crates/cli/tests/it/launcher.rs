//! Black-box tests of `picoclaw launcher`: the real binary on a temp home, real HTTP and
//! WebSocket clients. Covers seed 001's "Web Launcher Dashboard Token" section statement by
//! statement (resolution order, persistence, source reporting, /login /setup /logout,
//! `?token=`, sessions ending on restart, rate limiting, Referrer-Policy) and DESIGN §7.

use std::time::Duration;

use serde_json::{Value, json};

use crate::launcher_support::{
    self, Body, alive, eventually, get, home, login, mode, post_json, send, session, start, start_args,
};
use crate::support;
use crate::support::ws::{self, Next};

const ENV_TOKEN: &str = "env-launcher-token-canary-7f3a9c1e";

fn launcher_config(home: &support::TestHome) -> Value {
    serde_json::from_str(&std::fs::read_to_string(home.file("launcher-config.json")).unwrap()).unwrap()
}

fn launcher_log(home: &support::TestHome) -> String {
    std::fs::read_to_string(home.file("logs/launcher.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn token_resolution_persistence_source_reporting_and_restart() {
    let home = home();
    // 1. Nothing configured: a random 256-bit token, persisted 0600, reported as `random`.
    let mut first = start(&home, &[]);
    let token = first.token();
    assert_eq!(token.len(), 64, "256 bits as hex");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(first.stdout().contains("(source: random)"), "{}", first.stdout());
    // A one-time login link, never the long-lived token in a URL.
    assert!(first.login_link().starts_with(&format!("{}login#code=", first.url)), "{}", first.stdout());
    assert!(!first.stdout().contains("?token="), "{}", first.stdout());
    assert_eq!(launcher_config(&home)["launcher_token"], token.as_str());
    assert_eq!(mode(&home.file("launcher-config.json")), 0o600);
    let old_cookie = session(&first, &token).await;
    assert_eq!(get(&first.at("/api/gateway/status"), Some(&old_cookie)).await.status, 200);
    first.stop();
    let log = launcher_log(&home);
    assert!(log.contains("launcher token source: random"), "{log}");
    assert!(!log.contains(&token), "the log never holds the token");
    assert_eq!(mode(&home.file("logs/launcher.log")), 0o600);

    // 2. Restart: the persisted token is reused and still reported as `random` (issue 19
    //    item 4: the console, the log, /api/session and the tokens panel agree, so "set your
    //    own token" stays offered); sessions from the previous process are gone (new
    //    per-process HMAC key).
    let fingerprint = launcher_config(&home)["launcher_token_generated"].as_str().map(str::to_owned);
    assert_eq!(fingerprint.as_deref().map(str::len), Some(8), "the marker is a fingerprint, not the token");
    let mut second = start(&home, &[]);
    assert_eq!(second.token(), token, "persisted across restarts");
    assert!(second.stdout().contains("(source: random)"), "{}", second.stdout());
    let stale = get(&second.at("/api/gateway/status"), Some(&old_cookie)).await;
    assert_eq!(stale.status, 401, "a restart ends every session");
    assert_eq!(get(&second.at("/"), Some(&old_cookie)).await.status, 303);
    let cookie = session(&second, &token).await;
    let info = get(&second.at("/api/session"), Some(&cookie)).await.json();
    assert_eq!(info["token_source"], "random", "{info}");
    assert_eq!(info["setup_allowed"], true, "{info}");
    let tokens = get(&second.at("/api/tokens"), Some(&cookie)).await.json();
    let row =
        tokens["credentials"].as_array().unwrap().iter().find(|c| c["name"] == "launcher token").cloned();
    assert_eq!(row.unwrap()["source"], "random (generated:launcher-config.json)");
    second.stop();
    let log = launcher_log(&home);
    assert_eq!(log.matches("launcher token source: random").count(), 2, "{log}");
    assert!(!log.contains("launcher token source: config"), "{log}");

    // 2b. Once the user sets their own token, it is `config` from then on, and the marker
    //     is gone from launcher-config.json.
    let mut own = start(&home, &[]);
    let cookie = session(&own, &token).await;
    let mine = "my-own-dashboard-token-after-restart";
    let a = post_json(&own, "/setup", Some(&cookie), json!({ "token": mine, "confirm": mine })).await;
    assert_eq!(a.status, 200, "{}", a.body);
    own.stop();
    assert_eq!(launcher_config(&home).get("launcher_token_generated"), None);
    let mut again = start(&home, &[]);
    assert!(again.stdout().contains("(source: config)"), "{}", again.stdout());
    again.stop();
    assert!(launcher_log(&home).contains("launcher token source: config"));
    let token = mine.to_owned();

    // 3. PICOCLAW_LAUNCHER_TOKEN wins, is not echoed anywhere and not persisted.
    let env_home_cmd = home.env("PICOCLAW_LAUNCHER_TOKEN", ENV_TOKEN);
    let mut third = start(&env_home_cmd, &[]);
    assert_eq!(third.token, None);
    let out = third.stdout();
    assert!(out.contains("token from env PICOCLAW_LAUNCHER_TOKEN"), "{out}");
    assert!(!out.contains(ENV_TOKEN) && !third.stderr().contains(ENV_TOKEN));
    assert_eq!(login(&third, &token).await.status, 401, "the file token is shadowed by env");
    assert_eq!(login(&third, ENV_TOKEN).await.status, 200);
    third.stop();
    let log = launcher_log(&env_home_cmd);
    assert!(log.contains("launcher token source: env"), "{log}");
    assert!(!log.contains(ENV_TOKEN), "an env token is never logged");
    assert_eq!(launcher_config(&env_home_cmd)["launcher_token"], token.as_str(), "env is not persisted");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_logout_cookie_and_security_headers() {
    let home = home();
    let l = start(&home, &[]);
    let token = l.token();

    // Unauthenticated: /api/* → 401 JSON, pages → 303 to the login page.
    let a = get(&l.at("/api/gateway/status"), None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"]["code"], "not_logged_in");
    let a = get(&l.at("/"), None).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/login"));
    let page = get(&l.at("/login"), None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<form id=\"login-form\""));
    assert!(!page.body.contains("<script>"), "no inline script");

    // Wrong token → 401, no cookie.
    let a = login(&l, "not-the-token").await;
    assert_eq!(a.status, 401);
    assert!(a.cookie().is_none());
    assert!(!a.body.contains("not-the-token"));

    // JSON login → 200 + cookie with the seed's attributes.
    let a = login(&l, &token).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let set = a.set_cookie();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(set.contains(attr), "{attr} missing from {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP from an untrusted peer: no Secure");
    assert!(!set.contains(&token), "the cookie is not the token");
    let cookie = a.cookie().unwrap();
    assert_eq!(get(&l.at("/api/gateway/status"), Some(&cookie)).await.status, 200);
    let dash = get(&l.at("/"), Some(&cookie)).await;
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("id=\"view-gateway\""));

    // Form login → 303 to the dashboard + cookie.
    let origin = format!("http://{}", l.authority());
    let form = format!("token={token}");
    let a = send("POST", &l.at("/login"), None, &[("origin", &origin)], Some(Body::Form(&form))).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/"));
    let form_cookie = a.cookie().expect("cookie from form login");

    // X-Forwarded-Proto from an untrusted peer does not make the cookie Secure.
    let a = send(
        "POST",
        &l.at("/login"),
        None,
        &[("x-forwarded-proto", "https")],
        Some(Body::Json(json!({ "token": token }))),
    )
    .await;
    assert!(!a.set_cookie().contains("Secure"));

    // Logout revokes server-side: a copy of the cookie stops working.
    let a = post_json(&l, "/logout", Some(&cookie), json!({})).await;
    assert_eq!(a.status, 200);
    assert!(a.set_cookie().contains("Max-Age=0"));
    assert_eq!(get(&l.at("/api/gateway/status"), Some(&cookie)).await.status, 401, "revoked");
    assert_eq!(get(&l.at("/api/gateway/status"), Some(&form_cookie)).await.status, 200, "others unaffected");

    // A forged or tampered cookie is refused.
    let forged = format!("picoclaw_launcher_session={}.{}", "ab".repeat(32), "cd".repeat(32));
    assert_eq!(get(&l.at("/api/session"), Some(&forged)).await.status, 401);

    // Cross-origin state changes are refused even with a valid cookie.
    let a = send(
        "POST",
        &l.at("/api/gateway/restart"),
        Some(&form_cookie),
        &[("origin", "http://evil.example")],
        None,
    )
    .await;
    assert_eq!(a.status, 403);

    // Every response carries the security headers: pages, redirects, errors, assets.
    for (path, cookie) in [
        ("/login", None),
        ("/", None),
        ("/api/tokens", None),
        ("/assets/app.js", None),
        ("/nope", Some(form_cookie.as_str())),
        ("/?token=wrong", None),
    ] {
        let a = get(&l.at(path), cookie).await;
        assert_eq!(a.header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(a.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(a.header("x-content-type-options"), "nosniff", "{path}");
        let csp = a.header("content-security-policy");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
    }
    let login_post = login(&l, "still-wrong").await;
    assert_eq!(login_post.header("referrer-policy"), "no-referrer");
}

#[tokio::test(flavor = "multi_thread")]
async fn query_token_login_redirects_without_the_token() {
    let home = home();
    let l = start(&home, &[]);
    let token = l.token();
    let a = get(&l.at(&format!("/?lang=en&token={token}&tab=chat")), None).await;
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), "/?lang=en&tab=chat", "same URL, other parameters kept");
    let cookie = a.cookie().expect("session cookie");
    assert_eq!(get(&l.at("/api/session"), Some(&cookie)).await.json()["token_source"], "random");

    let a = get(&l.at(&format!("/index.html?token={token}")), None).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/index.html"));

    let a = get(&l.at("/?token=wrong-token-value"), None).await;
    assert_eq!(a.status, 303);
    let location = a.header("location");
    assert!(location.starts_with("/login"), "{location}");
    assert!(!location.contains("wrong-token-value"), "the token is never echoed");
    assert!(a.cookie().is_none());
    // ?token= is not an API credential.
    assert_eq!(get(&l.at(&format!("/api/session?token={token}")), None).await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_replaces_the_token_and_ends_other_sessions() {
    let home = home();
    let l = start(&home, &[]);
    let token = l.token();
    let a_cookie = session(&l, &token).await;
    let b_cookie = session(&l, &token).await;
    let new = "my-own-dashboard-token-2026";

    assert_eq!(post_json(&l, "/setup", None, json!({ "token": new, "confirm": new })).await.status, 401);
    let a = post_json(&l, "/setup", Some(&a_cookie), json!({ "token": "short", "confirm": "short" })).await;
    assert_eq!(a.status, 400);
    assert!(a.json()["error"]["message"].as_str().unwrap().contains("at least 16"), "{}", a.body);
    let a = post_json(
        &l,
        "/setup",
        Some(&a_cookie),
        json!({ "token": new, "confirm": "something-else-entirely" }),
    )
    .await;
    assert_eq!(a.status, 400);
    let a = post_json(&l, "/setup", Some(&a_cookie), json!({ "token": new, "confirm": new })).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(!a.body.contains(new));
    // Cookies are signed over the token too: the caller gets a fresh one for its session.
    assert_eq!(get(&l.at("/api/session"), Some(&a_cookie)).await.status, 401, "old signature is void");
    let a_cookie = a.cookie().expect("a cookie under the new token");

    assert_eq!(get(&l.at("/api/session"), Some(&a_cookie)).await.status, 200, "the caller stays logged in");
    assert_eq!(get(&l.at("/api/session"), Some(&b_cookie)).await.status, 401, "every other session ends");
    assert_eq!(login(&l, &token).await.status, 401, "the old token no longer works");
    assert_eq!(login(&l, new).await.status, 200);
    assert_eq!(launcher_config(&home)["launcher_token"], new, "persisted");
    assert_eq!(mode(&home.file("launcher-config.json")), 0o600);
    assert_eq!(get(&l.at("/api/session"), Some(&a_cookie)).await.json()["token_source"], "config");
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_is_refused_when_the_token_comes_from_env() {
    let home = home().env("PICOCLAW_LAUNCHER_TOKEN", ENV_TOKEN);
    let l = start(&home, &[]);
    let cookie = session(&l, ENV_TOKEN).await;
    let new = "another-token-that-is-long";
    let a = post_json(&l, "/setup", Some(&cookie), json!({ "token": new, "confirm": new })).await;
    assert_eq!(a.status, 409);
    assert!(a.json()["error"]["message"].as_str().unwrap().contains("PICOCLAW_LAUNCHER_TOKEN"), "{}", a.body);
    assert_eq!(login(&l, ENV_TOKEN).await.status, 200, "unchanged");
    assert_eq!(get(&l.at("/api/session"), Some(&cookie)).await.json()["setup_allowed"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_rate_limited_successes_are_not() {
    let home = home();
    let l = start(&home, &[]);
    let token = l.token();
    for _ in 0..15 {
        assert_eq!(login(&l, &token).await.status, 200, "successes are not counted");
    }
    for i in 0..10 {
        assert_eq!(login(&l, &format!("wrong-{i}")).await.status, 401);
    }
    let a = login(&l, "wrong-again").await;
    assert_eq!(a.status, 429);
    let retry: u64 = a.header("retry-after").parse().expect("Retry-After seconds");
    assert!((1..=300).contains(&retry), "{retry}");
    assert_eq!(a.json()["error"]["code"], "rate_limited");
    // The launcher's random 256-bit token cannot be guessed: wrong logins (from another
    // local user, a cross-site page) cannot lock the owner out with it.
    assert_eq!(login(&l, &token).await.status, 200, "an unguessable token gets in while locked out");
    assert_eq!(login(&l, "wrong-while-locked").await.status, 429);
    drop(l);
    // A guessable one stays refused while the address is locked out.
    let weak = "short-launcher-1";
    let home = home.env("PICOCLAW_LAUNCHER_TOKEN", weak);
    let l = start(&home, &[]);
    for i in 0..10 {
        assert_eq!(login(&l, &format!("wrong-{i}")).await.status, 401);
    }
    assert_eq!(login(&l, weak).await.status, 429, "a guessable token is locked out, even when right");
    let a = get(&l.at(&format!("/?token={weak}")), None).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/login?error=rate_limited"));
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_control_child_environment_and_logs() {
    let home = home();
    let mut l = start(&home, &[]);
    let record = l.gateway_record();
    let pid = record["pid"].as_u64().unwrap();
    let cookie = session(&l, &l.token()).await;

    let status = get(&l.at("/api/gateway/status"), Some(&cookie)).await.json();
    assert_eq!(status["state"], "running");
    assert_eq!(status["owned"], true, "started by the launcher");
    assert_eq!(status["pid"].as_u64(), Some(pid));

    // The child got only PICOCLAW_HOME and PICOCLAW_CONFIG, and no secret in argv.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).split('=').next().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["PICOCLAW_CONFIG", "PICOCLAW_HOME"]);
    let cmdline =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ");
    assert!(cmdline.trim_end().ends_with(" gateway"), "{cmdline}");
    assert!(!cmdline.contains(&l.token()) && !cmdline.contains(launcher_support::PICO));

    // Logs: the child's output, bounded, without secrets.
    let logs = get(&l.at("/api/gateway/logs"), Some(&cookie)).await;
    assert_eq!(logs.status, 200);
    let lines = logs.json()["lines"].as_array().cloned().unwrap_or_default();
    assert!(lines.iter().any(|l| l.as_str().unwrap_or("").contains("gateway listening")), "{lines:?}");
    let runtime = record["token"].as_str().unwrap();
    for body in [
        &logs.body,
        &get(&l.at("/api/gateway/status"), Some(&cookie)).await.body,
        &get(&l.at("/api/tokens"), Some(&cookie)).await.body,
    ] {
        assert!(
            !body.contains(runtime) && !body.contains(launcher_support::PICO) && !body.contains(&l.token())
        );
    }

    // Named-token management is forwarded to the gateway's admin API with the runtime token.
    let a = post_json(&l, "/api/tokens", Some(&cookie), json!({ "name": "phone", "scope": "chat" })).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let created = a.json();
    assert!(created["token"].as_str().is_some_and(|t| t.starts_with("pcl_")), "shown once: {created}");
    let tokens = get(&l.at("/api/tokens"), Some(&cookie)).await;
    assert!(!tokens.body.contains(created["token"].as_str().unwrap()), "never listed again");
    let tokens = tokens.json();
    assert_eq!(tokens["management"], true);
    assert_eq!(tokens["named"]["tokens"][0]["name"], "phone");
    let origin = format!("http://{}", l.authority());
    let revoked = launcher_support::send(
        "DELETE",
        &l.at("/api/tokens/phone"),
        Some(&cookie),
        &[("origin", &origin)],
        None,
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let launcher_row =
        tokens["credentials"].as_array().unwrap().iter().find(|c| c["name"] == "launcher token").cloned();
    assert!(launcher_row.is_some_and(|r| r["fingerprint"].as_str().map(str::len) == Some(8)));

    // Stop, start, restart.
    let a = post_json(&l, "/api/gateway/stop", Some(&cookie), json!({})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["gateway"]["state"], "stopped");
    assert!(eventually(Duration::from_secs(5), || !alive(pid)));
    assert!(!home.file(".picoclaw.pid").exists());
    let a = post_json(&l, "/api/gateway/start", Some(&cookie), json!({})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["gateway"]["state"], "running");
    let pid2 = a.json()["gateway"]["pid"].as_u64().unwrap();
    assert_ne!(pid2, pid);
    let a = post_json(&l, "/api/gateway/restart", Some(&cookie), json!({})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let pid3 = a.json()["gateway"]["pid"].as_u64().unwrap();
    assert_ne!(pid3, pid2);
    assert!(!alive(pid2));

    // An owned gateway stops with the launcher.
    assert!(l.stop().success());
    assert!(eventually(Duration::from_secs(5), || !alive(pid3)), "owned gateway stopped at exit");
    assert!(!home.file(".picoclaw.pid").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_a_running_gateway_and_leaves_it_running() {
    let home = home();
    let gw = home.spawn_gateway(&[]);
    let pid = u64::from(gw.child.id());
    let mut l = start(&home, &[]);
    let cookie = session(&l, &l.token()).await;
    let status = get(&l.at("/api/gateway/status"), Some(&cookie)).await.json();
    assert_eq!((status["state"].as_str(), status["owned"].as_bool()), (Some("running"), Some(false)));
    assert_eq!(status["pid"].as_u64(), Some(pid));
    let logs = get(&l.at("/api/gateway/logs"), Some(&cookie)).await.json();
    assert_eq!(logs["source"], "logs/gateway.log", "an adopted gateway's own log file");
    assert!(logs["lines"].as_array().is_some_and(|l| !l.is_empty()), "{logs}");
    assert!(l.stop().success());
    assert!(alive(pid), "an adopted gateway is left running");
    let health = get(&format!("{}/health", gw.http()), None).await;
    assert_eq!(health.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_proxy_auth_origin_and_gateway_down() {
    let home = home();
    let l = start(&home, &[]);
    let record = l.gateway_record();
    let cookie = session(&l, &l.token()).await;
    let url = format!("ws://{}/pico/ws?session_id=proxy-test", l.authority());
    let origin = format!("http://{}", l.authority());

    // Not logged in → 401; bad or missing Origin → 403.
    let (code, _) = ws::rejected(&url, &[("origin", &origin)]).await;
    assert_eq!(code, 401);
    let (code, _) = ws::rejected(&url, &[("cookie", &cookie), ("origin", "http://evil.example")]).await;
    assert_eq!(code, 403);
    let (code, _) = ws::rejected(&url, &[("cookie", &cookie)]).await;
    assert_eq!(code, 403, "a missing Origin is not same-origin");
    // The runtime or pico token is not a dashboard credential.
    let bearer = format!("Bearer {}", record["token"].as_str().unwrap());
    let (code, _) = ws::rejected(&url, &[("authorization", &bearer), ("origin", &origin)]).await;
    assert_eq!(code, 401);

    // Logged in, same origin: chat works through the proxy, and no token reaches the browser.
    let (mut socket, resp) =
        ws::connect(&url, &[("cookie", &cookie), ("origin", &origin)]).await.expect("upgrade");
    let handshake = format!("{:?}", resp.headers());
    assert!(
        !handshake.contains(record["token"].as_str().unwrap()) && !handshake.contains(launcher_support::PICO)
    );
    ws::send(
        &mut socket,
        json!({"type":"message.send","id":"r1","payload":{"content":"hello through the proxy"}}),
    )
    .await;
    let frames = ws::until(&mut socket, "typing.stop").await;
    let create = frames.iter().find(|f| f["type"] == "message.create").expect("message.create");
    assert_eq!(create["payload"]["content"], "hello through the proxy");
    assert_eq!(create["session_id"], "proxy-test");
    for f in &frames {
        assert!(!f.to_string().contains(record["token"].as_str().unwrap()));
    }

    // Logout closes the proxied socket.
    assert_eq!(post_json(&l, "/logout", Some(&cookie), json!({})).await.status, 200);
    match ws::next(&mut socket, Duration::from_secs(10)).await {
        Next::Closed(Some((code, _))) => assert_eq!(code, 1008),
        Next::Closed(None) | Next::Ended => {}
        other => panic!("expected the socket to close after logout, got {other:?}"),
    }

    // Gateway down → 503.
    let cookie = session(&l, &l.token()).await;
    let a = post_json(&l, "/api/gateway/stop", Some(&cookie), json!({})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let (code, body) = ws::rejected(&url, &[("cookie", &cookie), ("origin", &origin)]).await;
    assert_eq!(code, 503, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_cookie_only_behind_a_trusted_proxy() {
    let home = home();
    support::write_private(
        &home.file("launcher-config.json"),
        &json!({ "port": 18800, "trusted_proxies": ["127.0.0.1/32"] }).to_string(),
    );
    let l = start(&home, &[]);
    let token = l.token();
    let a = send(
        "POST",
        &l.at("/login"),
        None,
        &[("x-forwarded-proto", "https"), ("x-forwarded-for", "203.0.113.7")],
        Some(Body::Json(json!({ "token": token }))),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.set_cookie().contains("; Secure"), "{}", a.set_cookie());
    let plain = login(&l, &token).await;
    assert!(!plain.set_cookie().contains("Secure"));
}

#[tokio::test(flavor = "multi_thread")]
async fn first_run_onboards_and_prints_a_login_url() {
    // A new user's home: nothing but a gateway already running from it (so this test
    // needs no fixed port); the launcher creates config.json and a pico token, adopts the
    // gateway and prints a working login URL.
    let home = support::TestHome::new();
    let gw = home.spawn_gateway(&[]);
    assert!(!home.file("config.json").exists());
    let l = start(&home, &[]);
    assert!(l.stdout().contains("running `picoclaw onboard` first"), "{}", l.stdout());
    assert!(home.file("config.json").exists() && home.file(".security.yml").exists());
    // The printed link logs in; `?token=` (still accepted) does too.
    let code = l.login_link().rsplit_once("#code=").map(|(_, c)| c.to_owned()).unwrap();
    let a = post_json(&l, "/login/code", None, json!({ "code": code })).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let login_url = format!("{}?token={}", l.url, l.token());
    let a = get(&login_url, None).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/"));
    let cookie = a.cookie().unwrap();
    let dash = get(&l.at("/"), Some(&cookie)).await;
    assert_eq!(dash.status, 200);
    let status = get(&l.at("/api/gateway/status"), Some(&cookie)).await.json();
    assert_eq!(status["state"], "running");
    assert_eq!(status["pid"].as_u64(), Some(u64::from(gw.child.id())));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_set_by_editing_launcher_config_json_is_used() {
    // Seed 001, "Setting a Fixed Token": launcher-config.json {port, launcher_token}. Also the
    // upstream single-dash spelling `-console`, and a flag beating the file's port.
    let home = home();
    let fixed = "your-fixed-launcher-token-for-tests";
    support::write_private(
        &home.file("launcher-config.json"),
        &json!({ "port": 18800, "launcher_token": fixed }).to_string(),
    );
    let l = start_args(&home, &["launcher", "-console", "-no-browser", "-port", "0"]);
    assert_eq!(l.token.as_deref(), Some(fixed));
    assert!(l.stdout().contains("(source: config)"), "{}", l.stdout());
    assert!(!l.url.ends_with(":18800/"), "--port beats launcher-config.json");
    assert_eq!(login(&l, fixed).await.status, 200);
    assert_eq!(launcher_config(&home)["port"], 18800, "the file is left as written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generated_token_replaced_by_hand_is_config() {
    // The marker names the generated token's fingerprint: a token edited into the file by
    // hand no longer matches it and is the user's own (`config`).
    let home = home();
    let mut first = start(&home, &[]);
    first.stop();
    let mut file = launcher_config(&home);
    assert!(file["launcher_token_generated"].is_string(), "{file}");
    file["launcher_token"] = json!("hand-edited-launcher-token-2026");
    support::write_private(&home.file("launcher-config.json"), &file.to_string());
    let l = start(&home, &[]);
    assert_eq!(l.token.as_deref(), Some("hand-edited-launcher-token-2026"));
    assert!(l.stdout().contains("(source: config)"), "{}", l.stdout());
    let cookie = session(&l, "hand-edited-launcher-token-2026").await;
    assert_eq!(get(&l.at("/api/session"), Some(&cookie)).await.json()["token_source"], "config");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tokens_panel_counts_named_tokens_like_auth_explain() {
    // Issue 19 item 2: one resolver, one answer. A named token made with the CLI shows in
    // the dashboard's panel exactly as `auth explain --json` reports it.
    let home = home();
    let made = home.run(&["token", "create", "--name", "phone", "--scope", "chat"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let l = start(&home, &[]);
    l.gateway_record();
    let explained = home.run(&["auth", "explain", "--json"]);
    let explained: Value = serde_json::from_slice(&explained.stdout).expect("auth explain --json");
    let row = |v: &Value| {
        v["credentials"].as_array().unwrap().iter().find(|c| c["name"] == "named tokens").cloned().unwrap()
    };
    let cli = row(&explained);
    assert_eq!(cli["set"], true, "{cli}");
    assert_eq!(cli["source"], "0 admin, 1 chat, 0 read", "{cli}");
    let cookie = session(&l, &l.token()).await;
    let panel = get(&l.at("/api/tokens"), Some(&cookie)).await.json();
    let dash = row(&panel);
    assert_eq!(dash["set"], cli["set"], "{dash}");
    assert_eq!(dash["source"], cli["source"], "{dash}");
    assert_eq!(dash["accepted_on"], cli["accepted_on"], "{dash}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_console_the_token_is_never_printed_or_logged() {
    let home = home();
    let canary = "CANARY-launcher-file-token-5d1e";
    support::write_private(
        &home.file("launcher-config.json"),
        &json!({ "launcher_token": canary }).to_string(),
    );
    let mut l = start_args(&home, &["launcher", "--no-browser", "--port", "0"]);
    assert_eq!(l.token, None);
    assert!(l.stdout().contains("token source: config"), "{}", l.stdout());
    let cookie = session(&l, canary).await;
    for path in
        ["/", "/api/session", "/api/tokens", "/api/gateway/status", "/api/gateway/logs", "/assets/app.js"]
    {
        assert!(!get(&l.at(path), Some(&cookie)).await.body.contains(canary), "{path} leaks the token");
    }
    assert!(l.stop().success());
    for text in [l.stdout(), l.stderr(), launcher_log(&home)] {
        assert!(!text.contains(canary), "token printed or logged:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_history_lists_only_the_dashboards_sessions() {
    // Issue 19 item 10: the chat list comes from the gateway's history API through the
    // launcher (runtime token); it shows the dashboard's sessions only, titled by their
    // first message, newest first, and pages a session's messages.
    let home = home();
    let l = start(&home, &[]);
    let record = l.gateway_record();
    let cookie = session(&l, &l.token()).await;
    let origin = format!("http://{}", l.authority());
    assert_eq!(get(&l.at("/api/chat/sessions"), None).await.status, 401, "needs a dashboard session");

    async fn chat(url: &str, headers: &[(&str, &str)], text: &str) {
        let (mut socket, _) = ws::connect(url, headers).await.expect("upgrade");
        ws::send(&mut socket, json!({ "type": "message.send", "id": "r1", "payload": { "content": text } }))
            .await;
        ws::until(&mut socket, "typing.stop").await;
    }
    let proxied = |id: &str| format!("ws://{}/pico/ws?session_id={id}&protocol=2", l.authority());
    let headers = [("cookie", cookie.as_str()), ("origin", origin.as_str())];
    chat(&proxied("dashboard-0a1b"), &headers, "  first   question\nwith two lines  ").await;
    chat(&proxied("dashboard-0a1b"), &headers, "a follow-up").await;
    let long = "x".repeat(200);
    chat(&proxied("dashboard-ffff"), &headers, &long).await;
    // Sessions that are not the dashboard's: another id through the proxy, and one of the
    // pico token straight at the gateway.
    chat(&proxied("cli-notes"), &headers, "not a dashboard chat").await;
    let direct = format!(
        "ws://{}:{}/pico/ws?session_id=dashboard-beef",
        record["host"].as_str().unwrap(),
        record["port"]
    );
    let bearer = format!("Bearer {}", launcher_support::PICO);
    chat(&direct, &[("authorization", &bearer)], "someone else's").await;

    let list = get(&l.at("/api/chat/sessions"), Some(&cookie)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let sessions = list.json()["sessions"].as_array().cloned().unwrap();
    let ids: Vec<&str> = sessions.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(
        ids,
        ["dashboard-ffff", "dashboard-0a1b"],
        "newest first, the dashboard's only: {}",
        list.body
    );
    assert_eq!(sessions[1]["title"], "first question with two lines");
    assert_eq!(sessions[1]["messages"], 4);
    let title = sessions[0]["title"].as_str().unwrap();
    assert_eq!(title.chars().count(), 60);
    assert!(title.ends_with('…'), "{title}");

    // One session's messages, paged like the gateway's.
    let page = get(&l.at("/api/chat/sessions/dashboard-0a1b/messages?limit=3"), Some(&cookie)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    let roles: Vec<&str> =
        page["messages"].as_array().unwrap().iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    let next = page["next_after_seq"].as_u64().expect("a next page");
    let rest =
        get(&l.at(&format!("/api/chat/sessions/dashboard-0a1b/messages?after_seq={next}")), Some(&cookie))
            .await
            .json();
    assert_eq!(rest["messages"][0]["content"], "a follow-up");
    assert_eq!(rest["next_after_seq"], Value::Null);

    // Ids the dashboard does not make are 404 without asking the gateway; bad numbers 400.
    for bad in ["cli-notes", "pico_client-x", "dashboard-BEEF", "..", "dashboard-%2e%2e", "%2e%2e%2freload"] {
        let a = get(&l.at(&format!("/api/chat/sessions/{bad}/messages")), Some(&cookie)).await;
        assert_eq!(a.status, 404, "{bad}: {}", a.body);
    }
    for bad in ["limit=0", "limit=1001", "after_seq=-1", "token=x", "limit=1&limit=2"] {
        let a = get(&l.at(&format!("/api/chat/sessions/dashboard-0a1b/messages?{bad}")), Some(&cookie)).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
        assert_eq!(a.json()["error"]["code"], "bad_query", "{bad}");
    }

    // Delete one: gone from the list.
    let deleted = send(
        "DELETE",
        &l.at("/api/chat/sessions/dashboard-ffff"),
        Some(&cookie),
        &[("origin", &origin)],
        None,
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let ids = get(&l.at("/api/chat/sessions"), Some(&cookie)).await.json()["sessions"].to_string();
    assert!(!ids.contains("dashboard-ffff") && ids.contains("dashboard-0a1b"), "{ids}");

    // Gateway down: a clear 503.
    assert_eq!(post_json(&l, "/api/gateway/stop", Some(&cookie), json!({})).await.status, 200);
    let a = get(&l.at("/api/chat/sessions"), Some(&cookie)).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("not running"), "{}", a.body);
}
