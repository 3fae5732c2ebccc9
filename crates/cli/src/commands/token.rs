//! `picoclaw token create|list|revoke|rotate`: named tokens and rotation of the pico and
//! gateway tokens. Changes go to `.security.yml` (read, validate, atomic 0600 write), are
//! recorded in `logs/audit.jsonl`, and a running gateway is asked to reload at once (it
//! also watches the file). A credential that comes from an environment variable is never
//! changed here: that variable is where it has to be changed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use picoclaw_auth::audit::{self, AuditEvent, AuditKind, Outcome};
use picoclaw_auth::named::{
    FixedCredential, GraceDigests, Timestamp, TokenFile, TokenRecord, TokenSet, TokenStoreError,
    format_duration, parse_duration,
};
use picoclaw_auth::{CredentialKind, Scope};
use picoclaw_config::{Flags, Source};
use picoclaw_credentials::Secret;
use serde_json::{Value, json};

use crate::cli::{TokenCommand, TokenScope};
use crate::context::Context;
use crate::output::table;

pub fn run(command: TokenCommand) -> Result<ExitCode> {
    let ctx = Context::load(&Flags::new())?;
    ctx.print_warnings();
    match command {
        TokenCommand::Create { name, scope, expires, json } => {
            create(&ctx, &name, scope, expires.as_deref(), json)
        }
        TokenCommand::List { json } => list(&ctx, json),
        TokenCommand::Revoke { target } => revoke(&ctx, &target),
        TokenCommand::Rotate { target, grace, json } => rotate(&ctx, &target, grace.as_deref(), json),
    }
}

fn scope_of(s: TokenScope) -> Scope {
    match s {
        TokenScope::Chat => Scope::Chat,
        TokenScope::Admin => Scope::Admin,
    }
}

/// `--expires`: a duration from now, or an absolute RFC 3339 time in the future.
fn expiry(text: &str, now: Timestamp) -> Result<Timestamp> {
    match parse_duration(text) {
        Ok(d) if d.is_zero() => {
            bail!("--expires {text}: a token that expires at once is useless; give e.g. 30d")
        }
        Ok(d) => Ok(now.after(d)),
        Err(e) => match Timestamp::parse(text) {
            Some(t) if t > now => Ok(t),
            Some(_) => bail!("--expires {text}: that time is in the past"),
            None => Err(e).context("--expires"),
        },
    }
}

fn grace_of(text: Option<&str>) -> Result<Duration> {
    text.map_or(Ok(Duration::ZERO), |g| parse_duration(g).context("--grace"))
}

fn audit_log(ctx: &Context, event: AuditEvent) {
    let event = event.actor("cli");
    if let Err(e) = audit::append(&ctx.paths.audit_log(), &event) {
        eprintln!("warning: cannot write {}: {e}", ctx.paths.audit_log().display());
    }
}

fn token_file(ctx: &Context) -> TokenFile {
    TokenFile::new(ctx.paths.security_file())
}

fn print_secret(token: &Secret, what: &str) {
    eprintln!("{what} — shown once, it cannot be displayed again (only its SHA-256 is kept):");
    // The one place a token is printed: stdout, for the user to copy or a script to capture.
    println!("{}", token.expose());
}

fn create(
    ctx: &Context,
    name: &str,
    scope: TokenScope,
    expires: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let now = Timestamp::now();
    let expires = expires.map(|e| expiry(e, now)).transpose()?;
    let (record, token) = token_file(ctx).create(name, scope_of(scope), expires, now)?;
    audit_log(
        ctx,
        AuditEvent::new(AuditKind::Create, Outcome::Ok)
            .endpoint("cli:token create")
            .credential(CredentialKind::Named, record.id.as_str()),
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&record.shown_once(now, &token))?);
    } else {
        print_secret(&token, &format!("token `{}` ({} scope)", record.name, record.scope));
        describe(&record);
    }
    notify_gateway(ctx);
    Ok(ExitCode::SUCCESS)
}

fn describe(record: &TokenRecord) {
    let expires = record.expires.map_or_else(|| "never".to_owned(), |t| t.to_string());
    eprintln!("id {}  fingerprint {}  expires {expires}", record.id, record.fingerprint());
}

