//! The load generator: WebSocket clients against either server. Every client socket is
//! opened with `SO_LINGER` 0 so a run leaves no TIME_WAIT behind to starve the next one of
//! loopback ports. Every loop here is bounded by a count or a deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::servers::{Kind, Server};

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Longest time one handshake or one round trip may take before it counts as failed.
const OP_LIMIT: Duration = Duration::from_secs(10);
/// Text the echo agent is asked to repeat.
const CONTENT: &str = "hello from picoclaw-bench";

/// Where and how to connect (cheap to clone into tasks).
#[derive(Debug, Clone)]
pub struct Target {
    /// Which server.
    pub kind: Kind,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// `Authorization: Bearer` value, if the server needs one.
    pub auth: Option<Arc<HeaderValue>>,
}

impl Target {
    /// The target for a running server.
    pub fn of(server: &Server) -> Result<Target> {
        let auth = match &server.token {
            Some(t) => Some(Arc::new(HeaderValue::from_str(&format!("Bearer {t}")).context("token header")?)),
            None => None,
        };
        Ok(Target { kind: server.kind, port: server.port, auth })
    }

    /// Opens one socket (TCP connect + upgrade).
    pub async fn connect(&self) -> Result<Ws> {
        let fut = async {
            let stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.set_nodelay(true)?;
            stream.set_zero_linger()?;
            let url = format!("ws://127.0.0.1:{}{}", self.port, self.kind.ws_path());
            let mut req = url.into_client_request()?;
            if let Some(auth) = &self.auth {
                req.headers_mut().insert(header::AUTHORIZATION, (**auth).clone());
            }
            let config = WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(0);
            let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await?;
            anyhow::Ok(ws)
        };
        match tokio::time::timeout(OP_LIMIT, fut).await {
            Ok(r) => r,
            Err(_) => bail!("handshake timed out"),
        }
    }

    /// The request for round trip `id`, and what ends it.
    fn request(&self, op: Op, id: u64) -> String {
        match op {
            Op::Message => {
                format!(r#"{{"type":"message.send","id":"{id}","payload":{{"content":"{CONTENT}"}}}}"#)
            }
            Op::Ping => format!(r#"{{"type":"ping","id":"{id}"}}"#),
        }
    }

    /// If `text` completes a round trip, its id. A gateway `message.create` whose content
    /// is not the echo is an error.
    fn completes(&self, op: Op, text: &str) -> Result<Option<u64>> {
        let frame: serde_json::Value = serde_json::from_str(text).context("server frame is not JSON")?;
        let id_of = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
        if self.kind == Kind::Baseline {
            return Ok(id_of(&frame["id"]));
        }
        // The gateway and the pico-shaped baseline answer alike.
        match (op, frame["type"].as_str()) {
            (Op::Ping, Some("pong")) => Ok(id_of(&frame["id"])),
            (Op::Message, Some("message.create")) => {
                if frame["payload"]["content"].as_str() != Some(CONTENT) {
                    bail!("message.create content is not the echo: {text}");
                }
                Ok(None)
            }
            (Op::Message, Some("typing.stop")) => Ok(id_of(&frame["payload"]["reply_to"])),
            (_, Some("error")) => bail!("server error frame: {text}"),
            _ => Ok(None),
        }
    }
}

/// The round trip measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `message.send` → `typing.start`, `message.create` (the echo), `typing.stop`.
    Message,
    /// App-level `ping` → `pong`.
    Ping,
}

/// Opens `n` sockets, at most `parallel` handshakes at a time.
async fn open_many(target: &Target, n: usize, parallel: usize) -> (Vec<Ws>, usize, Option<String>) {
    let gate = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (target, gate) = (target.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            target.connect().await
        }));
    }
    let (mut open, mut failed, mut first_error) = (Vec::with_capacity(n), 0, None);
    for task in tasks {
        match task.await {
            Ok(Ok(ws)) => open.push(ws),
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (open, failed, first_error)
}

/// Result of holding idle sockets.
#[derive(Debug)]
pub struct Held {
    /// Sockets asked for.
    pub wanted: usize,
    /// Sockets that completed the handshake.
    pub opened: usize,
    /// First handshake error, if any.
    pub first_error: Option<String>,
    /// Sockets still open (no close, no error) at the end of the hold.
    pub held: usize,
    /// Server RSS before, right after opening, and at the end of the hold (bytes).
    pub rss: [u64; 3],
    /// Time to open them all.
    pub open_time: Duration,
}

/// Opens `n` authenticated sockets, holds them idle for `hold` (answering the server's
/// pings), and samples the server's RSS.
pub async fn hold(server: &Server, n: usize, hold: Duration) -> Result<Held> {
    let target = Target::of(server)?;
    let before = server.rss()?;
    let started = Instant::now();
    let (sockets, failed, first_error) = open_many(&target, n, 100).await;
    let open_time = started.elapsed();
    let opened = sockets.len();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(opened);
    for mut ws in sockets {
        let (dropped, mut stop) = (dropped.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    next = ws.next() => match next {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Some(Ok(_)) => {}
                    },
                    _ = stop.changed() => return,
                }
            }
        }));
    }
    // Let the server settle before sampling.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = server.rss()?;
    tokio::time::sleep(hold.saturating_sub(Duration::from_millis(500))).await;
    let end = server.rss()?;
    let held = opened - dropped.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let _ = failed;
    Ok(Held { wanted: n, opened, first_error, held, rss: [before, loaded, end], open_time })
}

/// A rate over a measured window.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Completed operations.
    pub ok: u64,
    /// Failed operations.
    pub failed: u64,
    /// Measured window.
    pub elapsed: Duration,
}

