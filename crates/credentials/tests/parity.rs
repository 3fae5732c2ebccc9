//! Resolver parity: for every combination of flag / env / .security.yml / config.json
//! presence and values, the server's view (what the gateway accepts) and the client's view
//! (what the CLI presents to a remote gateway) choose the same value from the same source,
//! and both match the documented precedence.

use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};
use picoclaw_credentials::Credentials;
use picoclaw_credentials::client::{Endpoint, Target, choose};
use proptest::prelude::*;

/// Values drawn from a tiny alphabet so collisions (equal values in two sources) happen.
fn value() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![Just(None), Just(Some("alpha-token")), Just(Some("beta-token")), Just(Some(""))]
}

#[derive(Debug, Clone)]
struct Sources {
    env: Option<&'static str>,
    security: Option<&'static str>,
    config: Option<&'static str>,
}

fn sources() -> impl Strategy<Value = Sources> {
    (value(), value(), value()).prop_map(|(env, security, config)| Sources { env, security, config })
}

/// The documented precedence, written independently of the implementation.
fn expected(s: &Sources, env_name: &str, key: &str) -> Option<(String, String)> {
    let non_empty = |v: Option<&str>| v.filter(|v| !v.trim().is_empty()).map(str::to_owned);
    if let Some(v) = s.env.filter(|v| !v.trim().is_empty()) {
        return Some((v.to_owned(), format!("env:{env_name}")));
    }
    if let Some(v) = s.security {
        // An empty string in a file is "set to empty", which counts as unset.
        return non_empty(Some(v))
            .map(|v| (v, format!(".security.yml:{key}")))
            .or_else(|| non_empty(s.config).map(|v| (v, format!("config.json:{key}"))));
    }
    non_empty(s.config).map(|v| (v, format!("config.json:{key}")))
}

fn yaml_nested(key: &str, value: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    let mut out = String::new();
    for (depth, part) in parts.iter().enumerate() {
        out.push_str(&"  ".repeat(depth));
        if depth + 1 == parts.len() {
            out.push_str(&format!("{part}: \"{value}\"\n"));
        } else {
            out.push_str(&format!("{part}:\n"));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn server_and_client_choose_the_same_credential(
        gateway in sources(),
        pico in sources(),
        port_flag in proptest::option::of(1024u16..2000),
        port_env in proptest::option::of(2000u16..3000),
        port_file in proptest::option::of(3000u16..4000),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());

        let mut env = MapEnv::new();
        if let Some(v) = gateway.env { env = env.with("PICOCLAW_GATEWAY_TOKEN", v); }
        if let Some(v) = pico.env { env = env.with("PICOCLAW_CHANNELS_PICO_TOKEN", v); }
        if let Some(p) = port_env { env = env.with("PICOCLAW_GATEWAY_PORT", p.to_string()); }

        let mut security = String::new();
        if let Some(v) = gateway.security { security.push_str(&yaml_nested("gateway.token", v)); }
        if let Some(v) = pico.security { security.push_str(&yaml_nested("channels.pico.token", v)); }
        if !security.is_empty() {
            std::fs::write(paths.security_file(), security).unwrap();
        }
        let mut config = serde_json::json!({"gateway": {}, "channels": {"pico": {"enabled": true}}});
        if let Some(v) = gateway.config { config["gateway"]["token"] = v.into(); }
        if let Some(v) = pico.config { config["channels"]["pico"]["token"] = v.into(); }
        if let Some(p) = port_file { config["gateway"]["port"] = p.into(); }
        std::fs::write(paths.config_file(), config.to_string()).unwrap();

        let flags = Flags::new().with(&picoclaw_config::schema::GATEWAY_PORT, port_flag);

        // The server resolves once at startup ...
        let server_layers = Layers::load(&paths, &env, &flags).unwrap();
        let server_settings = Settings::resolve(&server_layers).unwrap();
        let server = Credentials::resolve(&server_layers, &server_settings).unwrap();
        // ... and a client, in another process, resolves again from the same inputs.
        let client_layers = Layers::load(&paths, &env, &flags).unwrap();
        let client_settings = Settings::resolve(&client_layers).unwrap();
        let client = Credentials::resolve(&client_layers, &client_settings).unwrap();

        // Same address.
        let want_port = port_flag.or(port_env).or(port_file).unwrap_or(18790);
        prop_assert_eq!(server_settings.gateway.port, want_port);
        prop_assert_eq!(client_settings.gateway.port, want_port);
        prop_assert_eq!(server_settings.origin(&picoclaw_config::schema::GATEWAY_PORT), client_settings.origin(&picoclaw_config::schema::GATEWAY_PORT));

        // Gateway token: server and the documented model agree.
        let want_gateway = expected(&gateway, "PICOCLAW_GATEWAY_TOKEN", "gateway.token");
        let got_gateway = server.gateway().map(|r| (r.secret.expose().to_owned(), r.source.to_string()));
        prop_assert_eq!(&got_gateway, &want_gateway);
        let want_pico = expected(&pico, "PICOCLAW_CHANNELS_PICO_TOKEN", "channels.pico.token");
        let got_pico = server.pico().map(|r| (r.secret.expose().to_owned(), r.source.to_string()));
        prop_assert_eq!(&got_pico, &want_pico);

        // Admin: the client presents exactly the gateway token the server accepts.
        match choose(Endpoint::Admin, Target::Remote, &client) {
            Ok(p) => prop_assert_eq!(Some((p.secret.expose().to_owned(), p.source.to_string())), want_gateway.clone()),
            Err(_) => prop_assert!(want_gateway.is_none()),
        }
        // Chat: the client presents a credential the server accepts on /pico/ws, from the
        // same source the server resolved it from.
        match choose(Endpoint::Chat, Target::Remote, &client) {
            Ok(p) => {
                let presented = Some((p.secret.expose().to_owned(), p.source.to_string()));
                prop_assert!(presented == got_pico || presented == got_gateway);
                prop_assert_eq!(presented, want_pico.clone().or(want_gateway.clone()));
            }
            Err(_) => prop_assert!(want_pico.is_none() && want_gateway.is_none()),
        }
    }
}
