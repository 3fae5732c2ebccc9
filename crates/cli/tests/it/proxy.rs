//! Real reverse proxies in front of picoclaw (issue 18): the configurations printed by
//! `picoclaw proxy-config` are checked by `nginx -t` and `caddy validate` (Traefik's YAML
//! by a YAML parser: Debian has no Traefik), then Debian's nginx and Caddy are started
//! on loopback with the printed configuration and everything goes through them: login
//! under `/picoclaw/`, the dashboard in headless Chromium, chat over the proxied sockets
//! (the launcher's and the gateway's), and failed-login limits per real client address
//! (the proxy overwrites `X-Forwarded-For`; see [`FRONT_HOP`] for how two clients are told
//! apart on loopback).
//!
//! `scripts/test` installs nginx and caddy; without them these tests skip, unless
//! PICOCLAW_REQUIRE_TOOLS is set (then they fail).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::{Browser, Driver, require};
use crate::launcher_support::{self, Launcher, PICO, start_args};
use crate::support::{self, TestHome, ws};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }
}

/// True when `tool` is missing and the run does not require it.
fn skip_without(tool: &str) -> bool {
    let found =
        Command::new(tool).arg("-v").output().is_ok() || Command::new(tool).arg("version").output().is_ok();
    if found {
        return false;
    }
    assert!(
        std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(),
        "{tool} is required but not installed (scripts/test installs Debian's nginx and caddy)"
    );
    eprintln!("skipping: {tool} is not installed");
    true
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A home whose launcher (under `/picoclaw`) and gateway listen on fixed free ports and
/// trust the proxy on 127.0.0.1, as `proxy-config` says they must.
fn proxied_home() -> TestHome {
    let home = TestHome::new();
    home.write_config(&json!({
        "gateway": { "host": "127.0.0.1", "port": free_port(), "trusted_proxies": ["127.0.0.1/32"] },
        "channels": { "pico": { "enabled": true } }
    }));
    home.write_security(&format!("channels:\n  pico:\n    token: \"{PICO}\"\n"));
    support::write_private(
        &home.file("launcher-config.json"),
        &json!({ "port": free_port(), "base_path": "/picoclaw", "trusted_proxies": ["127.0.0.1/32"] })
            .to_string(),
    );
    home
}

/// `picoclaw proxy-config <kind> <args>`: the configuration (stdout) and the notes (stderr).
fn proxy_config(home: &TestHome, kind: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["proxy-config", kind];
    all.extend_from_slice(args);
    let out = home.run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "proxy-config {kind} {args:?} failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// nginx's main file around a generated `conf.d` file, everything inside `dir`.
fn nginx_main(dir: &Path, include: &Path) -> PathBuf {
    let d = dir.display();
    // As root, nginx would run its workers as `nobody`, who cannot enter a private temp dir.
    let user = if is_root() { "user root;\n" } else { "" };
    let text = format!(
        "{user}worker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         set_real_ip_from 127.0.0.0/8;\n  real_ip_header {FRONT_HOP};\n  include {};\n}}\n",
        include.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, text).unwrap();
    path
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn nginx_check(dir: &Path, conf: &str) -> std::process::Output {
    let site = dir.join("picoclaw.conf");
    std::fs::write(&site, conf).unwrap();
    let main = nginx_main(dir, &site);
    Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&main)
        .output()
        .expect("run nginx -t")
}

/// Caddy with its state (`HOME`, XDG dirs) inside `dir`.
fn caddy(dir: &Path) -> Command {
    let mut cmd = Command::new("caddy");
    cmd.env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .current_dir(dir);
    cmd
}

fn caddy_check(dir: &Path, conf: &str) -> std::process::Output {
    let file = dir.join("Caddyfile");
    std::fs::write(&file, conf).unwrap();
    caddy(dir)
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .output()
        .expect("run caddy")
}

/// A running proxy, stopped (and reaped) on drop.
struct Proxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    kind: Kind,
}

impl Proxy {
    fn start(kind: Kind, conf: &str, port: u16) -> Proxy {
        // The test's own global options: no admin endpoint (parallel tests would share
        // :2019) and no certificate automation on loopback.
        Proxy::start_with(kind, conf, port, "admin off\n\tauto_https off")
    }

    /// Caddy with `globals` as its global options (nginx ignores them).
    fn start_with(kind: Kind, conf: &str, port: u16, globals: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("proxy.stderr")).unwrap();
        let child = match kind {
            Kind::Nginx => {
                let site = dir.path().join("picoclaw.conf");
                std::fs::write(&site, conf).unwrap();
                let main = nginx_main(dir.path(), &site);
                Command::new("nginx")
                    .arg("-p")
                    .arg(dir.path())
                    // Also the log nginx opens before it reads the file (not /var/log).
                    .arg("-e")
                    .arg(dir.path().join("error.log"))
                    .arg("-c")
                    .arg(&main)
                    .args(["-g", "daemon off;"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start nginx")
            }
            Kind::Caddy => {
                let file = dir.path().join("Caddyfile");
                std::fs::write(&file, format!("{{\n\t{globals}\n}}\n\n{conf}")).unwrap();
                caddy(dir.path())
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&file)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start caddy")
            }
        };
        let mut proxy = Proxy { child, dir, port, kind };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("{} exited ({status}) before listening:\n{}", kind.name(), proxy.log());
            }
            assert!(Instant::now() < deadline, "{} did not listen on {port}:\n{}", kind.name(), proxy.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    fn log(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.path().join("proxy.stderr")).unwrap_or_default();
        text.push_str(&std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default());
        text
    }

    /// `http://127.0.0.1:PORT` (what the browser and clients open).
    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:PORT`.
    fn https_origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // nginx: TERM is a fast shutdown of the master and its workers; Caddy stops on it.
        support::terminate(&mut self.child);
    }
}

#[test]
fn printed_configs_pass_nginx_t_caddy_validate_and_traefik_yaml() {
    let home = proxied_home();
    let variants: [&[&str]; 4] = [
        &[],
        &["--gateway", "--public-url", "http://127.0.0.1:8080"],
        &["--gateway", "--base-path", "", "--public-url", "http://chat.example.org"],
        &["--gateway", "--base-path", "/apps/picoclaw", "--public-url", "https://chat.example.org"],
    ];
    let nginx = !skip_without("nginx");
    let caddy_ok = !skip_without("caddy");
    for args in variants {
        let dir = tempfile::tempdir().unwrap();
        let (conf, notes) = proxy_config(&home, "nginx", args);
        assert!(notes.contains("launcher.trusted_proxies = [\"127.0.0.1/32\"]"), "{notes}");
        assert!(conf.contains("proxy_set_header X-Forwarded-For $remote_addr;"), "{conf}");
        assert!(conf.contains("proxy_read_timeout 90s;"), "60 s read_timeout + 30 s:\n{conf}");
        if nginx {
            // The HTTPS variant names Let's Encrypt's paths: point them at a throwaway pair.
            let conf = if conf.contains("ssl_certificate ") {
                let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
                let made = Command::new("openssl")
                    .args([
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-days",
                        "1",
                        "-subj",
                        "/CN=chat.example.org",
                    ])
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&cert)
                    .output()
                    .is_ok_and(|o| o.status.success());
                if !made {
                    eprintln!("no openssl: the HTTPS nginx variant is checked by shape only");
                    continue;
                }
                conf.replace(
                    "/etc/letsencrypt/live/chat.example.org/fullchain.pem",
                    &cert.display().to_string(),
                )
                .replace("/etc/letsencrypt/live/chat.example.org/privkey.pem", &key.display().to_string())
            } else {
                conf
            };
            let out = nginx_check(dir.path(), &conf);
            assert!(
                out.status.success(),
                "nginx -t refused the config for {args:?}:\n{}\n{conf}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (conf, _) = proxy_config(&home, "caddy", args);
        assert!(
            conf.contains("header_up X-Forwarded-For {remote_host}") && conf.contains("flush_interval -1")
        );
        if caddy_ok {
            let out = caddy_check(dir.path(), &conf);
            assert!(
                out.status.success(),
                "caddy validate refused the config for {args:?}:\n{}\n{conf}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (conf, _) = proxy_config(&home, "traefik", args);
        check_traefik(&conf, args);
    }

    // What the user typed never becomes a directive.
    for bad in [
        &["nginx", "--public-url", "http://x;y"][..],
        &["nginx", "--public-url", "http://x/path"],
        &["caddy", "--public-url", "chat.example.org"],
        &["nginx", "--base-path", "/a;b"],
        &["caddy", "--base-path", "/a}b"],
    ] {
        let mut args = vec!["proxy-config"];
        args.extend_from_slice(bad);
        let out = home.run(&args);
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("expected"), "{bad:?}: {err}");
    }
    // Settings the configuration relies on but that are not made yet are pointed out.
    let (_, notes) = proxy_config(&home, "nginx", &["--gateway"]);
    assert!(!notes.contains("note:"), "this home has them all: {notes}");
    let bare = TestHome::new();
    bare.write_config(&json!({ "gateway": { "port": 18790 } }));
    let (_, notes) = proxy_config(&bare, "caddy", &["--gateway", "--base-path", "/picoclaw"]);
    for want in [
        "launcher.trusted_proxies does not list",
        "gateway.trusted_proxies does not list",
        "set it to \"/picoclaw\"",
    ] {
        assert!(notes.contains(want), "{want:?} missing from:\n{notes}");
    }

    // The idle timeouts follow the configured read timeout (environment included).
    let slow = proxied_home().env("PICOCLAW_CHANNELS_PICO_READ_TIMEOUT", "300");
    let (conf, _) = proxy_config(&slow, "nginx", &["--gateway"]);
    assert!(conf.contains("proxy_read_timeout 330s;") && !conf.contains("90s"), "{conf}");
    let (conf, _) = proxy_config(&slow, "traefik", &[]);
    assert!(conf.contains("readTimeout: 330s"), "{conf}");

    // A port picked at each start cannot be proxied to.
    let random = TestHome::new();
    random.write_config(&json!({ "gateway": { "port": 0 } }));
    let out = random.run(&["proxy-config", "nginx", "--gateway"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("gateway.port is 0"));
}

/// Traefik is not in Debian: its file is parsed as YAML (python3's yaml, which scripts/test
/// installs) and its structure checked.
fn check_traefik(conf: &str, args: &[&str]) {
    let out = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(conf.as_bytes())?;
            child.wait_with_output()
        });
    let Ok(out) = out.map_err(|e| e.to_string()).and_then(|o| {
        if o.status.success() { Ok(o) } else { Err(String::from_utf8_lossy(&o.stderr).into_owned()) }
    }) else {
        assert!(std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(), "python3 with yaml is required");
        eprintln!("skipping the Traefik YAML check: no python3 yaml");
        return;
    };
    let doc: Value = serde_json::from_slice(&out.stdout).expect("yaml as json");
    let http = &doc["http"];
    let dashboard = &http["routers"]["picoclaw-dashboard"];
    assert_eq!(dashboard["service"], "picoclaw-launcher", "{doc}");
    let servers = &http["services"]["picoclaw-launcher"]["loadBalancer"]["servers"];
    assert!(servers[0]["url"].as_str().is_some_and(|u| u.starts_with("http://127.0.0.1:")), "{doc}");
    if args.contains(&"--gateway") {
        let gw = &http["routers"]["picoclaw-gateway"];
        assert!(gw["rule"].as_str().is_some_and(|r| r.contains("/gateway/pico/ws`)")), "{doc}");
        let mw = gw["middlewares"][0].as_str().expect("middleware");
        assert_eq!(http["middlewares"][mw]["replacePath"]["path"], "/pico/ws");
        let api = &http["routers"]["picoclaw-gateway-api"];
        assert!(api["rule"].as_str().is_some_and(|r| r.contains("/gateway/v1/`)")), "{doc}");
        let mw = api["middlewares"][0].as_str().expect("middleware");
        let stripped = http["middlewares"][mw]["stripPrefix"]["prefixes"][0].as_str().expect("prefix");
        assert!(stripped.ends_with("/gateway") && !stripped.ends_with("/v1"), "{doc}");
        // Traefik tries the highest priority first (default: the rule's length): the
        // gateway's routers must win over the dashboard's prefix, which contains theirs.
        let rule_len = |r: &Value| r["rule"].as_str().map_or(0, str::len) as u64;
        for router in [gw, api] {
            assert!(
                router["priority"].as_u64().unwrap_or_else(|| rule_len(router)) > rule_len(dashboard),
                "{doc}"
            );
        }
    } else {
        assert!(http["routers"].get("picoclaw-gateway").is_none());
    }
    if args.iter().any(|a| a.starts_with("https://")) {
        assert!(dashboard["tls"].is_object(), "{doc}");
    }
}

