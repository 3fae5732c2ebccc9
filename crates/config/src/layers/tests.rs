use super::*;
use crate::env::MapEnv;
use crate::settings::Settings;

fn home_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let paths = Paths::at(dir.path());
    (dir, paths)
}

fn settings(files: &[(&str, &str)], env: MapEnv, flags: Flags) -> Result<Settings, ConfigError> {
    let (_dir, paths) = home_with(files);
    let layers = Layers::load(&paths, &env, &flags)?;
    Settings::resolve(&layers)
}

#[test]
fn precedence_is_flag_env_security_config_default() {
    let config = r#"{"gateway":{"port":1001,"host":"config-host"}}"#;
    let security = "gateway:\n  port: 1002\n";
    let env = MapEnv::new().with("PICOCLAW_GATEWAY_PORT", "1003");
    let flags = Flags::new().with(&schema::GATEWAY_PORT, Some(1004u16));

    let s = settings(&[("config.json", config)], MapEnv::new(), Flags::new()).unwrap();
    assert_eq!(
        (s.gateway.port, s.origin(&schema::GATEWAY_PORT).unwrap().to_string()),
        (1001, "config.json:gateway.port".into())
    );
    let s = settings(&[("config.json", config), (".security.yml", security)], MapEnv::new(), Flags::new())
        .unwrap();
    assert_eq!(
        (s.gateway.port, s.origin(&schema::GATEWAY_PORT).unwrap().to_string()),
        (1002, ".security.yml:gateway.port".into())
    );
    let s =
        settings(&[("config.json", config), (".security.yml", security)], env.clone(), Flags::new()).unwrap();
    assert_eq!(
        (s.gateway.port, s.origin(&schema::GATEWAY_PORT).unwrap().to_string()),
        (1003, "env:PICOCLAW_GATEWAY_PORT".into())
    );
    let s = settings(&[("config.json", config), (".security.yml", security)], env, flags).unwrap();
    assert_eq!(
        (s.gateway.port, s.origin(&schema::GATEWAY_PORT).unwrap().to_string()),
        (1004, "flag:--port".into())
    );
    let s = settings(&[], MapEnv::new(), Flags::new()).unwrap();
    assert_eq!(
        (s.gateway.port, s.origin(&schema::GATEWAY_PORT).unwrap().to_string()),
        (18790, "default".into())
    );
    assert_eq!(s.gateway.host, crate::Host::Localhost);
}

#[test]
fn seed_001_defaults_hold() {
    let s = settings(&[], MapEnv::new(), Flags::new()).unwrap();
    assert!(!s.pico.enabled);
    assert!(!s.pico.allow_token_query);
    assert!(s.pico.allow_origins.is_empty());
    assert_eq!(s.pico.ping_interval.as_secs(), 30);
    assert_eq!(s.pico.read_timeout.as_secs(), 60);
    assert_eq!(s.pico.write_timeout.as_secs(), 60);
    assert_eq!(s.pico.max_connections, 100);
    assert_eq!(s.launcher.port, 18800);
}

#[test]
fn seed_001_complete_options_parse() {
    let config = r#"{
"channels": {
"pico": {
"enabled": true,
"token": "your-secure-token-here",
"allow_token_query": false,
"allow_origins": ["https://your-app.com"],
"ping_interval": 30,
"read_timeout": 60,
"write_timeout": 60,
"max_connections": 100
}
}
}"#;
    let s = settings(&[("config.json", config)], MapEnv::new(), Flags::new()).unwrap();
    assert!(s.pico.enabled);
    assert_eq!(s.pico.allow_origins, vec!["https://your-app.com".to_owned()]);
}

#[test]
fn env_list_is_comma_separated_and_env_names_are_from_the_table() {
    let env = MapEnv::new()
        .with("PICOCLAW_CHANNELS_PICO_ALLOW_ORIGINS", "https://a.example, https://b.example,")
        .with("PICOCLAW_CHANNELS_PICO_CLIENT_ENABLED", "true")
        .with("PICOCLAW_CHANNELS_PICO_CLIENT_URL", "ws://remote:18790/pico/ws");
    let s = settings(&[], env, Flags::new()).unwrap();
    assert_eq!(s.pico.allow_origins, vec!["https://a.example", "https://b.example"]);
    assert!(s.pico_client.enabled);
    assert!(!s.pico.enabled, "PICO_CLIENT_ENABLED must not touch channels.pico");
}

