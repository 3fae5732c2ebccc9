//! `picoclaw chat [--session S] [--url U] [MESSAGE]`: a terminal client of the Pico channel.
//!
//! Target and credential:
//! - without `--url`, the local gateway recorded in `.picoclaw.pid` (checked live through
//!   its lock) with that record's runtime token — configuration and environment cannot
//!   make the client disagree with the running process;
//! - with `--url`, that gateway with the configured credentials (pico token, else gateway
//!   token), resolved by the same resolver the server uses.
//!
//! With MESSAGE it sends one message, prints the answer and exits 0 after the turn ends
//! (`typing.stop`, or `message.done`); any `error` frame for the turn or a connection
//! failure exits 1 with the reason on stderr. Without MESSAGE it reads lines from stdin,
//! one message per line, until EOF or `/quit`.
//!
//! On a terminal the answer is rendered in place as it streams; otherwise only the final
//! text of each message is printed, so scripts get clean output.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use picoclaw_agent::net::{WsConnectError, WsStream, connect_ws, ws_request};
use picoclaw_config::{Flags, Paths, ProcessEnv};
use picoclaw_credentials::client::{Endpoint, Target, choose};
use picoclaw_credentials::{Credentials, Secret};
use picoclaw_pico::{Frame, kind};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::cli::ChatArgs;

/// Largest frame accepted from the gateway.
const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Runs `picoclaw chat`.
pub fn run(args: ChatArgs) -> Result<ExitCode> {
    let session = match &args.session {
        Some(s) => {
            picoclaw_agent::validate_session_id(s).map_err(|e| anyhow!("--session {s:?}: {e}"))?;
            s.clone()
        }
        None => random_id("chat-"),
    };
    let target = PicoTarget::resolve(args.url.as_deref(), "chat with")?;
    let (url, credential, target) = (target.url, target.credential, target.described);
    let message = (!args.message.is_empty()).then(|| args.message.join(" "));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let limit = Duration::from_secs(args.timeout.max(1));
    runtime.block_on(async move {
        let ws = connect(&url, &credential, &session, args.url.is_none())
            .await
            .with_context(|| format!("cannot chat with {target}"))?;
        let mut chat = Chat { ws, session, tty: std::io::stdout().is_terminal(), limit };
        match message {
            Some(text) => chat.one_shot(&text).await,
            None => chat.interactive().await,
        }
    })
}

/// The Pico socket a client command talks to, and the credential it presents there.
pub(crate) struct PicoTarget {
    /// `ws(s)://…/pico/ws`.
    pub url: String,
    /// The credential.
    pub credential: Secret,
    /// For messages: the URL and the credential's kind and source, or the local pid.
    pub described: String,
}

impl PicoTarget {
    /// Without `url`, the local gateway recorded in `.picoclaw.pid` (checked live) with its
    /// runtime token; with `url`, that server with the configured credentials (pico token,
    /// else gateway token) from the resolver the server uses. `doing` completes "cannot …"
    /// in errors ("chat with").
    pub fn resolve(url: Option<&str>, doing: &str) -> Result<PicoTarget> {
        let paths = Paths::from_env(&ProcessEnv)?;
        match url {
            Some(url) => {
                let loaded = picoclaw_credentials::load(&paths, &ProcessEnv, &Flags::default())?;
                let presented = choose(Endpoint::Chat, Target::Remote, &loaded.credentials)?;
                Ok(PicoTarget {
                    url: pico_url(url)?,
                    credential: presented.secret,
                    described: format!("{url} ({} token from {})", presented.kind, presented.source),
                })
            }
            None => {
                let record = local_gateway(&paths, doing)?;
                let presented = choose(Endpoint::Chat, Target::Local(&record), &Credentials::default())?;
                Ok(PicoTarget {
                    url: record.base_url().replacen("http://", "ws://", 1) + "/pico/ws",
                    credential: presented.secret,
                    described: format!("the local gateway (pid {})", record.pid),
                })
            }
        }
    }
}

/// The record of the live local gateway, or an error saying how to start one.
pub(crate) fn local_gateway(
    paths: &Paths,
    doing: &str,
) -> Result<picoclaw_credentials::runtime::RuntimeRecord> {
    let gateway = picoclaw_lifecycle::running(paths).map_err(|e| match e {
        picoclaw_lifecycle::LifecycleError::NotRunning { .. } => anyhow!(
            "no gateway is running for {} — start one with `picoclaw gateway start`, or pass --url to {doing} another one",
            paths.home().display()
        ),
        // The record does not verify: its runtime token goes nowhere.
        other => anyhow!("cannot {doing} the local gateway: {other}"),
    })?;
    Ok(gateway.record().clone())
}

