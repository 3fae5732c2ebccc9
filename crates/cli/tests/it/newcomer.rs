//! A new user's rough edges (issue 19): `--json` on every command that prints state, exit
//! codes in `--help`, and a busy port that says which port, what sets it and who holds it
//! — printed once.

use std::net::TcpListener;

use serde_json::{Value, json};

use crate::support::{self, TestHome};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn status_json(home: &TestHome) -> (Option<i32>, Value) {
    let out = home.run(&["gateway", "status", "--json"]);
    let body = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gateway status --json printed no JSON ({e}): {}", text(&out.stdout)));
    (out.status.code(), body)
}

#[test]
fn gateway_status_json_when_stopped_running_and_crashed() {
    let home = TestHome::onboarded();
    let (code, body) = status_json(&home);
    assert_eq!(code, Some(3), "{body}");
    assert_eq!(body, json!({"state": "not_running", "running": false}));

    let gw = home.spawn_gateway(&[]);
    let (code, body) = status_json(&home);
    assert_eq!(code, Some(0), "{body}");
    assert_eq!(body["state"], "running");
    assert_eq!(body["running"], true);
    assert_eq!(body["ready"], true);
    assert_eq!(body["pid"], gw.record["pid"]);
    assert_eq!(body["address"], format!("http://{}", gw.addr()));
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["agent"], "echo");
    assert!(body["uptime_s"].is_u64() && body["started_at"].is_u64(), "{body}");
    assert!(body.get("pico").is_some_and(Value::is_object), "{body}");
    assert!(!body.to_string().contains(&gw.runtime_token()), "the runtime token reached the status");

    // SIGKILL leaves a stale record: not running, exit 3, and the JSON says why.
    let pid = gw.record["pid"].as_u64().unwrap();
    support::unsafe_free_kill(u32::try_from(pid).unwrap(), "KILL");
    drop(gw);
    let (code, body) = status_json(&home);
    assert_eq!(code, Some(3), "{body}");
    assert_eq!(body["state"], "stale");
    assert!(body["detail"].as_str().unwrap().contains(".picoclaw.pid"), "{body}");
}

#[test]
fn exit_codes_are_in_help_and_version_has_json() {
    let home = TestHome::new();
    let top = text(&home.run(&["--help"]).stdout);
    assert!(top.contains("Exit status: 0 success; 1 failure"), "{top}");
    assert!(top.contains("78 configuration error"), "{top}");
    let status = text(&home.run(&["gateway", "status", "--help"]).stdout);
    assert!(status.contains("3 not running"), "{status}");
    assert!(status.contains("--json"), "{status}");
    let gateway = text(&home.run(&["gateway", "--help"]).stdout);
    assert!(gateway.contains("78 configuration error"), "{gateway}");
    let version = home.run(&["version", "--json"]);
    let body: Value = serde_json::from_slice(&version.stdout).unwrap();
    assert_eq!(body, json!({"version": env!("CARGO_PKG_VERSION")}));
}

