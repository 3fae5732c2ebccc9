//! Black-box tests of `picoclaw chat`: one-shot and interactive against a real gateway,
//! local (runtime token from .picoclaw.pid) and remote (`--url` + configured token).

use std::io::Write;
use std::process::Stdio;

use serde_json::json;

use crate::support::{self, TestHome};

const PICO: &str = "pico-token-for-chat-tests-0123456789";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn chat_hello_against_a_fresh_gateway_prints_hello() {
    let home = TestHome::onboarded();
    let _gw = home.spawn_gateway(&[]);
    let out = home.run(&["chat", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");
    // Several words are one message.
    let out = home.run(&["chat", "hello", "big", "world"]);
    assert_eq!(stdout(&out), "hello big world\n");
}

#[test]
fn local_chat_ignores_a_stale_environment_token() {
    // The local gateway is reached with the runtime token from .picoclaw.pid, whatever
    // the environment says.
    let home = TestHome::onboarded();
    let _gw = home.spawn_gateway(&[]);
    let out = home
        .cmd(&["chat", "still works"])
        .env("PICOCLAW_CHANNELS_PICO_TOKEN", "stale-token-from-an-old-shell")
        .env("PICOCLAW_GATEWAY_TOKEN", "another-stale-token-0000000000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "still works\n");
}

#[test]
fn interactive_chat_reads_lines_and_keeps_one_session() {
    let home = TestHome::onboarded();
    let _gw = home.spawn_gateway(&[]);
    let mut child = home
        .cmd(&["chat", "--session", "lines"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"one\n\n  two  \n/quit\nnever sent\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one\ntwo\n");
    let history = support::session_text(&home, "lines");
    assert_eq!(history.matches("user: ").count(), 2, "{history}");
    assert!(!history.contains("never sent"));
}

#[test]
fn chat_without_a_gateway_says_how_to_start_one() {
    let home = TestHome::onboarded();
    let out = home.run(&["chat", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no gateway is running") && err.contains("picoclaw gateway start"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn bad_session_ids_are_refused_before_connecting() {
    let home = TestHome::onboarded();
    let out = home.run(&["chat", "--session", "../etc/passwd", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("--session") && err.contains("expected"), "{err}");
}

#[test]
fn remote_chat_uses_the_configured_token() {
    let home = TestHome::new();
    home.write_config(&json!({ "channels": { "pico": { "enabled": true } } }));
    home.write_security(&format!("channels:\n  pico:\n    token: \"{PICO}\"\n"));
    let gw = home.spawn_gateway(&[]);

    let out = home.run(&["chat", "--url", &gw.http(), "over the wire"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "over the wire\n");
    let out = home.run(&["chat", "--url", &gw.ws(), "ws url too"]);
    assert_eq!(stdout(&out), "ws url too\n");

    // A wrong configured token: 401, a clear message, no token in the output.
    let wrong = "wrong-token-that-must-not-be-printed-42";
    let out = home
        .cmd(&["chat", "--url", &gw.http(), "hi"])
        .env("PICOCLAW_CHANNELS_PICO_TOKEN", wrong)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("401") && err.contains("auth explain"), "{err}");
    assert!(!err.contains(wrong) && !stdout(&out).contains(wrong));

    // Nothing listening: a connection error, exit 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = home.run(&["chat", "--url", &format!("http://127.0.0.1:{port}"), "hi"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("could not connect"), "{}", stderr(&out));
}
