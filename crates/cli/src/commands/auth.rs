//! `picoclaw auth explain`.

use std::process::ExitCode;

use std::fmt::Write as _;

use anyhow::Result;
use picoclaw_auth::explain::{Extra, explain as build, named_token_counts};
use picoclaw_config::Flags;

use crate::context::Context;
use crate::output::table;

pub fn explain(json: bool) -> Result<ExitCode> {
    let mut out = String::new();
    let ctx = Context::load(&Flags::new())?;
    ctx.print_warnings();
    let launcher = ctx.loaded.launcher_token();
    let runtime = super::gateway::live_record(&ctx.paths);
    let named = named_token_counts(&ctx.token_records());
    let password = ctx.loaded.dashboard_password().ok().flatten();
    let extra =
        Extra { runtime: runtime.as_ref(), launcher: launcher.as_ref(), password: password.as_ref(), named };
    let explanation = build(&ctx.settings, &ctx.credentials, &extra);
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&explanation)?)?;
        crate::output::emit(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "Endpoints and the credentials they accept now:\n")?;
    let rows: Vec<Vec<String>> = explanation
        .endpoints
        .iter()
        .map(|e| {
            vec![
                e.server.to_owned(),
                e.endpoint.clone(),
                if e.accepts.is_empty() { "nothing now".to_owned() } else { e.accepts.join(", ") },
                e.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    write!(out, "{}", table(&["SERVER", "ENDPOINT", "ACCEPTS", "NOTE"], &rows))?;
    writeln!(out, "\nCredentials (values are never shown; fingerprint = first 8 hex of SHA-256):\n")?;
    let rows: Vec<Vec<String>> = explanation
        .credentials
        .iter()
        .map(|c| {
            vec![
                c.name.to_owned(),
                if c.set { "set".into() } else { "not set".into() },
                c.source.clone().unwrap_or_else(|| "-".into()),
                c.fingerprint.clone().unwrap_or_else(|| "-".into()),
                c.env.unwrap_or("-").to_owned(),
                c.note.to_owned(),
            ]
        })
        .collect();
    write!(out, "{}", table(&["CREDENTIAL", "STATE", "SOURCE", "FINGERPRINT", "ENV", "NOTE"], &rows))?;
    writeln!(
        out,
        "\nPrecedence: environment > .security.yml > config.json. Local tools use the runtime token."
    )?;
    if !explanation.warnings.is_empty() {
        writeln!(out)?;
        for w in &explanation.warnings {
            writeln!(out, "warning: {w}")?;
        }
    }
    crate::output::emit(&out)?;
    Ok(ExitCode::SUCCESS)
}
