//! The OpenAI-compatible chat-completions provider, streaming over server-sent events.
//!
//! `POST {api_base}/chat/completions` with `"stream": true` and `Authorization: Bearer
//! <key>`; each `data:` event's `choices[0].delta.content` is yielded as a delta, `data:
//! [DONE]` (or a `finish_reason`) ends the answer. A server that ignores `stream` and
//! answers with one JSON body is accepted too.
//!
//! Failures map to stable codes: `provider_unreachable` (connect/DNS/TLS), `provider_auth`
//! (401/403, after trying every configured key), `provider_rate_limited` (429),
//! `provider_timeout` (connect, first byte, idle gap or total time exceeded),
//! `provider_bad_stream` (malformed, oversized or truncated stream), `provider_error`
//! (any other status, or an error object inside the stream). Messages never contain a
//! key: they are built from fixed text plus the status and, for other errors, the
//! provider's own message with every configured key scrubbed out.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use picoclaw_credentials::Secret;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};

use crate::net::{HttpClient, http_client};
use crate::sse::{SseDecoder, SseError};
use crate::{Agent, AgentError, Delta, ReplyStream, Role, TurnRequest};

/// Longest answer accepted from a provider (bytes of text).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Longest SSE line/event, and longest non-streamed JSON body.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Longest excerpt of a provider error message shown to the user.
const MAX_ERROR_EXCERPT: usize = 300;

/// Deltas buffered between the provider task and the consumer.
const CHANNEL_DEPTH: usize = 64;

/// Time limits of one provider call. Every wait is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connection setup.
    pub connect: Duration,
    /// From sending the request to the response headers, and again to the first chunk.
    pub first_byte: Duration,
    /// Longest gap between two chunks of the stream.
    pub idle: Duration,
    /// The whole answer.
    pub total: Duration,
}

impl Timeouts {
    /// Limits derived from one "provider timeout" setting: first byte and idle gap =
    /// `t`, connect = min(t, 10 s), total = 10 × `t` (at least 5 minutes).
    pub fn from_request_timeout(t: Duration) -> Timeouts {
        Timeouts {
            connect: t.min(Duration::from_secs(10)),
            first_byte: t,
            idle: t,
            total: (t * 10).max(Duration::from_secs(300)),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::from_request_timeout(Duration::from_secs(60))
    }
}

/// What the provider needs to know about its model.
#[derive(Clone)]
pub struct ProviderConfig {
    /// `model_name` (shown in frames as `model_name`).
    pub model_name: String,
    /// The provider's model id, sent as `model`.
    pub model: String,
    /// Base URL, e.g. `https://api.openai.com/v1`.
    pub api_base: String,
    /// API keys in order of preference; empty = send no Authorization header
    /// (local servers such as llama.cpp or Ollama need none).
    pub keys: Vec<Secret>,
    /// Time limits.
    pub timeouts: Timeouts,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("model_name", &self.model_name)
            .field("model", &self.model)
            .field("api_base", &self.api_base)
            .field("keys", &self.keys.len())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// An agent answering through an OpenAI-compatible `/chat/completions` endpoint.
#[derive(Clone)]
pub struct OpenAiAgent {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProviderConfig,
    endpoint: hyper::Uri,
    host: String,
    client: HttpClient,
}

type Response = hyper::Response<Incoming>;

impl std::fmt::Debug for OpenAiAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiAgent").field("config", &self.inner.config).finish()
    }
}

impl OpenAiAgent {
    /// Builds the HTTP client for `config`.
    pub fn new(config: ProviderConfig) -> Result<OpenAiAgent, AgentError> {
        let base = config.api_base.trim_end_matches('/');
        let bad = |why: &str| {
            AgentError::new(
                "provider_config",
                format!(
                    "model_list entry {:?}: api_base {base:?} {why}; expected e.g. https://api.openai.com/v1",
                    config.model_name
                ),
            )
        };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(bad("does not start with http:// or https://"));
        }
        let endpoint: hyper::Uri =
            format!("{base}/chat/completions").parse().map_err(|_| bad("is not a valid URL"))?;
        let host = endpoint.host().unwrap_or("the provider").to_owned();
        let client = http_client(config.timeouts.connect);
        Ok(OpenAiAgent { inner: Arc::new(Inner { config, endpoint, host, client }) })
    }
}

impl Agent for OpenAiAgent {
    fn name(&self) -> &str {
        &self.inner.config.model_name
    }

    fn reply(&self, request: TurnRequest) -> ReplyStream {
        let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + inner.config.timeouts.total;
            let body = inner.body(&request);
            let outcome = tokio::select! {
                r = timeout_at(deadline, inner.stream(&body, &tx)) => r,
                // The consumer went away (socket closed): stop talking to the provider.
                _ = tx.closed() => return,
            };
            let err = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(_) => AgentError::new(
                    "provider_timeout",
                    format!(
                        "the model provider at {} did not finish within {} s",
                        inner.host,
                        inner.config.timeouts.total.as_secs()
                    ),
                ),
            };
            let _ = tx.send(Err(inner.scrub(err))).await;
        });
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

