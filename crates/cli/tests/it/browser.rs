//! The dashboard in a real browser: headless Chromium driven through chromedriver
//! (WebDriver over plain HTTP on loopback). Logs in with a token, logs in via `?token=`
//! (and checks the URL no longer has it), chats through the proxy, stops and starts the
//! gateway, logs out. Screenshots go to `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`; `scripts/test` installs them. Without
//! them this test fails (it never passes silently).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::launcher_support::{self, Launcher, home, start};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

pub(crate) fn require(names: &[&str], package: &str) -> PathBuf {
    find_binary(names).unwrap_or_else(|| {
        panic!(
            "{} not found on PATH: the browser test needs Debian's `{package}`. Run scripts/test, which installs \
             chromium and chromium-driver when they are missing (or: apt-get install chromium chromium-driver).",
            names[0]
        )
    })
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver process on a free loopback port.
pub(crate) struct Driver {
    child: Child,
    base: String,
}

impl Driver {
    pub(crate) fn start(path: &Path, log: &Path) -> Driver {
        let mut child = Command::new(path)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').trim().to_owned());
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(20)).expect("chromedriver did not report its port");
        Driver { child, base: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal WebDriver client: only the commands this test uses.
pub(crate) struct Browser {
    http: reqwest::Client,
    session: String,
}

impl Browser {
    pub(crate) async fn open(driver: &Driver, chromium: &Path, profile: &Path) -> Browser {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            // Caddy's own local CA on loopback (proxy.rs, HTTPS); nothing else uses TLS.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--no-proxy-server", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let resp: Value = http
            .post(format!("{}/session", driver.base))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .unwrap();
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver could not start chromium: {resp}"))
            .to_owned();
        Browser { http, session: format!("{}/session/{id}", driver.base) }
    }

    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        } else if method == "POST" {
            req = req.json(&json!({}));
        }
        let resp: Value = req.send().await.expect("webdriver call").json().await.unwrap_or(Value::Null);
        resp["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub(crate) async fn url(&self) -> String {
        self.call("GET", "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    pub(crate) async fn find(&self, css: &str) -> Option<String> {
        let v = self.call("POST", "/element", Some(json!({ "using": "css selector", "value": css }))).await;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    pub(crate) async fn texts(&self, css: &str) -> Vec<String> {
        let v = self.call("POST", "/elements", Some(json!({ "using": "css selector", "value": css }))).await;
        let mut out = Vec::new();
        for el in v.as_array().cloned().unwrap_or_default() {
            if let Some(id) = el[ELEMENT].as_str() {
                out.push(
                    self.call("GET", &format!("/element/{id}/text"), None)
                        .await
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                );
            }
        }
        out
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.texts(css).await.into_iter().next().unwrap_or_default()
    }

    pub(crate) async fn click(&self, css: &str) {
        let id = self.find(css).await.unwrap_or_else(|| panic!("no element {css}"));
        // Centre it first, so the sticky header never covers it.
        let script =
            json!({ "script": "arguments[0].scrollIntoView({block: 'center'});", "args": [{ ELEMENT: id }] });
        self.call("POST", "/execute/sync", Some(script)).await;
        let v = self.call("POST", &format!("/element/{id}/click"), None).await;
        assert!(v.is_null(), "click {css}: {v}");
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await.unwrap_or_else(|| panic!("no element {css}"));
        self.call("POST", &format!("/element/{id}/clear"), None).await;
        let v = self.call("POST", &format!("/element/{id}/value"), Some(json!({ "text": text }))).await;
        assert!(v.is_null(), "type into {css}: {v}");
    }

    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call("GET", "/screenshot", None).await;
        let png = base64_decode(b64.as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = screenshots_dir().join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", Some(json!({ "width": width, "height": height }))).await;
    }

    /// Waits until the text of `css` satisfies `ok`.
    pub(crate) async fn wait_text(
        &self,
        l: &Launcher,
        css: &str,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let texts = self.texts(css).await;
            if let Some(t) = texts.iter().find(|t| ok(t)) {
                return t.clone();
            }
            if Instant::now() > deadline {
                let body = self.text("body").await;
                panic!(
                    "timed out waiting for {css} to show {what}; it shows {texts:?}\npage:\n{body}\nlauncher stderr:\n{}",
                    l.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn wait_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = self.url().await;
            if ok(&url) {
                return url;
            }
            assert!(Instant::now() < deadline, "timed out waiting for the URL to be {what}; it is {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_in_headless_chromium() {
    let chromium = require(&["chromium", "chromium-browser"], "chromium");
    let chromedriver = require(&["chromedriver"], "chromium-driver");
    let home = home();
    let l = start(&home, &[]);
    l.gateway_record();
    let token = l.token();
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(&chromedriver, &home.file("chromedriver.log"));
    let b = Browser::open(&driver, &chromium, profile.path()).await;
    let base = l.url.trim_end_matches('/').to_owned();

    // Not logged in: the dashboard sends us to the login page.
    b.goto(&l.at("/")).await;
    b.wait_url("the login page", |u| u.ends_with("/login")).await;
    b.wait_text(&l, "#login-btn", "the login button", |t| t == "Log in").await;
    b.screenshot("launcher-login.png").await;

    // A wrong token shows a clear message and keeps us there.
    b.type_into("#token", "definitely-not-the-token").await;
    b.click("#login-btn").await;
    b.wait_text(&l, "#login-msg", "a wrong-token message", |t| t.contains("not right")).await;
    assert!(b.url().await.ends_with("/login"));

    // The right token opens the dashboard with a running gateway.
    b.type_into("#token", &token).await;
    b.click("#login-btn").await;
    b.wait_url("the dashboard", |u| u == format!("{base}/")).await;
    b.wait_text(&l, "#gw-state", "Running", |t| t == "Running").await;
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;
    b.wait_text(&l, "#tokens", "the credentials table", |t| t.contains("pico token")).await;
    let page = b.text("body").await;
    assert!(!page.contains(&token) && !page.contains(launcher_support::PICO), "no token on the page");

    // Chat: the echo agent answers with the same text, streamed through the proxy.
    b.type_into("#chat-input", "hello from chromium").await;
    b.click("#chat-send").await;
    b.wait_text(&l, ".msg-bot", "the echo", |t| t == "hello from chromium").await;
    b.call("POST", "/execute/sync", Some(json!({ "script": "window.scrollTo(0, 0);", "args": [] }))).await;
    b.screenshot("launcher-dashboard.png").await;

    // Stop the gateway: the page says so and chat is unavailable. Start it: chat works again.
    b.click("#gw-stop").await;
    b.wait_text(&l, "#gw-state", "Stopped", |t| t == "Stopped").await;
    b.wait_text(&l, "#chat-state", "the gateway is down", |t| t.contains("not running")).await;
    assert!(!home.file(".picoclaw.pid").exists());
    b.click("#gw-start").await;
    b.wait_text(&l, "#gw-state", "Running", |t| t == "Running").await;
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;
    b.type_into("#chat-input", "back again").await;
    b.click("#chat-send").await;
    b.wait_text(&l, ".msg-bot", "the echo after restart", |t| t == "back again").await;

    // On a phone-sized screen.
    b.resize(390, 844).await;
    b.call("POST", "/execute/sync", Some(json!({ "script": "window.scrollTo(0, 0);", "args": [] }))).await;
    b.screenshot("launcher-dashboard-phone.png").await;
    b.resize(1280, 1000).await;

    // Log out: back to the login page, and the dashboard is closed to us.
    b.click("#logout").await;
    b.wait_url("the login page", |u| u.ends_with("/login")).await;
    b.goto(&l.at("/")).await;
    b.wait_url("the login page again", |u| u.ends_with("/login")).await;

    // Log in through ?token=: the URL no longer holds the token.
    b.goto(&format!("{base}/?token={token}&tab=chat")).await;
    let url = b.wait_url("the dashboard", |u| u.starts_with(&format!("{base}/?"))).await;
    assert_eq!(url, format!("{base}/?tab=chat"));
    assert!(!url.contains(&token));
    b.wait_text(&l, "#gw-state", "Running", |t| t == "Running").await;
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;

    // First-run setup: replace the random token from the page; this session stays.
    let custom = "chosen-in-the-browser-0123456";
    b.wait_text(&l, "#setup-card h2", "the setup card", |t| t.contains("Set your own")).await;
    b.type_into("#setup-token", custom).await;
    b.type_into("#setup-confirm", custom).await;
    b.click("#setup-save").await;
    b.wait_text(&l, "#setup-msg", "saved", |t| t.starts_with("Saved")).await;
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(home.file("launcher-config.json")).unwrap()).unwrap();
    assert_eq!(config["launcher_token"], custom);
    b.type_into("#chat-input", "still here").await;
    b.click("#chat-send").await;
    b.wait_text(&l, ".msg-bot", "the echo after setup", |t| t == "still here").await;
    b.click("#logout").await;
    b.wait_url("the login page", |u| u.ends_with("/login")).await;
    b.type_into("#token", custom).await;
    b.click("#login-btn").await;
    b.wait_url("the dashboard", |u| u == format!("{base}/")).await;
    b.wait_text(&l, "#gw-state", "Running", |t| t == "Running").await;
    b.close().await;
}
