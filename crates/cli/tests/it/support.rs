//! Shared harness for black-box tests: a temporary PICOCLAW_HOME, the real `picoclaw`
//! binary, and a gateway process started on a free port. Every module of the `it` suite
//! uses it through `crate::support`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_picoclaw")
}

/// A temporary home directory; removed on drop.
pub struct TestHome {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl TestHome {
    /// An empty home.
    pub fn new() -> TestHome {
        TestHome { dir: tempfile::tempdir().expect("tempdir"), env: Vec::new() }
    }

    /// A home prepared by `picoclaw onboard`.
    pub fn onboarded() -> TestHome {
        let home = TestHome::new();
        let out = home.run(&["onboard"]);
        assert!(out.status.success(), "onboard failed: {}", String::from_utf8_lossy(&out.stderr));
        home
    }

    /// A home with the Pico channel enabled (plus `options` for `channels.pico`) and
    /// `token` as the pico token in `.security.yml`.
    pub fn with_pico(token: &str, options: Value) -> TestHome {
        let home = TestHome::new();
        let mut channel = serde_json::json!({ "enabled": true });
        if let (Value::Object(c), Value::Object(extra)) = (&mut channel, options) {
            c.extend(extra);
        }
        home.write_config(&serde_json::json!({ "channels": { "pico": channel } }));
        home.write_security(&format!("channels:\n  pico:\n    token: \"{token}\"\n"));
        home
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file inside the home.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Adds an environment variable for every command run from this home.
    pub fn env(mut self, key: &str, value: &str) -> TestHome {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Writes config.json (mode 0600).
    pub fn write_config(&self, json: &Value) {
        write_private(&self.file("config.json"), &serde_json::to_string_pretty(json).unwrap());
    }

    /// Writes .security.yml (mode 0600).
    pub fn write_security(&self, yaml: &str) {
        write_private(&self.file(".security.yml"), yaml);
    }

    /// A `picoclaw` command with a clean environment: only PATH, HOME=<home>,
    /// PICOCLAW_HOME=<home> and the variables added with [`TestHome::env`].
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("HOME", self.path()).env("PICOCLAW_HOME", self.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a command to completion (stdin closed).
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().expect("run picoclaw")
    }

    /// Starts `picoclaw gateway --port 0 <extra>` in the foreground as a child and waits
    /// for its `.picoclaw.pid` record.
    pub fn spawn_gateway(&self, extra: &[&str]) -> Gateway {
        let mut args = vec!["gateway", "--port", "0"];
        args.extend_from_slice(extra);
        let log = std::fs::File::create(self.file("test-gateway.stderr")).unwrap();
        let child = self.cmd(&args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let mut gw = Gateway { child, record: Value::Null };
        gw.record = wait_for_record(self.path(), gw.child.id(), Duration::from_secs(20))
            .unwrap_or_else(|| panic!("gateway did not start: {}", self.gateway_stderr()));
        gw
    }

    /// The stderr of the last gateway started with [`TestHome::spawn_gateway`].
    pub fn gateway_stderr(&self) -> String {
        std::fs::read_to_string(self.file("test-gateway.stderr")).unwrap_or_default()
    }
}

impl Default for TestHome {
    fn default() -> Self {
        TestHome::new()
    }
}

/// Writes a file with mode 0600.
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Waits until `.picoclaw.pid` names `pid` (0 = any pid) and returns it parsed.
pub fn wait_for_record(home: &Path, pid: u32, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(home.join(".picoclaw.pid"))
            && let Ok(record) = serde_json::from_str::<Value>(&text)
            && (pid == 0 || record["pid"].as_u64() == Some(u64::from(pid)))
        {
            return Some(record);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A running gateway child; killed on drop.
pub struct Gateway {
    /// The process.
    pub child: Child,
    /// The parsed `.picoclaw.pid` record.
    pub record: Value,
}

impl Gateway {
    /// `127.0.0.1:port` style address.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.record["host"].as_str().unwrap_or("127.0.0.1"), self.record["port"])
    }

    /// `http://host:port`.
    pub fn http(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `ws://host:port/pico/ws`.
    pub fn ws(&self) -> String {
        format!("ws://{}/pico/ws", self.addr())
    }

    /// The runtime token from the record (tests only).
    pub fn runtime_token(&self) -> String {
        self.record["token"].as_str().unwrap_or_default().to_owned()
    }

    /// Sends SIGTERM and waits for exit (up to `within`).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        #[cfg(unix)]
        unsafe_free_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// A tiny seeded xorshift generator: no dependency, and a failing run can be replayed from
/// its seed.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value; zero is mapped to a valid state).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    /// The next pseudo-random value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `[0, n)` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A delay uniformly in `[0, max]`.
    pub fn delay(&mut self, max: Duration) -> Duration {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(self.next() % (micros + 1))
    }
}

/// Sends a signal with the `kill` command (keeps tests free of unsafe code).
pub fn unsafe_free_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

/// Stops a child: SIGTERM, up to 20 s to exit, then SIGKILL (and reaps it).
pub fn terminate(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        unsafe_free_kill(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real WebSocket client for tests (tokio-tungstenite).
pub mod ws {
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use serde_json::Value;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::{Error, Message};

    /// A connected socket.
    pub type Socket =
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    /// Connects to `url` with extra request headers. On an HTTP rejection returns the
    /// status and body instead of a socket.
    pub async fn connect(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Socket, tokio_tungstenite::tungstenite::handshake::client::Response), (StatusCode, String)>
    {
        let mut request = url.into_client_request().expect("request");
        for (k, v) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => Ok(ok),
            Err(Error::Http(resp)) => {
                let status = resp.status();
                let body =
                    resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                Err((status, body))
            }
            Err(e) => panic!("websocket connect to {url} failed: {e}"),
        }
    }

    /// Connects expecting an HTTP rejection; returns its status code and body.
    pub async fn rejected(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
        match connect(url, headers).await {
            Ok(_) => panic!("expected {url} to be rejected, but the upgrade succeeded"),
            Err((status, body)) => (status.as_u16(), body),
        }
    }

    /// Connects with `Authorization: Bearer <token>`, panicking on rejection.
    pub async fn bearer(url: &str, token: &str) -> Socket {
        let auth = format!("Bearer {token}");
        match connect(url, &[("authorization", &auth)]).await {
            Ok((socket, _)) => socket,
            Err((status, body)) => panic!("rejected with {status}: {body}"),
        }
    }

    /// Sends a JSON frame.
    pub async fn send(socket: &mut Socket, frame: Value) {
        socket.send(Message::text(frame.to_string())).await.expect("send");
    }

    /// What the next read produced.
    #[derive(Debug)]
    pub enum Next {
        /// A JSON text frame.
        Frame(Value),
        /// A close frame (code, reason).
        Closed(Option<(u16, String)>),
        /// Nothing within the time limit.
        Timeout,
        /// The connection ended without a close frame.
        Ended,
    }

    /// Reads the next text frame or close (skipping pings/pongs).
    pub async fn next(socket: &mut Socket, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Err(_) => return Next::Timeout,
                Ok(None) => return Next::Ended,
                Ok(Some(Err(_))) => return Next::Ended,
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Next::Frame(serde_json::from_str(t.as_str()).expect("server sent JSON"));
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Next::Closed(
                        frame.map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string())),
                    );
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Reads the next JSON frame, panicking on anything else.
    pub async fn frame(socket: &mut Socket) -> Value {
        match next(socket, Duration::from_secs(10)).await {
            Next::Frame(v) => v,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Reads frames until one of `kind` arrives; returns all frames read, that one last.
    pub async fn until(socket: &mut Socket, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let f = frame(socket).await;
            let done = f["type"] == kind;
            seen.push(f);
            if done {
                return seen;
            }
        }
    }
}

/// The messages of `session` in `home` as text, one `role: content` line each (read from
/// `sessions/sessions.db` without disturbing a running gateway).
pub fn session_text(home: &TestHome, session: &str) -> String {
    picoclaw_store::SqliteStore::read_messages(&home.file("sessions"), session)
        .map(|messages| {
            messages
                .iter()
                .map(|m| {
                    format!(
                        "{}: {}\n",
                        if m.role == picoclaw_store::Role::User { "user" } else { "assistant" },
                        m.content
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}
