//! Issue 15's attack shapes against the real gateway: RSS with sockets that stop reading
//! while large answers stream, wrong tokens verified from 16,384 client addresses, and
//! `/health` latency under a flood of idle unauthenticated connections.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::SinkExt;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

use crate::load::Target;
use crate::servers::{Kind, Launch};
use crate::{Row, http, mib, verdict};

/// Every row of this module.
pub async fn rows(launch: &Launch, quick: bool) -> Result<Vec<Row>> {
    Ok(vec![
        silent_sockets(launch, quick).await?,
        address_spray(launch, quick).await?,
        preauth_flood(launch).await?,
    ])
}

/// N sockets (own sessions) that never read, each sending 900 KiB messages the echo
/// agent answers in kind: the gateway's peak RSS over idle.
async fn silent_sockets(launch: &Launch, quick: bool) -> Result<Row> {
    const SIZE: usize = 900 * 1024;
    let (sockets, messages) = if quick { (4, 10) } else { (8, 30) };
    let gw = launch
        .start_with(Kind::Gateway, &[("PICOCLAW_AGENTS_DEFAULTS_MESSAGES_PER_MINUTE", "100000")])
        .await?;
    let target = Target::of(&gw)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = gw.rss()?;
    let text =
        serde_json::json!({ "type": "message.send", "payload": { "content": "x".repeat(SIZE) } }).to_string();
    let mut tasks = Vec::new();
    for _ in 0..sockets {
        let (target, text) = (target.clone(), text.clone());
        tasks.push(tokio::spawn(async move {
            let mut ws = target.connect().await?;
            for _ in 0..messages {
                match tokio::time::timeout(Duration::from_secs(5), ws.send(Message::text(text.clone()))).await
                {
                    Ok(Ok(())) => tokio::time::sleep(Duration::from_millis(20)).await,
                    _ => break,
                }
            }
            anyhow::Ok(ws)
        }));
    }
    let mut peak = idle;
    let mut held = Vec::new();
    for t in tasks {
        while !t.is_finished() {
            peak = peak.max(gw.rss()?);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        held.push(t.await??);
    }
    for _ in 0..100 {
        peak = peak.max(gw.rss()?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = gw.rss()?;
    // The allocator returns freed pages over its decay time (jemalloc: 10 s).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let settled = gw.rss()?;
    let growth = peak.saturating_sub(idle);
    eprintln!(
        "silent sockets: idle {} peak {} after {} (15 s: {})",
        mib(idle),
        mib(peak),
        mib(after),
        mib(settled)
    );
    Ok(Row {
        figure: format!(
            "RSS growth, {sockets} sockets not reading while {messages} × 900 KiB answers stream to each"
        ),
        gateway: format!(
            "+{} (idle {}, peak {}; {} 3 s and {} 15 s after they close)",
            mib(growth),
            mib(idle),
            mib(peak),
            mib(after),
            mib(settled)
        ),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "≤ +96 MiB".into(),
        verdict: verdict(growth <= 96 * 1024 * 1024),
    })
}

/// 16,384 client addresses (IPv4 and IPv6 /64s, through a trusted proxy) with one wrong
/// token each: how many are verified as wrong (401) against the 1,000-a-minute budget.
async fn address_spray(launch: &Launch, quick: bool) -> Result<Row> {
    let addrs: u32 = if quick { 4096 } else { 16_384 };
    const WORKERS: u32 = 32;
    let gw = launch.start_with(Kind::Gateway, &[("PICOCLAW_GATEWAY_TRUSTED_PROXIES", "127.0.0.0/8")]).await?;
    let port = gw.port;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        tasks.push(tokio::spawn(async move {
            let mut verified = 0u32;
            for n in (w..addrs).step_by(WORKERS as usize) {
                let ip = if n % 2 == 0 {
                    format!("10.{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff)
                } else {
                    format!("2001:db8:{:x}:{:x}::1", n >> 16, n & 0xffff)
                };
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let path = "/auth/whoami";
                let headers =
                    format!("Authorization: Bearer wrong-{n}-0123456789abcdef\r\nX-Forwarded-For: {ip}");
                if http::request_with(stream, "GET", path, &headers).await?.0 == 401 {
                    verified += 1;
                }
            }
            anyhow::Ok(verified)
        }));
    }
    let mut verified = 0;
    for t in tasks {
        verified += t.await??;
    }
    let elapsed = started.elapsed();
    eprintln!("address spray: {verified} of {addrs} verified wrong in {elapsed:?}");
    Ok(Row {
        figure: format!(
            "wrong tokens verified (401) from {addrs} distinct addresses in {:.1} s",
            elapsed.as_secs_f64()
        ),
        gateway: format!("{verified}"),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "≤ 1,000 / min (+ in flight)".into(),
        verdict: verdict(verified <= 1000 + WORKERS),
    })
}

/// `/health` on fresh connections while 1,000 connections that never send a request are
/// held open (and reopened as the gateway cuts them).
async fn preauth_flood(launch: &Launch) -> Result<Row> {
    const FLOOD: usize = 1000;
    const PROBES: usize = 100;
    let gw = launch.start(Kind::Gateway).await?;
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, gw.port));
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for i in 0..FLOOD {
        let src = SocketAddr::from((Ipv4Addr::new(127, 3, (i / 250) as u8, (i % 250 + 1) as u8), 0));
        let stop = stop.clone();
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let Ok(mut s) = http::connect_from(src, target).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let mut buf = [0u8; 16];
                while !stop.load(Ordering::Acquire) {
                    let read = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
                    if let Ok(Ok(0) | Err(_)) = read {
                        break;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut times = Vec::new();
    let mut answered = 0;
    for _ in 0..PROBES {
        let started = Instant::now();
        if matches!(http::get(gw.port, "/health", Duration::from_secs(5)).await, Ok((200, _))) {
            answered += 1;
        }
        times.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Release);
    for t in flood {
        let _ = t.await;
    }
    times.sort_unstable();
    let (p50, max) = (times[PROBES / 2], times[PROBES - 1]);
    eprintln!("pre-auth flood: {answered}/{PROBES} answered, p50 {p50:?} max {max:?}");
    Ok(Row {
        figure: format!("/health under {FLOOD} idle unauthenticated connections: answered, p50, max"),
        gateway: format!(
            "{answered}/{PROBES}, {:.1} ms, {:.0} ms",
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        ),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "all answered".into(),
        verdict: verdict(answered == PROBES),
    })
}
