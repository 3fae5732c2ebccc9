//! `launcher.base_path`: the dashboard served under a prefix (`/picoclaw`), as a reverse
//! proxy forwards it. Every page, asset, API call, redirect, cookie `Path` and the chat
//! socket live under the prefix; nothing answers outside it. Talks to the real binary
//! directly (the proxies themselves are in `proxy.rs`).

use serde_json::json;

use crate::launcher_support::{Body, get, home, login, post_json, send, session, start};
use crate::support::{self, TestHome, ws};

/// A test home whose launcher is under `/picoclaw`.
pub fn home_under(base: &str, extra: serde_json::Value) -> TestHome {
    let home = home();
    let mut file = json!({ "port": 18800, "base_path": base });
    if let (Some(file), Some(extra)) = (file.as_object_mut(), extra.as_object()) {
        file.extend(extra.clone());
    }
    support::write_private(&home.file("launcher-config.json"), &file.to_string());
    home
}

#[tokio::test(flavor = "multi_thread")]
async fn launcher_serves_everything_under_its_base_path() {
    let home = home_under("/picoclaw", json!({}));
    let l = start(&home, &[]);
    assert!(l.url.ends_with("/picoclaw/"), "the printed dashboard URL is under the prefix: {}", l.url);
    let link = l.login_link();
    assert!(link.starts_with(&format!("{}login#code=", l.url)), "the login link too:\n{}", l.stdout());
    let code = link.rsplit_once("#code=").unwrap().1;
    let a = post_json(&l, "/login/code", None, json!({ "code": code })).await;
    assert_eq!(a.status, 200, "the link logs in under the prefix: {}", a.body);
    assert!(a.set_cookie().contains("Path=/picoclaw/"), "{}", a.set_cookie());
    let root = format!("http://{}", l.authority());

    // Outside the prefix: nothing (the old root routes included).
    for path in ["/", "/login", "/assets/app.js", "/api/session", "/picoclawx/", "/pico/ws"] {
        let a = get(&format!("{root}{path}"), None).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
    }
    // The bare prefix goes to the directory (the page's relative URLs need the slash); a
    // token on it is never copied into the Location.
    let a = get(&format!("{root}/picoclaw"), None).await;
    assert_eq!((a.status, a.header("location").as_str()), (307, "/picoclaw/"));
    let a = get(&format!("{root}/picoclaw?token=abc&lang=en"), None).await;
    assert_eq!((a.status, a.header("location").as_str()), (307, "/picoclaw/"));
    let a = get(&format!("{root}/picoclaw?lang=en"), None).await;
    assert_eq!(a.header("location"), "/picoclaw/?lang=en");

    // Pages and assets under the prefix; not logged in → the prefixed login page.
    let a = get(&l.at("/"), None).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/picoclaw/login"));
    let page = get(&l.at("/login"), None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("href=\"assets/app.css\"") && page.body.contains("action=\"login\""));
    assert!(!page.body.contains("\"/assets/"), "no root-absolute URL in the page: {}", page.body);
    for asset in ["app.js", "markdown.js", "login.js", "app.css", "icon.svg"] {
        assert_eq!(get(&l.at(&format!("/assets/{asset}")), None).await.status, 200, "{asset}");
    }
    let a = get(&l.at("/api/session"), None).await;
    assert_eq!(a.status, 401, "{}", a.body);

    // JSON login: the cookie is scoped to the prefix.
    let a = login(&l, &l.token()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.set_cookie().contains("; Path=/picoclaw/;"), "{}", a.set_cookie());
    let cookie = a.cookie().expect("cookie");
    let a = get(&l.at("/api/session"), Some(&cookie)).await;
    assert_eq!((a.status, a.json()["authenticated"].as_bool()), (200, Some(true)), "{}", a.body);
    let a = get(&l.at("/"), Some(&cookie)).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("src=\"assets/app.js\""), "{}", a.body);
    let a = get(&l.at("/login"), Some(&cookie)).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/picoclaw/"));

    // `?token=` login: the redirect stays under the prefix and drops the token.
    let a = get(&l.at(&format!("/?token={}&lang=en", l.token())), None).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/picoclaw/?lang=en"), "{}", a.body);
    assert!(a.set_cookie().contains("; Path=/picoclaw/;"));
    let a = get(&l.at("/?token=wrong-token-value"), None).await;
    assert_eq!(a.header("location"), "/picoclaw/login?error=invalid");

    // The chat socket under the prefix, proxied to the gateway.
    l.gateway_record();
    let url = format!("ws://{}/picoclaw/pico/ws?session_id=base-path", l.authority());
    let (mut socket, _) =
        ws::connect(&url, &[("cookie", &cookie), ("origin", &root)]).await.expect("upgrade");
    ws::send(&mut socket, json!({"type":"message.send","id":"b1","payload":{"content":"under a prefix"}}))
        .await;
    let frames = ws::until(&mut socket, "typing.stop").await;
    assert!(
        frames.iter().any(|f| f["type"] == "message.create" && f["payload"]["content"] == "under a prefix")
    );

    // Form logout: back to the prefixed login page, the cookie cleared on the same path.
    let a = send("POST", &l.at("/logout"), Some(&cookie), &[("origin", &root)], Some(Body::Form(""))).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/picoclaw/login"));
    assert!(a.set_cookie().contains("Max-Age=0; Path=/picoclaw/;"), "{}", a.set_cookie());
    let a = post_json(&l, "/setup", Some(&cookie), json!({})).await;
    assert_eq!(a.status, 401, "the session is gone: {}", a.body);
    let _ = session(&l, &l.token()).await;
}

