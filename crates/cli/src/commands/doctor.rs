//! `picoclaw doctor [--fix] [--json]`: prints the doctor's findings; exit 0 when no
//! problem remains, 1 otherwise.

use std::process::ExitCode;

use anyhow::Result;
use picoclaw_config::ProcessEnv;
use picoclaw_doctor::Options;

use crate::cli::DoctorArgs;

pub fn run(args: DoctorArgs) -> Result<ExitCode> {
    let options = Options { env: &ProcessEnv, fix: args.fix, current_exe: std::env::current_exe().ok() };
    let report = picoclaw_doctor::run(&options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.problems_remaining == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
