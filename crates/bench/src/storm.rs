//! The failed-login storm: the launcher's RSS after many wrong-token `POST /login`s from
//! many loopback source addresses (127.1.0.0/16, each socket bound to its own source), to
//! show that the brute-force limiter's memory stays bounded.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::sync::Semaphore;

use crate::Row;
use crate::servers::{Launch, rss_of};

/// Distinct client addresses.
const ADDRESSES: usize = 1000;

/// The source address of client `i`: 127.1.x.y, never 127.0.0.1.
fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// Whether this picoclaw has the `launcher` command.
fn has_launcher(launch: &Launch) -> bool {
    Command::new(&launch.picoclaw)
        .args(["launcher", "--help"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

/// Runs the storm, or reports why it cannot.
pub async fn run(launch: &Launch, logins: usize) -> Result<Row> {
    let figure =
        format!("launcher RSS after {logins} failed logins from {ADDRESSES} addresses (127.0.0.0/8)");
    if !has_launcher(launch) {
        eprintln!("storm: `picoclaw launcher` not available in {}; not measured", launch.picoclaw.display());
        return Ok(Row {
            figure,
            gateway: "not measured yet (launcher not landed)".into(),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "≤ 16 MiB".into(),
            verdict: "-",
        });
    }
    let home = tempfile::Builder::new().prefix("picoclaw-bench-").tempdir_in(&launch.home_dir)?;
    let port = free_port()?;
    let mut cmd = Command::new(&launch.picoclaw);
    cmd.args(["launcher", "--port", &port.to_string()]).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", home.path())
        .env("PICOCLAW_HOME", home.path())
        .env("PICOCLAW_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().context("cannot start the launcher")?;
    let pid = child.id();
    let result = storm(port, pid, logins).await;
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (before, after, counts) = result?;
    let mib = |b: u64| format!("{:.2} MiB", b as f64 / 1048576.0);
    eprintln!("storm: launcher RSS {} → {}; answers {counts}", mib(before), mib(after));
    Ok(Row {
        figure,
        gateway: format!("{} (idle {}; {counts})", mib(after), mib(before)),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "≤ 16 MiB".into(),
        verdict: crate::verdict(after <= 16 * 1024 * 1024),
    })
}

async fn storm(port: u16, pid: u32, logins: usize) -> Result<(u64, u64, String)> {
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    loop {
        if started.elapsed() > Duration::from_secs(15) {
            bail!("the launcher did not answer on 127.0.0.1:{port} within 15 s");
        }
        if crate::http::get(port, "/", Duration::from_secs(1)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_of(pid)?;
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let gate = Arc::new(Semaphore::new(50));
    let mut tasks = Vec::with_capacity(logins);
    for n in 0..logins {
        let (gate, counts) = (gate.clone(), counts.clone());
        let from = SocketAddr::from((source(n % ADDRESSES), 0));
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let body = format!(r#"{{"token":"wrong-token-{n}"}}"#);
            let attempt = async {
                let stream = crate::http::connect_from(from, target).await?;
                crate::http::request(stream, "POST", "/login", Some(&body)).await
            };
            let slot = match tokio::time::timeout(Duration::from_secs(10), attempt).await {
                Ok(Ok((401, _))) => 0,
                Ok(Ok((429, _))) => 1,
                Ok(Ok((200..=299, _))) => 2,
                _ => 3,
            };
            counts[slot].fetch_add(1, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_of(pid)?;
    let c: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    if c[2] > 0 {
        bail!("{} wrong-token logins succeeded", c[2]);
    }
    Ok((before, after, format!("{} × 401, {} × 429, {} failed", c[0], c[1], c[3])))
}
