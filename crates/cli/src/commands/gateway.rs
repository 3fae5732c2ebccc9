//! `picoclaw gateway`: foreground server and background management.

use std::process::ExitCode;

use anyhow::Result;
use picoclaw_config::Paths;
use picoclaw_credentials::runtime::RuntimeRecord;

use crate::cli::{GatewayArgs, LogFormat};
use crate::context::Context;

pub fn run(_args: GatewayArgs, _format: LogFormat) -> Result<ExitCode> {
    anyhow::bail!("the gateway is not built yet")
}

/// The record of the running local gateway, if any.
pub fn live_record(paths: &Paths) -> Option<RuntimeRecord> {
    RuntimeRecord::read(&paths.pid_file()).ok().flatten()
}

/// (admin, chat) counts of valid named tokens.
pub fn named_token_counts(_ctx: &Context) -> (usize, usize) {
    (0, 0)
}
