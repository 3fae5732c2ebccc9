//! The canary test (issue 9): a distinctive value in every credential, one end-to-end run
//! through onboarding, the launcher and its gateway, login, chat, named-token create and
//! rotate, reload, failed logins, a service unit and doctor — then every log file, every
//! captured stdout/stderr, every HTTP answer (except the one login that returns a cookie),
//! the unit file and `/proc/<pid>/{cmdline,environ}` of the spawned gateway are searched.
//! Zero hits, or the test fails naming where.

use std::path::Path;

use serde_json::json;

use crate::launcher_support::{self, get, post_json};
use crate::support::{self, TestHome, ws};

const GATEWAY: &str = "CANARYgw7f3a9c1e5b2d4a6f8e0c";
const PICO: &str = "CANARYpico7f3a9c1e5b2d4a6f8e0";
const LAUNCHER: &str = "CANARYlaunch7f3a9c1e5b2d4a6f8";
const CLIENT: &str = "CANARYclient7f3a9c1e5b2d4a6f8";
const API_KEY: &str = "CANARYapikey7f3a9c1e5b2d4a6f8";

/// Where each text came from, for the failure message.
struct Evidence(Vec<(String, String)>);

impl Evidence {
    fn add(&mut self, place: impl Into<String>, text: impl Into<String>) {
        self.0.push((place.into(), text.into()));
    }

    fn add_output(&mut self, place: &str, out: &std::process::Output) {
        self.add(format!("{place} stdout"), String::from_utf8_lossy(&out.stdout));
        self.add(format!("{place} stderr"), String::from_utf8_lossy(&out.stderr));
    }

    fn add_dir(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                self.add_dir(&path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                self.add(path.display().to_string(), String::from_utf8_lossy(&bytes));
            }
        }
    }

    fn assert_clean(&self, secrets: &[String]) {
        let mut hits = Vec::new();
        for (place, text) in &self.0 {
            for secret in secrets {
                if text.contains(secret.as_str()) {
                    hits.push(format!("{place} contains {}…", &secret[..12.min(secret.len())]));
                }
            }
        }
        assert!(hits.is_empty(), "secrets leaked:\n{}", hits.join("\n"));
    }
}