/// Turns `http(s)://host:port[/path]` or `ws(s)://...` into the Pico socket URL.
pub(crate) fn pico_url(url: &str) -> Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow!("--url {url:?}: expected ws://, wss://, http:// or https://"))?;
    let scheme = match scheme {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => bail!("--url {url:?}: expected ws://, wss://, http:// or https://"),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        bail!("--url {url:?}: the URL has no host");
    }
    let has_path = rest.contains('/');
    Ok(if has_path { format!("{scheme}://{rest}") } else { format!("{scheme}://{rest}/pico/ws") })
}

pub(crate) async fn connect(url: &str, credential: &Secret, session: &str, local: bool) -> Result<WsStream> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}session_id={session}&protocol=2");
    let mut request = ws_request(&full)?;
    let value = HeaderValue::from_str(&format!("Bearer {}", credential.expose()))
        .map_err(|_| anyhow!("the credential contains characters not allowed in an HTTP header"))?;
    request.headers_mut().insert("authorization", value);
    match connect_ws(request, Duration::from_secs(15), MAX_FRAME).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsConnectError::Refused { status: 401, body }) if local => Err(anyhow!(
            "the gateway rejected the runtime token from .picoclaw.pid (HTTP 401{body}); restart it with `picoclaw gateway restart`"
        )),
        Err(WsConnectError::Refused { status: 401, body }) => Err(anyhow!(
            "the gateway rejected the credential (HTTP 401{body}); check `picoclaw auth explain`"
        )),
        Err(WsConnectError::Refused { status: 403, body }) => {
            Err(anyhow!("forbidden (HTTP 403{body}): this credential may not use session {session:?}"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Lines of stdin, read on a plain thread (stdin reads cannot be cancelled).
fn stdin_lines() -> tokio::sync::mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let stop = line.is_err();
            if tx.blocking_send(line).is_err() || stop {
                return;
            }
        }
    });
    rx
}

pub(crate) fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    format!("{prefix}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

struct Chat {
    ws: WsStream,
    session: String,
    tty: bool,
    limit: Duration,
}

/// How a turn ended.
enum Outcome {
    Done,
    Failed,
}

impl Chat {
    async fn one_shot(&mut self, text: &str) -> Result<ExitCode> {
        let outcome = self.turn(text).await?;
        let _ = self.ws.close(None).await;
        Ok(match outcome {
            Outcome::Done => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
        })
    }

    async fn interactive(&mut self) -> Result<ExitCode> {
        let interactive = std::io::stdin().is_terminal();
        if interactive {
            eprintln!("session {} — type a message, /quit or Ctrl-D to leave", self.session);
        }
        let mut lines = stdin_lines();
        let mut failed = false;
        loop {
            if interactive {
                eprint!("> ");
                let _ = std::io::stderr().flush();
            }
            // Keep reading the socket while waiting for input, so keepalive pings are
            // answered and a closed connection is noticed.
            let line = loop {
                tokio::select! {
                    line = lines.recv() => break line.transpose().context("cannot read stdin")?,
                    frame = self.ws.next() => match frame {
                        None | Some(Err(_)) => bail!("the gateway closed the connection"),
                        Some(Ok(Message::Close(_))) => bail!("the gateway closed the connection"),
                        Some(Ok(_)) => continue,
                    },
                }
            };
            let Some(line) = line else { break };
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            if text == "/quit" || text == "/exit" {
                break;
            }
            if let Outcome::Failed = self.turn(text).await? {
                failed = true;
            }
        }
        let _ = self.ws.close(None).await;
        Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
    }

    /// Sends `text` and renders the answer until the turn ends.
    async fn turn(&mut self, text: &str) -> Result<Outcome> {
        let id = random_id("c");
        let frame = Frame {
            kind: kind::MESSAGE_SEND.to_owned(),
            id: Some(id.clone()),
            session_id: Some(self.session.clone()),
            timestamp: Some(picoclaw_pico::now_ms()),
            payload: Default::default(),
        }
        .with("content", text);
        self.ws.send(Message::text(frame.encode())).await.context("cannot send the message")?;
        let mut render = Render::new(self.tty);
        let mut failed = false;
        let deadline = tokio::time::Instant::now() + self.limit;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next()).await.map_err(|_| {
                anyhow!("no complete answer within {} s (raise --timeout)", self.limit.as_secs())
            })?;
            let text = match msg {
                None => bail!("the gateway closed the connection before the answer was complete"),
                Some(Err(e)) => bail!("connection lost: {e}"),
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(c))) => {
                    let why = c.map(|c| format!(": {}", c.reason)).unwrap_or_default();
                    bail!("the gateway closed the connection{why}");
                }
                Some(Ok(_)) => continue,
            };
            let Ok(frame) = Frame::parse(&text) else { continue };
            // Protocol 2 tags every reply; skip frames answering other sockets' messages.
            if frame.text("reply_to").is_some_and(|r| r != id) {
                continue;
            }
            match frame.kind.as_str() {
                // The model's reasoning (`kind: thought`) is not printed as the answer.
                kind::MESSAGE_CREATE | kind::MESSAGE_UPDATE if frame.is_thought_or_tool_calls() => {}
                kind::MESSAGE_CREATE | kind::MESSAGE_UPDATE => {
                    if let (Some(mid), Some(content)) = (frame.text("message_id"), frame.text("content")) {
                        render.show(mid, content);
                    }
                }
                kind::ERROR => {
                    let request = frame.text("request_id");
                    if request.is_some_and(|r| r != id) {
                        continue;
                    }
                    render.finish();
                    failed = true;
                    eprintln!(
                        "error: {} ({})",
                        frame.text("message").unwrap_or("the gateway reported an error"),
                        frame.text("code").unwrap_or("error")
                    );
                    if request.is_none() && frame.text("reply_to").is_none() {
                        // Not tied to a turn (e.g. invalid frame): no typing.stop follows.
                        return Ok(Outcome::Failed);
                    }
                }
                kind::TYPING_STOP | kind::MESSAGE_DONE => {
                    render.finish();
                    return Ok(if failed { Outcome::Failed } else { Outcome::Done });
                }
                _ => {}
            }
        }
    }
}

