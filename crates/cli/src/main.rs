//! `picoclaw`: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod context;
mod logging;
mod output;

/// jemalloc with its background thread, which returns freed pages to the OS on time even
/// when the gateway goes idle (glibc kept the memory of closed sockets: RELIABILITY.md).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