/// The test's stand-in for a hop in front of the proxy (a CDN, a load balancer): nginx's
/// realip module, in the test's own main file (never in the printed one), takes the client
/// address from this header on loopback connections. The printed configuration then
/// forwards that address as it would a real peer's. Needed because every loopback address
/// is one client to picoclaw's failure limits (bounds issue), so two real clients on
/// loopback cannot be told apart by any proxy.
const FRONT_HOP: &str = "x-test-client-address";

/// Headers for a request from `client` (`None`: the test itself, on loopback; nginx only:
/// another address through [`FRONT_HOP`]) that carries a spoofed `X-Forwarded-For`.
fn as_client(client: Option<&str>, spoof: &str) -> Vec<(String, String)> {
    let mut headers = vec![("x-forwarded-for".to_owned(), spoof.to_owned())];
    if let Some(client) = client {
        headers.push((FRONT_HOP.to_owned(), client.to_owned()));
    }
    headers
}

async fn login_as(proxy: &Proxy, client: Option<&str>, token: &str, spoof: &str) -> u16 {
    let origin = proxy.origin();
    let mut headers = as_client(client, spoof);
    headers.push(("origin".to_owned(), origin.clone()));
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let body = launcher_support::Body::Json(json!({ "token": token }));
    launcher_support::send("POST", &format!("{origin}/picoclaw/login"), None, &refs, Some(body)).await.status
}

