//! `picoclaw token create|list|revoke|rotate`: named tokens and rotation of the pico and
//! gateway tokens, through `picoclaw_auth::named::ops` — the service the gateway's admin
//! API calls too, so both parse the same input, refuse it with the same errors, print the
//! same JSON (`--json`) and write the same audit line to `logs/audit.jsonl`. What is left
//! here is the printing (stdout carries only the new token, for scripts) and asking a
//! running gateway to reload at once (it also watches the file). A credential that comes
//! from an environment variable is never changed: that variable is where it has to be
//! changed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use picoclaw_auth::Scope;
use picoclaw_auth::audit::{self, AuditEvent, AuditSink};
use picoclaw_auth::named::ops::{
    CreateRequest, Grace, Listed, Requester, RotateRequest, TokenKey, TokenOpError, TokenOps,
};
use picoclaw_auth::named::{TokenSummary, format_duration};
use picoclaw_config::Flags;
use picoclaw_credentials::Secret;

use crate::cli::{TokenCommand, TokenScope};
use crate::context::Context;
use crate::output::table;

pub fn run(command: TokenCommand) -> Result<ExitCode> {
    let ctx = Context::load(&Flags::new())?;
    ctx.print_warnings();
    let ops = ctx.token_ops();
    let audit = AuditFile(ctx.paths.audit_log());
    match command {
        TokenCommand::Create { name, scope, expires, json } => {
            let request = CreateRequest::new(&name, scope_of(scope), expires.as_deref(), ops.now())
                .map_err(cli_error)?;
            create(&ctx, &ops, &audit, &request, json)
        }
        TokenCommand::List { json } => list(&ops, json),
        TokenCommand::Revoke { target, json } => {
            let key = TokenKey::parse(&target).map_err(cli_error)?;
            revoke(&ctx, &ops, &audit, &key, json)
        }
        TokenCommand::Rotate { target, grace, json } => {
            let request = RotateRequest::new(&target, grace.as_deref()).map_err(cli_error)?;
            rotate(&ctx, &ops, &audit, &request, json)
        }
    }
}

fn scope_of(s: TokenScope) -> Scope {
    match s {
        TokenScope::Read => Scope::Read,
        TokenScope::Chat => Scope::Chat,
        TokenScope::Admin => Scope::Admin,
    }
}

/// The service's message, printed as it is — except that an invalid field's message
/// starts with the field's name (`grace: ...`), which here is a flag: `--grace: ...`.
fn cli_error(e: TokenOpError) -> anyhow::Error {
    match e.field() {
        Some(field) if field.is_flag() => anyhow!("--{e}"),
        _ => anyhow::Error::new(e),
    }
}

/// `logs/audit.jsonl`, appended to synchronously: this process ends right after.
struct AuditFile(PathBuf);