/// Occurrences of `needle` in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn a_port_held_by_another_program_names_port_setting_and_holder_once() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let home = TestHome::onboarded();
    home.write_config(&json!({ "gateway": { "port": port } }));

    let out = home.run(&["gateway"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(count(&err, "already in use"), 1, "printed once: {err}");
    assert_eq!(count(&err, "os error 98"), 0, "the raw OS error, twice, is what this replaced: {err}");
    assert!(err.contains(&format!("port {port} is already in use by pid {}", std::process::id())), "{err}");
    assert!(err.contains("which is not picoclaw"), "{err}");
    assert!(err.contains("The port comes from config.json:gateway.port"), "{err}");
    assert!(err.contains("--port, PICOCLAW_GATEWAY_PORT or gateway.port in config.json"), "{err}");

    // The variable wins over the file, and the message says so.
    let home = home.env("PICOCLAW_GATEWAY_PORT", &port.to_string());
    let err = text(&home.run(&["gateway"]).stderr);
    assert!(err.contains("comes from env:PICOCLAW_GATEWAY_PORT"), "{err}");

    // `gateway start`: the background child's error, once, and only this start's.
    let out = home.run(&["gateway", "start"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(count(&err, "already in use"), 1, "printed once: {err}");
    assert!(err.contains("which is not picoclaw"), "{err}");
    drop(held);
}

#[test]
fn a_port_held_by_a_gateway_says_whose() {
    let first = TestHome::onboarded();
    let gw = first.spawn_gateway(&[]);
    let port = gw.record["port"].as_u64().unwrap().to_string();
    let pid = gw.record["pid"].as_u64().unwrap();

    // Another home's gateway: a picoclaw process, not this home's.
    let second = TestHome::onboarded();
    let err = text(&second.run(&["gateway", "--port", &port]).stderr);
    assert_eq!(count(&err, "already in use"), 1, "{err}");
    assert!(err.contains(&format!("another picoclaw process, not this home's gateway (pid {pid}:")), "{err}");
    assert!(err.contains("comes from flag:--port"), "{err}");

    // This home's .picoclaw.pid names the holder: it is "our" gateway, and the message
    // says how to stop it.
    let third = TestHome::onboarded();
    std::fs::copy(first.file(".picoclaw.pid"), third.file(".picoclaw.pid")).unwrap();
    let err = text(&third.run(&["gateway", "--port", &port]).stderr);
    assert!(err.contains(&format!("in use by this home's gateway (pid {pid}, recorded in")), "{err}");
    assert!(err.contains("picoclaw gateway stop"), "{err}");
}

#[test]
fn a_busy_launcher_port_is_named_once() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let home = TestHome::onboarded();
    let out = home.run(&["launcher", "--no-browser", "--port", &port]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(count(&err, "already in use"), 1, "printed once: {err}");
    assert_eq!(count(&err, "os error 98"), 0, "{err}");
    assert!(err.contains(&format!("port {port} is already in use by pid {}", std::process::id())), "{err}");
    assert!(err.contains("comes from flag:--port"), "{err}");
    assert!(err.contains("PICOCLAW_LAUNCHER_PORT or port in launcher-config.json"), "{err}");
    drop(held);
}

/// `ExecStart=` of the systemd unit `service install` wrote in `home`.
fn exec_start(home: &TestHome) -> String {
    let unit =
        std::fs::read_to_string(home.path().join(".config/systemd/user/picoclaw-gateway.service")).unwrap();
    unit.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart: {unit}"))
        .to_owned()
}

/// A copy of the binary under test at `<dir>/bin/picoclaw`, as `cargo install` leaves it.
fn installed_copy(dir: &std::path::Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let installed = bin.join("picoclaw");
    std::fs::copy(support::bin(), &installed).unwrap();
    std::fs::canonicalize(installed).unwrap()
}

const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[test]
fn service_install_starts_the_installed_binary_and_warns_about_a_build_directory() {
    let tools = tempfile::tempdir().unwrap();
    let installed = installed_copy(tools.path());

    // Run from the installed copy: the unit starts it, no warning.
    let home = TestHome::new();
    let out = std::process::Command::new(&installed)
        .args(["service", "install", "--systemd"])
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("HOME", home.path())
        .env("PICOCLAW_HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(exec_start(&home), format!("{} gateway", installed.display()));
    assert!(!text(&out.stderr).contains("warning"), "{}", text(&out.stderr));

    // Run from the build (target/debug): an installed picoclaw on PATH is preferred.
    let home =
        TestHome::new().env("PATH", &format!("{}:{SYSTEM_PATH}", installed.parent().unwrap().display()));
    let out = home.run(&["service", "install", "--systemd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(exec_start(&home), format!("{} gateway", installed.display()));
    assert!(text(&out.stderr).contains("the unit starts the installed"), "{}", text(&out.stderr));

    // From the build with nothing installed: it keeps the build's binary, and says why
    // that is fragile and what to do.
    let home = TestHome::new().env("PATH", SYSTEM_PATH);
    let out = home.run(&["service", "install", "--systemd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let built = std::fs::canonicalize(support::bin()).unwrap();
    assert_eq!(exec_start(&home), format!("{} gateway", built.display()));
    let err = text(&out.stderr);
    assert!(err.contains("is inside the cargo build directory"), "{err}");
    assert!(err.contains("cargo install --path crates/cli"), "{err}");

    // --binary names it outright; a missing file is refused with the path.
    let home = TestHome::new().env("PATH", SYSTEM_PATH);
    let out = home.run(&["service", "install", "--systemd", "--binary", installed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(exec_start(&home), format!("{} gateway", installed.display()));
    let out = home.run(&["service", "install", "--systemd", "--binary", "/nonexistent/picoclaw"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--binary /nonexistent/picoclaw: no such file"),
        "{}",
        text(&out.stderr)
    );
}