/// A WebSocket through the proxy; the HTTP status on rejection.
async fn socket_as(client: Option<&str>, url: &str, auth: &str, spoof: &str) -> Result<ws::Socket, u16> {
    let mut headers = as_client(client, spoof);
    headers.push(("authorization".to_owned(), auth.to_owned()));
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ws::connect(url, &refs).await.map(|(socket, _)| socket).map_err(|(status, _)| status.as_u16())
}

async fn echo(socket: &mut ws::Socket, text: &str) {
    ws::send(socket, json!({"type":"message.send","id":"p1","payload":{"content":text}})).await;
    let frames = ws::until(socket, "typing.stop").await;
    assert!(
        frames.iter().any(|f| f["type"] == "message.create" && f["payload"]["content"] == text),
        "no echo of {text:?}: {frames:?}"
    );
}

/// Everything through one proxy: login, the two sockets, per-client limits, Chromium.
async fn end_to_end(kind: Kind) {
    if skip_without(kind.name()) {
        return;
    }
    let home = proxied_home();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let (conf, _) = proxy_config(&home, kind.name(), &["--gateway", "--public-url", &public]);
    let proxy = Proxy::start(kind, &conf, port);
    let l = start_args(&home, &["launcher", "--console", "--no-browser"]);
    l.gateway_record();
    let token = l.token();
    let dash = format!("{public}/picoclaw");

    // Not logged in: the prefixed login page; the bare prefix goes to the directory.
    let a = launcher_support::get(&format!("{dash}/"), None).await;
    assert_eq!((a.status, a.header("location").as_str()), (303, "/picoclaw/login"), "{}", proxy.log());
    let a = launcher_support::get(&dash, None).await;
    assert_eq!(a.header("location"), "/picoclaw/");
    assert_eq!(launcher_support::get(&format!("{dash}/assets/app.js"), None).await.status, 200);

    // Login through the proxy: a cookie for the prefix; cross-site still refused (the
    // launcher checks Origin against the forwarded host).
    let a = launcher_support::send(
        "POST",
        &format!("{dash}/login"),
        None,
        &[("origin", &public)],
        Some(launcher_support::Body::Json(json!({ "token": token }))),
    )
    .await;
    assert_eq!(a.status, 200, "{}\n{}", a.body, proxy.log());
    assert!(a.set_cookie().contains("; Path=/picoclaw/;"), "{}", a.set_cookie());
    let cookie = a.cookie().expect("cookie");
    let a = launcher_support::send(
        "POST",
        &format!("{dash}/logout"),
        Some(&cookie),
        &[("origin", "http://evil.example")],
        None,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = launcher_support::get(&format!("{dash}/api/session"), Some(&cookie)).await;
    assert_eq!(a.status, 200, "{}", a.body);

    // Chat over the launcher's proxied socket, and a Pico client on the gateway's.
    let ws_dash = format!("ws://127.0.0.1:{port}/picoclaw/pico/ws?session_id=via-proxy");
    let (mut socket, _) = ws::connect(&ws_dash, &[("cookie", &cookie), ("origin", &public)])
        .await
        .unwrap_or_else(|(code, body)| panic!("dashboard socket refused: {code} {body}\n{}", proxy.log()));
    echo(&mut socket, "through the dashboard socket").await;
    let ws_gw = format!("ws://127.0.0.1:{port}/picoclaw/gateway/pico/ws?session_id=direct");
    let bearer = format!("Bearer {PICO}");
    let (mut direct, _) = ws::connect(&ws_gw, &[("authorization", &bearer)])
        .await
        .unwrap_or_else(|(code, body)| panic!("gateway socket refused: {code} {body}\n{}", proxy.log()));
    echo(&mut direct, "straight to the gateway").await;
    // The gateway's OpenAI-compatible API under the prefix, plain and streamed (SSE).
    let api = format!("{public}/picoclaw/gateway/v1");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let models = http.get(format!("{api}/models")).bearer_auth(PICO).send().await.unwrap();
    assert_eq!(models.status(), 200, "{}", proxy.log());
    for stream in [false, true] {
        let body = json!({ "model": "echo", "stream": stream, "messages": [{ "role": "user", "content": "api via proxy" }] });
        let resp =
            http.post(format!("{api}/chat/completions")).bearer_auth(PICO).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.contains("api via proxy"), "stream={stream}: {text}");
        assert_eq!(stream, text.contains("data: [DONE]"), "{text}");
    }

    // Failed logins are counted per real client, and a client cannot choose its address:
    // 10 wrong tokens from this (loopback) client, each with another spoofed
    // X-Forwarded-For, lock it out. A proxy that appended to the client's header instead
    // of overwriting it would make each spoofed value a new client (the proxy's own
    // loopback hop is trusted). The right token is 256 random bits and still works.
    let wrong = "wrong-token-0123456789";
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(login_as(&proxy, None, wrong, &format!("198.51.100.{i}")).await);
    }
    assert_eq!(statuses, [[401; 10].as_slice(), &[429, 429]].concat(), "{}", proxy.log());
    // The gateway's limit the same way, on its socket.
    let wrong_bearer = "Bearer wrong-pico-token-0123456789";
    let mut refused = Vec::new();
    for i in 0..40 {
        let code = socket_as(None, &ws_gw, wrong_bearer, &format!("198.51.100.{i}")).await.err();
        refused.push(code);
        if code == Some(429) {
            break;
        }
    }
    assert_eq!(refused.last(), Some(&Some(429)), "never rate limited: {refused:?}");
    assert!(
        refused.len() > 10 && refused[..refused.len() - 1].iter().all(|c| *c == Some(401)),
        "{refused:?}"
    );
    if kind == Kind::Nginx {
        // Two other clients behind the same proxy: one locked out, the other not.
        let limited = Some("203.0.113.2");
        let mut statuses = Vec::new();
        for _ in 0..11 {
            statuses.push(login_as(&proxy, limited, wrong, "x").await);
        }
        assert_eq!(statuses, [[401; 10].as_slice(), &[429]].concat());
        let free = Some("203.0.113.3");
        assert_eq!(login_as(&proxy, free, wrong, "203.0.113.2").await, 401);
        assert_eq!(login_as(&proxy, free, &token, "203.0.113.2").await, 200);
        assert_eq!(socket_as(free, &ws_gw, wrong_bearer, "x").await.err(), Some(401));
        let mut other = socket_as(free, &ws_gw, &bearer, "x").await.expect("another client gets in");
        echo(&mut other, "another client").await;
    }

    browser_through(&proxy, &l, &token).await;
}

