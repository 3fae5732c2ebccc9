//! One-time login links (`<dashboard>/login#code=<code>`, issue 19 and 21): printed by
//! `launcher --console` instead of a `?token=` URL, opened by the tray. A link logs in
//! once; a used, stale (token changed) or pre-restart code is refused and counts as a
//! failed login; codes never reach the log. The browser side (the fragment dropped from
//! the address bar) is in `browser.rs`.

use serde_json::json;

use crate::launcher_support::{Body, Launcher, home, post_json, send, session, start};

fn code_of(link: &str) -> String {
    link.rsplit_once("#code=").map(|(_, c)| c.to_owned()).unwrap_or_else(|| panic!("no #code= in {link}"))
}

async fn redeem(l: &Launcher, code: &str) -> crate::launcher_support::Answer {
    post_json(l, "/login/code", None, json!({ "code": code })).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_link_logs_in_once_dies_with_the_token_and_the_process_and_is_never_logged() {
    let home = home();
    let mut codes = Vec::new();

    // 1. The console shows the token (seed 001) and a one-time link, not a ?token= URL.
    let mut first = start(&home, &[]);
    let link = first.login_link();
    assert!(link.starts_with(&format!("{}login#code=", first.url)), "{link}");
    let stale = code_of(&link);
    assert_eq!(stale.len(), 43, "256 bits as base64url: {stale}");
    assert!(first.stdout().contains(&format!("token:      {} (source: random)", first.token())));
    assert!(!first.stdout().contains("?token="), "{}", first.stdout());
    codes.push(stale.clone());
    // Changing the token voids the outstanding codes.
    let cookie = session(&first, &first.token()).await;
    let new = "a-new-launcher-token-for-login-link-tests";
    let a = post_json(&first, "/setup", Some(&cookie), json!({ "token": new, "confirm": new })).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = redeem(&first, &stale).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].as_str()),
        (401, Some("invalid_login_code")),
        "{}",
        a.body
    );
    assert!(a.json()["error"]["message"].as_str().unwrap_or_default().contains("new one"), "{}", a.body);
    first.stop();

    // 2. A link printed by one launcher process does not survive its restart.
    let mut second = start(&home, &[]);
    let before_restart = code_of(&second.login_link());
    codes.push(before_restart.clone());
    second.stop();
    let mut third = start(&home, &[]);
    assert_eq!(redeem(&third, &before_restart).await.status, 401, "a restart forgets every code");

    // 3. A fresh link logs in once: the answer sets the session cookie like a token login.
    let fresh = code_of(&third.login_link());
    codes.push(fresh.clone());
    let cross = send(
        "POST",
        &third.at("/login/code"),
        None,
        &[("origin", "http://evil.example")],
        Some(Body::Json(json!({ "code": fresh }))),
    )
    .await;
    assert_eq!((cross.status, cross.json()["error"]["code"].as_str()), (403, Some("bad_origin")));
    let a = redeem(&third, &fresh).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let set = a.set_cookie();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = a.cookie().expect("session cookie");
    let info = crate::launcher_support::get(&third.at("/api/session"), Some(&cookie)).await;
    assert_eq!(info.status, 200, "{}", info.body);
    let again = redeem(&third, &fresh).await;
    assert_eq!((again.status, again.json()["error"]["code"].as_str()), (401, Some("invalid_login_code")));

    // 4. Wrong codes are failed logins: they spend the same budget as wrong tokens (10 a
    //    minute per address), then even a wrong token is answered 429.
    let bad = post_json(&third, "/login/code", None, json!({ "code": "" })).await;
    assert_eq!(bad.status, 400, "an empty code is a bad request: {}", bad.body);
    let bad = send(
        "POST",
        &third.at("/login/code"),
        None,
        &[("origin", &format!("http://{}", third.authority()))],
        Some(Body::Form("code=x")),
    )
    .await;
    assert!(bad.body.contains("expected JSON"), "a form body is refused with what is expected: {}", bad.body);
    let mut limited = None;
    for i in 0..12 {
        let a = redeem(&third, &format!("{:A<43}", i)).await;
        if a.status == 429 {
            limited = Some(i);
            break;
        }
        assert_eq!(a.status, 401, "{}", a.body);
    }
    let limited = limited.expect("wrong codes reach the failed-login limit");
    assert!(limited <= 10, "at most 10 failures before the lockout (2 counted already): {limited}");
    let wrong_token = post_json(&third, "/login", None, json!({ "token": "not-the-token-at-all" })).await;
    assert_eq!(wrong_token.status, 429, "the same limiter as token logins: {}", wrong_token.body);
    third.stop();

    // 5. No code in the log or on stderr; the log says how each login happened.
    let log = std::fs::read_to_string(home.file("logs/launcher.log")).unwrap_or_default();
    let stderr = third.stderr();
    for code in &codes {
        assert!(!log.contains(code.as_str()), "a login code in launcher.log:\n{log}");
        assert!(!stderr.contains(code.as_str()), "a login code on stderr:\n{stderr}");
    }
    assert!(log.contains("dashboard login (one-time login code)"), "{log}");
    assert!(log.contains("unknown or already used login code"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_the_environment_is_not_shown_but_the_link_still_logs_in() {
    let secret = "launcher-token-from-the-environment-0123";
    let home = home().env("PICOCLAW_LAUNCHER_TOKEN", secret);
    let l = start(&home, &[]);
    let out = l.stdout();
    assert!(out.contains("token from env PICOCLAW_LAUNCHER_TOKEN (not shown)"), "{out}");
    assert!(!out.contains(secret), "{out}");
    let a = redeem(&l, &code_of(&l.login_link())).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.cookie().is_some());
}
