//! Black-box tests of the foundation commands: onboard, config show/env, auth explain,
//! version, completions — as a new user would run them, plus the canary check.

use serde_json::{Value, json};

use crate::support::{self, TestHome};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn onboard_then_auth_explain_on_an_empty_home() {
    let home = TestHome::new();
    let out = home.run(&["onboard"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("config.json") && text.contains(".security.yml") && text.contains("fingerprint"),
        "{text}"
    );
    assert!(text.contains("grep 'token:'"), "onboard says how to see the token: {text}");
    let security = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    let token = security.lines().find_map(|l| l.trim().strip_prefix("token: ")).expect("pico token written");
    let token = token.trim_matches('"');
    assert_eq!(token.len(), 64, "256-bit hex token");
    assert!(!text.contains(token), "onboard must not print the token");
    #[cfg(unix)]
    for f in [".security.yml", "config.json"] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(home.file(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }

    let explain = home.run(&["auth", "explain"]);
    assert!(explain.status.success(), "{}", stderr(&explain));
    let text = stdout(&explain);
    assert!(text.contains("/pico/ws") && text.contains("pico token"), "{text}");
    assert!(text.contains(".security.yml:channels.pico.token"), "{text}");
    assert!(!text.contains(token));

    let json: Value = serde_json::from_slice(&home.run(&["auth", "explain", "--json"]).stdout).unwrap();
    let pico = json["credentials"].as_array().unwrap().iter().find(|c| c["name"] == "pico token").unwrap();
    assert_eq!(pico["set"], true);
    assert_eq!(pico["fingerprint"].as_str().unwrap().len(), 8);
}

#[test]
fn onboard_is_idempotent_and_keeps_existing_secrets() {
    let home = TestHome::new();
    home.write_security("channels:\n  pico:\n    token: \"my-own-pico-token-1234567890\"\n");
    assert!(home.run(&["onboard"]).status.success());
    let first = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    assert!(first.contains("my-own-pico-token-1234567890"));
    let config = std::fs::read_to_string(home.file("config.json")).unwrap();
    let out = home.run(&["onboard"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("kept"));
    assert_eq!(std::fs::read_to_string(home.file(".security.yml")).unwrap(), first);
    assert_eq!(std::fs::read_to_string(home.file("config.json")).unwrap(), config);
}

#[test]
fn onboard_refuses_to_touch_an_unparseable_file() {
    let home = TestHome::new();
    let broken = "channels:\n  pico: [unclosed\n";
    home.write_security(broken);
    let out = home.run(&["onboard"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(".security.yml"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(home.file(".security.yml")).unwrap(), broken, "file left untouched");
}

#[test]
fn bad_config_names_file_key_line_and_expectation() {
    let home = TestHome::new();
    support::write_private(
        &home.file("config.json"),
        "{\n  \"channels\": {\"pico\": {\"ping_interval\": \"soon\"}}\n}\n",
    );
    let out = home.run(&["config", "show"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("config.json:2:"), "{err}");
    assert!(
        err.contains("channels.pico.ping_interval") && err.contains("expected a whole number of seconds"),
        "{err}"
    );
}

#[test]
fn unknown_keys_warn_with_suggestion() {
    let home = TestHome::new();
    home.write_config(&json!({"gateway": {"prot": 1}, "channels": {"pico": {"enabeld": true}}}));
    let out = home.run(&["config", "show"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("gateway.prot") && err.contains("did you mean `gateway.port`"), "{err}");
    assert!(err.contains("channels.pico.enabeld") && err.contains("channels.pico.enabled"), "{err}");
}

#[test]
fn config_show_origin_reports_every_source() {
    let home = TestHome::new().env("PICOCLAW_GATEWAY_PORT", "19999");
    home.write_config(&json!({"gateway": {"host": "127.0.0.1"}, "channels": {"pico": {"enabled": true}}}));
    home.write_security("channels:\n  pico:\n    token: \"file-token-abcdefghijklmnop\"\n");
    let out = home.run(&["config", "show", "--origin", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["gateway"]["port"]["value"], 19999);
    assert_eq!(v["gateway"]["port"]["source"], "env:PICOCLAW_GATEWAY_PORT");
    assert_eq!(v["gateway"]["host"]["source"], "config.json:gateway.host");
    assert_eq!(v["channels"]["pico"]["ping_interval"]["source"], "default");
    assert_eq!(v["channels"]["pico"]["token"]["source"], ".security.yml:channels.pico.token");
    assert!(v["channels"]["pico"]["token"]["value"].as_str().unwrap().starts_with("[redacted fp="));
}

#[test]
fn config_env_prints_the_one_table() {
    let out = TestHome::new().run(&["config", "env"]);
    let text = stdout(&out);
    for name in [
        "PICOCLAW_HOME",
        "PICOCLAW_CONFIG",
        "PICOCLAW_GATEWAY_HOST",
        "PICOCLAW_GATEWAY_PORT",
        "PICOCLAW_GATEWAY_TOKEN",
        "PICOCLAW_CHANNELS_PICO_ENABLED",
        "PICOCLAW_CHANNELS_PICO_TOKEN",
        "PICOCLAW_CHANNELS_PICO_ALLOW_TOKEN_QUERY",
        "PICOCLAW_CHANNELS_PICO_ALLOW_ORIGINS",
        "PICOCLAW_CHANNELS_PICO_CLIENT_ENABLED",
        "PICOCLAW_CHANNELS_PICO_CLIENT_URL",
        "PICOCLAW_CHANNELS_PICO_CLIENT_TOKEN",
        "PICOCLAW_LAUNCHER_TOKEN",
    ] {
        assert!(text.contains(name), "{name} missing from config env");
    }
    assert!(text.contains("flag > environment > .security.yml > config.json > default"));
}

#[test]
fn env_shadowing_a_file_is_explained_by_source_names_only() {
    let file_token = "file-pico-token-abcdefghijklmnop";
    let env_token = "env-pico-token-abcdefghijklmnop";
    let home = TestHome::new().env("PICOCLAW_CHANNELS_PICO_TOKEN", env_token);
    home.write_config(&json!({"channels": {"pico": {"enabled": true}}}));
    home.write_security(&format!("channels:\n  pico:\n    token: \"{file_token}\"\n"));
    let out = home.run(&["auth", "explain"]);
    let text = stdout(&out);
    assert!(text.contains("env:PICOCLAW_CHANNELS_PICO_TOKEN overrides a different value in .security.yml:channels.pico.token"), "{text}");
    assert!(!text.contains(file_token) && !text.contains(env_token));
}

#[test]
fn version_completions_and_single_dash_flags() {
    let home = TestHome::new();
    let v = home.run(&["version"]);
    assert!(stdout(&v).starts_with("picoclaw "));
    let c = home.run(&["completions", "bash"]);
    assert!(c.status.success() && stdout(&c).contains("picoclaw"));
}

/// A distinctive canary in every source of every credential: no output of any
/// foundation command may contain it.
#[test]
fn canary_secrets_never_appear_in_any_output() {
    let canaries = [
        ("PICOCLAW_GATEWAY_TOKEN", "CANARYenvGATEWAY7f3a9"),
        ("PICOCLAW_CHANNELS_PICO_TOKEN", "CANARYenvPICO7f3a9"),
        ("PICOCLAW_CHANNELS_PICO_CLIENT_TOKEN", "CANARYenvCLIENT7f3a9"),
        ("PICOCLAW_LAUNCHER_TOKEN", "CANARYenvLAUNCHER7f3a9"),
        ("PICOCLAW_AGENTS_DEFAULTS_API_KEY", "CANARYenvAPIKEY7f3a9"),
    ];
    let mut home = TestHome::new();
    for (k, v) in canaries {
        home = home.env(k, v);
    }
    home.write_config(&json!({
        "gateway": {"token": "CANARYcfgGATEWAY7f3a9"},
        "channels": {"pico": {"enabled": true, "token": "CANARYcfgPICO7f3a9"},
                     "pico_client": {"token": "CANARYcfgCLIENT7f3a9"}},
        "agents": {"defaults": {"model": "m"}},
        "model_list": [{"model_name": "m", "model": "x", "api_base": "http://127.0.0.1:9", "api_key": "CANARYcfgAPIKEY7f3a9"}]
    }));
    home.write_security(
        "gateway:\n  token: \"CANARYsecGATEWAY7f3a9\"\nchannels:\n  pico:\n    token: \"CANARYsecPICO7f3a9\"\n  pico_client:\n    token: \"CANARYsecCLIENT7f3a9\"\nmodel_list:\n  m:\n    api_keys: [\"CANARYsecAPIKEY7f3a9\"]\n",
    );
    support::write_private(
        &home.file("launcher-config.json"),
        "{\"launcher_token\": \"CANARYfileLAUNCHER7f3a9\"}",
    );
    let commands: &[&[&str]] = &[
        &["onboard"],
        &["config", "show"],
        &["config", "show", "--origin"],
        &["config", "show", "--origin", "--json"],
        &["config", "env"],
        &["auth", "explain"],
        &["auth", "explain", "--json"],
        &["gateway", "status"],
        &["version"],
        &["--help"],
    ];
    for args in commands {
        let out = home.run(args);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains("CANARY"), "`picoclaw {}` printed a secret:\n{all}", args.join(" "));
    }
    // Errors too: a wrong-typed secret must not be echoed.
    home.write_security("gateway:\n  token: [\"CANARYerrGATEWAY7f3a9\"]\n");
    let out = home.run(&["auth", "explain"]);
    assert!(!out.status.success());
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("gateway.token") && !all.contains("CANARY"), "{all}");
}

#[cfg(unix)]
#[test]
fn secret_file_with_wide_permissions_is_reported_and_not_written() {
    use std::os::unix::fs::PermissionsExt;
    let home = TestHome::new();
    std::fs::write(home.file(".security.yml"), "gateway:\n  host: localhost\n").unwrap();
    std::fs::set_permissions(home.file(".security.yml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = home.run(&["auth", "explain"]);
    assert!(stderr(&out).contains("mode 0644"), "{}", stderr(&out));
    let out = home.run(&["onboard"]);
    assert!(!out.status.success(), "onboard must refuse to write a token into a world-readable file");
    assert!(stderr(&out).contains("0644"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(home.file(".security.yml")).unwrap(), "gateway:\n  host: localhost\n");
}
