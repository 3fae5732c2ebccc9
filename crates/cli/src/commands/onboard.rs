//! `picoclaw onboard`: first-run setup. Idempotent; never overwrites an existing secret.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use picoclaw_config::files::{SECRET_MODE, ensure_dir, write_atomic};
use picoclaw_config::{Paths, ProcessEnv, schema};
use picoclaw_credentials::Secret;
use picoclaw_credentials::store::{get_path, read_security_tree, set_path, write_security_tree};
use serde_json::{Value, json};

/// The config.json onboarding writes: seed 001's shape with the Pico channel on and no
/// secret (the token goes to .security.yml). Keys from the schema, so a renamed key
/// cannot leave the template behind.
fn default_config() -> Value {
    let mut config = json!({});
    let values = [
        (&schema::GATEWAY_HOST, json!("localhost")),
        (&schema::GATEWAY_PORT, json!(18790)),
        (&schema::CHANNELS_PICO_ENABLED, json!(true)),
        (&schema::CHANNELS_PICO_ALLOW_TOKEN_QUERY, json!(false)),
        (&schema::CHANNELS_PICO_ALLOW_ORIGINS, json!([])),
        (&schema::CHANNELS_PICO_PING_INTERVAL, json!(30)),
        (&schema::CHANNELS_PICO_READ_TIMEOUT, json!(60)),
        (&schema::CHANNELS_PICO_WRITE_TIMEOUT, json!(60)),
        (&schema::CHANNELS_PICO_MAX_CONNECTIONS, json!(100)),
        (&schema::CHANNELS_PICO_CLIENT_ENABLED, json!(false)),
        (&schema::MODEL_LIST, json!([])),
    ];
    for (key, value) in values {
        set_path(&mut config, key.file_key, value);
    }
    // An empty `agents.defaults` section, where the model is chosen.
    if let Some((section, _)) = schema::AGENTS_DEFAULTS_MODEL.file_key.rsplit_once('.') {
        set_path(&mut config, section, json!({}));
    }
    config
}

pub fn run() -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    ensure_dir(paths.home(), 0o700).with_context(|| format!("cannot create {}", paths.home().display()))?;
    println!("home directory   {}", paths.home().display());

    let config = paths.config_file();
    if config.exists() {
        // Validate it; never rewrite a file we cannot parse.
        let text =
            std::fs::read_to_string(config).with_context(|| format!("cannot read {}", config.display()))?;
        picoclaw_config::validate_config_text(config, &text)?;
        println!("config.json      {} (kept as it is)", config.display());
    } else {
        let text = serde_json::to_string_pretty(&default_config())? + "\n";
        write_atomic(config, text.as_bytes(), SECRET_MODE)?;
        println!("config.json      {} (created, Pico channel enabled)", config.display());
    }

    let security = paths.security_file();
    let mut tree = read_security_tree(&security)?;
    let key = schema::CHANNELS_PICO_TOKEN.file_key;
    if get_path(&tree, key).and_then(Value::as_str).is_some_and(|t| !t.trim().is_empty()) {
        println!(".security.yml    {} (pico token already set, kept)", security.display());
    } else {
        let token = Secret::generate().context("cannot generate a token")?;
        set_path(&mut tree, key, Value::from(token.expose()));
        write_security_tree(&security, &tree)?;
        println!(
            ".security.yml    {} (new 256-bit pico token, fingerprint {}, mode 0600)",
            security.display(),
            token.fingerprint()
        );
    }
    for dir in [paths.logs_dir(), paths.sessions_dir()] {
        ensure_dir(&dir, 0o700).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    println!();
    println!("Next steps:");
    println!("  picoclaw auth explain        which credential each endpoint accepts");
    println!("  picoclaw gateway start       run the gateway in the background");
    println!("  picoclaw launcher --console  open the web dashboard");
    println!(
        "The pico token is stored only in {} (key {key}); picoclaw never prints it.",
        security.display()
    );
    println!(
        "To hand it to a client you configure yourself, read it there: grep 'token:' {}",
        security.display()
    );
    if let Some(var) = schema::CHANNELS_PICO_TOKEN.env
        && std::env::var_os(var).is_some()
    {
        println!("note: {var} is set and overrides the file's pico token.");
    }
    Ok(ExitCode::SUCCESS)
}
