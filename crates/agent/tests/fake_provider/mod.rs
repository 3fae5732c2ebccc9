//! A scripted OpenAI-compatible provider on loopback: real TCP, real HTTP/1.1, real SSE.
//! Used by the agent crate's tests and (via `#[path]`) by the CLI black-box tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the provider does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 + SSE: one `data:` event per delta, `gap` apart; `[DONE]` at the end when
    /// `done`, else the connection just closes (a truncated stream).
    Stream { deltas: Vec<String>, gap: Duration, done: bool },
    /// Waits `delay` before sending anything, then streams `deltas` with `[DONE]`.
    Slow { delay: Duration, deltas: Vec<String> },
    /// Streams `deltas`, then goes silent with the connection open.
    Stall { deltas: Vec<String> },
    /// An HTTP error status with a JSON body (and `Retry-After` for 429).
    Status { code: u16, message: String },
    /// A `data:` event that is not JSON.
    Garbage,
    /// A reasoning model: `reasoning_content` deltas, then `content` deltas, `[DONE]`.
    Reasoning { thoughts: Vec<String>, deltas: Vec<String> },
    /// A plain JSON completion (a server ignoring `stream: true`).
    Json { content: String },
}

impl Reply {
    /// A well-behaved stream of `deltas`.
    pub fn stream(deltas: &[&str]) -> Reply {
        Reply::Stream {
            deltas: deltas.iter().map(|s| s.to_string()).collect(),
            gap: Duration::from_millis(5),
            done: true,
        }
    }
}

/// One request as the provider saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Request path.
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: Value,
}

/// A running fake provider; stops with the test process.
#[derive(Clone)]
pub struct FakeProvider {
    /// `http://127.0.0.1:<port>/v1`.
    pub base: String,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<Captured>>>,
}

impl FakeProvider {
    /// Starts on a free loopback port, answering every request with `default`.
    pub fn start(default: Reply) -> FakeProvider {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("addr").port();
        let fake = FakeProvider {
            base: format!("http://127.0.0.1:{port}/v1"),
            script: Arc::new(Mutex::new(VecDeque::new())),
            default: Arc::new(Mutex::new(default)),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let server = fake.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let Ok((conn, _)) = listener.accept().await else { continue };
                    let server = server.clone();
                    tokio::spawn(async move { server.serve(conn).await });
                }
            });
        });
        fake
    }

    /// Queues replies used before the default one, in order.
    pub fn then(&self, reply: Reply) {
        self.script.lock().unwrap().push_back(reply);
    }

    /// Replaces the default reply.
    pub fn set_default(&self, reply: Reply) {
        *self.default.lock().unwrap() = reply;
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }

    async fn serve(&self, mut conn: TcpStream) {
        let Some(captured) = read_request(&mut conn).await else { return };
        self.requests.lock().unwrap().push(captured);
        let reply =
            self.script.lock().unwrap().pop_front().unwrap_or_else(|| self.default.lock().unwrap().clone());
        let _ = respond(&mut conn, reply).await;
    }
}

async fn read_request(conn: &mut TcpStream) -> Option<Captured> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let mut length = 0usize;
    let mut authorization = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    Some(Captured { path, authorization, body })
}

fn event(delta: &str) -> String {
    let chunk = serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk",
        "choices": [{ "index": 0, "delta": { "content": delta }, "finish_reason": null }]
    });
    format!("data: {chunk}\n\n")
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";

async fn respond(conn: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Stream { deltas, gap, done } => {
            conn.write_all(SSE_HEAD.as_bytes()).await?;
            conn.write_all(b": keep-alive comment\n\n").await?;
            for d in deltas {
                conn.write_all(event(&d).as_bytes()).await?;
                conn.flush().await?;
                tokio::time::sleep(gap).await;
            }
            if done {
                conn.write_all(b"data: [DONE]\n\n").await?;
            }
        }
        Reply::Reasoning { thoughts, deltas } => {
            conn.write_all(SSE_HEAD.as_bytes()).await?;
            for t in thoughts {
                let chunk = serde_json::json!({
                    "id": "chatcmpl-1", "object": "chat.completion.chunk",
                    "choices": [{ "index": 0, "delta": { "reasoning_content": t }, "finish_reason": null }]
                });
                conn.write_all(format!("data: {chunk}\n\n").as_bytes()).await?;
                conn.flush().await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for d in deltas {
                conn.write_all(event(&d).as_bytes()).await?;
                conn.flush().await?;
            }
            conn.write_all(b"data: [DONE]\n\n").await?;
        }
        Reply::Slow { delay, deltas } => {
            tokio::time::sleep(delay).await;
            conn.write_all(SSE_HEAD.as_bytes()).await?;
            for d in deltas {
                conn.write_all(event(&d).as_bytes()).await?;
            }
            conn.write_all(b"data: [DONE]\n\n").await?;
        }
        Reply::Stall { deltas } => {
            conn.write_all(SSE_HEAD.as_bytes()).await?;
            for d in deltas {
                conn.write_all(event(&d).as_bytes()).await?;
            }
            conn.flush().await?;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Reply::Status { code, message } => {
            let body = serde_json::json!({ "error": { "message": message, "type": "test" } }).to_string();
            let extra = if code == 429 { "retry-after: 7\r\n" } else { "" };
            let head = format!(
                "HTTP/1.1 {code} Test\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).await?;
            conn.write_all(body.as_bytes()).await?;
        }
        Reply::Garbage => {
            conn.write_all(SSE_HEAD.as_bytes()).await?;
            conn.write_all(b"data: {this is not json\n\n").await?;
        }
        Reply::Json { content } => {
            let body = serde_json::json!({
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }]
            })
            .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).await?;
            conn.write_all(body.as_bytes()).await?;
        }
    }
    conn.flush().await?;
    conn.shutdown().await
}