impl Rate {
    /// Operations per second.
    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Connect + upgrade + drop, from `workers` concurrent loops, for `dur`.
pub async fn handshakes(server: &Server, workers: usize, dur: Duration) -> Result<Rate> {
    let target = Target::of(server)?;
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let deadline = started + dur;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (target, ok, failed) = (target.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match target.connect().await {
                    Ok(ws) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        drop(ws);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(Rate {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// Waits for the frame completing round trip `id` on `ws`.
async fn await_reply(target: &Target, op: Op, ws: &mut Ws, id: u64) -> Result<()> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if target.completes(op, text.as_str())? == Some(id) {
                    return Ok(());
                }
            }
            Some(Ok(Message::Close(frame))) => bail!("server closed the socket: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("socket ended"),
        }
    }
}

/// `conns` sockets, each sending the next request as soon as the previous one is
/// answered, for `dur`.
pub async fn closed_loop(server: &Server, op: Op, conns: usize, dur: Duration) -> Result<Rate> {
    let target = Target::of(server)?;
    let (sockets, failed, first_error) = open_many(&target, conns, 50).await;
    if failed > 0 {
        bail!("{failed} of {conns} sockets failed to open: {}", first_error.unwrap_or_default());
    }
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let deadline = started + dur;
    let mut tasks = Vec::new();
    for mut ws in sockets {
        let (target, ok, errors) = (target.clone(), ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut id = 0u64;
            while Instant::now() < deadline {
                id += 1;
                let round = async {
                    ws.send(Message::text(target.request(op, id))).await?;
                    await_reply(&target, op, &mut ws, id).await
                };
                match tokio::time::timeout(OP_LIMIT, round).await {
                    Ok(Ok(())) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    Ok(Rate { ok: ok.load(Ordering::Relaxed), failed: errors.load(Ordering::Relaxed), elapsed })
}

/// Round-trip latencies at a fixed offered rate.
#[derive(Debug)]
pub struct Latencies {
    /// Requests sent.
    pub sent: u64,
    /// Replies received in time.
    pub received: u64,
    /// Round trips in microseconds (after the warm-up), sorted.
    pub micros: Vec<u32>,
    /// Offered rate actually achieved (sent / send window).
    pub achieved: f64,
}

impl Latencies {
    /// The q-quantile (0..=1) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let idx = ((self.micros.len() as f64 - 1.0) * q).round() as usize;
        f64::from(self.micros[idx.min(self.micros.len() - 1)]) / 1000.0
    }
}

/// Open loop: `rate` requests/s spread evenly over `conns` sockets for `dur`; the
/// latency of each is measured from just before its send to its completing frame. Replies
/// later than `grace` after the send window count as unanswered.
pub async fn fixed_rate(
    server: &Server,
    op: Op,
    conns: usize,
    rate: u32,
    dur: Duration,
    grace: Duration,
) -> Result<Latencies> {
    let target = Target::of(server)?;
    let (sockets, failed, first_error) = open_many(&target, conns, 50).await;
    if failed > 0 {
        bail!("{failed} of {conns} sockets failed to open: {}", first_error.unwrap_or_default());
    }
    let spacing = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let period = spacing * u32::try_from(conns).context("too many connections")?;
    let per_conn = (dur.as_secs_f64() / period.as_secs_f64()).ceil() as u64;
    let warmup = (0.5 / period.as_secs_f64()).ceil() as u64;
    let base = Instant::now() + Duration::from_millis(50);
    let sent = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let stamps: Arc<Vec<AtomicU64>> = Arc::new((0..per_conn).map(|_| AtomicU64::new(0)).collect());
        let first = base + spacing * u32::try_from(i).unwrap_or(0);
        let (target_s, stamps_s, sent) = (target.clone(), stamps.clone(), sent.clone());
        senders.push(tokio::spawn(async move {
            for k in 0..per_conn {
                tokio::time::sleep_until((first + period * u32::try_from(k).unwrap_or(u32::MAX)).into())
                    .await;
                let at = base.elapsed().as_nanos() as u64;
                stamps_s[k as usize].store(at.max(1), Ordering::Release);
                if sink.send(Message::Text(Utf8Bytes::from(target_s.request(op, k)))).await.is_err() {
                    return sink;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            sink
        }));
        let target_r = target.clone();
        let end = base + dur + grace;
        readers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(per_conn as usize);
            let mut left = per_conn;
            while left > 0 {
                let next = tokio::time::timeout_at(end.into(), stream.next()).await;
                let text = match next {
                    Ok(Some(Ok(Message::Text(text)))) => text,
                    Ok(Some(Ok(_))) => continue,
                    _ => break,
                };
                let now = base.elapsed().as_nanos() as u64;
                let Ok(Some(k)) = target_r.completes(op, text.as_str()) else { continue };
                let Some(stamp) = stamps.get(k as usize) else { continue };
                let at = stamp.load(Ordering::Acquire);
                left -= 1;
                if k >= warmup && at > 0 {
                    got.push(u32::try_from(now.saturating_sub(at) / 1000).unwrap_or(u32::MAX));
                }
            }
            (got, per_conn - left)
        }));
    }
    let mut sinks = Vec::new();
    for s in senders {
        if let Ok(sink) = s.await {
            sinks.push(sink);
        }
    }
    let send_window = base.elapsed();
    let (mut micros, mut received) = (Vec::new(), 0);
    for r in readers {
        if let Ok((got, n)) = r.await {
            micros.extend(got);
            received += n;
        }
    }
    drop(sinks);
    micros.sort_unstable();
    let sent = sent.load(Ordering::Relaxed);
    Ok(Latencies { sent, received, micros, achieved: sent as f64 / send_window.as_secs_f64().max(1e-9) })
}
