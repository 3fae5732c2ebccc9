//! The table behind `picoclaw auth explain`: each endpoint (from [`crate::endpoints`],
//! the table the gateway's router is built from), the credentials it accepts now, and
//! each credential's source and fingerprint. Never a value.

use picoclaw_config::Settings;
use picoclaw_config::schema;
use picoclaw_credentials::launcher::LauncherToken;
use picoclaw_credentials::password::DashboardPassword;
use picoclaw_credentials::runtime::RuntimeRecord;
use picoclaw_credentials::{Credentials, Resolved, Secret};
use serde::Serialize;

use crate::endpoints::{self, Guard, Server};
use crate::verify::Scope;

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
    pub accepted_on: Vec<String>,
    /// A short note (e.g. "outbound: sent to the remote Pico server").
    pub note: &'static str,
}

/// One endpoint and what it accepts now.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointRow {
    /// `POST /reload`, `GET /pico/ws`, ...
    pub endpoint: String,
    /// Which server (`gateway` or `launcher`).
    pub server: &'static str,
    /// The scope it needs (`chat`, `admin`), when it takes a gateway credential.
    pub scope: Option<Scope>,
    /// Names of credentials that are set and accepted now; `none` for open endpoints.
    pub accepts: Vec<String>,
    /// How a credential may be presented there.
    pub presented_as: &'static str,
    /// What it does, or why it accepts nothing now (e.g. "channel disabled").
    pub note: Option<String>,
}

/// Inputs beyond settings and gateway credentials.
#[derive(Debug, Default)]
pub struct Extra<'a> {
    /// The live local gateway's record, if one is running.
    pub runtime: Option<&'a RuntimeRecord>,
    /// The dashboard token, if configured.
    pub launcher: Option<&'a LauncherToken>,
    /// The dashboard password, if one is set (the second login mode).
    pub password: Option<&'a DashboardPassword>,
    /// Named tokens that are currently valid, per scope.
    pub named: NamedCounts,
}

/// How many named tokens of each scope are active now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NamedCounts {
    /// Scope `admin`.
    pub admin: usize,
    /// Scope `chat`.
    pub chat: usize,
    /// Scope `read`.
    pub read: usize,
}

impl NamedCounts {
    /// All of them.
    pub fn total(self) -> usize {
        self.admin + self.chat + self.read
    }
}

