//! `picoclaw doctor`: seed 003's pod restart and seed 004's rotation in miniature (two
//! processes, files and environment as those seeds describe), embedded unit tokens,
//! secrets in config.json, permissions, stale records, weak tokens.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Gateway, TestHome};

const OLD: &str = "0ld-gateway-token-6f1c2a9be83d4c7f9a0e5b2d1c3f4a5b";
const NEW: &str = "n3w-gateway-token-9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f";
const PICO: &str = "p1co-token-aa11bb22cc33dd44ee55ff6677889900aabbccdd";

/// Starts `picoclaw gateway --port 0` with extra environment variables for the gateway
/// process only (as a service manager would start it).
fn spawn_with(home: &TestHome, env: &[(&str, &str)]) -> Gateway {
    let log = std::fs::File::create(home.file("test-gateway.stderr")).unwrap();
    let mut cmd = home.cmd(&["gateway", "--port", "0"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap();
    let record = support::wait_for_record(home.path(), child.id(), Duration::from_secs(20))
        .unwrap_or_else(|| panic!("gateway did not start: {}", home.gateway_stderr()));
    let gw = Gateway { child, record };
    // The record is published once bound; readiness follows a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(&gw, "/ready", None) != 200 {
        assert!(std::time::Instant::now() < deadline, "gateway never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    gw
}

fn stop(mut gw: Gateway) {
    assert!(gw.terminate(Duration::from_secs(15)).is_some(), "gateway did not stop");
}

/// GET /auth/whoami with a bearer token over a plain loopback socket; the status code.
fn whoami(gw: &Gateway, token: &str) -> u16 {
    get(gw, "/auth/whoami", Some(token))
}

/// A GET over a plain loopback socket; the status code.
fn get(gw: &Gateway, path: &str, token: Option<&str>) -> u16 {
    let mut s = TcpStream::connect(gw.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n", gw.addr()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Runs doctor (with `--fix` when asked) with extra environment; (report, exit code).
fn doctor(home: &TestHome, env: &[(&str, &str)], fix: bool) -> (Value, i32) {
    let mut args = vec!["doctor", "--json"];
    if fix {
        args.push("--fix");
    }
    let mut cmd = home.cmd(&args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for secret in [OLD, NEW, PICO] {
        assert!(!text.contains(secret), "doctor printed a secret: {text}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    }
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let code = out.status.code().unwrap_or(-1);
    assert_eq!(
        code == 0,
        report["problems_remaining"] == 0,
        "exit code follows problems_remaining: {report:#}"
    );
    (report, code)
}

fn findings<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"].as_array().unwrap().iter().filter(|f| f["code"] == code).collect()
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

fn fingerprint(token: &str) -> String {
    // First 8 hex of SHA-256, computed by the tool everyone trusts.
    let out = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(token.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)[..8].to_owned()
}

fn security(gateway: &str) -> String {
    format!("gateway:\n  token: \"{gateway}\"\nchannels:\n  pico:\n    token: \"{PICO}\"\n")
}

fn pico_config() -> Value {
    json!({"gateway": {"host": "127.0.0.1"}, "channels": {"pico": {"enabled": true}}})
}

#[test]
fn seed_004_rotation_with_a_token_baked_into_the_unit() {
    let home = TestHome::new();
    home.write_config(&pico_config());
    // `gateway install` once wrote the token into the unit...
    let unit_dir = home.path().join(".config/systemd/user");
    std::fs::create_dir_all(&unit_dir).unwrap();
    let unit = unit_dir.join("picoclaw.service");
    std::fs::write(
        &unit,
        format!(
            "[Unit]\nDescription=my picoclaw\n[Service]\nExecStart={} gateway\nEnvironment=PICOCLAW_HOME={} PICOCLAW_GATEWAY_TOKEN={OLD}\nRestart=always\n[Install]\nWantedBy=default.target\n",
            support::bin(),
            home.path().display()
        ),
    )
    .unwrap();
    // ...the service runs with it, and later the user rotates the token in the file.
    home.write_security(&security(NEW));
    let gw = spawn_with(&home, &[("PICOCLAW_GATEWAY_TOKEN", OLD)]);
    assert_eq!(whoami(&gw, OLD), 200, "the service uses the stale unit token");
    assert_eq!(whoami(&gw, NEW), 401, "the rotated token is refused: the seed's failure");

    // The CLI in a plain shell resolves .security.yml: doctor names the exact mismatch.
    let (report, code) = doctor(&home, &[], false);
    assert_eq!(code, 1);
    let mismatch = findings(&report, "client-gateway-token-mismatch");
    assert_eq!(mismatch.len(), 1, "{report:#}");
    let message = mismatch[0]["message"].as_str().unwrap();
    assert!(
        message.contains("gateway.token") && message.contains(".security.yml:gateway.token"),
        "{message}"
    );
    assert!(message.contains(&fingerprint(NEW)), "{message}");
    let embedded = findings(&report, "token-embedded-in-unit");
    assert_eq!(embedded.len(), 1, "{report:#}");
    assert!(embedded[0]["message"].as_str().unwrap().contains(&fingerprint(OLD)));

    // --fix: the unit loses its copy; .security.yml (the rotated value) is not clobbered.
    let (fixed, code) = doctor(&home, &[], true);
    assert_eq!(code, 1, "the running process still has the old env: {fixed:#}");
    assert_eq!(findings(&fixed, "token-embedded-in-unit")[0]["fixed"], true, "{fixed:#}");
    let after = std::fs::read_to_string(&unit).unwrap();
    assert!(!after.contains(OLD), "{after}");
    assert!(after.contains(&format!("Environment=PICOCLAW_HOME={}", home.path().display())), "{after}");
    assert!(std::fs::read_to_string(home.file(".security.yml")).unwrap().contains(NEW));
    let still = findings(&fixed, "client-gateway-token-mismatch");
    assert_eq!(still[0]["fixed"], false);
    assert!(still[0]["fix"].as_str().unwrap().contains("restart"), "{fixed:#}");

    // Restart the service as the rewritten unit now starts it: no token in its env.
    stop(gw);
    assert!(!after.contains("TOKEN"));
    let gw = spawn_with(&home, &[]);
    assert_eq!(whoami(&gw, NEW), 200);
    assert_eq!(whoami(&gw, OLD), 401);
    let (report, code) = doctor(&home, &[], false);
    assert_eq!(code, 0, "{report:#}");
    stop(gw);
}

#[test]
fn embedded_unit_token_moves_to_security_yml_first_so_clients_keep_working() {
    let home = TestHome::new();
    home.write_config(&pico_config());
    home.write_security(&format!("channels:\n  pico:\n    token: \"{PICO}\"\n"));
    assert!(home.run(&["service", "install", "--systemd"]).status.success());
    let unit = home.path().join(".config/systemd/user/picoclaw-gateway.service");
    let clean = std::fs::read_to_string(&unit).unwrap();
    // An older installer (or a hand edit) put the gateway token into the unit.
    let dirty = clean.replacen(
        "Restart=on-failure",
        &format!("Environment=PICOCLAW_GATEWAY_TOKEN={OLD}\nRestart=on-failure"),
        1,
    );
    std::fs::write(&unit, &dirty).unwrap();
    let gw = spawn_with(&home, &[("PICOCLAW_GATEWAY_TOKEN", OLD)]);
    assert_eq!(whoami(&gw, OLD), 200, "a paired client holds the embedded token");

    let audit = home.run(&["service", "audit"]);
    assert_eq!(audit.status.code(), Some(1));
    let (report, code) = doctor(&home, &[], false);
    assert_eq!((code, codes(&report)), (1, vec!["token-embedded-in-unit".to_owned()]), "{report:#}");

    let (fixed, code) = doctor(&home, &[], true);
    assert_eq!(code, 0, "{fixed:#}");
    assert_eq!(findings(&fixed, "token-embedded-in-unit")[0]["fixed"], true);
    let note = findings(&fixed, "token-embedded-in-unit")[0]["note"].as_str().unwrap().to_owned();
    assert!(
        note.contains("moved to .security.yml:gateway.token") && note.contains("daemon-reload"),
        "{note}"
    );
    assert!(std::fs::read_to_string(home.file(".security.yml")).unwrap().contains(OLD), "migrated first");
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), clean, "re-rendered without the secret");
    assert_eq!(picoclaw_mode(&home.file(".security.yml")), 0o600);

    // After a restart from the clean unit the same client still gets in.
    stop(gw);
    let gw = spawn_with(&home, &[]);
    assert_eq!(whoami(&gw, OLD), 200, "clients holding the migrated token keep working");
    let (again, code) = doctor(&home, &[], true);
    assert_eq!(code, 0, "{again:#}");
    assert!(
        again["findings"].as_array().unwrap().iter().all(|f| f["fixed"] == false),
        "idempotent: {again:#}"
    );
    stop(gw);
}

fn picoclaw_mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn file_rotation_without_hot_reload_is_repaired_by_a_reload() {
    let home = TestHome::new();
    home.write_config(&json!({"gateway": {"host": "127.0.0.1", "hot_reload": false}, "channels": {"pico": {"enabled": true}}}));
    home.write_security(&security(OLD));
    let gw = spawn_with(&home, &[]);
    let (report, code) = doctor(&home, &[], false);
    assert_eq!(code, 0, "{report:#}");
    home.write_security(&security(NEW));
    let (report, code) = doctor(&home, &[], false);
    assert_eq!(code, 1);
    assert_eq!(codes(&report), vec!["client-gateway-token-mismatch"], "{report:#}");
    let (fixed, code) = doctor(&home, &[], true);
    assert_eq!(code, 0, "{fixed:#}");
    assert_eq!(findings(&fixed, "client-gateway-token-mismatch")[0]["fixed"], true);
    assert_eq!(whoami(&gw, NEW), 200);
    assert_eq!(whoami(&gw, OLD), 401);
    stop(gw);
}

#[test]
fn seed_003_pod_restart_gateway_and_cli_resolve_the_same_secret() {
    // The pod: config.json from the ConfigMap (read-only dir), PICOCLAW_HOME on a volume,
    // tokens only as environment variables from the Secret, for every process in the pod.
    let configmap = tempfile::tempdir().unwrap();
    let config = configmap.path().join("config.json");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/kubernetes/base/config.json"
    ))
    .unwrap();
    std::fs::write(&config, shipped).unwrap();
    let config_str = config.to_str().unwrap().to_owned();
    let pod = [
        ("PICOCLAW_CONFIG", config_str.as_str()),
        // The manifest binds 0.0.0.0; the test stays on loopback.
        ("PICOCLAW_GATEWAY_HOST", "127.0.0.1"),
        ("PICOCLAW_CHANNELS_PICO_TOKEN", PICO),
    ];
    let home = TestHome::new();
    let with = |token: &'static str| {
        let mut env = pod.to_vec();
        env.push(("PICOCLAW_GATEWAY_TOKEN", token));
        env
    };

    // First start.
    let gw = spawn_with(&home, &with(OLD));
    let (report, code) = doctor(&home, &with(OLD), false);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(whoami(&gw, OLD), 200);
    let mut status = home.cmd(&["gateway", "status"]);
    for (k, v) in with(OLD) {
        status.env(k, v);
    }
    assert!(status.output().unwrap().status.success(), "the image's HEALTHCHECK command reports ready");

    // Pod restart after the Secret was rotated: nothing on the volume can be stale,
    // because nothing was ever copied there.
    stop(gw);
    let gw = spawn_with(&home, &with(NEW));
    let (report, code) = doctor(&home, &with(NEW), false);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(whoami(&gw, NEW), 200);
    assert_eq!(whoami(&gw, OLD), 401);

    // The Helm chart's failure mode: a token file seeded once beside config.json. Both
    // processes still resolve the Secret (env > file), and doctor names the shadowing.
    std::fs::write(configmap.path().join(".security.yml"), format!("gateway:\n  token: \"{OLD}\"\n"))
        .unwrap();
    let (report, code) = doctor(&home, &with(NEW), false);
    assert_eq!(code, 1);
    assert!(findings(&report, "client-gateway-token-mismatch").is_empty(), "{report:#}");
    let shadow = findings(&report, "env-shadows-file");
    assert_eq!(shadow.len(), 1, "{report:#}");
    let m = shadow[0]["message"].as_str().unwrap();
    assert!(m.contains("env:PICOCLAW_GATEWAY_TOKEN") && m.contains(".security.yml:gateway.token"), "{m}");
    stop(gw);
}

#[test]
fn config_json_secrets_move_and_unparseable_files_stay_untouched() {
    let home = TestHome::new();
    home.write_config(&json!({
        "gateway": {"host": "127.0.0.1", "token": NEW},
        "channels": {"pico": {"enabled": true, "token": PICO}}
    }));
    let (report, code) = doctor(&home, &[], false);
    assert_eq!(code, 1);
    assert_eq!(findings(&report, "secret-in-config-json").len(), 2, "{report:#}");
    let (fixed, code) = doctor(&home, &[], true);
    assert_eq!(code, 0, "{fixed:#}");
    let config = std::fs::read_to_string(home.file("config.json")).unwrap();
    assert!(!config.contains(NEW) && !config.contains(PICO), "{config}");
    let sec = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    assert!(sec.contains(NEW) && sec.contains(PICO));
    assert_eq!(picoclaw_mode(&home.file(".security.yml")), 0o600);

    // A different value already in .security.yml is reported, never clobbered.
    home.write_config(&json!({"channels": {"pico": {"enabled": true, "token": OLD}}}));
    let (report, code) = doctor(&home, &[], true);
    assert_eq!(code, 1);
    let f = &findings(&report, "secret-in-config-json")[0];
    assert_eq!(f["fixed"], false);
    assert!(f["note"].as_str().unwrap().contains("different value"), "{report:#}");
    assert!(std::fs::read_to_string(home.file(".security.yml")).unwrap().contains(PICO));
    assert!(std::fs::read_to_string(home.file("config.json")).unwrap().contains(OLD));

    // A .security.yml that does not parse: nothing is rewritten.
    home.write_security("gateway: [unclosed\n");
    let before = (
        std::fs::read(home.file("config.json")).unwrap(),
        std::fs::read(home.file(".security.yml")).unwrap(),
    );
    let (report, code) = doctor(&home, &[], true);
    assert_eq!(code, 1);
    assert!(!findings(&report, "config-invalid").is_empty(), "{report:#}");
    let after = (
        std::fs::read(home.file("config.json")).unwrap(),
        std::fs::read(home.file(".security.yml")).unwrap(),
    );
    assert_eq!(before, after);
}

#[test]
fn permissions_stale_record_weak_tokens_and_exposure() {
    use std::os::unix::fs::PermissionsExt;
    let home = TestHome::new();
    home.write_config(&json!({
        "gateway": {"host": "0.0.0.0"},
        "channels": {"pico": {"enabled": true, "allow_token_query": true}}
    }));
    home.write_security("channels:\n  pico:\n    token: \"your-secure-token-here\"\n");
    std::fs::set_permissions(home.file(".security.yml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    support::write_private(
        &home.file(".picoclaw.pid"),
        &json!({"pid": 4_000_000, "version": "0", "host": "127.0.0.1", "port": 1, "started_at": 0, "token": "x"})
            .to_string(),
    );
    let (report, code) = doctor(&home, &[], false);
    assert_eq!(code, 1);
    let mut got = codes(&report);
    got.sort();
    assert_eq!(
        got,
        [
            "insecure-permissions",
            "public-bind-without-origins",
            "query-token-enabled",
            "stale-pid-file",
            "weak-token"
        ],
        "{report:#}"
    );
    assert!(!report.to_string().contains("your-secure-token-here"));
    for f in report["findings"].as_array().unwrap() {
        assert!(["error", "warning", "info"].contains(&f["severity"].as_str().unwrap()));
        assert!(!f["fix"].as_str().unwrap().is_empty(), "every finding says its fix: {f}");
    }

    let (fixed, code) = doctor(&home, &[], true);
    assert_eq!(code, 1, "weak token and exposure need the user: {fixed:#}");
    assert_eq!(findings(&fixed, "insecure-permissions")[0]["fixed"], true);
    assert_eq!(findings(&fixed, "stale-pid-file")[0]["fixed"], true);
    assert_eq!(findings(&fixed, "weak-token")[0]["fixed"], false);
    assert_eq!(picoclaw_mode(&home.file(".security.yml")), 0o600);
    assert!(!home.file(".picoclaw.pid").exists());
    let (again, _) = doctor(&home, &[], true);
    assert_eq!(again["problems_remaining"], fixed["problems_remaining"]);
    assert!(again["findings"].as_array().unwrap().iter().all(|f| f["fixed"] == false));

    // Human output: codes, severities and a summary line.
    let text = home.run(&["doctor"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("error    weak-token") && text.contains("problem(s) remain"), "{text}");
}

#[test]
fn environment_files_and_launchd_plists_are_migrated_too() {
    let home = TestHome::new();
    let units = home.path().join(".config/systemd/user");
    let agents = home.path().join("Library/LaunchAgents");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(&agents).unwrap();
    let env_file = home.path().join("picoclaw.env");
    support::write_private(&env_file, &format!("# mine\nPICOCLAW_CHANNELS_PICO_TOKEN={PICO}\nOTHER=1\n"));
    std::fs::write(
        units.join("pc.service"),
        format!(
            "[Service]\nExecStart={} gateway\nEnvironment=PICOCLAW_HOME={}\nEnvironmentFile=-%h/picoclaw.env\n",
            support::bin(),
            home.path().display()
        ),
    )
    .unwrap();
    let plist = agents.join("com.me.picoclaw.plist");
    std::fs::write(
        &plist,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n  <key>Label</key>\n  <string>com.me.picoclaw</string>\n  <key>ProgramArguments</key>\n  <array><string>{}</string><string>gateway</string></array>\n  <key>EnvironmentVariables</key>\n  <dict>\n    <key>PICOCLAW_HOME</key>\n    <string>{}</string>\n    <key>PICOCLAW_GATEWAY_TOKEN</key>\n    <string>{NEW}</string>\n  </dict>\n</dict>\n</plist>\n",
            support::bin(),
            home.path().display()
        ),
    )
    .unwrap();
    let (report, code) = doctor(&home, &[], false);
    assert_eq!(code, 1);
    assert_eq!(findings(&report, "token-embedded-in-unit").len(), 2, "{report:#}");
    let (fixed, code) = doctor(&home, &[], true);
    assert_eq!(code, 0, "{fixed:#}");
    let security = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    assert!(security.contains(PICO) && security.contains(NEW), "both values preserved");
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), "# mine\nOTHER=1\n");
    assert_eq!(picoclaw_mode(&env_file), 0o600, "the env file keeps its mode");
    let plist_after = std::fs::read_to_string(&plist).unwrap();
    assert!(!plist_after.contains(NEW) && plist_after.contains("<key>PICOCLAW_HOME</key>"), "{plist_after}");
}

#[test]
fn a_token_in_a_hand_written_command_line_is_reported_not_mangled() {
    let home = TestHome::new();
    let units = home.path().join(".config/systemd/user");
    std::fs::create_dir_all(&units).unwrap();
    let unit = units.join("pc.service");
    let text = format!(
        "[Service]\nEnvironment=PICOCLAW_HOME={}\nExecStart=/bin/sh -c \"PICOCLAW_GATEWAY_TOKEN={OLD} exec {} gateway\"\n",
        home.path().display(),
        support::bin()
    );
    std::fs::write(&unit, &text).unwrap();
    let (fixed, code) = doctor(&home, &[], true);
    assert_eq!(code, 1);
    let f = &findings(&fixed, "token-embedded-in-unit")[0];
    assert_eq!(f["fixed"], false);
    assert!(f["note"].as_str().unwrap().contains("by hand"), "{fixed:#}");
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), text, "a command line is never edited");
    assert!(
        std::fs::read_to_string(home.file(".security.yml")).unwrap().contains(OLD),
        "the value is preserved so removing it by hand loses nothing"
    );
}