/// The dashboard under `/picoclaw/` through the proxy in headless Chromium: login page,
/// login, gateway state, chat round trip over the proxied socket, `?token=` login, logout.
async fn browser_through(proxy: &Proxy, l: &Launcher, token: &str) {
    let chromium = require(&["chromium", "chromium-browser"], "chromium");
    let chromedriver = require(&["chromedriver"], "chromium-driver");
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(&chromedriver, &profile.path().join("chromedriver.log"));
    let b = Browser::open(&driver, &chromium, &profile.path().join("profile")).await;
    let dash = format!("{}/picoclaw", proxy.origin());

    b.goto(&format!("{dash}/")).await;
    b.wait_url("the prefixed login page", |u| u == format!("{dash}/login")).await;
    b.wait_text(l, "#login-btn", "the login button", |t| t == "Log in").await;
    b.type_into("#token", token).await;
    b.click("#login-btn").await;
    b.wait_url("the dashboard", |u| u == format!("{dash}/")).await;
    b.wait_text(l, "#gw-badge", "Running", |t| t.contains("Running")).await;
    b.wait_text(l, "#chat-state", "Connected", |t| t == "Connected").await;
    // The style sheet and the scripts came from under the prefix too.
    let script = "return [Array.from(document.styleSheets).map(s => s.href + ' ' + s.cssRules.length), \
                  Array.from(document.scripts).map(s => s.src)];";
    let loaded = b.call("POST", "/execute/sync", Some(json!({ "script": script, "args": [] }))).await;
    let sheet = loaded[0][0].as_str().unwrap_or_default();
    assert!(sheet.starts_with(&format!("{dash}/assets/app.css ")) && !sheet.ends_with(" 0"), "{loaded}");
    assert_eq!(
        loaded[1],
        json!([format!("{dash}/assets/markdown.js"), format!("{dash}/assets/app.js")]),
        "{loaded}"
    );
    b.type_into("#chat-input", "hello through the proxy").await;
    b.click("#chat-send").await;
    b.wait_text(l, ".msg-bot", "the echo", |t| t == "hello through the proxy").await;
    b.screenshot(&format!("proxy-{}-dashboard.png", proxy.kind.name())).await;

    b.click("#logout").await;
    b.wait_url("the login page", |u| u == format!("{dash}/login")).await;
    b.goto(&format!("{dash}/?token={token}")).await;
    b.wait_url("the dashboard without the token", |u| u == format!("{dash}/")).await;
    b.wait_text(l, "#chat-state", "Connected", |t| t == "Connected").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn through_nginx() {
    end_to_end(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn through_caddy() {
    end_to_end(Kind::Caddy).await;
}

/// HTTPS through Caddy (its automatic HTTPS: a local CA for an IP address, which the
/// browser is told to accept): the page is `https://`, so the chat socket must be
/// `wss://` under the prefix, and the session cookie is `Secure` (X-Forwarded-Proto).
#[tokio::test(flavor = "multi_thread")]
async fn https_through_caddy_in_chromium() {
    if skip_without("caddy") {
        return;
    }
    let home = proxied_home();
    let port = free_port();
    let public = format!("https://127.0.0.1:{port}");
    let (conf, _) = proxy_config(&home, "caddy", &["--public-url", &public]);
    // No admin endpoint, no attempt to add the local CA to the system's trust store, and
    // the HTTP→HTTPS redirect server on a free port instead of 80.
    let globals = format!("admin off\n\tskip_install_trust\n\thttp_port {}", free_port());
    let proxy = Proxy::start_with(Kind::Caddy, &conf, port, &globals);
    let l = start_args(&home, &["launcher", "--console", "--no-browser"]);
    l.gateway_record();
    let token = l.token();

    let chromium = require(&["chromium", "chromium-browser"], "chromium");
    let chromedriver = require(&["chromedriver"], "chromium-driver");
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(&chromedriver, &profile.path().join("chromedriver.log"));
    let b = Browser::open(&driver, &chromium, &profile.path().join("profile")).await;
    let dash = format!("{}/picoclaw", proxy.https_origin());
    b.goto(&format!("{dash}/login")).await;
    b.wait_text(&l, "#login-btn", "the login button", |t| t == "Log in").await;
    b.type_into("#token", &token).await;
    b.click("#login-btn").await;
    b.wait_url("the dashboard", |u| u == format!("{dash}/")).await;
    b.wait_text(&l, "#chat-state", "Connected", |t| t == "Connected").await;
    b.type_into("#chat-input", "hello over wss").await;
    b.click("#chat-send").await;
    b.wait_text(&l, ".msg-bot", "the echo", |t| t == "hello over wss").await;
    // (An https page may only open a wss:// socket: the echo above came over wss://.)
    // The cookie it got: Secure, for the prefix only.
    let cookies = b.call("GET", "/cookie", None).await;
    let session = cookies
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "picoclaw_launcher_session"))
        .cloned()
        .unwrap_or_else(|| panic!("no session cookie: {cookies}\n{}", proxy.log()));
    assert_eq!(
        (session["secure"].as_bool(), session["path"].as_str()),
        (Some(true), Some("/picoclaw/")),
        "{session}"
    );
    assert_eq!(session["httpOnly"].as_bool(), Some(true));
    let log = std::fs::read_to_string(&l.stderr_file).unwrap_or_default();
    assert!(!log.contains(&token), "the token is not logged");
    b.screenshot("proxy-caddy-https-dashboard.png").await;
    b.close().await;
}
