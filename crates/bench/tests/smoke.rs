//! Smoke tests of the bench binary: it builds, its CLI answers, its baseline server really
//! serves `/ready` and echoes WebSocket text over loopback, and a missing picoclaw binary
//! is a clear error. The long workloads are not run here (see BENCHMARKS.md).

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
    for mode in ["size", "rss", "startup", "idle", "handshake", "echo", "latency", "storm", "--quick"] {
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

#[tokio::test]
async fn baseline_server_serves_ready_and_echoes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port_file = dir.path().join("port");
    let mut child = Command::new(BENCH)
        .arg("baseline-server")
        .arg("--port-file")
        .arg(&port_file)
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

    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "baseline server exited with {status} on SIGTERM");
            break;
        }
        assert!(Instant::now() < deadline, "baseline server ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