type Tx = mpsc::Sender<Result<Delta, AgentError>>;

impl Inner {
    fn body(&self, request: &TurnRequest) -> Value {
        let mut messages: Vec<Value> = request
            .history
            .iter()
            .map(|t| {
                let role = match t.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({ "role": role, "content": t.content })
            })
            .collect();
        let content = if request.media.is_empty() {
            Value::from(request.text.as_str())
        } else {
            let mut parts = vec![json!({ "type": "text", "text": request.text })];
            parts.extend(
                request.media.iter().map(|url| json!({ "type": "image_url", "image_url": { "url": url } })),
            );
            Value::Array(parts)
        };
        messages.push(json!({ "role": "user", "content": content }));
        json!({ "model": self.config.model, "messages": messages, "stream": true })
    }

    /// Removes every configured key from a message (defence in depth: a provider may
    /// echo the key it rejected).
    fn scrub(&self, mut e: AgentError) -> AgentError {
        for key in &self.config.keys {
            let k = key.expose();
            if k.len() >= 4 && e.message.contains(k) {
                e.message = e.message.replace(k, "[redacted]");
            }
        }
        e
    }

    fn err(&self, code: &'static str, what: impl std::fmt::Display) -> AgentError {
        AgentError::new(code, format!("model provider {} ({}): {what}", self.config.model_name, self.host))
    }