#[test]
fn a_home_written_by_gateways_of_two_machines_is_an_error() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = spawn_with(&home, &[]);
    // The running gateway's own heartbeat appears; alone it is no finding.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !home.file(".gateways").read_dir().is_ok_and(|mut d| d.next().is_some()) {
        assert!(std::time::Instant::now() < deadline, "the gateway wrote no heartbeat");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (report, _) = doctor(&home, &[], false);
    assert!(findings(&report, "shared-home").is_empty(), "{report:#}");
    // A gateway on another machine sharing the volume (where the pid lock does not reach)
    // beats in the same directory.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    std::fs::write(
        home.file(".gateways/other-node-4242.json"),
        json!({ "host": "other-node", "pid": 4242, "seen_ms": now }).to_string(),
    )
    .unwrap();
    let (report, code) = doctor(&home, &[], false);
    let found = findings(&report, "shared-home");
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(found[0]["severity"], "error");
    let message = found[0]["message"].as_str().unwrap();
    assert!(message.contains("pid 4242 on other-node") && message.contains("sessions.db"), "{message}");
    assert_ne!(code, 0);
    // A clean stop removes the gateway's own heartbeat.
    stop(gw);
    let left: Vec<_> = home.file(".gateways").read_dir().unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("other-node-4242.json")]);
}
