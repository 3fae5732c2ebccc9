//! Golden files: the exact text of `--help` (every subcommand), `config env`,
//! `auth explain` and `doctor`, compared line for line with `tests/it/goldens/*`.
//!
//! After an intended change of output, rewrite the goldens and review the diff:
//! `PICOCLAW_BLESS=1 cargo test -p picoclaw --test it golden::`.
//! Paths, pids, ports and the version are replaced by placeholders (`<HOME>`, `<PID>`,
//! `<PORT>`, `<VERSION>`) so the files do not depend on the machine; every golden is also
//! checked to hold none of the secrets its home was given.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::support::{self, TestHome};

/// Secrets given to the homes below; none may appear in a golden.
const GATEWAY: &str = "g4teway-token-5e1f0c3b9a8d7e6f5a4b3c2d1e0f9a8b";
const PICO: &str = "p1co-token-7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f";
const SHELL: &str = "sh3ll-token-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const SECRETS: [&str; 4] = [GATEWAY, PICO, SHELL, "change-me"];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/goldens")
}

/// Compares `actual` with the golden `name`; with `PICOCLAW_BLESS=1` rewrites it instead.
pub(crate) fn assert_golden(name: &str, actual: &str) {
    for secret in SECRETS {
        assert!(!actual.contains(secret), "{name}: the output shows a secret:\n{actual}");
    }
    let path = golden_dir().join(name);
    if std::env::var_os("PICOCLAW_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with PICOCLAW_BLESS=1 cargo test -p picoclaw --test it golden::",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let first = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    panic!(
        "{name} differs from {} (first at line {}).\n\
         ----- expected -----\n{expected}\n----- got -----\n{actual}\n-------------------\n\
         If the change is intended: PICOCLAW_BLESS=1 cargo test -p picoclaw --test it golden::",
        path.display(),
        first + 1
    );
}

/// The output with the machine-specific parts replaced by placeholders.
struct Normalise {
    replacements: Vec<(String, &'static str)>,
}

impl Normalise {
    fn new(home: &TestHome) -> Normalise {
        let mut replacements = Vec::new();
        // Longest first: a canonical path may extend the plain one (macOS /private/tmp).
        if let Ok(canonical) = std::fs::canonicalize(home.path()) {
            replacements.push((canonical.display().to_string(), "<HOME>"));
        }
        replacements.push((home.path().display().to_string(), "<HOME>"));
        replacements.push((support::bin().to_owned(), "<BIN>"));
        replacements.push((env!("CARGO_PKG_VERSION").to_owned(), "<VERSION>"));
        replacements.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Normalise { replacements }
    }

    fn with(mut self, from: impl Into<String>, to: &'static str) -> Normalise {
        self.replacements.insert(0, (from.into(), to));
        self
    }

    fn apply(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (from, to) in &self.replacements {
            text = text.replace(from.as_str(), to);
        }
        text
    }
}

/// stdout of a successful (or, with `allow_failure`, any) run.
fn stdout(out: &Output, allow_failure: bool) -> String {
    assert!(
        allow_failure || out.status.success(),
        "failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_of_every_command() {
    let home = TestHome::new();
    let norm = Normalise::new(&home);
    let mut all = String::new();
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = stdout(&home.run(&args), false);
        all.push_str(&format!("$ picoclaw {}\n{}\n", args.join(" "), norm.apply(&help)));
        // Depth first, in the order the help lists them.
        for sub in subcommands(&help).into_iter().rev() {
            let mut next = path.clone();
            next.push(sub);
            queue.push(next);
        }
    }
    assert_golden("help.txt", &all);
}

#[test]
fn config_env() {
    let home = TestHome::new();
    let out = stdout(&home.run(&["config", "env"]), false);
    assert_golden("config-env.txt", &Normalise::new(&home).apply(&out));
}

#[test]
fn auth_explain_on_an_empty_home() {
    let home = TestHome::new();
    let out = stdout(&home.run(&["auth", "explain"]), false);
    assert_golden("auth-explain-empty.txt", &Normalise::new(&home).apply(&out));
}

/// Pico on, the gateway token in `.security.yml`, the pico token from the environment.
#[test]
fn auth_explain_with_credentials_from_files_and_env() {
    let home = TestHome::new().env("PICOCLAW_CHANNELS_PICO_TOKEN", PICO);
    home.write_config(&json!({ "channels": { "pico": { "enabled": true } } }));
    home.write_security(&format!("gateway:\n  token: \"{GATEWAY}\"\n"));
    let norm = Normalise::new(&home);
    let out = stdout(&home.run(&["auth", "explain"]), false);
    assert_golden("auth-explain-configured.txt", &norm.apply(&out));
    let out = stdout(&home.run(&["auth", "explain", "--json"]), false);
    assert_golden("auth-explain-configured.json", &norm.apply(&out));
}

#[test]
fn doctor_on_an_empty_home() {
    let home = TestHome::new();
    let out = stdout(&home.run(&["doctor"]), false);
    assert_golden("doctor-empty.txt", &Normalise::new(&home).apply(&out));
}

/// A readable `.security.yml` with a placeholder token, a stale record, a public bind with
/// token queries on; then `--fix`.
#[test]
fn doctor_with_problems_and_fix() {
    let home = TestHome::new();
    home.write_config(&json!({
        "gateway": {"host": "0.0.0.0"},
        "channels": {"pico": {"enabled": true, "allow_token_query": true}}
    }));
    home.write_security("channels:\n  pico:\n    token: \"change-me\"\n");
    set_mode(&home.file(".security.yml"), 0o644);
    support::write_private(
        &home.file(".picoclaw.pid"),
        &json!({"pid": 4_000_000, "version": "0", "host": "127.0.0.1", "port": 1, "started_at": 0, "token": "x"})
            .to_string(),
    );
    let norm = Normalise::new(&home);
    assert_golden("doctor-problems.txt", &norm.apply(&stdout(&home.run(&["doctor"]), true)));
    assert_golden("doctor-problems.json", &norm.apply(&stdout(&home.run(&["doctor", "--json"]), true)));
    assert_golden("doctor-problems-fix.txt", &norm.apply(&stdout(&home.run(&["doctor", "--fix"]), true)));
}

/// A running gateway that took its token from `.security.yml`, checked from a shell whose
/// environment sets another one.
#[test]
fn doctor_against_a_running_gateway_with_a_shadowed_token() {
    let home = TestHome::new();
    home.write_security(&format!("gateway:\n  token: \"{GATEWAY}\"\n"));
    let mut gw = home.spawn_gateway(&[]);
    wait_ready(&gw.addr());
    let pid = gw.record["pid"].to_string();
    let port = gw.record["port"].to_string();
    let norm = Normalise::new(&home)
        .with(format!("127.0.0.1:{port}"), "127.0.0.1:<PORT>")
        .with(format!("pid {pid}"), "pid <PID>");
    let out = home.cmd(&["doctor"]).env("PICOCLAW_GATEWAY_TOKEN", SHELL).output().unwrap();
    let text = norm.apply(&stdout(&out, true));
    assert!(gw.terminate(Duration::from_secs(15)).is_some(), "gateway did not stop");
    assert_golden("doctor-running.txt", &text);
}

/// Waits until `GET /ready` answers 200 (the record is published a moment before).
fn wait_ready(addr: &str) {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut answer = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(s, "GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let _ = s.read_to_string(&mut answer);
        }
        if answer.starts_with("HTTP/1.1 200") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "gateway never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}
