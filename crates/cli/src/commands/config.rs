//! `picoclaw config show|env`.

use std::process::ExitCode;

use std::fmt::Write as _;

use anyhow::Result;
use picoclaw_config::schema::{self, Home, KEYS, PATH_VARS};
use picoclaw_config::{Flags, Source};
use picoclaw_credentials::Resolved;
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::output::table;

/// A redacted view of one secret: `[redacted fp=1a2b3c4d]` plus its source.
fn redacted(r: Option<&Resolved>) -> (Value, Option<Source>) {
    match r {
        Some(r) => (Value::from(format!("[redacted fp={}]", r.secret.fingerprint())), Some(r.source.clone())),
        None => (Value::Null, None),
    }
}

fn insert(tree: &mut Map<String, Value>, dotted: &str, value: Value) {
    let mut node = tree;
    let parts: Vec<&str> = dotted.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        let entry = node.entry((*part).to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        node = next;
    }
    node.insert(parts[parts.len() - 1].to_owned(), value);
}

pub fn show(origin: bool, json: bool) -> Result<ExitCode> {
    let mut out = String::new();
    let ctx = Context::load(&Flags::new())?;
    ctx.print_warnings();
    let creds = &ctx.credentials;
    let launcher = ctx.loaded.launcher_token();
    let mut rows: Vec<(&str, Value, Option<Source>)> = Vec::new();
    for key in KEYS {
        if key.is_secret() {
            let (value, source) = match key.path {
                k if k == schema::GATEWAY_TOKEN.path => redacted(creds.gateway()),
                k if k == schema::CHANNELS_PICO_TOKEN.path => redacted(creds.pico()),
                k if k == schema::CHANNELS_PICO_CLIENT_TOKEN.path => redacted(creds.pico_client()),
                k if k == schema::STORAGE_PASSWORD.path => redacted(creds.storage_password()),
                k if k == schema::LAUNCHER_TOKEN.path => match &launcher {
                    Some(t) => (
                        Value::from(format!("[redacted fp={}]", t.secret.fingerprint())),
                        Some(t.source.clone()),
                    ),
                    None => (Value::Null, None),
                },
                // A password hash is shown by its scheme only (it can be attacked offline).
                k if k == schema::LAUNCHER_DASHBOARD_PASSWORD_HASH.path => {
                    match ctx.loaded.dashboard_password() {
                        Ok(Some(p)) => {
                            (Value::from(format!("[redacted {:?} hash]", p.scheme)), Some(p.source.clone()))
                        }
                        _ => (Value::Null, None),
                    }
                }
                k if k == schema::AGENTS_DEFAULTS_API_KEY.path => {
                    match ctx.settings.agents.default_model.as_deref().and_then(|m| creds.model(m)) {
                        Some(m) => (
                            Value::from(format!("[redacted fp={}]", m.keys[0].fingerprint())),
                            Some(m.source.clone()),
                        ),
                        None => (Value::Null, None),
                    }
                }
                _ => (Value::Null, None),
            };
            rows.push((key.path, value, source));
        } else {
            let resolved = ctx.settings.entries().find(|(k, _)| *k == key.path).map(|(_, r)| r);
            match resolved {
                Some(r) => rows.push((key.path, r.value.clone(), Some(r.source.clone()))),
                None => rows.push((key.path, Value::Null, None)),
            }
        }
    }
    if json {
        let mut tree = Map::new();
        for (path, value, source) in &rows {
            let v = if origin {
                json!({ "value": value, "source": source.as_ref().map(ToString::to_string) })
            } else {
                value.clone()
            };
            insert(&mut tree, path, v);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&Value::Object(tree))?)?;
    } else {
        let header: &[&str] = if origin { &["KEY", "VALUE", "SOURCE"] } else { &["KEY", "VALUE"] };
        let body: Vec<Vec<String>> = rows
            .iter()
            .map(|(path, value, source)| {
                let shown = match value {
                    Value::Null => "-".to_owned(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let mut row = vec![(*path).to_owned(), shown];
                if origin {
                    row.push(source.as_ref().map_or("-".to_owned(), ToString::to_string));
                }
                row
            })
            .collect();
        write!(out, "{}", table(header, &body))?;
        writeln!(out)?;
        writeln!(out, "config.json:   {}", ctx.paths.config_file().display())?;
        writeln!(out, ".security.yml: {}", ctx.paths.security_file().display())?;
    }
    crate::output::emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

pub fn env() -> Result<ExitCode> {
    let mut out = String::new();
    let mut rows: Vec<Vec<String>> = PATH_VARS
        .iter()
        .map(|(name, default, doc)| {
            vec![(*name).to_owned(), "-".into(), "path".into(), (*default).to_owned(), (*doc).to_owned()]
        })
        .collect();
    for key in KEYS {
        let Some(env) = key.env else { continue };
        let file = match key.home {
            Home::Config => key.path.to_owned(),
            Home::Launcher => format!("launcher-config.json:{}", key.file_key),
        };
        rows.push(vec![
            env.to_owned(),
            file.clone(),
            key.kind.name().to_owned(),
            key.default.to_string(),
            key.doc.to_owned(),
        ]);
        if let (Some(env_file), Some(credential)) = (key.env_file, key.credential) {
            rows.push(vec![
                env_file.to_owned(),
                file,
                "file".into(),
                "-".into(),
                format!("absolute path of a file holding {env} (or $CREDENTIALS_DIRECTORY/{credential})"),
            ]);
        }
    }
    write!(out, "{}", table(&["VARIABLE", "KEY", "TYPE", "DEFAULT", "MEANING"], &rows))?;
    writeln!(out)?;
    writeln!(out, "Precedence for every key: flag > environment > .security.yml > config.json > default.")?;
    writeln!(
        out,
        "A secret: its variable > its _FILE variable > ${}/<credential> > .security.yml > config.json.",
        schema::CREDENTIALS_DIRECTORY
    )?;
    writeln!(
        out,
        "Setting both a secret's variable and its _FILE variable is an error. A secret file holds only the secret (at most {} bytes, surrounding whitespace trimmed).",
        schema::SECRET_FILE_MAX_BYTES
    )?;
    writeln!(out, "Lists are comma-separated. An empty variable counts as unset. Secrets have no flags.")?;
    let _ = schema::lookup;
    crate::output::emit(&out)?;
    Ok(ExitCode::SUCCESS)
}
