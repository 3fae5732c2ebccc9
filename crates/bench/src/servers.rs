//! Starting and measuring the two servers under test as child processes: the real
//! `picoclaw gateway` (temp `PICOCLAW_HOME`, port 0, Pico enabled with a generated token in
//! `.security.yml`) and the baseline echo server. Both are timed exec → `/ready` 200, and
//! both are sampled the same way (`VmRSS` in `/proc/<pid>/status`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// How long a server may take to answer `/ready` before the run fails.
const READY_LIMIT: Duration = Duration::from_secs(15);

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The bare echo server.
    Baseline,
    /// `picoclaw gateway`.
    Gateway,
    /// The bare server answering each text frame with the three frames a gateway echo
    /// turn sends (`typing.start`, `message.create`, `typing.stop`): what the Pico
    /// protocol itself costs on this stack, with no auth, session or storage.
    PicoShaped,
}

impl Kind {
    /// The WebSocket path.
    pub fn ws_path(self) -> &'static str {
        match self {
            Kind::Baseline | Kind::PicoShaped => "/ws",
            Kind::Gateway => "/pico/ws",
        }
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Gateway => "gateway",
            Kind::PicoShaped => "pico-shaped baseline",
        }
    }
}

/// What the bench needs to start servers.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `picoclaw` binary.
    pub picoclaw: PathBuf,
    /// This bench binary (for `baseline-server`).
    pub bench: PathBuf,
    /// Where temporary homes are made.
    pub home_dir: PathBuf,
}

/// A running server; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    /// Which server.
    pub kind: Kind,
    /// Its process.
    child: Child,
    /// The bound port on 127.0.0.1.
    pub port: u16,
    /// The Pico token for `Authorization: Bearer` (gateway only).
    pub token: Option<String>,
    /// Time from spawn to the first `/ready` 200.
    pub ready_after: Duration,
    _home: tempfile::TempDir,
}

fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl Launch {
    /// Starts a server and waits until `/ready` answers 200.
    pub async fn start(&self, kind: Kind) -> Result<Server> {
        self.start_with(kind, &[]).await
    }

    /// [`Launch::start`] with extra environment variables for the gateway (settings from
    /// the schema table, never secrets).
    pub async fn start_with(&self, kind: Kind, env: &[(&str, &str)]) -> Result<Server> {
        let home = tempfile::Builder::new()
            .prefix("picoclaw-bench-")
            .tempdir_in(&self.home_dir)
            .with_context(|| format!("cannot make a temp home in {}", self.home_dir.display()))?;
        let (mut cmd, token) = match kind {
            Kind::Gateway => {
                let token = random_hex(24)?;
                // The token goes in .security.yml (0600), never in argv or the child's env.
                picoclaw_config::files::write_atomic(
                    &home.path().join(".security.yml"),
                    format!("channels:\n  pico:\n    token: \"{token}\"\n").as_bytes(),
                    0o600,
                )?;
                let mut cmd = Command::new(&self.picoclaw);
                cmd.args(["gateway", "--port", "0"]).env_clear();
                if let Some(path) = std::env::var_os("PATH") {
                    cmd.env("PATH", path);
                }
                cmd.env("HOME", home.path())
                    .env("PICOCLAW_HOME", home.path())
                    .env("PICOCLAW_CHANNELS_PICO_ENABLED", "true")
                    .env("PICOCLAW_CHANNELS_PICO_MAX_CONNECTIONS", "20000")
                    // All 100 load sockets share one token; the per-credential message rate
                    // (120/min by default) would measure the limiter, not the gateway.
                    .env("PICOCLAW_AGENTS_DEFAULTS_MESSAGES_PER_MINUTE", "1000000000")
                    .env("PICOCLAW_LOG_LEVEL", "warn");
                cmd.envs(env.iter().copied());
                (cmd, Some(token))
            }
            Kind::Baseline | Kind::PicoShaped => {
                let mut cmd = Command::new(&self.bench);
                cmd.arg("baseline-server").arg("--port-file").arg(home.path().join("port"));
                if kind == Kind::PicoShaped {
                    cmd.arg("--pico-frames");
                }
                (cmd, None)
            }
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let started = Instant::now();
        let child = cmd.spawn().with_context(|| format!("cannot start the {}", kind.name()))?;
        let mut server = Server { kind, child, port: 0, token, ready_after: Duration::ZERO, _home: home };
        server.port = wait_ready(&mut server, started).await?;
        server.ready_after = started.elapsed();
        Ok(server)
    }
}

fn read_port(kind: Kind, home: &Path) -> Option<u16> {
    match kind {
        Kind::Gateway => {
            let text = std::fs::read_to_string(home.join(".picoclaw.pid")).ok()?;
            let record: serde_json::Value = serde_json::from_str(&text).ok()?;
            record["port"].as_u64().and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0)
        }
        Kind::Baseline | Kind::PicoShaped => {
            std::fs::read_to_string(home.join("port")).ok()?.trim().parse().ok()
        }
    }
}

async fn wait_ready(server: &mut Server, started: Instant) -> Result<u16> {
    let home = server._home.path().to_owned();
    let mut port = None;
    while started.elapsed() < READY_LIMIT {
        if let Some(status) = server.child.try_wait()? {
            bail!(
                "the {} exited during start ({status}); see {}",
                server.kind.name(),
                home.join("logs").display()
            );
        }
        if port.is_none() {
            port = read_port(server.kind, &home);
        }
        if let Some(p) = port
            && let Ok((200, _)) = crate::http::get(p, "/ready", Duration::from_secs(2)).await
        {
            return Ok(p);
        }
        tokio::time::sleep(Duration::from_micros(250)).await;
    }
    bail!("the {} did not answer /ready 200 within {READY_LIMIT:?}", server.kind.name())
}

impl Server {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in bytes.
    pub fn rss(&self) -> Result<u64> {
        rss_of(self.pid())
    }

    /// The soft and hard `Max open files` of the process.
    pub fn nofile(&self) -> Option<(String, String)> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        let mut fields = line["Max open files".len()..].split_whitespace();
        Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `VmRSS` of a process, in bytes.
pub fn rss_of(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("read /proc/<pid>/status")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("VmRSS is not a number")?;
    Ok(kib * 1024)
}