#[test]
fn wrong_type_names_file_key_line_and_expectation_without_the_value() {
    let config = "{\n  \"gateway\": {\n    \"port\": \"18790x\"\n  }\n}";
    let err = settings(&[("config.json", config)], MapEnv::new(), Flags::new()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("config.json:3:"), "{text}");
    assert!(text.contains("gateway.port"), "{text}");
    assert!(text.contains("expected an integer port"), "{text}");
    assert!(!text.contains("18790x"), "{text}");

    let security = "channels:\n  pico:\n    token: 123456789\n";
    let err = settings(&[(".security.yml", security)], MapEnv::new(), Flags::new()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(".security.yml:3:"), "{text}");
    assert!(text.contains("channels.pico.token") && text.contains("put the value in quotes"), "{text}");
    assert!(!text.contains("123456789"), "{text}");
}

#[test]
fn syntax_errors_have_line_and_column() {
    let err = settings(&[("config.json", "{\"gateway\": {\"port\": 1,}}")], MapEnv::new(), Flags::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json:1:") && err.contains("not valid JSON"), "{err}");
    let err = settings(&[(".security.yml", "gateway:\n  token: \"abc\n")], MapEnv::new(), Flags::new())
        .unwrap_err()
        .to_string();
    let after = err.split(".security.yml:").nth(1).unwrap_or_default();
    assert!(after.starts_with(|c: char| c.is_ascii_digit()), "line/column expected: {err}");
}

#[test]
fn unknown_keys_warn_with_closest_match() {
    let (_dir, paths) =
        home_with(&[("config.json", r#"{"gateway":{"prot":1},"channels":{"telegram":{"token":"x"}}}"#)]);
    let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
    let warnings: Vec<_> = layers.warnings().iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.contains("gateway.prot") && w.contains("did you mean `gateway.port`")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.contains("telegram channel")), "{warnings:?}");
}

#[test]
fn bad_env_value_names_variable() {
    let err = settings(&[], MapEnv::new().with("PICOCLAW_CHANNELS_PICO_ENABLED", "maybe"), Flags::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("PICOCLAW_CHANNELS_PICO_ENABLED") && err.contains("true or false"), "{err}");
    let err = settings(&[], MapEnv::new().with("PICOCLAW_GATEWAY_PORT", "99999"), Flags::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("PICOCLAW_GATEWAY_PORT"), "{err}");
}

#[test]
fn default_model_must_exist() {
    let config = r#"{"agents":{"defaults":{"model":"gpt"}},"model_list":[{"model_name":"other","model":"x","api_base":"http://127.0.0.1:1"}]}"#;
    let err = settings(&[("config.json", config)], MapEnv::new(), Flags::new()).unwrap_err().to_string();
    assert!(err.contains("agents.defaults.model") && err.contains("other"), "{err}");
}

#[test]
fn shadowing_reports_sources_only() {
    let (_dir, paths) = home_with(&[
        ("config.json", r#"{"gateway":{"host":"a"}}"#),
        (".security.yml", "gateway:\n  host: b\n"),
    ]);
    let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
    let r = crate::resolve(&layers, crate::schema::lookup("gateway.host").unwrap()).unwrap();
    assert_eq!(r.source.to_string(), ".security.yml:gateway.host");
    assert_eq!(
        r.shadowed.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["config.json:gateway.host"]
    );
}

#[test]
fn every_env_name_is_unique_and_prefixed() {
    let mut seen = std::collections::BTreeSet::new();
    for key in crate::schema::KEYS {
        if let Some(env) = key.env {
            assert!(env.starts_with("PICOCLAW_"), "{env}");
            assert!(seen.insert(env), "duplicate env name {env}");
        }
        assert!(!(key.is_secret() && key.flag.is_some()), "secret {} must not have a flag", key.path);
    }
}

#[test]
fn upstream_v3_channel_list_is_read_with_its_paths() {
    let config = r#"{"version": 3, "gateway": {"log_level": "fatal"},
        "channel_list": {
            "pico": {"enabled": true, "type": "pico", "allow_from": [], "settings": {"allow_origins": ["https://a"], "ping_interval": 20}},
            "telegram": {"enabled": false, "type": "telegram", "settings": {"token": "x"}},
            "mystery": {"type": "carrier-pigeon"}
        }}"#;
    let security = "channel_list:\n  pico:\n    settings:\n      token: upstream-pico-token\n";
    let (_dir, paths) = home_with(&[("config.json", config), (".security.yml", security)]);
    let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
    let s = Settings::resolve(&layers).unwrap();
    assert!(s.pico.enabled);
    assert_eq!(s.pico.allow_origins, vec!["https://a".to_owned()]);
    assert_eq!(s.pico.ping_interval, std::time::Duration::from_secs(20));
    assert_eq!(
        s.origin(&schema::CHANNELS_PICO_ENABLED).unwrap().to_string(),
        "config.json:channel_list.pico.enabled"
    );
    let token = layers.candidates(&schema::CHANNELS_PICO_TOKEN);
    assert_eq!(token[0].source.to_string(), ".security.yml:channel_list.pico.settings.token");
    let warned: Vec<&str> = layers.warnings().iter().map(|w| w.key.as_str()).collect();
    assert!(
        warned.contains(&"channel_list.telegram") && warned.contains(&"channel_list.mystery"),
        "{warned:?}"
    );
    assert_eq!(layers.upstream_shaped().len(), 2);
}

#[test]
fn upstream_v3_entry_of_another_name_is_typed_and_checked() {
    let config = r#"{"channel_list": {"web": {"enabled": true, "type": "pico", "settings": {"ping_interval": "soon"}}}}"#;
    let err = settings(&[("config.json", config)], MapEnv::new(), Flags::new()).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("channel_list.web.settings.ping_interval"), "{err}");
    let config = r#"{"channel_list": {"web": {"enabled": true, "type": "pico"}}}"#;
    let s = settings(&[("config.json", config)], MapEnv::new(), Flags::new()).unwrap();
    assert!(s.pico.enabled);
    assert_eq!(
        s.origin(&schema::CHANNELS_PICO_ENABLED).unwrap().to_string(),
        "config.json:channel_list.web.enabled"
    );
}

#[test]
fn upstream_v2_flat_channels_are_ours_and_fatal_is_a_level() {
    let config = r#"{"version": 2, "gateway": {"log_level": "fatal"}, "channels": {"pico": {"enabled": true, "token": "t", "allow_from": []}}}"#;
    let (_dir, paths) = home_with(&[("config.json", config)]);
    let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
    assert!(layers.warnings().is_empty(), "{:?}", layers.warnings());
    let s = Settings::resolve(&layers).unwrap();
    assert!(s.pico.enabled);
    assert_eq!(s.gateway.log_level, crate::LogLevel::Error);
}

#[test]
fn upstream_launcher_keys_are_read_as_ours() {
    let launcher = r#"{"port": 18800, "allowed_cidrs": ["10.0.0.0/8"], "allow_localhost_bypass": false, "trusted_proxy_cidrs": ["192.168.1.0/24"]}"#;
    let (_dir, paths) = home_with(&[("launcher-config.json", launcher)]);
    let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
    assert!(layers.warnings().is_empty(), "{:?}", layers.warnings());
    let s = Settings::resolve(&layers).unwrap();
    assert!(!s.launcher.allow_localhost_bypass);
    assert!(s.launcher.trusted_proxies.contains("192.168.1.7".parse().unwrap()));
    assert_eq!(
        s.origin(&schema::LAUNCHER_TRUSTED_PROXIES).unwrap().to_string(),
        "launcher-config.json:trusted_proxy_cidrs"
    );
    let s = settings(&[], MapEnv::new(), Flags::new()).unwrap();
    assert!(s.launcher.allow_localhost_bypass, "upstream's default");
}

#[test]
fn upstream_model_fields_are_warnings_not_errors() {
    let config = r#"{"model_list": [{"model_name": "gpt", "model": "openai/gpt-5.4", "api_base": "https://x/v1", "enabled": true, "rpm": 10, "_comment": "hi"}]}"#;
    let (_dir, paths) = home_with(&[("config.json", config)]);
    let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
    let warned: Vec<&str> = layers.warnings().iter().map(|w| w.key.as_str()).collect();
    assert_eq!(warned, ["model_list[0].enabled", "model_list[0].rpm", "model_list[0]._comment"]);
    let s = Settings::resolve(&layers).unwrap();
    assert_eq!(s.models.len(), 1);
}
