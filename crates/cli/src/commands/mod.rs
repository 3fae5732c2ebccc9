//! One module per subcommand; each turns parsed arguments into calls on the library crates.

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{AuthCommand, Cli, Command, ConfigCommand};

mod auth;
mod chat;
mod config;
mod conformance;
mod doctor;
mod gateway;
mod launcher;
mod onboard;
mod pair;
mod proxy_config;
mod service;
mod sessions;
mod token;
#[cfg(all(feature = "tray", target_os = "linux"))]
mod tray;
mod tui;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Onboard => onboard::run(),
        Command::Config(ConfigCommand::Show { origin, json }) => config::show(origin, json),
        Command::Config(ConfigCommand::Env) => config::env(),
        Command::Auth(AuthCommand::Explain { json }) => auth::explain(json),
        Command::Gateway(args) => gateway::run(args, cli.log_format),
        Command::Token(command) => token::run(command),
        Command::Launcher(args) => launcher::run(args, cli.log_format),
        Command::Chat(args) => chat::run(args),
        Command::Pair(args) => pair::run(args),
        Command::Sessions(command) => sessions::run(command),
        Command::Conformance(args) => conformance::run(args),
        Command::Service(command) => service::run(command),
        Command::Doctor(args) => doctor::run(args),
        Command::Tui => tui::run(),
        Command::ProxyConfig(args) => proxy_config::run(&args),
        Command::Version { json } => {
            if json {
                println!("{}", serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }));
            } else {
                println!("picoclaw {}", env!("CARGO_PKG_VERSION"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "picoclaw", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
