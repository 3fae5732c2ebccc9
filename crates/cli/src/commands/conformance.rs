//! `picoclaw conformance`: runs `picoclaw_pico::conformance` against a Pico server and
//! prints one line per check (or `--json`). Target and token:
//! - without `--url`: the local gateway recorded in `.picoclaw.pid`, with its runtime token;
//! - with `--url`: the token from `--token-env NAME` or `--token-stdin`, else the
//!   configured credentials (pico token, else gateway token), as `picoclaw chat --url`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use picoclaw_config::{Paths, ProcessEnv};
use picoclaw_credentials::{Secret, handed};
use picoclaw_pico::conformance::{self, Level, Outcome, Report, Target};

use crate::cli::ConformanceArgs;
use crate::commands::chat::{PicoTarget, local_gateway, pico_url};

/// Runs `picoclaw conformance`.
pub fn run(args: ConformanceArgs) -> Result<ExitCode> {
    let step = Duration::from_secs(args.timeout.clamp(1, 600));
    let checked = target(&args).and_then(|(url, token, from)| Ok((Target::new(&url, token, step)?, from)));
    let (target, token_from) = match checked {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(conformance::run(&target));
    if args.json {
        let mut json = report.to_json();
        json["token_from"] = token_from.into();
        println!("{json:#}");
    } else {
        print_human(&report, &token_from);
    }
    let passed = report.all_passed(Level::Core) && (!args.strict || report.all_passed(Level::Extension));
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The socket URL, the token, and where the token came from (for the output; no value).
fn target(args: &ConformanceArgs) -> Result<(String, Secret, String)> {
    let handed = if let Some(name) = &args.token_env {
        Some((handed::from_env_variable(&ProcessEnv, name)?, format!("env:{name}")))
    } else if args.token_stdin {
        Some((handed::from_first_line(std::io::stdin().lock())?, "stdin".to_owned()))
    } else {
        None
    };
    match (&args.url, handed) {
        (Some(url), Some((token, from))) => Ok((pico_url(url)?, token, from)),
        (None, Some((token, from))) => {
            let record = local_gateway(&Paths::from_env(&ProcessEnv)?, "test")?;
            Ok((record.base_url().replacen("http://", "ws://", 1) + "/pico/ws", token, from))
        }
        (url, None) => {
            let t = PicoTarget::resolve(url.as_deref(), "test")?;
            Ok((t.url, t.credential, t.described))
        }
    }
}

fn print_human(report: &Report, token_from: &str) {
    println!("Pico conformance of {} (token: {token_from})", report.url);
    let width = report.results.iter().map(|r| r.id.len()).max().unwrap_or(0);
    for r in &report.results {
        let mark = match r.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
        };
        let level = match r.level {
            Level::Core => "",
            Level::Extension => " [v2]",
        };
        println!("{mark}  {:width$}  {}{level} — {}", r.id, r.title, r.detail);
    }
    let (core, ext) = (report.tally(Level::Core), report.tally(Level::Extension));
    println!(
        "core (Pico v1): {}/{} passed; picoclaw protocol 2: {}/{} passed",
        core.passed, core.total, ext.passed, ext.total
    );
}
