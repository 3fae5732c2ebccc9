//! Smoke tests of the bench binary: it builds, its CLI answers, its baseline servers really
//! serve `/ready` and answer WebSocket text over loopback (plain echo, and the three frames
//! of a Pico echo turn), the storage baseline measures, and a missing picoclaw binary is a
//! clear error. The long workloads are not run here (see BENCHMARKS.md).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const BENCH: &str = env!("CARGO_BIN_EXE_picoclaw-bench");

#[test]
fn help_lists_every_mode() {
    let out = Command::new(BENCH).arg("--help").output().expect("run picoclaw-bench --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for mode in ["size", "rss", "startup", "idle", "handshake", "echo", "disk", "latency", "storm", "--quick"]
    {
        assert!(text.contains(mode), "--help does not mention {mode}:\n{text}");
    }
}

#[test]
fn missing_picoclaw_binary_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-picoclaw");
    let out = Command::new(BENCH)
        .args(["size", "--picoclaw"])
        .arg(&missing)
        .output()
        .expect("run picoclaw-bench size");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no picoclaw binary at") && err.contains("no-such-picoclaw"), "{err}");
    assert!(err.contains("cargo build --release"), "{err}");
}

/// A baseline server child, stopped with SIGTERM (and checked to exit cleanly) by `stop`.
struct Baseline {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Baseline {
    async fn start(extra: &[&str]) -> Baseline {
        let dir = tempfile::tempdir().expect("tempdir");
        let port_file = dir.path().join("port");
        let child = Command::new(BENCH)
            .arg("baseline-server")
            .arg("--port-file")
            .arg(&port_file)
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("start baseline server");
        let started = Instant::now();
        let port: u16 = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(port) = text.trim().parse()
            {
                break port;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "baseline server wrote no port");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Baseline { child, port, _dir: dir }
    }

    async fn stop(mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "baseline server exited with {status} on SIGTERM");
                break;
            }
            assert!(Instant::now() < deadline, "baseline server ignored SIGTERM");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn baseline_server_serves_ready_and_echoes() {
    let server = Baseline::start(&[]).await;
    let port = server.port;
    let mut http = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    http.write_all(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = String::new();
    http.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .expect("websocket upgrade");
    ws.send(Message::text("{\"id\":\"7\"}")).await.expect("send");
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("echo in time");
    assert_eq!(echoed.expect("a frame").expect("no error"), Message::text("{\"id\":\"7\"}"));
    drop(ws);
    server.stop().await;
}

#[tokio::test]
async fn pico_shaped_baseline_answers_like_a_gateway_echo_turn() {
    let server = Baseline::start(&["--pico-frames"]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", server.port))
        .await
        .expect("websocket upgrade");
    for round in 1..=2u64 {
        let id = format!("r{round}");
        let request =
            format!(r#"{{"type":"message.send","id":"{id}","payload":{{"content":"hi {round}"}}}}"#);
        ws.send(Message::text(request)).await.expect("send");
        let mut kinds = Vec::new();
        for _ in 0..3 {
            let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("frame in time")
                .expect("a frame")
                .expect("no error");
            let v: serde_json::Value = serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
            assert_eq!(v["payload"]["reply_to"], id.as_str(), "{v}");
            if v["type"] == "message.create" {
                assert_eq!(v["payload"]["content"], format!("hi {round}"), "{v}");
            }
            kinds.push(v["type"].as_str().unwrap_or_default().to_owned());
        }
        assert_eq!(kinds, ["typing.start", "message.create", "typing.stop"]);
    }
    drop(ws);
    server.stop().await;
}

#[test]
fn storage_baseline_measures_the_home_filesystem() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `--picoclaw` must name a file; the disk mode never starts it.
    let out = Command::new(BENCH)
        .args(["disk", "--quick", "--picoclaw", BENCH, "--home-dir"])
        .arg(dir.path())
        .output()
        .expect("run picoclaw-bench disk");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rate = stderr
        .split("disk: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no rate in: {stderr}"));
    assert!(rate > 0.0, "{stderr}");
    assert!(stdout.contains("append + fdatasync"), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read home dir").collect();
    assert!(left.is_empty(), "the storage baseline left files behind: {left:?}");
}
