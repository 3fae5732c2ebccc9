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
use crate::support::TestHome;

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
            "goog:loggingPrefs": { "browser": "ALL" },
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

    /// Runs `script` (a function body) in the page and returns its value.
    async fn exec(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": [] }))).await
    }

    /// A Chrome DevTools command through chromedriver.
    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call("POST", "/goog/cdp/execute", Some(json!({ "cmd": cmd, "params": params }))).await
    }

    /// Emulates a screen of `width`×`height` CSS pixels (a phone when `mobile`).
    async fn screen(&self, width: u32, height: u32, mobile: bool) {
        let params = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile });
        self.cdp("Emulation.setDeviceMetricsOverride", params).await;
        let inner = self.exec("return [window.innerWidth, window.innerHeight];").await;
        assert_eq!(inner, json!([width, height]), "the emulated screen");
    }

    /// The browser console since the last call.
    async fn console(&self) -> Vec<String> {
        let v = self.call("POST", "/se/log", Some(json!({ "type": "browser" }))).await;
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                format!("{} {}", e["level"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or(""))
            })
            .collect()
    }

    /// Waits until `script` returns true.
    async fn wait_js(&self, l: &Launcher, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.exec(script).await != Value::Bool(true) {
            if Instant::now() > deadline {
                let body = self.text("body").await;
                let states = self.exec("return window.__states || null;").await;
                panic!(
                    "timed out waiting for {what}\npage:\n{body}\nchat states seen: {states}\nlauncher stderr:\n{}",
                    l.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What a person would notice is wrong with the layout: anything reaching outside the
    /// screen sideways (other than inside a box that scrolls sideways), a button whose
    /// label wraps onto a second line. Empty when all is well.
    async fn layout_problems(&self) -> Vec<String> {
        let v = self.exec(LAYOUT_CHECK).await;
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| p.as_str().unwrap_or("?").to_owned())
            .collect()
    }

    async fn assert_layout(&self, what: &str) {
        let problems = self.layout_problems().await;
        assert!(problems.is_empty(), "layout of {what}:\n{}", problems.join("\n"));
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

/// The layout facts, checked in the page (see `Browser::layout_problems`).
const LAYOUT_CHECK: &str = r##"
const W = window.innerWidth;
const problems = [];
const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");
if (document.documentElement.scrollWidth > W) problems.push("the page scrolls sideways: " + document.documentElement.scrollWidth + " > " + W);
const scrollsSideways = (el) => {
  for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
    const ox = getComputedStyle(a).overflowX;
    if (ox === "auto" || ox === "scroll") { const r = a.getBoundingClientRect(); return r.left >= -1 && r.right <= W + 1; }
  }
  return false;
};
for (const el of document.querySelectorAll("body *")) {
  if (!el.getClientRects().length || el.closest(".offscreen")) continue;
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if ((r.right > W + 1 || r.left < -1) && !scrollsSideways(el)) problems.push(name(el) + " reaches outside the screen: " + Math.round(r.left) + ".." + Math.round(r.right) + " of " + W);
}
for (const b of document.querySelectorAll("button")) {
  if (!b.getClientRects().length || !b.textContent.trim()) continue;
  const cs = getComputedStyle(b);
  const line = parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.5;
  const range = document.createRange();
  range.selectNodeContents(b);
  const lines = new Set(Array.from(range.getClientRects()).filter((x) => x.width > 0).map((x) => Math.round(x.top)));
  const h = range.getBoundingClientRect().height;
  if (lines.size > 1 || h > line * 1.6) problems.push("button " + JSON.stringify(b.textContent.trim()) + " wraps: " + lines.size + " lines, " + Math.round(h) + "px high");
  const r = b.getBoundingClientRect();
  if (!scrollsSideways(b) && r.right > W + 1) problems.push("button " + JSON.stringify(b.textContent.trim()) + " is cut off");
}
return problems;
"##;

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
    b.wait_text(&l, "#gw-badge", "Running", |t| t.contains("Running")).await;
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;
    b.click("[data-view=tokens]").await;
    b.wait_text(&l, "#tokens", "the credentials table", |t| t.contains("pico token")).await;
    let page = b.text("body").await;
    assert!(!page.contains(&token) && !page.contains(launcher_support::PICO), "no token on the page");
    b.click("[data-view=chat]").await;

    // Chat: the echo agent answers with the same text, streamed through the proxy.
    b.type_into("#chat-input", "hello from chromium").await;
    b.click("#chat-send").await;
    b.wait_text(&l, ".msg-bot", "the echo", |t| t == "hello from chromium").await;
    b.call("POST", "/execute/sync", Some(json!({ "script": "window.scrollTo(0, 0);", "args": [] }))).await;
    b.screenshot("launcher-dashboard.png").await;

    // Stop the gateway: the page says so and chat is unavailable. Start it: chat works again.
    b.click("[data-view=gateway]").await;
    b.click("#gw-stop").await;
    b.wait_text(&l, "#gw-state", "Stopped", |t| t == "Stopped").await;
    b.click("[data-view=chat]").await;
    b.wait_text(&l, "#chat-state", "the gateway is down", |t| t.contains("not running")).await;
    assert!(!home.file(".picoclaw.pid").exists());
    b.click("[data-view=gateway]").await;
    b.click("#gw-start").await;
    b.wait_text(&l, "#gw-state", "Running", |t| t == "Running").await;
    b.click("[data-view=chat]").await;
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
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;

    // First-run setup: replace the random token from the page; this session stays.
    let custom = "chosen-in-the-browser-0123456";
    b.wait_text(&l, "#setup-hint", "the setup hint", |t| t.contains("generated token")).await;
    b.click("#setup-open").await;
    b.wait_text(&l, "#setup-card h2", "the setup card", |t| t.contains("Set your own")).await;
    b.type_into("#setup-token", custom).await;
    b.type_into("#setup-confirm", custom).await;
    b.click("#setup-save").await;
    b.wait_text(&l, "#setup-msg", "saved", |t| t.starts_with("Saved")).await;
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(home.file("launcher-config.json")).unwrap()).unwrap();
    assert_eq!(config["launcher_token"], custom);
    b.click("[data-view=chat]").await;
    b.type_into("#chat-input", "still here").await;
    b.click("#chat-send").await;
    b.wait_text(&l, ".msg-bot", "the echo after setup", |t| t == "still here").await;
    b.click("#logout").await;
    b.wait_url("the login page", |u| u.ends_with("/login")).await;
    b.type_into("#token", custom).await;
    b.click("#login-btn").await;
    b.wait_url("the dashboard", |u| u == format!("{base}/")).await;
    b.wait_text(&l, "#gw-badge", "Running", |t| t.contains("Running")).await;
    b.close().await;
}

/// The answer the fake model streams, a few characters per chunk.
const MARKDOWN: &str = "Here is **bold** and `code`:\n\n```rust\nfn main() {}\n```\n\n- one\n- two\n\nSee [the docs](https://example.com/docs).";

/// An answer trying to run script in the page.
const HOSTILE: &str = "<img src=x onerror=\"window.pwned=1\"> <script>window.pwned=2</script> [x](javascript:window.pwned=3) [y](data:text/html,hi)";

fn chunks(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Counts bubbles, and records every length the newest answer had and every connection
/// state shown, from now on.
const RECORDER: &str = r#"
window.__lens = []; window.__states = [];
const log = document.getElementById("messages");
new MutationObserver(() => {
  const bots = log.querySelectorAll(".msg-bot");
  if (bots.length) window.__lens.push(bots[bots.length - 1].textContent.length);
}).observe(log, { childList: true, subtree: true, characterData: true });
const state = document.getElementById("chat-state");
new MutationObserver(() => window.__states.push(state.textContent)).observe(state, { childList: true, subtree: true, characterData: true });
return true;
"#;

const SCROLLED_TO_NEWEST: &str = r#"
const m = document.getElementById("messages");
return m.scrollHeight > m.clientHeight && m.scrollTop + m.clientHeight >= m.scrollHeight - 2;
"#;

/// Words of the tokens table broken across two lines anywhere but after `-` or `/` (e.g. a
/// source cut mid-word).
const BROKEN_WORDS: &str = r##"
const broken = [];
for (const td of document.querySelectorAll("#tokens td, #named td")) {
  if (!td.getClientRects().length) continue;
  const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    // Pieces between the places a line may break: spaces, and after `-` or `/`.
    const re = /[^\s\/-]+[\/-]?/g;
    let m;
    while ((m = re.exec(node.data)) !== null) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set(Array.from(range.getClientRects()).filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      if (tops.size > 1) broken.push(m[0]);
    }
  }
}
return broken;
"##;

/// Sets the composer's text (newlines included) and sends it.
async fn say(b: &Browser, text: &str) {
    let script = format!(
        "const i = document.getElementById('chat-input'); i.value = {}; return true;",
        serde_json::to_string(text).unwrap()
    );
    b.exec(&script).await;
    b.click("#chat-send").await;
}

async fn answers_done(b: &Browser, l: &Launcher, count: usize) {
    let script = format!(
        "const bots = document.querySelectorAll('#messages .msg-bot'); \
         return bots.length >= {count} && !document.querySelector('#messages .streaming') \
         && document.getElementById('typing').classList.contains('hidden');"
    );
    b.wait_js(l, &format!("{count} finished answers"), &script).await;
}

/// Issue 19 items 3, 5, 10 and 12: a streamed Markdown answer rendered as it arrives and
/// safely, code copy, the chat list from the history API, reconnecting, the layout on a
/// desktop and a 390 px phone (with screenshots of each screen), and a logout that leaves
/// no 401 in the console.
#[tokio::test(flavor = "multi_thread")]
async fn chat_markdown_history_reconnect_and_layout_in_headless_chromium() {
    use crate::fake_provider::{FakeProvider, Reply};
    let chromium = require(&["chromium", "chromium-browser"], "chromium");
    let chromedriver = require(&["chromedriver"], "chromium-driver");
    let fake = FakeProvider::start(Reply::Stream {
        deltas: chunks(MARKDOWN, 6),
        gap: Duration::from_millis(60),
        done: true,
    });
    let home = crate::support::TestHome::new();
    home.write_config(&json!({
        "gateway": { "host": "127.0.0.1", "port": 0 },
        "channels": { "pico": { "enabled": true } },
        "model_list": [{ "model_name": "test-model", "model": "gpt-test", "api_base": fake.base }],
        "agents": { "defaults": { "model": "test-model" } }
    }));
    home.write_security(&format!(
        "channels:\n  pico:\n    token: \"{}\"\nmodel_list:\n  test-model:\n    api_keys: [\"sk-test-browser-key-0123456789\"]\n",
        launcher_support::PICO
    ));
    let made = home.run(&["token", "create", "--name", "phone", "--scope", "chat"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let l = start(&home, &[]);
    l.gateway_record();
    let token = l.token();
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(&chromedriver, &home.file("chromedriver.log"));
    let b = Browser::open(&driver, &chromium, profile.path()).await;
    let base = l.url.trim_end_matches('/').to_owned();

    // Login, both sizes.
    b.goto(&l.at("/login")).await;
    b.wait_text(&l, "#login-btn", "the login button", |t| t == "Log in").await;
    b.screen(1280, 800, false).await;
    b.assert_layout("the login page").await;
    b.screenshot("login-desktop.png").await;
    b.screen(390, 844, true).await;
    b.assert_layout("the login page on a phone").await;
    b.screenshot("login-phone.png").await;

    // The dashboard opens on the chat, with the composer on the first screen.
    b.screen(1280, 800, false).await;
    b.goto(&format!("{base}/?token={token}")).await;
    b.wait_url("the dashboard", |u| u == format!("{base}/")).await;
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;
    let composer = "const r = document.getElementById('chat-form').getBoundingClientRect(); return r.bottom <= window.innerHeight && r.top > 0;";
    b.wait_js(&l, "the composer on the first screen", composer).await;
    b.assert_layout("the dashboard").await;
    b.screenshot("dashboard-desktop.png").await;
    b.screen(390, 844, true).await;
    b.wait_js(&l, "the composer on the first phone screen", composer).await;
    b.assert_layout("the dashboard on a phone").await;
    b.screenshot("dashboard-phone.png").await;
    b.screen(1280, 800, false).await;

    // A streamed Markdown answer renders as it arrives.
    assert_eq!(b.exec(RECORDER).await, Value::Bool(true));
    say(&b, "Show me some **markdown**").await;
    answers_done(&b, &l, 1).await;
    let lens: Vec<u64> =
        b.exec("return window.__lens;").await.as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    let mut distinct = lens.clone();
    distinct.dedup();
    assert!(distinct.len() >= 4, "the answer grew on the page as it streamed: {lens:?}");
    let rendered = b
        .exec(
            "const a = document.querySelector('#messages .msg-bot'); const link = a.querySelector('a'); return {
               strong: a.querySelector('strong') && a.querySelector('strong').textContent,
               code: a.querySelector('p code') && a.querySelector('p code').textContent,
               block: a.querySelector('.code-block pre') && a.querySelector('.code-block pre').textContent,
               lang: a.querySelector('.code-lang') && a.querySelector('.code-lang').textContent,
               items: a.querySelectorAll('ul li').length,
               href: link && link.href, target: link && link.target, rel: link && link.rel,
               raw: a.textContent.includes('**') || a.textContent.includes('```') };",
        )
        .await;
    assert_eq!(
        rendered,
        json!({ "strong": "bold", "code": "code", "block": "fn main() {}", "lang": "rust", "items": 2,
                "href": "https://example.com/docs", "target": "_blank", "rel": "noopener noreferrer", "raw": false })
    );
    let me = b.text(".msg-me").await;
    assert_eq!(me, "Show me some **markdown**", "the user's own text is shown as typed");
    b.screenshot("chat-markdown-desktop.png").await;

    // Code blocks have a working Copy button.
    b.click("#messages .code-block .copy").await;
    b.wait_text(&l, "#messages .code-block .copy", "Copied", |t| t == "Copied").await;

    // A hostile answer stays text: no element, no script, no javascript: link.
    fake.then(Reply::Stream { deltas: chunks(HOSTILE, 10), gap: Duration::from_millis(20), done: true });
    say(&b, "be hostile").await;
    answers_done(&b, &l, 2).await;
    let hostile = b
        .exec(
            "const bots = document.querySelectorAll('#messages .msg-bot'); const a = bots[bots.length - 1]; return {
               elements: document.querySelectorAll('#messages img, #messages script, #messages iframe').length,
               links: a.querySelectorAll('a').length,
               pwned: window.pwned === undefined ? null : window.pwned,
               text: a.textContent };",
        )
        .await;
    assert_eq!(hostile["elements"], 0, "{hostile}");
    assert_eq!(hostile["links"], 0, "{hostile}");
    assert_eq!(hostile["pwned"], Value::Null, "{hostile}");
    assert_eq!(hostile["text"], HOSTILE, "shown exactly as written");

    // More answers than fit: the log follows the newest one.
    for n in 0..3 {
        say(&b, &format!("more {n}")).await;
        answers_done(&b, &l, 3 + n).await;
    }
    b.wait_js(&l, "the chat scrolled to the newest message", SCROLLED_TO_NEWEST).await;
    let order = b
        .exec("return Array.from(document.querySelectorAll('#messages .msg-bubble')).map((m) => m.classList.contains('msg-me') ? 'me' : 'bot');")
        .await;
    assert_eq!(
        order,
        json!(["me", "bot", "me", "bot", "me", "bot", "me", "bot", "me", "bot"]),
        "each message once, in order"
    );
    b.assert_layout("the chat").await;
    b.screenshot("chat-desktop.png").await;
    b.screen(390, 844, true).await;
    b.wait_js(&l, "the chat scrolled to the newest message on a phone", SCROLLED_TO_NEWEST).await;
    b.assert_layout("the chat on a phone").await;
    b.screenshot("chat-phone.png").await;
    b.screen(1280, 800, false).await;

    // The chat list: titled by the first message; New chat; switching back loads the
    // history from the gateway's history API.
    b.wait_text(&l, "#session-list .session", "the chat's title", |t| t == "Show me some **markdown**").await;
    b.click("#new-chat").await;
    b.wait_js(
        &l,
        "an empty new chat",
        "return document.querySelectorAll('#messages .msg-bubble').length === 0;",
    )
    .await;
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;
    // This one comes from a reasoning model: its thought is a bubble of its own, apart from
    // the answer.
    fake.then(Reply::Reasoning {
        thoughts: ["Let me ", "think."].map(String::from).to_vec(),
        deltas: ["The answer ", "is *42*."].map(String::from).to_vec(),
    });
    say(&b, "second chat").await;
    answers_done(&b, &l, 1).await;
    let reasoning = b
        .exec(
            "const t = document.querySelector('#messages .msg-thought'); const a = document.querySelector('#messages .msg-bot');
             return [t && t.textContent, a.textContent, a.querySelector('em') && a.querySelector('em').textContent];",
        )
        .await;
    assert_eq!(reasoning, json!(["Let me think.", "The answer is 42.", "42"]));
    b.wait_text(&l, "#session-list .session", "the second chat listed", |t| t == "second chat").await;
    let titles = b.texts("#session-list .session").await;
    assert_eq!(titles.first().map(String::as_str), Some("second chat"), "newest first: {titles:?}");
    // Clicked in the page: the list is re-rendered whenever an answer ends.
    let click = "const s = Array.from(document.querySelectorAll('#session-list .session')).find((x) => x.textContent === 'Show me some **markdown**'); s.click(); return true;";
    assert_eq!(b.exec(click).await, Value::Bool(true));
    b.wait_js(
        &l,
        "the first chat's history",
        "return document.querySelectorAll('#messages .msg-bot').length === 5 \
         && document.querySelector('#messages .msg-bot .code-block') !== null \
         && document.querySelector('#messages .msg-me').textContent === 'Show me some **markdown**';",
    )
    .await;

    // A reload shows the current chat's history again.
    b.goto(&format!("{base}/")).await;
    b.wait_js(
        &l,
        "the history after a reload",
        "return document.querySelectorAll('#messages .msg-bot').length === 5;",
    )
    .await;
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;

    // The gateway restarts: the chat shows it is reconnecting, then is connected again.
    assert_eq!(b.exec(RECORDER).await, Value::Bool(true));
    let cookie = launcher_support::session(&l, &token).await;
    let a = launcher_support::post_json(&l, "/api/gateway/restart", Some(&cookie), json!({})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    b.wait_js(
        &l,
        "a reconnecting state, then connected",
        "return window.__states.some((s) => /reconnect/i.test(s)) && document.getElementById('chat-state').textContent === 'Connected';",
    )
    .await;
    say(&b, "after the restart").await;
    answers_done(&b, &l, 6).await;
    assert_eq!(
        b.exec("return document.querySelectorAll('#messages .msg-bot').length;").await,
        json!(6),
        "no answer shown twice after the reconnect"
    );

    // The gateway view, both sizes.
    b.click("[data-view=gateway]").await;
    b.wait_text(&l, "#gw-state", "Running", |t| t == "Running").await;
    b.assert_layout("the gateway view").await;
    b.screen(390, 844, true).await;
    b.assert_layout("the gateway view on a phone").await;
    b.screen(1280, 800, false).await;

    // Tokens: a table on the desktop, cards on the phone; Rotate on one line and on screen.
    b.click("[data-view=tokens]").await;
    b.wait_text(&l, "#tokens", "the credentials table", |t| t.contains("pico token")).await;
    b.wait_text(&l, "#named", "the named token", |t| t.contains("phone")).await;
    b.assert_layout("the tokens").await;
    let named = b
        .exec(
            "const row = Array.from(document.querySelectorAll('#tokens tr')).find((r) => r.textContent.includes('named tokens'));
             return row.querySelector('[data-label=Source]').textContent;",
        )
        .await;
    assert_eq!(named, "0 admin, 1 chat, 0 read", "the panel counts named tokens");
    assert_eq!(b.exec(BROKEN_WORDS).await, json!([]), "words cut in two in the tokens table");
    b.screenshot("tokens-desktop.png").await;
    b.screen(390, 844, true).await;
    b.assert_layout("the tokens on a phone").await;
    assert_eq!(b.exec(BROKEN_WORDS).await, json!([]), "words cut in two in the tokens cards");
    let rotate = "const b = Array.from(document.querySelectorAll('#tokens button')).find((x) => x.textContent === 'Rotate');
                  const r = b.getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth;";
    assert_eq!(b.exec(rotate).await, Value::Bool(true), "Rotate is on the phone's screen");
    b.screenshot("tokens-phone.png").await;
    b.screen(1280, 800, false).await;

    // Log out with the dashboard open in a second tab: both land on the login page saying
    // so, and neither asked the launcher after the session ended (no 401 in the console);
    // no CSP violation happened at any point.
    let first = b.call("GET", "/window", None).await;
    let second = b.call("POST", "/window/new", Some(json!({ "type": "tab" }))).await;
    b.call("POST", "/window", Some(json!({ "handle": second["handle"] }))).await;
    b.goto(&format!("{base}/")).await;
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;
    b.call("POST", "/window", Some(json!({ "handle": first }))).await;
    let so_far = b.console().await;
    let broken: Vec<&String> =
        so_far.iter().filter(|m| m.contains("Content Security Policy") || m.contains("Uncaught")).collect();
    assert!(broken.is_empty(), "script errors or CSP violations on the dashboard: {broken:?}");
    b.click("#logout").await;
    b.wait_url("the login page", |u| u.ends_with("/login")).await;
    b.wait_text(&l, "#login-notice", "the logged-out notice", |t| t == "You are logged out.").await;
    b.call("POST", "/window", Some(json!({ "handle": second["handle"] }))).await;
    b.wait_url("the login page in the other tab", |u| u.ends_with("/login")).await;
    b.wait_text(&l, "#login-notice", "the logged-out notice in the other tab", |t| {
        t == "You are logged out."
    })
    .await;
    // The 401 of an earlier request would have been logged by now: wait for one more
    // poll interval of the old page's timers to have passed, by polling the console.
    let mut console = Vec::new();
    for _ in 0..40 {
        console.extend(b.console().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bad: Vec<&String> =
        // Chromium logs a refused request as "… status of 401 (Unauthorized)"; a bare "401"
        // would also match a port such as 127.0.0.1:40173.
        console.iter().filter(|m| m.contains("status of 401") || m.contains("Unauthorized")).collect();
    assert!(bad.is_empty(), "401s in the console after logout: {bad:?}");
    let all = b.console().await;
    assert!(!all.iter().any(|m| m.contains("Content Security Policy")), "{all:?}");
    b.close().await;
}

/// A headless Chromium (its driver and profile kept alive by the caller) logged in to
/// `l`'s dashboard with the printed token, on a `screen` of that size when given, with the
/// chat connected.
async fn logged_in(
    home: &TestHome,
    l: &Launcher,
    screen: Option<(u32, u32)>,
) -> (Driver, tempfile::TempDir, Browser) {
    let chromium = require(&["chromium", "chromium-browser"], "chromium");
    let chromedriver = require(&["chromedriver"], "chromium-driver");
    l.gateway_record();
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(&chromedriver, &home.file("chromedriver.log"));
    let b = Browser::open(&driver, &chromium, profile.path()).await;
    if let Some((width, height)) = screen {
        b.screen(width, height, false).await;
    }
    b.goto(&l.at("/login")).await;
    b.type_into("#token", &l.token()).await;
    b.click("#login-btn").await;
    b.wait_text(l, "#chat-state", "Connected", |t| t == "Connected").await;
    (driver, profile, b)
}

/// Issue 17 (files of answers) in the dashboard: an image attached in the composer goes out
/// as upstream's web UI sends it (an inline data URL in `media`), the echo agent answers
/// with it as an attachment, and the page shows it fetched from `/pico/media/<id>` through
/// the launcher (relative to the page, so under a base path too).
#[tokio::test(flavor = "multi_thread")]
async fn an_image_attached_in_the_dashboard_comes_back_from_pico_media() {
    let home = home();
    let l = start(&home, &[]);
    let (_driver, _profile, b) = logged_in(&home, &l, None).await;

    // A 1×1 PNG, chosen in the file input as a person would (WebDriver types its path).
    let png = home.file("dot.png");
    std::fs::write(&png, base64_decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")).unwrap();
    let input = b.find("#chat-image").await.expect("the image input");
    let v = b
        .call("POST", &format!("/element/{input}/value"), Some(json!({ "text": png.display().to_string() })))
        .await;
    assert!(v.is_null(), "choose the file: {v}");
    b.wait_text(&l, "#chat-files", "the chosen image", |t| t.contains("dot.png")).await;
    b.click("#chat-send").await;

    let loaded = "const img = document.querySelector('#messages .msg-bot .msg-files img'); \
                  return !!img && img.complete && img.naturalWidth === 1 \
                  && new URL(img.src).pathname.startsWith('/pico/media/');";
    b.wait_js(&l, "the answer's image, loaded from /pico/media", loaded).await;
    let mine = "const img = document.querySelector('#messages .msg-me .msg-files img'); \
                return !!img && img.src.startsWith('data:image/png;base64,');";
    b.wait_js(&l, "the sent image in the user's bubble", mine).await;
    assert!(b.text("#chat-files").await.is_empty(), "the composer is cleared");
    b.screenshot("chat-image-desktop.png").await;
    b.close().await;
}

/// Answers one HTTP request on a loopback port and hands back its head: where a page
/// navigates to, to see what it sent (`Referer`).
fn request_recorder() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                head.push_str(&line);
                line.clear();
            }
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            if head.starts_with("GET /landed") && tx.send(head).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// "Pair a device" as a person uses it: the dashboard makes a link and shows its QR code
/// (desktop and phone screenshots); the link opened in a browser exchanges the code once,
/// drops it from the address bar, shows the token, and sends no `Referer` onwards; opened
/// again, it is refused.
#[tokio::test]
async fn pairing_a_device_from_the_dashboard_in_headless_chromium() {
    let home = home();
    let l = start(&home, &[]);
    let (_driver, _profile, b) = logged_in(&home, &l, Some((1280, 800))).await;

    b.click("#nav .tab[data-view=pair]").await;
    b.wait_js(
        &l,
        "the gateway address in the form",
        "return /^http:\\/\\/127\\.0\\.0\\.1:\\d+$/.test(document.getElementById('pair-url').value);",
    )
    .await;
    b.wait_text(&l, "#pair-url-hint", "the loopback warning", |t| t.contains("loopback")).await;
    let name = b.find("#pair-name").await.expect("the name field");
    b.call("POST", &format!("/element/{name}/clear"), Some(json!({}))).await;
    b.type_into("#pair-name", "my-phone").await;
    b.click("#pair-create").await;
    let link = b.wait_text(&l, "#pair-link", "the link", |t| t.contains("/pair#code=")).await;
    let qr = "const i = document.getElementById('pair-qr'); return i.complete && i.naturalWidth >= 240 && i.src.startsWith('data:image/svg+xml');";
    b.wait_js(&l, "the QR code image", qr).await;
    b.assert_layout("the pairing view").await;
    let shown = "const r = document.getElementById('pair-result').getBoundingClientRect(); return r.top < window.innerHeight && r.bottom > 0;";
    b.wait_js(&l, "the new link scrolled into view", shown).await;
    // Screenshots never hold a secret: the text of the link is masked (the QR code's code
    // is spent below, before the test ends).
    let mask = |css: &str| {
        format!(
            "document.querySelector('{css}').textContent = '…/pair#code=(hidden in screenshots)'; return true;"
        )
    };
    let unmasked = link.clone();
    b.exec(&mask("#pair-link")).await;
    b.screenshot("pair-desktop.png").await;
    b.screen(390, 844, true).await;
    b.assert_layout("the pairing view on a phone").await;
    b.screenshot("pair-phone.png").await;
    let link = unmasked;

    // The device: a fresh page opens the link.
    let (recorder, heads) = request_recorder();
    b.goto(&link).await;
    b.wait_text(&l, "#status", "paired", |t| t.starts_with("Paired")).await;
    let url = b.url().await;
    assert!(!url.contains('#') && !url.contains("code"), "the code left the address bar: {url}");
    let token = b.text("#token").await;
    assert!(token.starts_with("pcl_"), "{token}");
    assert_eq!(b.text("#name").await, "my-phone");
    assert_eq!(b.text("#scope").await, "chat");
    b.assert_layout("the pairing page on a phone").await;
    b.exec("document.getElementById('token').textContent = 'pcl_… (hidden in screenshots)'; return true;")
        .await;
    b.screenshot("pair-device-phone.png").await;
    // Leaving the page sends no Referer (and so nothing of the page's address).
    b.exec(&format!("location.href = 'http://127.0.0.1:{recorder}/landed'; return true;")).await;
    let head = heads.recv_timeout(Duration::from_secs(30)).expect("the page navigated on");
    assert!(!head.to_ascii_lowercase().contains("referer"), "{head}");

    // Used: the same link again is refused, with a way out.
    b.goto(&link).await;
    b.wait_text(&l, "#status", "refused", |t| t.contains("already used")).await;
    let code = link.split_once("#code=").unwrap().1.to_owned();
    let logs = std::fs::read_dir(home.file("logs"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(!logs.contains(&code) && !logs.contains(&token), "no code or token in logs");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_time_login_link_lands_logged_in_and_leaves_no_code_in_the_address_bar() {
    let chromium = require(&["chromium", "chromium-browser"], "chromium");
    let chromedriver = require(&["chromedriver"], "chromium-driver");
    let home = home();
    let l = start(&home, &[]);
    l.gateway_record();
    let link = l.login_link();
    let code = link.rsplit_once("#code=").map(|(_, c)| c.to_owned()).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(&chromedriver, &home.file("chromedriver.log"));
    let b = Browser::open(&driver, &chromium, profile.path()).await;
    let base = l.url.trim_end_matches('/').to_owned();

    // The link opens the dashboard, logged in; the address bar holds no code.
    b.goto(&link).await;
    let url = b.wait_url("the dashboard", |u| u == format!("{base}/")).await;
    assert!(!url.contains(&code) && !url.contains('#'), "{url}");
    b.wait_text(&l, "#gw-badge", "Running", |t| t.contains("Running")).await;

    // Opened again while logged in: the dashboard, and the fragment is dropped there too.
    b.goto(&link).await;
    b.wait_text(&l, "#gw-badge", "Running", |t| t.contains("Running")).await;
    let url = b.wait_url("the dashboard without the fragment", |u| u == format!("{base}/")).await;
    assert!(!url.contains(&code), "{url}");

    // Logged out, the used link does not log in again: the login page says why.
    b.click("#logout").await;
    b.wait_url("the login page", |u| u.ends_with("/login")).await;
    b.goto(&link).await;
    b.wait_text(&l, "#login-msg", "the used-link message", |t| t.contains("no longer valid")).await;
    let url = b.url().await;
    assert!(url.ends_with("/login") && !url.contains(&code), "{url}");
    b.close().await;
}
