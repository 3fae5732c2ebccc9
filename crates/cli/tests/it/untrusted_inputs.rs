//! Inputs that local tools must not trust (security review findings 8, 9 and 10), tested
//! black-box: the real `picoclaw` binary on a temporary `PICOCLAW_HOME`, real sockets.
//!
//! - 8: `.picoclaw.pid` is only a claim. Before a tool signals the pid it names or sends a
//!   credential to the listener it names, the pid must hold the gateway lock and own the
//!   listening socket. A rewritten record must not get an unrelated process killed or a
//!   token sent to a listener someone else owns. A home other users can write (or that
//!   another user owns) is a doctor error.
//! - 9: a password in `channels.pico_client.url` is a credential: it is never displayed or
//!   logged, and it is sent only as HTTP Basic auth to the remote server.
//! - 10: a pico token equal to the gateway token is a doctor error.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Gateway, TestHome, write_private};

const GATEWAY: &str = "gw-token-untrusted-inputs-7c1d9e2f4a6b8c0d1e3f5a7b9c";
const PICO: &str = "pico-token-untrusted-inputs-3e5f7a9b1c2d4e6f8a0b2c4d6e";

/// Runs a command to completion within `within` (stdin closed); kills it and fails the
/// test when it takes longer.
fn run_bounded(mut cmd: Command, within: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command did not finish within {within:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// stdout and stderr of `picoclaw <args>` from `home`, and whether it succeeded.
fn picoclaw(home: &TestHome, args: &[&str]) -> (bool, String) {
    let out = run_bounded(home.cmd(args), Duration::from_secs(60));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A child process killed on drop.
struct Reaped(Child);

impl Reaped {
    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Rewrites `.picoclaw.pid` with `change` applied to the gateway's real record.
fn tamper(home: &TestHome, gw: &Gateway, change: impl FnOnce(&mut Value)) {
    let mut record = gw.record.clone();
    change(&mut record);
    write_private(&home.file(".picoclaw.pid"), &serde_json::to_string_pretty(&record).unwrap());
}

fn wait_ready(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = TcpStream::connect(gw.addr()).ok().and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            write!(s, "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            Some(out.starts_with("HTTP/1.1 200"))
        });
        if ok == Some(true) {
            return;
        }
        assert!(Instant::now() < deadline, "gateway never became ready");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A plain TCP listener that records every byte it receives and answers every request
/// like a gateway would (200, a JSON body), so a client that trusts it keeps talking.
struct Recorder {
    port: u16,
    bytes: Arc<Mutex<Vec<u8>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, c, s) = (bytes.clone(), connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut got = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                        }
                        b.lock().unwrap().extend_from_slice(&got);
                        let body =
                            r#"{"status":"ok","version":"0.1.0","kind":"gateway","fingerprint":"00000000"}"#;
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Recorder { port, bytes, connections, stop, thread: Some(thread) }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn findings<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["code"] == code).collect())
        .unwrap_or_default()
}

/// `picoclaw doctor --json [--fix]`: the report and the raw text.
fn doctor(home: &TestHome, fix: bool) -> (Value, String) {
    let mut args = vec!["doctor", "--json"];
    if fix {
        args.push("--fix");
    }
    let (_, text) = picoclaw(home, &args);
    let json_part = &text[..text.rfind('}').map_or(text.len(), |i| i + 1)];
    let report = serde_json::from_str(json_part).unwrap_or_else(|e| panic!("{e}: {text}"));
    (report, text)
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Finding 8 (a): the record names the pid of an unrelated process while the real gateway
/// holds the lock. `gateway status` must not call that "running", and `gateway stop` must
/// refuse, naming what did not match, without signalling anything.
#[test]
fn stop_refuses_a_record_that_names_another_process() {
    let home = TestHome::new();
    let mut gw = home.spawn_gateway(&[]);
    let mut bystander = Reaped(Command::new("sleep").arg("60").spawn().unwrap());
    let bystander_pid = bystander.0.id();
    tamper(&home, &gw, |r| r["pid"] = json!(bystander_pid));

    let (ok, text) = picoclaw(&home, &["gateway", "status"]);
    assert!(!ok, "status of an unverified record is not success: {text}");
    assert!(
        !text.contains("gateway:  running") && text.contains("starting"),
        "a record whose pid does not hold the lock reads as starting: {text}"
    );

    let (ok, text) = picoclaw(&home, &["gateway", "stop"]);
    assert!(
        bystander.alive(),
        "`gateway stop` signalled pid {bystander_pid}, which the record named: {text}"
    );
    assert!(!ok, "stop must refuse: {text}");
    assert!(
        text.contains(&bystander_pid.to_string()) && text.contains(&gw.child.id().to_string()),
        "the refusal names the recorded pid and the lock holder: {text}"
    );
    assert!(matches!(gw.child.try_wait(), Ok(None)), "the real gateway was not stopped either: {text}");
}

/// Finding 8 (b): the record keeps the real pid and token but names a port the test owns.
/// Nothing at all may reach that listener (no configured token, no runtime token), and
/// `doctor` reports the mismatch.
#[test]
fn no_credential_reaches_a_listener_the_gateway_does_not_own() {
    let home = TestHome::new();
    home.write_config(&json!({"gateway": {"host": "127.0.0.1"}, "channels": {"pico": {"enabled": true}}}));
    home.write_security(&format!(
        "gateway:\n  token: \"{GATEWAY}\"\nchannels:\n  pico:\n    token: \"{PICO}\"\n"
    ));
    let mut gw = home.spawn_gateway(&[]);
    wait_ready(&gw);
    let runtime = gw.runtime_token();
    let fake = Recorder::start();
    tamper(&home, &gw, |r| r["port"] = json!(fake.port));

    let (report, text) = doctor(&home, false);
    let status = picoclaw(&home, &["gateway", "status"]);
    let reload = picoclaw(&home, &["gateway", "reload"]);
    let chat = picoclaw(&home, &["chat", "--timeout", "3", "hello"]);
    let stop = picoclaw(&home, &["gateway", "stop"]);

    let got = fake.received();
    for (name, secret) in
        [("gateway token", GATEWAY), ("pico token", PICO), ("runtime token", runtime.as_str())]
    {
        assert!(!got.contains(secret), "the {name} was sent to a listener the gateway does not own:\n{got}");
    }
    assert_eq!(fake.connections.load(Ordering::Relaxed), 0, "nothing is sent to it at all:\n{got}");

    let unverified = findings(&report, "gateway-unverified");
    assert_eq!(unverified.len(), 1, "doctor reports the mismatch: {text}");
    assert_eq!(unverified[0]["severity"], "error");
    let message = unverified[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&fake.port.to_string()) && message.contains(&gw.child.id().to_string()),
        "the finding names the recorded port and pid: {message}"
    );
    for (what, (ok, out)) in [("status", &status), ("reload", &reload), ("chat", &chat), ("stop", &stop)] {
        assert!(!ok, "`{what}` against an unverified record fails: {out}");
        assert!(out.contains(&fake.port.to_string()), "`{what}` says what did not match: {out}");
    }
    assert!(matches!(gw.child.try_wait(), Ok(None)), "the gateway was not signalled");
}

/// Finding 8: a home other users can write is a doctor error; `--fix` makes it 0700.
#[test]
fn doctor_reports_a_home_other_users_can_write() {
    let home = TestHome::new();
    home.write_config(&json!({}));
    chmod(home.path(), 0o777);
    let (report, text) = doctor(&home, false);
    let found = findings(&report, "insecure-home-permissions");
    assert_eq!(found.len(), 1, "{text}");
    assert_eq!(found[0]["severity"], "error", "{text}");
    assert!(report["problems_remaining"].as_u64() > Some(0), "{text}");

    let (report, text) = doctor(&home, true);
    let found = findings(&report, "insecure-home-permissions");
    assert!(found.len() == 1 && found[0]["fixed"] == true, "{text}");
    assert_eq!(mode_of(home.path()), 0o700);
}

/// Finding 8: a home or record owned by another user is a doctor error (needs root to set
/// up; skipped otherwise).
#[test]
fn doctor_reports_a_home_and_record_owned_by_another_user() {
    let home = TestHome::new();
    home.write_config(&json!({}));
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(home.path()).unwrap().uid() != 0 {
        eprintln!("skipped: only root can give files to another user");
        return;
    }
    write_private(&home.file(".picoclaw.pid"), "{}");
    std::os::unix::fs::chown(home.path(), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(home.file(".picoclaw.pid"), Some(65534), Some(65534)).unwrap();
    let (report, text) = doctor(&home, false);
    let subjects: Vec<&str> =
        findings(&report, "foreign-owner").iter().filter_map(|f| f["subject"].as_str()).collect();
    assert!(subjects.iter().any(|s| s.ends_with(".picoclaw.pid")), "{text}");
    assert!(subjects.len() == 2, "home and record: {text}");
    assert!(findings(&report, "foreign-owner").iter().all(|f| f["severity"] == "error"), "{text}");
}

/// Finding 10: equal gateway and pico tokens give every pico-token holder admin.
#[test]
fn doctor_reports_a_pico_token_equal_to_the_gateway_token() {
    let home = TestHome::new();
    home.write_config(&json!({"channels": {"pico": {"enabled": true}}}));
    home.write_security(&format!(
        "gateway:\n  token: \"{GATEWAY}\"\nchannels:\n  pico:\n    token: \"{GATEWAY}\"\n"
    ));
    let (report, text) = doctor(&home, false);
    assert!(!text.contains(GATEWAY), "doctor printed the token: {text}");
    let found = findings(&report, "pico-token-equals-gateway-token");
    assert_eq!(found.len(), 1, "{text}");
    assert_eq!(found[0]["severity"], "error");

    // Distinct tokens: no finding.
    home.write_security(&format!(
        "gateway:\n  token: \"{GATEWAY}\"\nchannels:\n  pico:\n    token: \"{PICO}\"\n"
    ));
    let (report, text) = doctor(&home, false);
    assert!(findings(&report, "pico-token-equals-gateway-token").is_empty(), "{text}");
}

mod url_secret {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

    use super::*;

    const CANARY: &str = "urlPW-CANARY-9d41c7";
    const CLIENT_TOKEN: &str = "pico-client-token-untrusted-inputs-5a7b9c1d3e";

    fn base64(input: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// A remote Pico server that records the Authorization header of each upgrade and
    /// keeps the socket open.
    #[expect(clippy::result_large_err, reason = "the handshake callback's signature is fixed by tungstenite")]
    async fn remote(listener: tokio::net::TcpListener, auth: Arc<Mutex<Vec<Option<String>>>>) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let auth = auth.clone();
            tokio::spawn(async move {
                let ws = tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, resp: Response| {
                    auth.lock().unwrap().push(
                        req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
                    );
                    Ok(resp)
                })
                .await;
                if let Ok(mut ws) = ws {
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    }

    async fn status_json(gw: &Gateway, token: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/status", gw.http()))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn wait_connected(gw: &Gateway) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = status_json(gw, GATEWAY).await;
            if s["pico_client"]["state"] == "connected" {
                return s;
            }
            assert!(Instant::now() < deadline, "pico_client never connected: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn home_with(url: &str, client_token: Option<&str>) -> TestHome {
        let home = TestHome::new();
        home.write_config(&json!({
            "gateway": {"host": "127.0.0.1", "log_level": "trace"},
            "channels": {"pico_client": {"enabled": true, "url": url, "session_id": "remote-1"}}
        }));
        let mut security = format!("gateway:\n  token: \"{GATEWAY}\"\n");
        if let Some(t) = client_token {
            security.push_str(&format!("channels:\n  pico_client:\n    token: \"{t}\"\n"));
        }
        home.write_security(&security);
        home
    }

    /// Finding 9: the URL's password appears in no log, no CLI output, no `/status`, and
    /// reaches the remote server only as HTTP Basic auth.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_password_in_the_pico_client_url_is_never_shown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let auth = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(remote(listener, auth.clone()));
        let home = home_with(&format!("ws://alice:{CANARY}@127.0.0.1:{port}/pico/ws"), None);
        let gw = home.spawn_gateway(&[]);
        let status = wait_connected(&gw).await;
        let runtime_status = status_json(&gw, &gw.runtime_token()).await.to_string();

        let mut shown: Vec<(String, String)> = vec![
            ("GET /status".into(), status.to_string()),
            ("GET /status with the runtime token".into(), runtime_status),
        ];
        let home_path = home.path().to_owned();
        let outputs = tokio::task::spawn_blocking(move || {
            let commands: [&[&str]; 5] = [
                &["config", "show"],
                &["config", "show", "--json"],
                &["config", "show", "--origin"],
                &["gateway", "status"],
                &["doctor", "--json"],
            ];
            commands
                .into_iter()
                .map(|args| {
                    let mut cmd = Command::new(support::bin());
                    cmd.args(args).env_clear().env("HOME", &home_path).env("PICOCLAW_HOME", &home_path);
                    if let Some(path) = std::env::var_os("PATH") {
                        cmd.env("PATH", path);
                    }
                    let out = run_bounded(cmd, Duration::from_secs(60));
                    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                    text.push_str(&String::from_utf8_lossy(&out.stderr));
                    (format!("picoclaw {}", args.join(" ")), text)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let output = |name: &str| outputs.iter().find(|(a, _)| a == name).map(|(_, t)| t.clone()).unwrap();
        let doctor_text = output("picoclaw doctor --json");
        let config_text = output("picoclaw config show");
        let status_text = output("picoclaw gateway status");
        shown.extend(outputs);
        drop(gw);
        shown.push((
            "logs/gateway.log".into(),
            std::fs::read_to_string(home.file("logs/gateway.log")).unwrap_or_default(),
        ));
        shown.push(("the gateway's stderr".into(), home.gateway_stderr()));

        let basic = base64(format!("alice:{CANARY}").as_bytes());
        for (place, text) in &shown {
            assert!(!text.contains(CANARY), "the URL password appears in {place}:\n{text}");
            assert!(!text.contains(&basic), "the Basic credential appears in {place}:\n{text}");
        }
        let shown_url = format!("ws://alice:***@127.0.0.1:{port}/pico/ws");
        assert_eq!(status["pico_client"]["url"], shown_url.as_str(), "/status shows the redacted URL");
        assert!(config_text.contains(&shown_url), "config show shows the redacted URL: {config_text}");
        assert!(status_text.contains(&shown_url), "gateway status shows the redacted URL: {status_text}");
        assert!(doctor_text.contains("\"secret-in-url\""), "doctor reports secret-in-url: {doctor_text}");

        let headers = auth.lock().unwrap().clone();
        assert!(!headers.is_empty());
        for h in headers {
            assert_eq!(h.as_deref(), Some(format!("Basic {basic}").as_str()), "sent as HTTP Basic auth");
        }
    }

    /// Finding 9: with `channels.pico_client.token` set, the URL's userinfo is ignored with
    /// a warning that names the key and not the value; the token goes out as Bearer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pico_client_token_wins_over_url_userinfo() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let auth = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(remote(listener, auth.clone()));
        let home = home_with(&format!("ws://alice:{CANARY}@127.0.0.1:{port}/pico/ws"), Some(CLIENT_TOKEN));
        let gw = home.spawn_gateway(&[]);
        let status = wait_connected(&gw).await;
        drop(gw);
        let log = std::fs::read_to_string(home.file("logs/gateway.log")).unwrap_or_default();
        assert!(!log.contains(CANARY) && !status.to_string().contains(CANARY), "{log}\n{status}");
        assert!(
            log.lines().any(|l| l.contains("channels.pico_client.url") && l.contains("ignored")),
            "a warning names the key: {log}"
        );
        for h in auth.lock().unwrap().iter() {
            assert_eq!(h.as_deref(), Some(format!("Bearer {CLIENT_TOKEN}").as_str()));
        }
    }
}