fn fixed_rows(ctx: &Context) -> Vec<Value> {
    let grace = GraceDigests::from_tree(ctx.loaded.token_records()).ok();
    let now = Timestamp::now();
    [(FixedCredential::Pico, ctx.credentials.pico()), (FixedCredential::Gateway, ctx.credentials.gateway())]
        .into_iter()
        .map(|(cred, resolved)| {
            let grace_until = grace.as_ref().and_then(|g| {
                g.entries()
                    .iter()
                    .filter(|e| e.credential == cred && e.valid_until > now)
                    .map(|e| e.valid_until)
                    .max()
                    .map(|t| t.to_string())
            });
            json!({
                "id": cred.id(),
                "key": cred.key(),
                "scope": cred.scope(),
                "set": resolved.is_some(),
                "source": resolved.map(|r| r.source.to_string()),
                "fingerprint": resolved.map(|r| r.secret.fingerprint().to_string()),
                "old_value_accepted_until": grace_until,
            })
        })
        .collect()
}

fn list(ctx: &Context, json: bool) -> Result<ExitCode> {
    let now = Timestamp::now();
    let set = TokenSet::from_tokens(ctx.loaded.token_records().get("tokens"))?;
    let summaries: Vec<_> = set.records().iter().map(|r| r.summary(now)).collect();
    let fixed = fixed_rows(ctx);
    if json {
        println!("{}", serde_json::to_string_pretty(&json!({"tokens": summaries, "credentials": fixed}))?);
        return Ok(ExitCode::SUCCESS);
    }
    if summaries.is_empty() {
        println!(
            "No named tokens. Create one with `picoclaw token create --name NAME --scope chat|admin`.\n"
        );
    } else {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        let rows: Vec<Vec<String>> = summaries
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
    let rows: Vec<Vec<String>> = fixed
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("-").to_owned();
            let mut source = if f["set"] == true { s("source") } else { "not set".to_owned() };
            if let Some(g) = f["old_value_accepted_until"].as_str() {
                source.push_str(&format!(" (old value accepted until {g})"));
            }
            vec![s("id"), s("scope"), s("fingerprint"), source]
        })
        .collect();
    print!("{}", table(&["CREDENTIAL", "SCOPE", "FINGERPRINT", "SOURCE"], &rows));
    Ok(ExitCode::SUCCESS)
}

/// Refuses to touch a credential whose value comes from an environment variable, and
/// records the refusal.
fn refuse_env(ctx: &Context, cred: FixedCredential, action: &str) -> Result<()> {
    if let Err(e) = TokenFile::check_not_env(cred, &ctx.credentials) {
        audit_denied(ctx, cred, action, &e);
        return Err(e).context(format!("cannot {action} {}", cred.id()));
    }
    Ok(())
}

fn audit_denied(ctx: &Context, cred: FixedCredential, action: &str, e: &TokenStoreError) {
    audit_log(
        ctx,
        AuditEvent::new(
            if action == "rotate" { AuditKind::Rotate } else { AuditKind::Revoke },
            Outcome::Denied,
        )
        .endpoint(&format!("cli:token {action}"))
        .credential(cred.kind(), cred.id())
        .code(e.code()),
    );
}

fn revoke(ctx: &Context, target: &str) -> Result<ExitCode> {
    if let Some(cred) = FixedCredential::from_name(target) {
        refuse_env(ctx, cred, "revoke")?;
        bail!(
            "{key} cannot be revoked without a replacement; run `picoclaw token rotate {id}` (without --grace the \
             old value stops working at once)",
            key = cred.key(),
            id = cred.id()
        );
    }
    let record = token_file(ctx).revoke(target, Timestamp::now())?;
    audit_log(
        ctx,
        AuditEvent::new(AuditKind::Revoke, Outcome::Ok)
            .endpoint("cli:token revoke")
            .credential(CredentialKind::Named, record.id.as_str()),
    );
    println!(
        "revoked token {} (`{}`); it stops working as soon as the gateway reloads",
        record.id, record.name
    );
    notify_gateway(ctx);
    Ok(ExitCode::SUCCESS)
}

