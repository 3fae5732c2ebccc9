//! `picoclaw sessions list|show|export|delete`: the chat history, through the running
//! local gateway's history API (`/api/sessions`) with its runtime token — so the CLI sees
//! exactly what the gateway serves, deletes through the one process that writes the
//! store, and a deleted session's sockets are closed at once.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use picoclaw_config::{Paths, ProcessEnv};
use picoclaw_lifecycle::http::{self, Credential};
use picoclaw_lifecycle::{LifecycleError, VerifiedGateway};
use serde_json::Value;

use crate::cli::SessionsCommand;
use crate::output::{emit, table};

/// Largest history page read (1,000 messages of a few KiB each fit easily).
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

/// Messages per page when exporting.
const EXPORT_PAGE: usize = 500;

pub fn run(command: SessionsCommand) -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    let gateway = match picoclaw_lifecycle::running(&paths) {
        Ok(gateway) => gateway,
        Err(LifecycleError::NotRunning { home }) => bail!(
            "no gateway is running for {home}: the history is served by the gateway; start it with \
             `picoclaw gateway start`"
        ),
        Err(e) => return Err(e.into()),
    };
    match command {
        SessionsCommand::List { limit, json } => list(&gateway, limit, json),
        SessionsCommand::Show { id, after_seq, limit, json } => show(&gateway, &id, after_seq, limit, json),
        SessionsCommand::Export { id, output } => export(&gateway, &id, output.as_deref()),
        SessionsCommand::Delete { id } => delete(&gateway, &id),
    }
}

/// One request; a non-2xx answer becomes an error carrying the gateway's message.
fn call(gateway: &VerifiedGateway, method: &str, path: &str) -> Result<Value> {
    let answer = http::request_bounded(gateway, method, path, Credential::Runtime, MAX_PAGE_BYTES)?;
    if (200..300).contains(&answer.status) {
        return Ok(answer.body);
    }
    let message = answer.body["error"]["message"].as_str().unwrap_or("no details");
    Err(anyhow!("the gateway answered {}: {message}", answer.status))
}

/// The path segment of a session id (ids are checked by the gateway; anything that is
/// not one of its safe characters is refused here before it can reshape the path).
fn segment(id: &str) -> Result<&str> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')) {
        bail!("invalid session id `{id}`: expected 1 to 128 letters, digits, '.', '_', ':' or '-'");
    }
    Ok(id)
}

fn list(gateway: &VerifiedGateway, limit: usize, json: bool) -> Result<ExitCode> {
    let body = call(gateway, "GET", &format!("/api/sessions?limit={limit}"))?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&body)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let sessions = body["sessions"].as_array().cloned().unwrap_or_default();
    if sessions.is_empty() {
        emit("No sessions yet.\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| vec![text(&s["id"]), text(&s["owner"]), text(&s["messages"]), text(&s["last_activity"])])
        .collect();
    let mut out = table(&["SESSION", "OWNER", "MESSAGES", "LAST ACTIVITY"], &rows);
    if body["truncated"] == true {
        let _ = writeln!(out, "(more sessions exist; raise --limit)");
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn show(gateway: &VerifiedGateway, id: &str, after_seq: u64, limit: usize, json: bool) -> Result<ExitCode> {
    let path = format!("/api/sessions/{}/messages?after_seq={after_seq}&limit={limit}", segment(id)?);
    let body = call(gateway, "GET", &path)?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&body)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for m in body["messages"].as_array().into_iter().flatten() {
        let role = m["role"].as_str().unwrap_or("?");
        let content = m["content"].as_str().unwrap_or("");
        let _ = writeln!(out, "[{}] {role}: {content}", m["seq"]);
    }
    if let Some(next) = body["next_after_seq"].as_u64() {
        let _ = writeln!(out, "(more: --after-seq {next})");
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn export(gateway: &VerifiedGateway, id: &str, output: Option<&std::path::Path>) -> Result<ExitCode> {
    let id = segment(id)?;
    let mut lines = String::new();
    let mut after = 0u64;
    let mut count = 0usize;
    loop {
        let path = format!("/api/sessions/{id}/messages?after_seq={after}&limit={EXPORT_PAGE}");
        let body = call(gateway, "GET", &path)?;
        for m in body["messages"].as_array().into_iter().flatten() {
            lines.push_str(&serde_json::to_string(m)?);
            lines.push('\n');
            count += 1;
        }
        match body["next_after_seq"].as_u64() {
            Some(next) if next > after => after = next,
            _ => break,
        }
    }
    match output {
        // History is private: the file is written whole or not at all, mode 0600.
        Some(path) => {
            picoclaw_config::files::write_atomic(path, lines.as_bytes(), 0o600)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("exported {count} messages of session {id} to {}", path.display());
        }
        None => emit(&lines)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn delete(gateway: &VerifiedGateway, id: &str) -> Result<ExitCode> {
    let body = call(gateway, "DELETE", &format!("/api/sessions/{}", segment(id)?))?;
    let closed = body["closed_sockets"].as_u64().unwrap_or(0);
    eprintln!("deleted session {id} and its history ({closed} open sockets closed)");
    Ok(ExitCode::SUCCESS)
}