#[test]
fn a_bad_base_path_is_refused_naming_the_key() {
    for bad in ["picoclaw", "/picoclaw/", "/a/../b", "/a?b=1", "/a b"] {
        let home = home_under(bad, json!({}));
        let out = home.run(&["launcher", "--console", "--no-browser", "--port", "0"]);
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("base_path") && err.contains("/picoclaw"), "{bad:?}: {err}");
    }
    // From the environment too.
    let home = home().env("PICOCLAW_LAUNCHER_BASE_PATH", "no-slash");
    let out = home.run(&["launcher", "--console", "--no-browser", "--port", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PICOCLAW_LAUNCHER_BASE_PATH"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_also_answers_under_its_base_path() {
    let home = TestHome::new();
    home.write_config(&json!({
        "gateway": { "base_path": "/picoclaw/gateway" },
        "channels": { "pico": { "enabled": true } }
    }));
    home.write_security(&format!("channels:\n  pico:\n    token: \"{}\"\n", crate::launcher_support::PICO));
    let gw = home.spawn_gateway(&[]);
    let root = gw.http();
    // Under the prefix, as a tunnel that cannot rewrite paths forwards it: the socket (with
    // its query), the OpenAI-compatible API, health.
    let url = format!("ws://{}/picoclaw/gateway/pico/ws?session_id=prefixed", gw.addr());
    let mut socket = ws::bearer(&url, crate::launcher_support::PICO).await;
    ws::send(&mut socket, json!({"type":"message.send","id":"g1","payload":{"content":"prefixed socket"}}))
        .await;
    let frames = ws::until(&mut socket, "typing.stop").await;
    let echo = frames.iter().find(|f| f["type"] == "message.create").expect("echo");
    assert_eq!(
        (echo["payload"]["content"].as_str(), echo["session_id"].as_str()),
        (Some("prefixed socket"), Some("prefixed"))
    );
    assert_eq!(get(&format!("{root}/picoclaw/gateway/health"), None).await.status, 200);
    let models = send(
        "GET",
        &format!("{root}/picoclaw/gateway/v1/models"),
        None,
        &[("authorization", &format!("Bearer {}", crate::launcher_support::PICO))],
        None,
    )
    .await;
    assert_eq!(models.status, 200, "{}", models.body);
    // The root stays (local tools, the launcher and probes use it); nothing else is added.
    assert_eq!(get(&format!("{root}/health"), None).await.status, 200);
    for path in ["/picoclaw/gatewayx/health", "/picoclaw/health", "/picoclaw/gateway"] {
        assert_eq!(get(&format!("{root}{path}"), None).await.status, 404, "{path}");
    }
    // A bad value stops the gateway with the key's name.
    let bad = TestHome::new();
    bad.write_config(&json!({ "gateway": { "base_path": "/a/../b" } }));
    let out = bad.run(&["gateway", "--port", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gateway.base_path"), "{err}");
}