    async fn send(&self, body: &Value, key: Option<&Secret>) -> Result<Response, AgentError> {
        let mut req = hyper::Request::post(self.endpoint.clone())
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .header("user-agent", concat!("picoclaw/", env!("CARGO_PKG_VERSION")));
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {}", key.expose()));
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).map_err(|_| {
            self.err("provider_config", "the API key contains characters not allowed in a header")
        })?;
        match timeout(self.config.timeouts.first_byte, self.client.request(req)).await {
            Err(_) => Err(self.err(
                "provider_timeout",
                format!("no response within {} s", self.config.timeouts.first_byte.as_secs()),
            )),
            Ok(Err(e)) if timed_out(&e) => Err(self.err(
                "provider_timeout",
                format!("could not connect within {} s", self.config.timeouts.connect.as_secs()),
            )),
            Ok(Err(e)) if e.is_connect() => {
                Err(self.err("provider_unreachable", format!("could not connect ({})", cause(&e))))
            }
            Ok(Err(e)) => {
                Err(self.err("provider_unreachable", format!("the request failed ({})", cause(&e))))
            }
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    async fn stream(&self, body: &Value, tx: &Tx) -> Result<(), AgentError> {
        let keys: Vec<Option<&Secret>> = if self.config.keys.is_empty() {
            vec![None]
        } else {
            self.config.keys.iter().map(Some).collect()
        };
        let mut resp = None;
        for (i, key) in keys.iter().enumerate() {
            let r = self.send(body, *key).await?;
            let status = r.status().as_u16();
            if matches!(status, 401 | 403) && i + 1 < keys.len() {
                // Rejected key: try the next configured one.
                continue;
            }
            resp = Some(r);
            break;
        }
        let Some(resp) = resp else {
            return Err(self.err("provider_auth", "no API key was accepted"));
        };
        let status = resp.status();
        match status.as_u16() {
            200..=299 => {}
            401 | 403 => {
                return Err(self.err(
                    "provider_auth",
                    format!(
                        "the provider rejected the API key (HTTP {}); check model_list.{}.api_keys in .security.yml",
                        status.as_u16(),
                        self.config.model_name
                    ),
                ));
            }
            429 => {
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| format!("; retry after {} s", v.chars().take(16).collect::<String>()))
                    .unwrap_or_default();
                return Err(self.err("provider_rate_limited", format!("rate limited (HTTP 429){retry}")));
            }
            code => {
                let excerpt = self.error_excerpt(resp).await;
                return Err(self.err("provider_error", format!("HTTP {code}{excerpt}")));
            }
        }
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return self.whole_body(resp, tx).await;
        }
        self.sse(resp, tx).await
    }

    async fn error_excerpt(&self, resp: Response) -> String {
        let Ok(bytes) = read_bounded(resp, 64 * 1024, self.config.timeouts.idle).await else {
            return String::new();
        };
        let text = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("error"))
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        if text.trim().is_empty() {
            return String::new();
        }
        let short: String = text.chars().filter(|c| !c.is_control()).take(MAX_ERROR_EXCERPT).collect();
        format!(": {short}")
    }

    async fn whole_body(&self, resp: Response, tx: &Tx) -> Result<(), AgentError> {
        let bytes =
            read_bounded(resp, MAX_EVENT_BYTES, self.config.timeouts.idle).await.map_err(|e| match e {
                ReadError::Timeout => self.err("provider_timeout", "the response body stalled"),
                ReadError::TooLarge => self.err("provider_bad_stream", "the response body is too large"),
                ReadError::Broken => self.err("provider_bad_stream", "the response body was cut off"),
            })?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| self.err("provider_bad_stream", "the response is not valid JSON"))?;
        if let Some(msg) = provider_error_message(&v) {
            return Err(self.err("provider_error", msg));
        }
        let text = v.pointer("/choices/0/message/content").and_then(Value::as_str).ok_or_else(|| {
            self.err("provider_bad_stream", "the response has no choices[0].message.content")
        })?;
        if !text.is_empty() {
            let _ = tx.send(Ok(Delta::Text(text.to_owned()))).await;
        }
        Ok(())
    }

    async fn sse(&self, resp: Response, tx: &Tx) -> Result<(), AgentError> {
        let t = self.config.timeouts;
        let mut body = resp.into_body();
        let mut decoder = SseDecoder::new(MAX_EVENT_BYTES);
        let mut events = Vec::new();
        let mut total = 0usize;
        let mut first = true;
        let mut finished = false;
        loop {
            let wait = if first { t.first_byte } else { t.idle };
            let chunk = match timeout(wait, next_data(&mut body)).await {
                Err(_) => {
                    return Err(
                        self.err("provider_timeout", format!("the stream stalled for {} s", wait.as_secs()))
                    );
                }
                Ok(None) => break,
                Ok(Some(Err(_))) => {
                    return Err(
                        self.err("provider_bad_stream", "the connection broke in the middle of the answer")
                    );
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            first = false;
            decoder.feed(&chunk, &mut events).map_err(|e| match e {
                SseError::TooLarge(n) => {
                    self.err("provider_bad_stream", format!("a stream event exceeds {n} bytes"))
                }
                SseError::NotUtf8 => self.err("provider_bad_stream", "a stream event is not UTF-8"),
            })?;
            for data in events.drain(..) {
                let data = data.trim();
                if data == "[DONE]" {
                    return Ok(());
                }
                if data.is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(data)
                    .map_err(|_| self.err("provider_bad_stream", "a stream event is not valid JSON"))?;
                if let Some(msg) = provider_error_message(&v) {
                    return Err(self.err("provider_error", msg));
                }
                let choice = v.pointer("/choices/0");
                let text = |key: &str| {
                    choice
                        .and_then(|c| c.pointer(key))
                        .and_then(Value::as_str)
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned)
                };
                // Reasoning (`reasoning_content`, or OpenRouter's `reasoning`) before the
                // answer text of the same event; both count towards the answer bound.
                let reasoning = text("/delta/reasoning_content").or_else(|| text("/delta/reasoning"));
                for delta in [reasoning.map(Delta::Thought), text("/delta/content").map(Delta::Text)]
                    .into_iter()
                    .flatten()
                {
                    total += match &delta {
                        Delta::Text(d) | Delta::Thought(d) => d.len(),
                        Delta::Attachment(a) => a.bytes.len(),
                    };
                    if total > MAX_ANSWER_BYTES {
                        return Err(self.err(
                            "provider_bad_stream",
                            format!("the answer exceeds {MAX_ANSWER_BYTES} bytes"),
                        ));
                    }
                    if tx.send(Ok(delta)).await.is_err() {
                        return Ok(()); // nobody listens any more
                    }
                }
                if choice.and_then(|c| c.get("finish_reason")).is_some_and(|f| !f.is_null()) {
                    finished = true;
                }
            }
        }
        if finished && !decoder.has_partial() {
            // Some servers end with a finish_reason and close without `[DONE]`.
            return Ok(());
        }
        Err(self.err("provider_bad_stream", "the stream ended before the answer was complete (no [DONE])"))
    }
}

fn provider_error_message(v: &Value) -> Option<String> {
    let e = v.get("error")?;
    if e.is_null() {
        return None;
    }
    let msg = e
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| e.as_str())
        .unwrap_or("the provider reported an error");
    Some(msg.chars().filter(|c| !c.is_control()).take(MAX_ERROR_EXCERPT).collect())
}

enum ReadError {
    Timeout,
    TooLarge,
    Broken,
}

/// The next data chunk of a body (trailers are skipped).
async fn next_data(body: &mut Incoming) -> Option<Result<Bytes, hyper::Error>> {
    loop {
        match body.frame().await? {
            Err(e) => return Some(Err(e)),
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
        }
    }
}

async fn read_bounded(resp: Response, limit: usize, idle: Duration) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let mut body = resp.into_body();
    loop {
        match timeout(idle, next_data(&mut body)).await {
            Err(_) => return Err(ReadError::Timeout),
            Ok(None) => return Ok(out),
            Ok(Some(Err(_))) => return Err(ReadError::Broken),
            Ok(Some(Ok(chunk))) => {
                if out.len() + chunk.len() > limit {
                    return Err(ReadError::TooLarge);
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

fn timed_out(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The innermost cause of a client error (the URL is already in the message).
fn cause(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(inner) = source.source() {
        source = inner;
    }
    let text = source.to_string();
    if text.is_empty() { "connection failed".to_owned() } else { text }
}
