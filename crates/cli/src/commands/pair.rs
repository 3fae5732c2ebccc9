//! `picoclaw pair`: asks the running local gateway (with its runtime token) for a one-time
//! pairing code and prints the link that carries it — alone on stdout, optionally as a
//! terminal QR code. The code is output only: no flag takes one, so it never reaches argv.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use picoclaw_config::{Paths, ProcessEnv};
use picoclaw_lifecycle::LifecycleError;
use picoclaw_lifecycle::http::{self, Credential};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use serde_json::{Value, json};

use crate::cli::{PairArgs, PairScope};
use crate::output::emit;

pub fn run(args: PairArgs) -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    let gateway = match picoclaw_lifecycle::running(&paths) {
        Ok(gateway) => gateway,
        Err(LifecycleError::NotRunning { home }) => bail!(
            "no gateway is running for {home}: pairing codes are issued by the running gateway; start it \
             with `picoclaw gateway start`"
        ),
        Err(e) => return Err(e.into()),
    };
    let name = match args.name {
        Some(name) => name,
        None => default_name()?,
    };
    let mut body = json!({
        "name": name,
        "scope": match args.scope { PairScope::Chat => "chat", PairScope::Read => "read" },
        "ttl": args.ttl,
    });
    if let Some(url) = &args.public_url {
        body["public_url"] = Value::from(url.as_str());
    }
    // With replicas (storage.url) a code of this replica's runtime token works here only
    // (no other replica can check that parent); gateway.token is shared by all of them.
    let ctx = crate::context::Context::load(&picoclaw_config::Flags::new())?;
    let shared_admin = ctx.settings.storage.url.as_ref().and(ctx.credentials.gateway());
    let credential = match shared_admin {
        Some(resolved) => Credential::Configured(&resolved.secret),
        None => Credential::Runtime,
    };
    let answer = http::request_json(&gateway, "POST", "/api/pair", credential, &body)?;
    if answer.status != 201 {
        let message = answer.body["error"]["message"].as_str().unwrap_or("no details");
        return Err(anyhow!("the gateway refused to pair ({}): {message}", answer.status));
    }
    let link = answer.body["link"].as_str().ok_or_else(|| anyhow!("the gateway's answer has no link"))?;
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&answer.body)?))?;
    } else {
        let mut out = format!("{link}\n");
        if args.qr {
            out.push_str(&qr(link)?);
        }
        emit(&out)?;
    }
    let ttl = answer.body["ttl_s"].as_u64().unwrap_or_default();
    eprintln!(
        "one-time link for a {} token named `{}`: open it on the device within {} (it works once); \
         revoke the device later with `picoclaw token revoke {}`",
        answer.body["scope"].as_str().unwrap_or("?"),
        answer.body["name"].as_str().unwrap_or("?"),
        picoclaw_auth::named::format_duration(std::time::Duration::from_secs(ttl)),
        answer.body["name"].as_str().unwrap_or("NAME"),
    );
    if args.public_url.is_none() && points_at_loopback(answer.body["public_url"].as_str().unwrap_or_default())
    {
        eprintln!(
            "note: the link points at this machine's loopback address, which a phone cannot open; pass \
             --public-url with the address the device reaches the gateway at (and let the gateway listen \
             there: gateway.host)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `device-<6 hex>`: a name that is very unlikely to be taken.
fn default_name() -> Result<String> {
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes).map_err(|_| anyhow!("the operating system's random generator failed"))?;
    Ok(format!("device-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

fn points_at_loopback(base: &str) -> bool {
    let host = base.split("://").nth(1).unwrap_or_default().split(['/', ':']).next().unwrap_or_default();
    host == "localhost" || host.starts_with("127.") || base.contains("://[::1]")
}

/// The link as a QR code in half-block characters, with its quiet zone. On a terminal it
/// is drawn black on white whatever the terminal's colours (cameras read dark modules on a
/// light ground); into a pipe it is plain text.
fn qr(link: &str) -> Result<String> {
    let code = QrCode::new(link.as_bytes()).map_err(|e| anyhow!("cannot draw the QR code: {e}"))?;
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let picture = code.render::<Dense1x2>().dark_color(Dense1x2::Dark).light_color(Dense1x2::Light).build();
    if !colour {
        return Ok(format!("{picture}\n"));
    }
    let mut out = String::new();
    for line in picture.lines() {
        out.push_str("\x1b[30;47m");
        out.push_str(line);
        out.push_str("\x1b[0m\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_links_are_recognised() {
        assert!(points_at_loopback("http://127.0.0.1:18790"));
        assert!(points_at_loopback("http://localhost:18790/gw"));
        assert!(points_at_loopback("http://[::1]:18790"));
        assert!(!points_at_loopback("https://pc.example.com"));
        assert!(!points_at_loopback("http://192.168.1.20:18790"));
    }

    #[test]
    fn the_qr_code_is_half_blocks_with_a_quiet_zone() {
        let text =
            qr("http://192.168.1.20:18790/pair#code=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert!(text.contains('█') && text.contains('▀'), "{text}");
        let first = text.lines().next().unwrap();
        assert!(first.chars().all(|c| c == ' ' || c == '▄' || c == '▀' || c == '█'), "{first}");
    }
}
