//! `picoclaw gateway`: the foreground server, and `start|stop|restart|status|reload` for a
//! background one. Local management always talks to the gateway recorded in
//! `.picoclaw.pid`, with that gateway's runtime token.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use picoclaw_config::{Flags, LogLevel, Paths, ProcessEnv, schema};
use picoclaw_credentials::runtime::RuntimeRecord;
use picoclaw_gateway::{Gateway, Options};
use picoclaw_lifecycle::spawn::Background;
use picoclaw_lifecycle::{LifecycleError, Probe, VerifiedGateway};
use serde_json::{Value, json};

use crate::cli::{GatewayAction, GatewayArgs, LogFormat};
use crate::context::Context;
use crate::logging;

/// Exit code for "not running" (LSB `status` convention).
const NOT_RUNNING: u8 = 3;
/// Exit code for configuration errors (EX_CONFIG), also used by service units.
const CONFIG_ERROR: u8 = 78;
/// How long `start`/`stop` give a gateway that holds the lock to publish its record (it
/// does so right after binding) before a record that does not match is refused.
const SETTLE: Duration = Duration::from_secs(5);

fn flags(args: &GatewayArgs) -> Flags {
    Flags::new().with(&schema::GATEWAY_HOST, args.host.clone()).with(&schema::GATEWAY_PORT, args.port)
}

