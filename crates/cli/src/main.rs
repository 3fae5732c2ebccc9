//! `picoclaw`: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod context;
mod logging;
mod output;

fn main() -> ExitCode {
    let args = cli::Cli::parse_from(cli::normalize_args(std::env::args_os()));
    match commands::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