/// Prints message bubbles: in place on a terminal, final text only otherwise.
struct Render {
    tty: bool,
    order: Vec<String>,
    texts: HashMap<String, String>,
    printed: HashMap<String, usize>,
    last: HashMap<String, String>,
    current: Option<String>,
}

impl Render {
    fn new(tty: bool) -> Render {
        Render {
            tty,
            order: Vec::new(),
            texts: HashMap::new(),
            printed: HashMap::new(),
            last: HashMap::new(),
            current: None,
        }
    }

    fn show(&mut self, id: &str, content: &str) {
        let text = self.show_text(id, content);
        print_now(&text);
    }

    fn finish(&mut self) {
        let text = self.finish_text();
        print_now(&text);
    }

    /// What to print when bubble `id` now reads `content`.
    fn show_text(&mut self, id: &str, content: &str) -> String {
        if !self.texts.contains_key(id) {
            self.order.push(id.to_owned());
        }
        self.texts.insert(id.to_owned(), content.to_owned());
        if !self.tty {
            return String::new();
        }
        let mut out = String::new();
        if self.current.as_deref() != Some(id) {
            if self.current.is_some() {
                out.push('\n');
            }
            self.current = Some(id.to_owned());
        }
        let shown = self.printed.get(id).copied().unwrap_or(0);
        if content.len() >= shown && content.is_char_boundary(shown) && self.was_prefix(id, content, shown) {
            // The usual case: the text grew; print only the new part.
            out.push_str(&content[shown..]);
        } else {
            // The text was rewritten: start the bubble over on a fresh line.
            out.push('\n');
            out.push_str(content);
        }
        self.printed.insert(id.to_owned(), content.len());
        self.last.insert(id.to_owned(), content.to_owned());
        out
    }

    fn was_prefix(&self, id: &str, content: &str, shown: usize) -> bool {
        self.last.get(id).is_none_or(|last| last.len() == shown && content.starts_with(last.as_str()))
    }

    /// What to print when the turn ends.
    fn finish_text(&mut self) -> String {
        let mut out = String::new();
        if self.tty {
            if self.current.take().is_some() {
                out.push('\n');
            }
        } else {
            for id in self.order.drain(..) {
                if let Some(text) = self.texts.get(&id) {
                    out.push_str(text);
                    out.push('\n');
                }
            }
        }
        self.order.clear();
        self.texts.clear();
        self.printed.clear();
        self.last.clear();
        out
    }
}

fn print_now(text: &str) {
    if text.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_pico_socket_urls() {
        assert_eq!(pico_url("http://h:1").unwrap(), "ws://h:1/pico/ws");
        assert_eq!(pico_url("https://h/").unwrap(), "wss://h/pico/ws");
        assert_eq!(pico_url("ws://h:2/pico/ws").unwrap(), "ws://h:2/pico/ws");
        assert!(pico_url("ftp://h").is_err());
        assert!(pico_url("h:1").is_err());
    }

    #[test]
    fn terminal_rendering_appends_and_restarts_rewritten_bubbles() {
        let mut r = Render::new(true);
        let mut out = String::new();
        for (id, text) in [("a", "Hel"), ("a", "Hello"), ("a", "Hello!"), ("b", "x"), ("b", "y")] {
            out.push_str(&r.show_text(id, text));
        }
        out.push_str(&r.finish_text());
        assert_eq!(out, "Hello!\nx\ny\n");
    }

    #[test]
    fn pipe_rendering_prints_only_final_texts_in_order() {
        let mut r = Render::new(false);
        let mut out = String::new();
        for (id, text) in [("a", "Hel"), ("b", "other"), ("a", "Hello")] {
            out.push_str(&r.show_text(id, text));
        }
        out.push_str(&r.finish_text());
        assert_eq!(out, "Hello\nother\n");
        assert_eq!(r.finish_text(), "");
    }
}
