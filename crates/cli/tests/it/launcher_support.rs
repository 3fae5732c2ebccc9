//! Helpers for the launcher's black-box tests: start `picoclaw launcher` on a temp home,
//! read its console, talk to it over HTTP with a cookie, stop it with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TestHome, unsafe_free_kill};

/// A pico token for test homes.
pub const PICO: &str = "pico-token-for-launcher-tests-0123456789";

/// A home whose gateway listens on a free port with the Pico channel on.
pub fn home() -> TestHome {
    let home = TestHome::new();
    home.write_config(&json!({
        "gateway": { "host": "127.0.0.1", "port": 0 },
        "channels": { "pico": { "enabled": true } }
    }));
    home.write_security(&format!("channels:\n  pico:\n    token: \"{PICO}\"\n"));
    home
}

/// A running launcher.
pub struct Launcher {
    pub child: Child,
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    /// The token printed by `--console` (None when it comes from env).
    pub token: Option<String>,
    /// Everything printed on stdout so far.
    pub stdout: Arc<Mutex<String>>,
    pub stderr_file: PathBuf,
    pub home: PathBuf,
}

/// Starts `picoclaw launcher --console --no-browser --port 0 <extra>` and waits for its
/// console block.
pub fn start(home: &TestHome, extra: &[&str]) -> Launcher {
    let mut args = vec!["launcher", "--console", "--no-browser", "--port", "0"];
    args.extend_from_slice(extra);
    start_args(home, &args)
}

/// Starts `picoclaw <args>` (which must print the `--console` block).
pub fn start_args(home: &TestHome, args: &[&str]) -> Launcher {
    let stderr_file = home.file(&format!("test-launcher-{}.stderr", std::process::id()));
    let log = std::fs::File::create(&stderr_file).unwrap();
    let mut child = home
        .cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn launcher");
    let stdout = Arc::new(Mutex::new(String::new()));
    let out = child.stdout.take().unwrap();
    let sink = stdout.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = stdout.lock().unwrap().clone();
        if text.contains("Press Ctrl-C to stop.") || text.contains("PicoClaw dashboard: ") {
            let url = field(&text, "dashboard:")
                .or_else(|| field(&text, "PicoClaw dashboard:"))
                .expect("dashboard line");
            let token = field(&text, "token:").filter(|t| t != "token").map(|t| t.to_owned());
            return Launcher { child, url, token, stdout, stderr_file, home: home.path().to_owned() };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "launcher exited ({status}) before printing its console block:\nstdout:\n{text}\nstderr:\n{}",
                std::fs::read_to_string(&stderr_file).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "launcher did not print its console block:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn field(text: &str, label: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

impl Launcher {
    /// An absolute URL on the launcher.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url.trim_end_matches('/'), path)
    }

    /// `host:port` (without the base path the URL may carry).
    pub fn authority(&self) -> String {
        let rest = self.url.trim_start_matches("http://");
        rest.split('/').next().unwrap_or(rest).to_owned()
    }

    /// The one-time login link printed by `--console` (`<url>login#code=<code>`).
    pub fn login_link(&self) -> String {
        field(&self.stdout(), "login link (one-time, 2 min):").expect("login link printed on the console")
    }

    /// The printed token (panics for env tokens).
    pub fn token(&self) -> String {
        self.token.clone().expect("token printed on the console")
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// Waits for the gateway record (the launcher starts or adopts one).
    pub fn gateway_record(&self) -> Value {
        crate::support::wait_for_record(&self.home, 0, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no gateway record; launcher stderr:\n{}", self.stderr()))
    }

    /// SIGTERM and wait for exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        unsafe_free_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "launcher did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        crate::support::terminate(&mut self.child);
        stop_gateway_of(&self.home);
    }
}

/// Stops the gateway recorded in `home`, if one still runs from that home: a gateway the
/// launcher adopted (or one left by a launcher that was killed) outlives the launcher by
/// design, but must not outlive the test and its deleted home.
pub fn stop_gateway_of(home: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(home.join(".picoclaw.pid")) else { return };
    let Ok(record) = serde_json::from_str::<Value>(&text) else { return };
    let Some(pid) = record["pid"].as_u64().and_then(|p| u32::try_from(p).ok()) else { return };
    let marker = format!("PICOCLAW_HOME={}", home.display());
    let of_this_home = std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        .unwrap_or(false);
    if !of_this_home {
        return;
    }
    unsafe_free_kill(pid, "TERM");
    if !eventually(Duration::from_secs(10), || !alive(u64::from(pid))) {
        unsafe_free_kill(pid, "KILL");
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }

    /// The `name=value` part of the session cookie this answer sets.
    pub fn cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| {
                v.starts_with("picoclaw_launcher_session=") && !v.starts_with("picoclaw_launcher_session=;")
            })
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
    }

    pub fn set_cookie(&self) -> String {
        self.header("set-cookie")
    }
}

/// A client that does not follow redirects and never uses a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap()
}

/// Sends a request with an optional cookie, extra headers and JSON/form body.
pub async fn send(
    method: &str,
    url: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Body<'_>>,
) -> Answer {
    let mut req = client().request(method.parse().unwrap(), url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    match body {
        Some(Body::Json(v)) => req = req.header("content-type", "application/json").body(v.to_string()),
        Some(Body::Form(f)) => {
            req = req.header("content-type", "application/x-www-form-urlencoded").body(f.to_owned())
        }
        None => {}
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    Answer { status, headers, body }
}

/// A request body.
pub enum Body<'a> {
    Json(Value),
    Form(&'a str),
}

pub async fn get(url: &str, cookie: Option<&str>) -> Answer {
    send("GET", url, cookie, &[], None).await
}

/// `POST url` with JSON and a same-origin `Origin` header, as the page sends it.
pub async fn post_json(l: &Launcher, path: &str, cookie: Option<&str>, body: Value) -> Answer {
    let origin = format!("http://{}", l.authority());
    send("POST", &l.at(path), cookie, &[("origin", &origin)], Some(Body::Json(body))).await
}

/// Logs in with JSON; returns the answer.
pub async fn login(l: &Launcher, token: &str) -> Answer {
    post_json(l, "/login", None, json!({ "token": token })).await
}

/// Logs in and returns the cookie, panicking on failure.
pub async fn session(l: &Launcher, token: &str) -> String {
    let a = login(l, token).await;
    assert_eq!(a.status, 200, "login failed: {}", a.body);
    a.cookie().expect("session cookie")
}

/// Mode bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Whether a process is alive (signal 0 through `kill -0`).
pub fn alive(pid: u64) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// Waits until `f` is true.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}
