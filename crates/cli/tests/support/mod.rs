//! Shared harness for black-box tests: a temporary PICOCLAW_HOME, the real `picoclaw`
//! binary, and a gateway process started on a free port. Owned by the gateway tests;
//! other test files `mod support;` and use it.
#![allow(dead_code)]

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
        let mut gw = Gateway { child, home: self.path().to_owned(), record: Value::Null };
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
    /// Its home.
    pub home: PathBuf,
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

/// Sends a signal with the `kill` command (keeps tests free of unsafe code).
pub fn unsafe_free_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
