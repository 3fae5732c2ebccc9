//! `picoclaw conformance` (issue 17 part 5), black-box: the real binary runs the
//! protocol's checks against the real gateway and against a scripted server that behaves
//! like upstream PicoClaw (`upstream_server`); the expected differences are exactly the
//! protocol-2 extensions. A server that deviates is caught (the checks can fail), and the
//! token never comes from argv nor reaches the output.

use std::io::Write;
use std::process::{Output, Stdio};

use serde_json::{Value, json};

use crate::support::TestHome;
use crate::upstream_server::{self, Quirk};

const PICO: &str = "pico-token-for-conformance-0123456789abcdef";

/// Runs `picoclaw conformance <args> --json` with `PICO_T` set; returns the output and the
/// parsed report.
fn conformance(home: &TestHome, args: &[&str]) -> (Output, Value) {
    let mut all = vec!["conformance"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = home.cmd(&all).env("PICO_T", PICO).stdin(Stdio::null()).output().expect("run");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {report}"))
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

fn failed(report: &Value) -> Vec<String> {
    outcomes(report).into_iter().filter(|(_, o)| o != "pass").map(|(id, _)| id).collect()
}

fn assert_no_token(out: &Output) {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains(PICO), "the token reached the output");
}

#[test]
fn our_gateway_passes_every_check_with_the_token_from_env_or_stdin() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);

    let (out, report) = conformance(&home, &["--url", &gw.ws(), "--token-env", "PICO_T", "--strict"]);
    assert!(out.status.success(), "{report:#}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(failed(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(report["summary"]["core"]["total"], 15, "{report:#}");
    assert_eq!(report["summary"]["extension"]["passed"], 2, "{report:#}");
    assert_eq!(report["token_from"], "env:PICO_T");
    assert_no_token(&out);

    // The same from stdin, human output.
    let mut child = home
        .cmd(&["conformance", "--url", &gw.http(), "--token-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(format!("{PICO}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("core (Pico v1): 15/15 passed; picoclaw protocol 2: 2/2 passed"), "{text}");
    assert!(text.lines().filter(|l| l.starts_with("PASS  ")).count() == 17, "{text}");
    assert_no_token(&out);

    // Without --url: the local gateway with its runtime token.
    let out = home.run(&["conformance"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("token: the local gateway (pid"), "{text}");
    drop(gw);
    let log =
        std::fs::read_to_string(home.file("logs/gateway.log")).unwrap_or_default() + &home.gateway_stderr();
    assert!(!log.contains(PICO), "token in the gateway's log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_shaped_server_passes_the_core_and_fails_only_protocol_2() {
    let url = upstream_server::start(PICO, Quirk::None).await;
    let home = TestHome::new();
    let (out, report) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let r = conformance(&home, &["--url", &url, "--token-env", "PICO_T"]);
            (r, home)
        }
    })
    .await
    .map(|(r, _)| r)
    .unwrap();
    assert!(out.status.success(), "core passes, so exit 0: {report:#}");
    assert_eq!(failed(&report), vec!["v2.turn".to_owned(), "v2.replay".to_owned()], "{report:#}");
    assert_eq!(report["summary"]["core"]["passed"], 15, "{report:#}");
    let turn = report["results"].as_array().unwrap().iter().find(|r| r["id"] == "v2.turn").unwrap();
    assert!(turn["detail"].as_str().unwrap().contains("seq"), "names what is missing: {turn}");
    assert_no_token(&out);

    // --strict counts the extensions.
    let home = TestHome::new();
    let (out, _) = tokio::task::spawn_blocking(move || {
        conformance(&home, &["--url", &url, "--token-env", "PICO_T", "--strict"])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_deviates_fails_the_check_that_names_the_deviation() {
    for (quirk, check, says) in [
        (Quirk::NoSubprotocolEcho, "auth.subprotocol", "no Sec-WebSocket-Protocol"),
        (Quirk::CloseOnInvalidJson, "error.invalid_message", "closed"),
    ] {
        let url = upstream_server::start(PICO, quirk).await;
        let home = TestHome::new();
        let (out, report) = tokio::task::spawn_blocking(move || {
            conformance(&home, &["--url", &url, "--token-env", "PICO_T"])
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{quirk:?}: {report:#}");
        assert_eq!(
            failed(&report),
            vec![check.to_owned(), "v2.turn".to_owned(), "v2.replay".to_owned()],
            "{quirk:?}"
        );
        let r = report["results"].as_array().unwrap().iter().find(|r| r["id"] == check).unwrap();
        assert!(r["detail"].as_str().unwrap().contains(says), "{quirk:?}: {r}");
    }
}

#[test]
fn the_token_is_never_taken_from_the_command_line_or_a_url() {
    let home = TestHome::new();
    let out = home.run(&["conformance", "--url", "ws://127.0.0.1:9/pico/ws", "--token", PICO]);
    assert_eq!(out.status.code(), Some(2), "no --token flag exists");
    let out = home
        .cmd(&["conformance", "--url", "ws://127.0.0.1:9/pico/ws?token=abc", "--token-env", "PICO_T"])
        .env("PICO_T", PICO)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("\"token\" query parameter") && err.contains("--token-env"), "{err}");
    let out = home.run(&["conformance", "--url", "ws://127.0.0.1:9/pico/ws", "--token-env", "UNSET_VAR"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("UNSET_VAR is not set"), "{err}");
}