pub fn run(args: GatewayArgs, format: LogFormat) -> Result<ExitCode> {
    let flags = flags(&args);
    match args.action {
        None => foreground(flags, format),
        Some(GatewayAction::Start) => start(&args),
        Some(GatewayAction::Stop) => stop(),
        Some(GatewayAction::Restart) => {
            stop()?;
            start(&args)
        }
        Some(GatewayAction::Status { json }) => status(json),
        Some(GatewayAction::Reload) => reload(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_stack_size(2 * 1024 * 1024)
        // Every finished turn is fsynced on the blocking pool before it ends. Parallel
        // fsyncs of different session files share the filesystem's journal commits, so
        // throughput grows with how many are in flight (64 measured as well as 128 here,
        // BENCHMARKS.md F4). Idle threads exit after tokio's keep-alive (10 s).
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn foreground(flags: Flags, format: LogFormat) -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    let log_file = paths.gateway_log();
    let ctx = match Context::load(&flags) {
        Ok(ctx) => ctx,
        Err(e) => {
            logging::init(format, LogLevel::Info, Some(&log_file));
            tracing::error!("configuration error: {e:#}");
            return Ok(ExitCode::from(CONFIG_ERROR));
        }
    };
    logging::init(format, ctx.settings.gateway.log_level, Some(&log_file));
    std::panic::set_hook(Box::new(|info| tracing::error!("panic: {info}")));
    drop(ctx);
    let result = runtime()?.block_on(Gateway::run(Options { paths, flags }));
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!("{e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

fn start(args: &GatewayArgs) -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    match picoclaw_lifecycle::settle(&paths, SETTLE)? {
        Probe::Running(gateway) => {
            println!("gateway already running (pid {}) at {}", gateway.pid(), gateway.base_url());
            return Ok(ExitCode::SUCCESS);
        }
        // The lock is held: a second gateway could not start anyway.
        Probe::Starting(pending) => return Err(refusal("start", LifecycleError::Starting(pending))),
        Probe::Unverified(mismatch) => return Err(refusal("start", LifecycleError::Unverified(mismatch))),
        Probe::Stale | Probe::NotRunning => {}
    }
    // Validate before spawning, so a bad config is reported here and not only in the log.
    let ctx = Context::load(&flags(args))?;
    ctx.print_warnings();
    let exe = std::env::current_exe().context("cannot find the picoclaw executable")?;
    // The child inherits this shell's environment (as a foreground start would); its log
    // goes to logs/gateway.log, which the gateway writes itself.
    let mut background = Background::new(&exe);
    if let Some(host) = &args.host {
        background = background.flag("--host", host);
    }
    if let Some(port) = args.port {
        background = background.flag("--port", &port.to_string());
    }
    // Where this start's log lines begin: a failure shows those, not an earlier run's.
    let log_offset = std::fs::metadata(paths.gateway_log()).map_or(0, |m| m.len());
    let mut child = background.spawn().context("cannot start the gateway process")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut last_mismatch = None;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            // The errors of this start, once (the child's own stderr is discarded).
            let errors = errors_since(&paths.gateway_log(), log_offset, 10);
            if errors.is_empty() {
                eprintln!(
                    "error: the gateway exited during start ({status}); see {}",
                    paths.gateway_log().display()
                );
            } else {
                eprint!("{errors}");
                eprintln!(
                    "(the gateway exited during start, {status}; log: {})",
                    paths.gateway_log().display()
                );
            }
            return Ok(ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)));
        }
        match picoclaw_lifecycle::probe(&paths)? {
            Probe::Running(gateway) if gateway.pid() == child.id() => {
                println!("gateway started (pid {}) at {}", gateway.pid(), gateway.base_url());
                println!("log: {}", paths.gateway_log().display());
                return Ok(ExitCode::SUCCESS);
            }
            Probe::Unverified(mismatch) => last_mismatch = Some(mismatch),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    match last_mismatch {
        Some(m) => bail!(
            "the gateway (pid {}) started, but its record does not verify: {m}; see {}",
            child.id(),
            paths.gateway_log().display()
        ),
        None => bail!("the gateway did not come up within 15 s; see {}", paths.gateway_log().display()),
    }
}

/// The error for refusing `action` against a gateway that holds the lock but could not be
/// verified, with what the user can do about it.
fn refusal(action: &str, e: LifecycleError) -> anyhow::Error {
    let hint = match &e {
        LifecycleError::Starting(p) => match p.holder {
            Some(pid) => format!(
                "\nIf pid {pid} stays the lock holder, check that it is picoclaw (`ps -p {pid} -o args=`) and end it yourself (`kill {pid}`); the next start writes a new record."
            ),
            None => String::new(),
        },
        LifecycleError::Unverified(_) => {
            "\nCheck .picoclaw.pid and who listens at the address it names (`ss -ltnp`).".to_owned()
        }
        _ => String::new(),
    };
    anyhow!("refusing to {action} the gateway: {e}{hint}")
}

/// The ERROR lines (human or JSON format) appended to `path` after byte `offset`, at most
/// `lines` of them (the last ones), each ending in a newline.
fn errors_since(path: &std::path::Path, offset: u64, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        // A rotated log (smaller than the offset) is read from its start.
        let start = if file.metadata().map_or(0, |m| m.len()) < offset { 0 } else { offset };
        if file.seek(SeekFrom::Start(start)).is_ok() {
            // Bounded: a start that fails writes a few lines, never megabytes.
            let _ = file.take(1024 * 1024).read_to_string(&mut text);
        }
    }
    let errors: Vec<&str> =
        text.lines().filter(|l| l.contains(" ERROR ") || l.contains("\"level\":\"ERROR\"")).collect();
    let mut out = String::new();
    for line in &errors[errors.len().saturating_sub(lines)..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn stop() -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    let gateway = match picoclaw_lifecycle::settle(&paths, SETTLE)? {
        Probe::Running(gateway) => gateway,
        Probe::Starting(pending) => return Err(refusal("stop", LifecycleError::Starting(pending))),
        Probe::Unverified(mismatch) => return Err(refusal("stop", LifecycleError::Unverified(mismatch))),
        Probe::Stale | Probe::NotRunning => {
            println!("gateway is not running");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let grace = Context::load(&Flags::new())
        .map(|c| c.settings.gateway.shutdown_timeout)
        .unwrap_or(Duration::from_secs(10))
        + Duration::from_secs(5);
    let pid = gateway.stop(grace)?;
    println!("gateway stopped (pid {pid})");
    Ok(ExitCode::SUCCESS)
}

/// Sends one request to the verified local gateway, with its runtime token when
/// `authenticated` (loopback only, no proxy: see `picoclaw_lifecycle::http`).
pub fn call(
    gateway: &VerifiedGateway,
    method: &str,
    path: &str,
    authenticated: bool,
) -> Result<(u16, Value)> {
    use picoclaw_lifecycle::http::{self, Credential};
    let credential = if authenticated { Credential::Runtime } else { Credential::None };
    let answer = http::request(gateway, method, path, credential)?;
    Ok((answer.status, answer.body))
}

/// What `gateway status` found, in the shape `--json` prints (the text form shows the same).
fn status_report(paths: &Paths) -> Result<(Value, u8)> {
    let gateway = match picoclaw_lifecycle::probe(paths)? {
        Probe::Running(gateway) => gateway,
        Probe::Starting(pending) => {
            return Ok((json!({"state": "starting", "running": false, "detail": pending.to_string()}), 1));
        }
        Probe::Unverified(mismatch) => {
            return Ok((
                json!({
                    "state": "unverified",
                    "running": false,
                    "detail": format!("{mismatch}; local tools neither signal it nor send it a token"),
                }),
                1,
            ));
        }
        Probe::Stale => {
            return Ok((
                json!({
                    "state": "stale",
                    "running": false,
                    "detail": format!(
                        "stale {} left by a crash; the next start replaces it",
                        paths.pid_file().display()
                    ),
                }),
                NOT_RUNNING,
            ));
        }
        Probe::NotRunning => return Ok((json!({"state": "not_running", "running": false}), NOT_RUNNING)),
    };
    let record = gateway.record();
    let ready = call(&gateway, "GET", "/ready", false).is_ok_and(|(code, _)| code == 200);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut report = json!({
        "state": "running",
        "running": true,
        "pid": record.pid,
        "address": record.base_url(),
        "version": record.version,
        "started_at": record.started_at,
        "uptime_s": now.saturating_sub(record.started_at),
        "ready": ready,
    });
    if let Ok((200, s)) = call(&gateway, "GET", "/status", true) {
        report["agent"] = s["agent"].clone();
        report["pico"] = s["pico"].clone();
        report["pico_client"] = s["pico_client"].clone();
    }
    Ok((report, if ready { 0 } else { 1 }))
}

fn status(json: bool) -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    let (report, code) = status_report(&paths)?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::from(code));
    }
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    match report["state"].as_str() {
        Some("running") => {}
        Some("not_running") => {
            writeln!(out, "gateway: not running")?;
            return Ok(ExitCode::from(code));
        }
        Some("stale") => {
            writeln!(out, "gateway: not running ({})", text(&report["detail"]))?;
            return Ok(ExitCode::from(code));
        }
        state => {
            writeln!(out, "gateway: {}: {}", state.unwrap_or("unknown"), text(&report["detail"]))?;
            return Ok(ExitCode::from(code));
        }
    }
    writeln!(out, "gateway:  running")?;
    writeln!(out, "pid:      {}", report["pid"])?;
    writeln!(out, "address:  {}", text(&report["address"]))?;
    writeln!(out, "version:  {}", text(&report["version"]))?;
    writeln!(out, "uptime:   {}", human_duration(report["uptime_s"].as_u64().unwrap_or(0)))?;
    let ready = report["ready"].as_bool() == Some(true);
    writeln!(out, "ready:    {}", if ready { "yes (/ready answered 200)" } else { "no" })?;
    if report.get("agent").is_some() {
        writeln!(out, "agent:    {}", text(&report["agent"]))?;
        let pico = &report["pico"];
        if pico["enabled"].as_bool() == Some(true) {
            writeln!(
                out,
                "pico:     {} connection(s), {} session(s), max {}",
                pico["connections"], pico["sessions"], pico["max_connections"]
            )?;
        } else {
            writeln!(out, "pico:     disabled")?;
        }
        match &report["pico_client"] {
            Value::Null => writeln!(out, "pico_client: disabled")?,
            c => {
                writeln!(
                    out,
                    "pico_client: {} to {} (session {}), {} reconnect(s), {} message(s) answered{}",
                    text(&c["state"]),
                    text(&c["url"]),
                    text(&c["session_id"]),
                    c["reconnects"],
                    c["messages_answered"],
                    c["last_error"].as_str().map(|e| format!("; last error: {e}")).unwrap_or_default()
                )?;
            }
        }
    }
    Ok(ExitCode::from(code))
}

fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

fn reload() -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    let gateway = picoclaw_lifecycle::running(&paths)?;
    let (code, body) = call(&gateway, "POST", "/reload", true)?;
    if code == 200 {
        println!("gateway reloaded (pid {}); sockets closed: {}", gateway.pid(), body["closed_sockets"]);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("reload failed ({code}): {}", body["error"]["message"].as_str().unwrap_or("unknown error"));
        Ok(ExitCode::from(1))
    }
}

/// The verified record of the running local gateway, if any (lock-checked and
/// listener-checked, not PID-guessed).
pub fn live_record(paths: &Paths) -> Option<RuntimeRecord> {
    match picoclaw_lifecycle::probe(paths) {
        Ok(Probe::Running(gateway)) => Some(gateway.into_record()),
        _ => None,
    }
}