impl AuditSink for AuditFile {
    fn record(&self, event: &AuditEvent) {
        if let Err(e) = audit::append(&self.0, event) {
            eprintln!("warning: cannot write {}: {e}", self.0.display());
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_secret(token: &Secret, what: &str) {
    eprintln!("{what} — shown once, it cannot be displayed again (only its SHA-256 is kept):");
    // The one place a token is printed: stdout, for the user to copy or a script to capture.
    println!("{}", token.expose());
}

fn describe(summary: &TokenSummary) {
    let expires = summary.expires.as_deref().unwrap_or("never");
    eprintln!("id {}  fingerprint {}  expires {expires}", summary.id, summary.fingerprint);
}

fn create(
    ctx: &Context,
    ops: &TokenOps,
    audit: &AuditFile,
    request: &CreateRequest,
    json: bool,
) -> Result<ExitCode> {
    let created = ops.create(request, &Requester::Cli, audit).map_err(cli_error)?;
    if json {
        print_json(&created)?;
    } else {
        let s = &created.summary;
        print_secret(created.secret(), &format!("token `{}` ({} scope)", s.name, s.scope));
        describe(s);
    }
    notify_gateway(ctx);
    Ok(ExitCode::SUCCESS)
}

fn list(ops: &TokenOps, json: bool) -> Result<ExitCode> {
    let listed: Listed = ops.list().map_err(cli_error)?;
    if json {
        print_json(&listed)?;
        return Ok(ExitCode::SUCCESS);
    }
    if listed.tokens.is_empty() {
        println!(
            "No named tokens. Create one with `picoclaw token create --name NAME --scope read|chat|admin`.\n"
        );
    } else {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        let rows: Vec<Vec<String>> = listed
            .tokens
            .iter()
            .map(|s| {
                let state = match &s.grace_until {
                    Some(g) => format!("{} (old secret until {g})", s.state),
                    None => s.state.to_string(),
                };
                vec![
                    s.id.clone(),
                    s.name.clone(),
                    s.scope.to_string(),
                    state,
                    s.created.clone(),
                    dash(&s.expires),
                    dash(&s.last_used),
                    s.fingerprint.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["ID", "NAME", "SCOPE", "STATE", "CREATED", "EXPIRES", "LAST USED", "FINGERPRINT"], &rows)
        );
        println!();
    }
    let rows: Vec<Vec<String>> = listed
        .credentials
        .iter()
        .map(|c| {
            let mut source = if c.set { c.source.clone().unwrap_or_default() } else { "not set".to_owned() };
            if let Some(g) = &c.grace_until {
                source.push_str(&format!(" (old value accepted until {g})"));
            }
            vec![
                c.id.to_owned(),
                c.scope.to_string(),
                c.fingerprint.clone().unwrap_or_else(|| "-".to_owned()),
                source,
            ]
        })
        .collect();
    print!("{}", table(&["CREDENTIAL", "SCOPE", "FINGERPRINT", "SOURCE"], &rows));
    Ok(ExitCode::SUCCESS)
}

fn revoke(ctx: &Context, ops: &TokenOps, audit: &AuditFile, key: &TokenKey, json: bool) -> Result<ExitCode> {
    let revoked = ops.revoke(key, &Requester::Cli, audit).map_err(cli_error)?;
    if json {
        print_json(&revoked)?;
    } else {
        println!(
            "revoked token {} (`{}`); it stops working as soon as the gateway reloads",
            revoked.summary.id, revoked.summary.name
        );
    }
    notify_gateway(ctx);
    Ok(ExitCode::SUCCESS)
}

fn rotate(
    ctx: &Context,
    ops: &TokenOps,
    audit: &AuditFile,
    request: &RotateRequest,
    json: bool,
) -> Result<ExitCode> {
    let fixed = matches!(request.key, TokenKey::Fixed(_));
    if let TokenKey::Fixed(credential) = &request.key {
        refuse_if_the_gateway_takes_it_from_env(ctx, credential.id())?;
    }
    let rotated = ops.rotate(request, &Requester::Cli, audit).map_err(cli_error)?;
    if json {
        print_json(&rotated)?;
    } else {
        match (&rotated.record, &rotated.credential) {
            (Some(record), _) => {
                print_secret(
                    rotated.secret(),
                    &format!("new secret of token `{}` ({} scope)", record.name, record.scope),
                );
                describe(record);
            }
            (None, credential) => {
                eprintln!(
                    "new {} written to {} (fingerprint {}) — shown once here:",
                    credential.as_ref().map_or(rotated.id.as_str(), |c| c.key),
                    ctx.paths.security_file().display(),
                    rotated.fingerprint
                );
                println!("{}", rotated.secret().expose());
            }
        }
        grace_note(request.grace, rotated.grace_until.as_deref());
    }
    if rotated.old_value_in_config_file() {
        eprintln!(
            "note: the old value is still in config.json, where it is now shadowed by .security.yml; remove it \
             from config.json (or run `picoclaw doctor --fix`)"
        );
    }
    notify_gateway(ctx);
    if fixed {
        return confirm_the_gateway_accepts(ctx, rotated.secret());
    }
    Ok(ExitCode::SUCCESS)
}

/// The running gateway resolved `pico`/`gateway` from its *own* environment (a service
/// unit, a container spec), which this shell may not have: rewriting `.security.yml` would
/// then change nothing. Refuse, as the admin API does, before writing anything.
pub(super) fn refuse_if_the_gateway_takes_it_from_env(ctx: &Context, id: &str) -> Result<()> {
    let Ok(gateway) = picoclaw_lifecycle::running(&ctx.paths) else { return Ok(()) };
    let Ok((200, listed)) = super::gateway::call(&gateway, "GET", "/api/tokens", true) else { return Ok(()) };
    let source = listed["credentials"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == id))
        .and_then(|r| r["source"].as_str())
        .unwrap_or("");
    if let Some(var) = source.strip_prefix("env:") {
        bail!(
            "the running gateway (pid {}) takes the {id} token from its environment ({var}); rotating it in \
             .security.yml would change nothing. Change {var} where it is set (the service unit, the container \
             spec or Kubernetes Secret) and restart the gateway",
            gateway.record().pid
        );
    }
    Ok(())
}

/// After a fixed rotation: the running gateway must accept the new value, or the command
/// fails (exit 1) instead of reporting a rotation that is not in effect.
pub(super) fn confirm_the_gateway_accepts(
    ctx: &Context,
    secret: &picoclaw_credentials::Secret,
) -> Result<ExitCode> {
    use picoclaw_lifecycle::http::{Credential, request};
    let Ok(gateway) = picoclaw_lifecycle::running(&ctx.paths) else { return Ok(ExitCode::SUCCESS) };
    match request(&gateway, "GET", "/auth/whoami", Credential::Configured(secret)) {
        Ok(answer) if answer.status == 200 => Ok(ExitCode::SUCCESS),
        Ok(answer) => bail!(
            "the running gateway (pid {}) does not accept the new value yet ({}: {}); the file is written — \
             run `picoclaw gateway reload` or `picoclaw doctor` to see why",
            gateway.record().pid,
            answer.status,
            answer.body["error"]["code"].as_str().unwrap_or("no details")
        ),
        Err(e) => bail!("could not confirm the rotation with the running gateway: {e}"),
    }
}

fn grace_note(grace: Grace, until: Option<&str>) {
    match until {
        Some(until) if !grace.is_none() => {
            eprintln!(
                "the old secret keeps working for {} (until {until})",
                format_duration(grace.duration())
            )
        }
        _ => eprintln!("the old secret stopped working (no --grace)"),
    }
}

/// Asks the running gateway (if any) to reload now, with its runtime token, and says
/// whether it confirmed. Never fails the command: the file is already written.
fn notify_gateway(ctx: &Context) {
    eprintln!("{}", ask_gateway_to_reload(ctx));
}

/// Asks the running gateway (if any) to reload now, with its runtime token; what happened,
/// for the user (`warning: …` when it did not confirm). Shared with `picoclaw tui`.
pub(super) fn ask_gateway_to_reload(ctx: &Context) -> String {
    let gateway = match picoclaw_lifecycle::running(&ctx.paths) {
        Ok(gateway) => gateway,
        Err(picoclaw_lifecycle::LifecycleError::NotRunning { .. }) => {
            return "no gateway is running; the change applies when one starts".to_owned();
        }
        Err(e) => {
            return format!(
                "warning: the running gateway was not asked to reload: {e}. It also watches .security.yml"
            );
        }
    };
    let record = gateway.record();
    let outcome = super::gateway::call(&gateway, "POST", "/reload", true);
    match outcome {
        Ok((200, _)) => format!("the running gateway (pid {}) reloaded: the change is in effect", record.pid),
        Ok((code, body)) => format!(
            "warning: the running gateway (pid {}) did not confirm the reload ({code}: {}); it also watches \
             .security.yml, or run `picoclaw gateway reload`",
            record.pid,
            body["error"]["message"].as_str().unwrap_or("no details")
        ),
        Err(e) => format!(
            "warning: could not reach the running gateway (pid {}) to reload it: {e:#}; it also watches \
             .security.yml, or run `picoclaw gateway reload`",
            record.pid
        ),
    }
}