fn rotate(ctx: &Context, target: &str, grace: Option<&str>, json: bool) -> Result<ExitCode> {
    let grace = grace_of(grace)?;
    if let Some(cred) = FixedCredential::from_name(target) {
        return rotate_fixed(ctx, cred, grace, json);
    }
    let now = Timestamp::now();
    let (record, token) = token_file(ctx).rotate(target, grace, now)?;
    audit_log(
        ctx,
        AuditEvent::new(AuditKind::Rotate, Outcome::Ok)
            .endpoint("cli:token rotate")
            .credential(CredentialKind::Named, record.id.as_str()),
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&record.shown_once(now, &token))?);
    } else {
        print_secret(&token, &format!("new secret of token `{}` ({} scope)", record.name, record.scope));
        describe(&record);
        grace_note(grace, now);
    }
    notify_gateway(ctx);
    Ok(ExitCode::SUCCESS)
}

fn grace_note(grace: Duration, now: Timestamp) {
    if grace.is_zero() {
        eprintln!("the old secret stopped working (no --grace)");
    } else {
        eprintln!("the old secret keeps working for {} (until {})", format_duration(grace), now.after(grace));
    }
}

fn rotate_fixed(ctx: &Context, cred: FixedCredential, grace: Duration, json: bool) -> Result<ExitCode> {
    refuse_env(ctx, cred, "rotate")?;
    let now = Timestamp::now();
    let file = token_file(ctx);
    let rotation = match file.rotate_fixed(cred, &ctx.credentials, grace, now) {
        Ok(r) => r,
        Err(e @ TokenStoreError::NotSet(_)) => {
            let hint = match cred {
                FixedCredential::Pico => "`picoclaw onboard` creates one",
                FixedCredential::Gateway => {
                    "local tools use the runtime token; set gateway.token in .security.yml for remote admin clients"
                }
            };
            bail!("{e}; {hint}");
        }
        Err(e) => return Err(e.into()),
    };
    audit_log(
        ctx,
        AuditEvent::new(AuditKind::Rotate, Outcome::Ok)
            .endpoint("cli:token rotate")
            .credential(cred.kind(), cred.id()),
    );
    let new: &Secret = &rotation.secret;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "id": cred.id(),
                "key": cred.key(),
                "fingerprint": new.fingerprint().to_string(),
                "old_value_accepted_until": rotation.old_valid_until.map(|t| t.to_string()),
                "token": new.expose(),
            }))?
        );
    } else {
        eprintln!(
            "new {} written to {} (fingerprint {}) — shown once here:",
            cred.key(),
            file.path().display(),
            new.fingerprint()
        );
        println!("{}", new.expose());
        grace_note(grace, now);
    }
    if let Source::ConfigFile(_) = rotation.old_source {
        eprintln!(
            "note: the old value is still in config.json, where it is now shadowed by .security.yml; remove it \
             from config.json (or run `picoclaw doctor --fix`)"
        );
    }
    notify_gateway(ctx);
    Ok(ExitCode::SUCCESS)
}

/// Asks the running gateway (if any) to reload now, with its runtime token, and says
/// whether it confirmed. Never fails the command: the file is already written.
fn notify_gateway(ctx: &Context) {
    let gateway = match picoclaw_lifecycle::running(&ctx.paths) {
        Ok(gateway) => gateway,
        Err(picoclaw_lifecycle::LifecycleError::NotRunning { .. }) => {
            eprintln!("no gateway is running; the change applies when one starts");
            return;
        }
        Err(e) => {
            eprintln!(
                "warning: the running gateway was not asked to reload: {e}. It also watches .security.yml"
            );
            return;
        }
    };
    let record = gateway.record();
    let outcome = super::gateway::call(&gateway, "POST", "/reload", true);
    match outcome {
        Ok((200, _)) => {
            eprintln!("the running gateway (pid {}) reloaded: the change is in effect", record.pid)
        }
        Ok((code, body)) => eprintln!(
            "warning: the running gateway (pid {}) did not confirm the reload ({code}: {}); it also watches \
             .security.yml, or run `picoclaw gateway reload`",
            record.pid,
            body["error"]["message"].as_str().unwrap_or("no details")
        ),
        Err(e) => eprintln!(
            "warning: could not reach the running gateway (pid {}) to reload it: {e:#}; it also watches \
             .security.yml, or run `picoclaw gateway reload`",
            record.pid
        ),
    }
}
