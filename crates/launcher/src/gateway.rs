//! Gateway process control: find a running gateway through `.picoclaw.pid` (adopted, left
//! running at exit), or start `picoclaw gateway` as a child (owned, stopped at exit) with
//! only `PICOCLAW_HOME` and `PICOCLAW_CONFIG` in its environment, its output kept in a
//! bounded ring buffer. A record is used (its pid signalled, its runtime token sent) only
//! once `picoclaw_lifecycle` has verified it: its pid holds the lock and owns the listener.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use picoclaw_config::Paths;
use picoclaw_credentials::runtime::RuntimeRecord;
use picoclaw_lifecycle::spawn::Background;
use picoclaw_lifecycle::{LifecycleError, Probe};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Lines of gateway output kept.
pub const LOG_LINES: usize = 500;
/// Longest kept line, in bytes (longer lines are cut).
pub const LOG_LINE_MAX: usize = 2048;
/// How long a start may take before it is reported as failed.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// SIGTERM grace before SIGKILL on stop.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How long a stop gives a gateway that holds the lock to publish its record.
const SETTLE: Duration = Duration::from_secs(5);

/// A bounded buffer of the child's stdout/stderr lines.
#[derive(Debug, Default)]
pub struct LogRing {
    lines: Mutex<VecDeque<String>>,
}

impl LogRing {
    fn push(&self, mut line: String) {
        if line.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        let mut lines = self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if lines.len() >= LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines, oldest first.
    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }

    fn tail(&self, n: usize) -> Vec<String> {
        let all = self.snapshot();
        all[all.len().saturating_sub(n)..].to_vec()
    }
}

/// What the gateway is doing, as the dashboard shows it (serialized in lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum GatewayState {
    /// A verified gateway answers.
    Running,
    /// Being started (by this launcher or another process), or holding the lock before
    /// publishing its record.
    Starting,
    /// This launcher is stopping it.
    Stopping,
    /// This launcher is restarting it.
    Restarting,
    /// None runs.
    Stopped,
    /// The last start or stop failed, or the lock holder does not verify.
    Error,
}

/// The gateway as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayStatus {
    /// `running`, `starting`, `stopping`, `restarting`, `stopped` or `error`.
    pub state: GatewayState,
    /// Whether this launcher started it (and will stop it on exit).
    pub owned: bool,
    /// Its pid, when running.
    pub pid: Option<u32>,
    /// Its version, when running.
    pub version: Option<String>,
    /// `http://host:port`, when running.
    pub url: Option<String>,
    /// Seconds since it started, when running.
    pub uptime_s: Option<u64>,
    /// The last start/stop error, for the user.
    pub error: Option<String>,
}

