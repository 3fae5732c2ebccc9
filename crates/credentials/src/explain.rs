//! The table behind `picoclaw auth explain`: each endpoint, the credentials it accepts
//! now, and each credential's source and fingerprint. Never a value.

use picoclaw_config::Settings;
use serde::Serialize;

use crate::launcher::LauncherToken;
use crate::resolve::{Credentials, Resolved};
use crate::runtime::RuntimeRecord;
use crate::secret::Secret;

/// One credential and where it is accepted.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialRow {
    /// Human name: `gateway token`, `runtime token`, `pico token`, ...
    pub name: &'static str,
    /// The configuration key or file.
    pub key: &'static str,
    /// Environment variable that sets it, if any.
    pub env: Option<&'static str>,
    /// Whether it is set now.
    pub set: bool,
    /// Where the active value comes from.
    pub source: Option<String>,
    /// First 8 hex of its SHA-256.
    pub fingerprint: Option<String>,
    /// Endpoints that accept it (empty for outbound credentials).
    pub accepted_on: Vec<&'static str>,
    /// A short note (e.g. "outbound: sent to the remote Pico server").
    pub note: &'static str,
}

/// One endpoint and what it accepts now.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointRow {
    /// `POST /reload`, `/pico/ws`, ...
    pub endpoint: &'static str,
    /// Which server (`gateway` or `launcher`).
    pub server: &'static str,
    /// Names of credentials that are set and accepted now; `none` for open endpoints.
    pub accepts: Vec<String>,
    /// Remarks such as "channel disabled".
    pub note: Option<&'static str>,
}

/// Inputs beyond settings and gateway credentials.
#[derive(Debug, Default)]
pub struct Extra<'a> {
    /// The live local gateway's record, if one is running.
    pub runtime: Option<&'a RuntimeRecord>,
    /// The dashboard token, if configured.
    pub launcher: Option<&'a LauncherToken>,
    /// Named tokens with `admin` scope that are currently valid.
    pub named_admin: usize,
    /// Named tokens with `chat` scope that are currently valid.
    pub named_chat: usize,
}

/// The whole explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// Per endpoint.
    pub endpoints: Vec<EndpointRow>,
    /// Per credential.
    pub credentials: Vec<CredentialRow>,
    /// Shadowing and configuration warnings (source names only).
    pub warnings: Vec<String>,
}

fn fp(secret: &Secret) -> Option<String> {
    Some(secret.fingerprint().to_string())
}

fn row(
    name: &'static str,
    key: &'static str,
    env: Option<&'static str>,
    resolved: Option<&Resolved>,
    accepted_on: Vec<&'static str>,
    note: &'static str,
) -> CredentialRow {
    CredentialRow {
        name,
        key,
        env,
        set: resolved.is_some(),
        source: resolved.map(|r| r.source.to_string()),
        fingerprint: resolved.and_then(|r| fp(&r.secret)),
        accepted_on,
        note,
    }
}