/// How many named tokens of the setup are active now, per scope. The one count used by
/// `auth explain`, the dashboard and the TUI; `records` come from
/// `picoclaw_store::token_records`, so with replicas it counts the shared tokens.
pub fn named_token_counts(records: &crate::named::TokenFile) -> NamedCounts {
    use crate::named::{Timestamp, TokenState};
    let mut counts = NamedCounts::default();
    let Ok((_, set)) = records.read() else { return counts };
    let now = Timestamp::now();
    let active = set.records().iter().map(|r| r.summary(now)).filter(|s| s.state == TokenState::Active);
    for summary in active {
        match summary.scope {
            Scope::Admin => counts.admin += 1,
            Scope::Chat => counts.chat += 1,
            Scope::Read => counts.read += 1,
        }
    }
    counts
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
    accepted_on: Vec<String>,
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

/// Where a credential of `scope` (the pico token only when the channel is on) is accepted
/// now, per the endpoint table.
fn accepted_on(scope: Scope, pico_on: bool) -> Vec<String> {
    endpoints::of(Server::Gateway)
        .filter(|e| match e.guard {
            Guard::Credential { scope: needed, .. } => scope.allows(needed),
            _ => false,
        })
        .filter(|e| pico_on || !is_pico(e))
        .map(|e| format!("{} {}", e.methods.join("|"), e.path))
        .collect()
}

fn is_pico(e: &endpoints::Endpoint) -> bool {
    e.path.starts_with("/pico")
}

/// Builds the explanation for the current setup.
pub fn explain(settings: &Settings, creds: &Credentials, extra: &Extra<'_>) -> Explanation {
    let pico_on = settings.pico.enabled;
    let everything = accepted_on(Scope::Admin, pico_on);
    let chat_endpoints = if pico_on { accepted_on(Scope::Chat, true) } else { Vec::new() };
    let named_total = extra.named.total();

    let mut credentials = vec![
        row(
            "gateway token",
            schema::GATEWAY_TOKEN.path,
            schema::GATEWAY_TOKEN.env,
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
            schema::CHANNELS_PICO_TOKEN.path,
            schema::CHANNELS_PICO_TOKEN.env,
            creds.pico(),
            chat_endpoints.clone(),
            if pico_on {
                "scope chat: the Pico channel, /v1 chat, its own history, /auth/whoami and /auth/ticket"
            } else {
                "Pico channel is disabled"
            },
        ),
        CredentialRow {
            name: "named tokens",
            key: ".security.yml tokens",
            env: None,
            set: named_total > 0,
            source: (named_total > 0).then(|| {
                format!("{} admin, {} chat, {} read", extra.named.admin, extra.named.chat, extra.named.read)
            }),
            fingerprint: None,
            accepted_on: everything.clone(),
            note: "scope read: history only; scope chat: like the pico token; scope admin: everything (`picoclaw token list`)",
        },
        CredentialRow {
            name: "launcher token",
            key: "launcher-config.json launcher_token",
            env: Some("PICOCLAW_LAUNCHER_TOKEN"),
            set: extra.launcher.is_some(),
            source: extra.launcher.map(|t| format!("{} ({})", t.origin, t.source)),
            fingerprint: extra.launcher.and_then(|t| fp(&t.secret)),
            accepted_on: vec!["launcher POST /login".to_owned()],
            note: "dashboard login only; generated and persisted at first launcher start",
        },
        CredentialRow {
            name: "dashboard password",
            key: "launcher-config.json dashboard_password_hash",
            env: None,
            set: extra.password.is_some(),
            source: extra.password.map(|p| format!("{:?} hash ({})", p.scheme, p.source)),
            fingerprint: None,
            accepted_on: vec!["launcher POST /login".to_owned()],
            note: "dashboard login beside the launcher token; upstream PicoClaw's bcrypt hash (also from its launcher-auth.db) or argon2id when set from the dashboard",
        },
        row(
            "pico_client token",
            schema::CHANNELS_PICO_CLIENT_TOKEN.path,
            schema::CHANNELS_PICO_CLIENT_TOKEN.env,
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
    let endpoints = endpoints::ENDPOINTS
        .iter()
        .map(|e| {
            let (scope, accepts, note) = match e.guard {
                Guard::Open => (None, vec!["none".to_owned()], e.note.to_owned()),
                Guard::Credential { scope, presentations } => {
                    let mut accepts = match scope {
                        Scope::Admin => names(&["gateway token", "runtime token"]),
                        Scope::Chat | Scope::Read => names(&["gateway token", "runtime token", "pico token"]),
                    };
                    let named = extra.named;
                    match scope {
                        Scope::Admin if named.admin > 0 => accepts.push("named tokens (admin)".into()),
                        Scope::Chat if named.admin + named.chat > 0 => {
                            accepts.push("named tokens (chat, admin)".into())
                        }
                        Scope::Read if named_total > 0 => accepts.push("named tokens".into()),
                        _ => {}
                    }
                    if presentations.ticket {
                        accepts.push("tickets".into());
                    }
                    if is_pico(e) && !pico_on {
                        (Some(scope), Vec::new(), "channel disabled (answers 404)".to_owned())
                    } else {
                        (Some(scope), accepts, e.note.to_owned())
                    }
                }
                Guard::LauncherToken => (None, names(&["launcher token"]), e.note.to_owned()),
                Guard::LoginCode => (None, vec!["one-time login code".to_owned()], e.note.to_owned()),
                Guard::DashboardSession => (None, vec!["dashboard session cookie".to_owned()], e.note.to_owned()),
            };
            let presented_as = match e.guard {
                Guard::Credential { presentations, .. } if presentations.query && !settings.pico.allow_token_query => {
                    match presentations.subprotocol {
                        true => "Authorization: Bearer, Sec-WebSocket-Protocol token.<t> or ticket.<t>; ?token= disabled",
                        false => "Authorization: Bearer; ?token= disabled",
                    }
                }
                _ => e.guard.presented_as(),
            };
            EndpointRow {
                endpoint: format!("{} {}", e.methods.join("|"), e.path),
                server: match e.server {
                    Server::Gateway => "gateway",
                    Server::Launcher => "launcher",
                },
                scope,
                accepts,
                presented_as,
                note: Some(note),
            }
        })
        .collect();

    let mut warnings: Vec<String> = creds.shadow_warnings().iter().map(ToString::to_string).collect();
    for (key, r) in settings.entries() {
        for shadowed in &r.shadowed {
            warnings.push(format!("{key}: {} overrides a different value in {shadowed}", r.source));
        }
    }
    if let (Some(g), Some(p)) = (creds.gateway(), creds.pico())
        && pico_on
        && g.secret.matches(p.secret.expose())
    {
        warnings.push(format!(
            "the pico token ({}) equals the gateway token ({}): whoever holds the pico token has admin scope; \
             give each its own value (`picoclaw token rotate pico`)",
            p.source, g.source
        ));
    }
    if pico_on && creds.pico().is_none() && creds.gateway().is_none() && named_total == 0 {
        warnings.push(
            "channels.pico.enabled is true but no pico or gateway token is set: only local tools (runtime token) can connect; run `picoclaw onboard`".into(),
        );
    }
    Explanation { endpoints, credentials, warnings }
}