#[tokio::test]
async fn no_credential_leaks_anywhere() {
    let home = TestHome::new();
    home.write_config(&json!({
        "gateway": { "host": "127.0.0.1", "port": 0 },
        "channels": {
            "pico": { "enabled": true },
            "pico_client": { "enabled": false, "url": "ws://127.0.0.1:9/pico/ws" }
        },
        "model_list": [{ "model_name": "spare", "model": "x", "api_base": "http://127.0.0.1:9/v1" }]
    }));
    home.write_security(&format!(
        "gateway:\n  token: \"{GATEWAY}\"\nchannels:\n  pico:\n    token: \"{PICO}\"\n  pico_client:\n    token: \"{CLIENT}\"\nmodel_list:\n  spare:\n    api_keys: [\"{API_KEY}\"]\n"
    ));
    support::write_private(
        &home.file("launcher-config.json"),
        &format!("{{\"port\": 0, \"launcher_token\": \"{LAUNCHER}\"}}"),
    );
    let mut ev = Evidence(Vec::new());
    let mut secrets: Vec<String> = [GATEWAY, PICO, LAUNCHER, CLIENT, API_KEY].map(String::from).to_vec();

    ev.add_output("onboard", &home.run(&["onboard"]));

    // Launcher (without --console: it must not print the file token) and its gateway.
    let mut l = launcher_support::start_args(&home, &["launcher", "--no-browser", "--port", "0"]);
    let record = l.gateway_record();
    let pid = record["pid"].as_u64().unwrap();
    secrets.push(record["token"].as_str().unwrap().to_owned());

    // Failed logins, then the one successful login (its Set-Cookie is the only exemption).
    for _ in 0..5 {
        let a = launcher_support::login(&l, "wrong-token-CANARY-attempt").await;
        ev.add("failed login answer", format!("{:?} {}", a.headers, a.body));
    }
    let ok = launcher_support::login(&l, LAUNCHER).await;
    assert_eq!(ok.status, 200);
    ev.add("successful login body", ok.body.clone());
    let cookie = ok.cookie().expect("cookie");
    for path in ["/", "/api/gateway/status", "/api/gateway/logs", "/api/tokens"] {
        let a = get(&l.at(path), Some(&cookie)).await;
        ev.add(format!("GET {path}"), format!("{:?} {}", a.headers, a.body));
    }

    // Chat through the dashboard proxy.
    let origin = format!("http://{}", l.authority());
    let url = format!("ws://{}/pico/ws?session_id=canary", l.authority());
    let (mut socket, resp) =
        ws::connect(&url, &[("cookie", &cookie), ("origin", &origin)]).await.expect("proxy");
    ev.add("proxy handshake", format!("{:?}", resp.headers()));
    ws::send(&mut socket, json!({"type":"message.send","id":"c1","payload":{"content":"canary chat"}})).await;
    for frame in ws::until(&mut socket, "typing.stop").await {
        ev.add("proxied frame", frame.to_string());
    }

    // Named token: created (its one printing is the exemption), used, rotated, reloaded.
    let created = home.run(&["token", "create", "--name", "canary-phone", "--scope", "chat"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let named = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    ev.add("token create stderr", String::from_utf8_lossy(&created.stderr));
    secrets.push(named.clone());
    let gw_ws = format!("ws://{}:{}/pico/ws", record["host"].as_str().unwrap(), record["port"]);
    let mut direct = ws::bearer(&gw_ws, &named).await;
    ws::send(&mut direct, json!({"type":"ping","id":"p"})).await;
    ev.add("direct frame", ws::frame(&mut direct).await.to_string());
    let rotated = home.run(&["token", "rotate", "canary-phone", "--grace", "1m"]);
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    secrets.push(String::from_utf8_lossy(&rotated.stdout).trim().to_owned());
    ev.add("token rotate stderr", String::from_utf8_lossy(&rotated.stderr));
    let pico_rotation = post_json(&l, "/api/tokens/pico/rotate", Some(&cookie), json!({"grace": "1m"})).await;
    assert_eq!(pico_rotation.status, 200, "{}", pico_rotation.body);
    // The dashboard never hands the browser a pico token: the new value is only in the file.
    assert!(pico_rotation.json().get("token").is_none(), "{}", pico_rotation.body);
    let security = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    let new_pico = security
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("pico:"))
        .find_map(|l| l.trim().strip_prefix("token:"))
        .expect("new pico token in .security.yml")
        .trim()
        .trim_matches('"')
        .to_owned();
    secrets.push(new_pico);
    ev.add("dashboard rotate headers", format!("{:?}", pico_rotation.headers));
    ev.add_output("gateway reload", &home.run(&["gateway", "reload"]));
    ev.add_output("token list", &home.run(&["token", "list", "--json"]));
    ev.add_output("gateway status", &home.run(&["gateway", "status"]));
    ev.add_output("auth explain", &home.run(&["auth", "explain", "--json"]));
    ev.add_output("config show", &home.run(&["config", "show", "--origin", "--json"]));

    // The spawned gateway's argv and environment.
    for what in ["cmdline", "environ"] {
        let bytes = std::fs::read(format!("/proc/{pid}/{what}")).expect("gateway /proc entry");
        ev.add(format!("/proc/{pid}/{what}"), String::from_utf8_lossy(&bytes).replace('\0', " "));
    }

    // A service unit and doctor.
    let unit_home = home.path().join("user-home");
    std::fs::create_dir_all(&unit_home).unwrap();
    let service = home
        .cmd(&["service", "install", "--systemd"])
        .env("HOME", &unit_home)
        .env("XDG_CONFIG_HOME", unit_home.join(".config"))
        .output()
        .unwrap();
    ev.add_output("service install", &service);
    ev.add_output(
        "doctor",
        &home
            .cmd(&["doctor", "--json"])
            .env("HOME", &unit_home)
            .env("XDG_CONFIG_HOME", unit_home.join(".config"))
            .output()
            .unwrap(),
    );
    ev.add_dir(&unit_home.join(".config"));

    drop(socket);
    drop(direct);
    l.stop();
    ev.add("launcher stdout", l.stdout());
    ev.add("launcher stderr", l.stderr());
    ev.add_dir(&home.file("logs"));
    ev.add_dir(&home.file("sessions"));
    assert!(ev.0.iter().any(|(place, _)| place.ends_with("gateway.log")), "gateway.log was searched");
    assert!(ev.0.iter().any(|(place, _)| place.ends_with("audit.jsonl")), "audit.jsonl was searched");
    ev.assert_clean(&secrets);

    // The search itself can fail: a planted secret is found.
    let planted = Evidence(vec![("planted".into(), format!("…{PICO}…"))]);
    assert!(std::panic::catch_unwind(|| planted.assert_clean(&secrets)).is_err());
}