/// Builds the explanation for the current setup.
pub fn explain(settings: &Settings, creds: &Credentials, extra: &Extra<'_>) -> Explanation {
    let pico_on = settings.pico.enabled;
    let pico_endpoints = if pico_on { vec!["/pico/ws", "/pico/media/*"] } else { vec![] };
    let mut everything = vec!["POST /reload", "GET /auth/whoami", "/api/tokens"];
    everything.extend(pico_endpoints.iter().copied());

    let mut credentials = vec![
        row(
            "gateway token",
            "gateway.token",
            Some("PICOCLAW_GATEWAY_TOKEN"),
            creds.gateway(),
            everything.clone(),
            "accepted on every gateway endpoint",
        ),
        CredentialRow {
            name: "runtime token",
            key: ".picoclaw.pid",
            env: None,
            set: extra.runtime.is_some(),
            source: extra.runtime.map(|_| ".picoclaw.pid".to_owned()),
            fingerprint: extra.runtime.and_then(|r| fp(&r.token)),
            accepted_on: everything.clone(),
            note: "generated at each gateway start; used by local tools",
        },
        row(
            "pico token",
            "channels.pico.token",
            Some("PICOCLAW_CHANNELS_PICO_TOKEN"),
            creds.pico(),
            pico_endpoints.clone(),
            if pico_on { "accepted on the Pico channel only" } else { "Pico channel is disabled" },
        ),
        CredentialRow {
            name: "named tokens",
            key: ".security.yml tokens",
            env: None,
            set: extra.named_admin + extra.named_chat > 0,
            source: (extra.named_admin + extra.named_chat > 0)
                .then(|| format!("{} admin, {} chat", extra.named_admin, extra.named_chat)),
            fingerprint: None,
            accepted_on: everything.clone(),
            note: "scope chat: Pico channel only; scope admin: everything (`picoclaw token list`)",
        },
        CredentialRow {
            name: "launcher token",
            key: "launcher-config.json launcher_token",
            env: Some("PICOCLAW_LAUNCHER_TOKEN"),
            set: extra.launcher.is_some(),
            source: extra.launcher.map(|t| format!("{} ({})", t.origin, t.source)),
            fingerprint: extra.launcher.and_then(|t| fp(&t.secret)),
            accepted_on: vec!["dashboard POST /login"],
            note: "dashboard login only; generated and persisted at first launcher start",
        },
        row(
            "pico_client token",
            "channels.pico_client.token",
            Some("PICOCLAW_CHANNELS_PICO_CLIENT_TOKEN"),
            creds.pico_client(),
            vec![],
            "outbound: sent to the remote Pico server",
        ),
    ];
    for model in &settings.models {
        let cred = creds.model(&model.model_name);
        credentials.push(CredentialRow {
            name: "model API key",
            key: "model_list.<name>.api_keys",
            env: (settings.agents.default_model.as_deref() == Some(model.model_name.as_str()))
                .then_some("PICOCLAW_AGENTS_DEFAULTS_API_KEY"),
            set: cred.is_some(),
            source: cred.map(|c| c.source.to_string()),
            fingerprint: cred.and_then(|c| c.keys.first()).and_then(fp),
            accepted_on: vec![],
            note: "outbound: sent to the model provider",
        });
    }

    let set = |name: &str| credentials.iter().any(|c| c.name == name && c.set);
    let names =
        |list: &[&str]| -> Vec<String> { list.iter().filter(|n| set(n)).map(|n| (*n).to_owned()).collect() };
    let admin = ["gateway token", "runtime token", "named tokens"];
    let chat = ["gateway token", "runtime token", "pico token", "named tokens"];
    let mut endpoints = vec![
        EndpointRow {
            endpoint: "GET /health",
            server: "gateway",
            accepts: vec!["none".into()],
            note: Some("open; reveals no pid or secret"),
        },
        EndpointRow {
            endpoint: "GET /ready",
            server: "gateway",
            accepts: vec!["none".into()],
            note: Some("open"),
        },
        EndpointRow {
            endpoint: "POST /reload",
            server: "gateway",
            accepts: names(&admin),
            note: Some("admin scope"),
        },
        EndpointRow {
            endpoint: "GET /auth/whoami",
            server: "gateway",
            accepts: names(&chat),
            note: Some("any valid credential"),
        },
        EndpointRow {
            endpoint: "/api/tokens",
            server: "gateway",
            accepts: names(&admin),
            note: Some("admin scope"),
        },
    ];
    endpoints.push(EndpointRow {
        endpoint: "/pico/ws",
        server: "gateway",
        accepts: if pico_on { names(&chat) } else { vec![] },
        note: Some(if !pico_on {
            "channel disabled (answers 404)"
        } else if settings.pico.allow_token_query {
            "Authorization: Bearer, Sec-WebSocket-Protocol token.<t>, or ?token= (enabled)"
        } else {
            "Authorization: Bearer or Sec-WebSocket-Protocol token.<t>; ?token= disabled"
        }),
    });
    endpoints.push(EndpointRow {
        endpoint: "POST /login",
        server: "launcher",
        accepts: names(&["launcher token"]),
        note: Some("sets an HttpOnly session cookie"),
    });
    endpoints.push(EndpointRow {
        endpoint: "/pico/ws (dashboard proxy)",
        server: "launcher",
        accepts: vec!["dashboard session cookie".into()],
        note: Some("the launcher authenticates upstream with the runtime token"),
    });

    let mut warnings: Vec<String> = creds.shadow_warnings().iter().map(ToString::to_string).collect();
    for (key, r) in settings.entries() {
        for shadowed in &r.shadowed {
            warnings.push(format!("{key}: {} overrides a different value in {shadowed}", r.source));
        }
    }
    if pico_on
        && creds.pico().is_none()
        && creds.gateway().is_none()
        && extra.named_chat + extra.named_admin == 0
    {
        warnings.push(
            "channels.pico.enabled is true but no pico or gateway token is set: only local tools (runtime token) can connect; run `picoclaw onboard`".into(),
        );
    }
    Explanation { endpoints, credentials, warnings }
}