/// Why a gateway operation failed (shown to the user; never holds a secret).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The child could not be spawned.
    #[error("cannot start the gateway process: {0}")]
    Spawn(#[source] std::io::Error),
    /// The child exited before publishing its record.
    #[error("the gateway exited during start ({status}){}", last_lines(.log))]
    Exited {
        /// Exit status.
        status: String,
        /// Its last output lines.
        log: Vec<String>,
    },
    /// No record within the start timeout.
    #[error("the gateway did not come up within {} s", START_TIMEOUT.as_secs())]
    Timeout,
    /// Stopping failed, or the lock holder is not provably the gateway (then nothing was
    /// signalled).
    #[error("cannot stop the gateway: {0}")]
    Stop(#[source] LifecycleError),
    /// The blocking stop task did not finish.
    #[error("cannot stop the gateway: {0}")]
    StopTask(#[source] tokio::task::JoinError),
    /// A gateway holds the lock but its record does not verify: it is neither signalled
    /// nor sent a token.
    #[error(transparent)]
    Unverified(LifecycleError),
}

fn last_lines(log: &[String]) -> String {
    if log.is_empty() { String::new() } else { format!(": {}", log.join(" | ")) }
}

#[derive(Debug, Default)]
struct Inner {
    child: Option<tokio::process::Child>,
    error: Option<String>,
}

/// Starts, stops and finds the gateway.
#[derive(Debug)]
pub struct GatewayControl {
    paths: Paths,
    exe: PathBuf,
    /// Whether the child's output is piped into [`GatewayControl::logs`] (the launcher);
    /// otherwise it is discarded and the gateway's own `logs/gateway.log` is the record
    /// (the TUI, whose gateway outlives it).
    capture_output: bool,
    inner: tokio::sync::Mutex<Inner>,
    logs: Arc<LogRing>,
    /// The operation in progress (`starting`, `stopping`, `restarting`), so status answers
    /// at once instead of waiting for it.
    busy: Mutex<Option<GatewayState>>,
}

/// Marks an operation in progress until dropped (the outermost one wins: a restart stays
/// "restarting" through its stop and start).
struct Busy<'a> {
    slot: &'a Mutex<Option<GatewayState>>,
    set: bool,
}

impl<'a> Busy<'a> {
    fn new(slot: &'a Mutex<Option<GatewayState>>, what: GatewayState) -> Busy<'a> {
        let mut current = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let set = current.is_none();
        if set {
            *current = Some(what);
        }
        Busy { slot, set }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.set {
            *self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }
}

impl GatewayControl {
    /// Control for the gateway of `paths` (absolute), started from executable `exe`.
    pub fn new(paths: Paths, exe: PathBuf) -> GatewayControl {
        GatewayControl {
            paths,
            exe,
            capture_output: true,
            inner: tokio::sync::Mutex::new(Inner::default()),
            logs: Arc::default(),
            busy: Mutex::new(None),
        }
    }

    /// Like [`GatewayControl::new`], but the child's output is not captured: nothing ties
    /// the gateway to this process, so it keeps running when this process exits without
    /// calling [`GatewayControl::shutdown`] (`picoclaw tui`, like `picoclaw gateway start`).
    pub fn detached(paths: Paths, exe: PathBuf) -> GatewayControl {
        GatewayControl { capture_output: false, ..GatewayControl::new(paths, exe) }
    }

    /// The child's recent output.
    pub fn logs(&self) -> Vec<String> {
        self.logs.snapshot()
    }

    /// The running gateway's verified record (the launcher's upstream credential lives in
    /// it); `None` when no gateway runs or its record does not verify.
    pub async fn record(&self) -> Option<RuntimeRecord> {
        match self.probe().await {
            Probe::Running(gateway) => Some(gateway.into_record()),
            _ => None,
        }
    }

    async fn probe(&self) -> Probe {
        let paths = self.paths.clone();
        tokio::task::spawn_blocking(move || picoclaw_lifecycle::probe(&paths).unwrap_or(Probe::NotRunning))
            .await
            .unwrap_or(Probe::NotRunning)
    }

    /// [`picoclaw_lifecycle::settle`]: a gateway that holds the lock gets a moment to
    /// publish its record.
    async fn settled(&self) -> Probe {
        let paths = self.paths.clone();
        tokio::task::spawn_blocking(move || {
            picoclaw_lifecycle::settle(&paths, SETTLE).unwrap_or(Probe::NotRunning)
        })
        .await
        .unwrap_or(Probe::NotRunning)
    }

    /// Reaps an exited child, remembering why it ended.
    fn reap(&self, inner: &mut Inner) {
        if let Some(child) = inner.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            inner.child = None;
            if !status.success() {
                inner.error = Some(format!("the gateway exited ({status})"));
            }
        }
    }

    /// What is running now.
    pub async fn status(&self) -> GatewayStatus {
        let probe = self.probe().await;
        let busy = *self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(mut inner) = self.inner.try_lock() else {
            // An operation holds the lock: report it rather than wait for it.
            let observed = if matches!(probe, Probe::Running(_)) {
                GatewayState::Running
            } else {
                GatewayState::Starting
            };
            let state = reported_state(busy, observed);
            let record = if let Probe::Running(gateway) = probe { Some(gateway.into_record()) } else { None };
            return GatewayStatus {
                state,
                owned: false,
                pid: record.as_ref().map(|r| r.pid),
                version: record.as_ref().map(|r| r.version.clone()),
                url: record.as_ref().map(RuntimeRecord::base_url),
                uptime_s: None,
                error: None,
            };
        };
        self.reap(&mut inner);
        let child_pid = inner.child.as_ref().and_then(tokio::process::Child::id);
        let mut status = GatewayStatus {
            state: GatewayState::Stopped,
            owned: false,
            pid: None,
            version: None,
            url: None,
            uptime_s: None,
            error: inner.error.clone(),
        };
        match probe {
            Probe::Running(gateway) => {
                let record = gateway.into_record();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                status.state = GatewayState::Running;
                status.owned = child_pid == Some(record.pid);
                status.pid = Some(record.pid);
                status.url = Some(record.base_url());
                status.uptime_s = Some(now.saturating_sub(record.started_at));
                status.version = Some(record.version);
                status.error = None;
            }
            Probe::Starting(_) => status.state = GatewayState::Starting,
            Probe::Unverified(mismatch) => {
                status.state = GatewayState::Error;
                status.error = Some(LifecycleError::Unverified(mismatch).to_string());
            }
            Probe::Stale | Probe::NotRunning => {
                if child_pid.is_some() {
                    status.state = GatewayState::Starting;
                    status.owned = true;
                } else if status.error.is_some() {
                    status.state = GatewayState::Error;
                }
            }
        }
        // Between a restart's stop and its start the lock is free for a moment: the
        // operation in progress is still what a client is told, never "stopped".
        status.state = reported_state(busy, status.state);
        status
    }

    /// Starts a gateway unless one is running; returns its record.
    pub async fn start(&self) -> Result<RuntimeRecord, ControlError> {
        let _busy = Busy::new(&self.busy, GatewayState::Starting);
        let mut inner = self.inner.lock().await;
        self.reap(&mut inner);
        match self.probe().await {
            Probe::Running(gateway) => return Ok(gateway.into_record()),
            Probe::Starting(_) => return self.wait_for(None, &mut inner).await,
            // The lock is held: a second gateway could not start, and this one is not used.
            Probe::Unverified(mismatch) => {
                return Err(ControlError::Unverified(LifecycleError::Unverified(mismatch)));
            }
            Probe::Stale | Probe::NotRunning => {}
        }
        if inner.child.is_some() {
            return self.wait_for(None, &mut inner).await;
        }
        // Its own process group (a Ctrl-C in the launcher's terminal reaches the launcher,
        // which then stops the child gracefully itself), the files' credentials only.
        let mut background = Background::new(&self.exe).only_paths(&self.paths);
        if self.capture_output {
            background = background.piped_output();
        }
        let mut cmd = tokio::process::Command::from(background.into_command());
        cmd.kill_on_drop(false);
        let mut child = cmd.spawn().map_err(ControlError::Spawn)?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump_lines(out, self.logs.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump_lines(err, self.logs.clone()));
        }
        let pid = child.id();
        tracing::info!(pid, "started the gateway as a child");
        inner.child = Some(child);
        inner.error = None;
        let result = self.wait_for(pid, &mut inner).await;
        if let Err(e) = &result {
            inner.error = Some(e.to_string());
            tracing::warn!("gateway start failed: {e}");
        }
        result
    }

    async fn wait_for(&self, pid: Option<u32>, inner: &mut Inner) -> Result<RuntimeRecord, ControlError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut unverified = None;
        loop {
            if let Some(child) = inner.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                inner.child = None;
                // Let the output pumps catch up so the error shows the cause.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(ControlError::Exited { status: status.to_string(), log: self.logs.tail(5) });
            }
            match self.probe().await {
                Probe::Running(gateway) if pid.is_none_or(|p| p == gateway.pid()) => {
                    return Ok(gateway.into_record());
                }
                Probe::Unverified(m) => unverified = Some(LifecycleError::Unverified(m)),
                Probe::Starting(p) if p.recorded.is_some() => {
                    unverified = Some(LifecycleError::Starting(p));
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(unverified.map_or(ControlError::Timeout, ControlError::Unverified));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the running gateway (owned or adopted): SIGTERM, then SIGKILL after a grace.
    pub async fn stop(&self) -> Result<Option<u32>, ControlError> {
        let _busy = Busy::new(&self.busy, GatewayState::Stopping);
        let mut inner = self.inner.lock().await;
        let stopped = match self.settled().await {
            Probe::Running(gateway) => {
                let pid = tokio::task::spawn_blocking(move || gateway.stop(STOP_GRACE))
                    .await
                    .map_err(ControlError::StopTask)?
                    .map_err(ControlError::Stop)?;
                Some(pid)
            }
            // Not provably the gateway: never signalled. A child of ours is ended below.
            Probe::Starting(pending) if inner.child.is_none() => {
                return Err(ControlError::Stop(LifecycleError::Starting(pending)));
            }
            Probe::Unverified(mismatch) if inner.child.is_none() => {
                return Err(ControlError::Stop(LifecycleError::Unverified(mismatch)));
            }
            Probe::Starting(_) | Probe::Unverified(_) | Probe::Stale | Probe::NotRunning => None,
        };
        if let Some(mut child) = inner.child.take() {
            if stopped.is_none() {
                // Started but never published a record: end it directly.
                let _ = child.start_kill();
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        inner.error = None;
        if let Some(pid) = stopped {
            tracing::info!(pid, "stopped the gateway");
        }
        Ok(stopped)
    }

    /// Stop, then start.
    pub async fn restart(&self) -> Result<RuntimeRecord, ControlError> {
        let _busy = Busy::new(&self.busy, GatewayState::Restarting);
        self.stop().await?;
        self.start().await
    }

    /// At launcher exit: stop the gateway only if this launcher started it.
    pub async fn shutdown(&self) {
        let owned = {
            let mut inner = self.inner.lock().await;
            self.reap(&mut inner);
            inner.child.is_some()
        };
        if owned {
            tracing::info!("stopping the gateway this launcher started");
            if let Err(e) = self.stop().await {
                tracing::warn!("{e}");
            }
        }
    }
}

/// The state a client is told: an operation in progress (`busy`) wins over what was
/// observed, except a start that has already reached a running gateway.
fn reported_state(busy: Option<GatewayState>, observed: GatewayState) -> GatewayState {
    match busy {
        Some(GatewayState::Starting) if observed == GatewayState::Running => observed,
        Some(op) => op,
        None => observed,
    }
}

async fn pump_lines(stream: impl AsyncRead + Unpin, ring: Arc<LogRing>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Bounded read: take at most LOG_LINE_MAX * 2 bytes per line from the pipe.
        match (&mut reader).take((LOG_LINE_MAX * 2) as u64).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                ring.push(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded() {
        let ring = LogRing::default();
        for i in 0..(LOG_LINES + 50) {
            ring.push(format!("line {i}"));
        }
        let lines = ring.snapshot();
        assert_eq!(lines.len(), LOG_LINES);
        assert_eq!(lines[0], "line 50");
        ring.push("x".repeat(LOG_LINE_MAX * 3));
        assert!(ring.snapshot().last().unwrap().len() <= LOG_LINE_MAX + 4);
    }

    #[test]
    fn an_operation_in_progress_is_reported_over_what_is_observed() {
        use GatewayState::{Restarting, Running, Starting, Stopped, Stopping};
        // The moment between a restart's stop and its start.
        assert_eq!(reported_state(Some(Restarting), Stopped), Restarting);
        assert_eq!(reported_state(Some(Restarting), Running), Restarting);
        assert_eq!(reported_state(Some(Stopping), Running), Stopping);
        assert_eq!(reported_state(Some(Starting), Stopped), Starting);
        assert_eq!(reported_state(Some(Starting), Running), Running);
        assert_eq!(reported_state(None, Stopped), Stopped);
    }

    #[test]
    fn states_serialize_as_the_dashboard_reads_them() {
        let all = [
            (GatewayState::Running, "running"),
            (GatewayState::Starting, "starting"),
            (GatewayState::Stopping, "stopping"),
            (GatewayState::Restarting, "restarting"),
            (GatewayState::Stopped, "stopped"),
            (GatewayState::Error, "error"),
        ];
        for (state, text) in all {
            assert_eq!(serde_json::to_value(state).unwrap(), serde_json::json!(text));
        }
    }
}
