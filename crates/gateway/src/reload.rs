//! Building the reloadable state, and applying a reload: validate everything first, keep
//! the old state on any error, then close sockets whose credential is no longer valid.

use std::sync::Arc;

use picoclaw_agent::Engine;
use picoclaw_auth::{Scope, Verifier};
use picoclaw_config::{Flags, Layers, Paths, ProcessEnv, Settings};
use picoclaw_credentials::{Credentials, Secret};

use crate::error::GatewayError;
use crate::hub::{CloseReason, close};
use crate::state::{Live, Shared};

/// Loads settings and credentials and builds the verifier and agent. `previous` lets a
/// reload keep the running agent when its configuration did not change.
pub(crate) fn build_live(
    paths: &Paths,
    flags: &Flags,
    runtime: &Secret,
    previous: Option<&Live>,
) -> Result<(Live, Vec<String>), GatewayError> {
    let layers = Layers::load(paths, &ProcessEnv, flags)?;
    let settings = Settings::resolve(&layers)?;
    let credentials = Credentials::resolve(&layers, &settings)?;
    let verifier = Verifier::new(&credentials, runtime, settings.pico.enabled);
    let engine = match previous {
        Some(old) if same_agent(&old.settings, &settings) => old.engine.clone(),
        _ => make_engine(&settings, &credentials, paths)?,
    };
    let warnings = layers.warnings().iter().map(ToString::to_string).collect();
    Ok((Live { settings, credentials, verifier, engine }, warnings))
}

fn same_agent(a: &Settings, b: &Settings) -> bool {
    a.agents == b.agents && a.models == b.models
}

fn make_engine(settings: &Settings, creds: &Credentials, paths: &Paths) -> Result<Engine, GatewayError> {
    Engine::from_config(settings, creds, paths).map_err(|e| GatewayError::Agent(e.to_string()))
}

/// What a reload did.
pub(crate) struct Summary {
    pub closed_sockets: usize,
    pub warnings: Vec<String>,
}

/// Re-reads config.json, .security.yml and the environment and applies them.
pub(crate) async fn reload(shared: &Arc<Shared>, trigger: &str) -> Result<Summary, String> {
    let _one_at_a_time = shared.reload_lock.lock().await;
    let old = shared.live();
    let (live, warnings) = match build_live(&shared.paths, &shared.flags, &shared.runtime_token, Some(&old)) {
        Ok(built) => built,
        Err(e) => {
            tracing::error!(trigger, "reload rejected, keeping the previous configuration: {e}");
            return Err(e.to_string());
        }
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if live.settings.gateway.host != old.settings.gateway.host
        || live.settings.gateway.port != old.settings.gateway.port
    {
        tracing::warn!("gateway.host/gateway.port changed; restart the gateway to apply them");
    }
    let pico_enabled = live.settings.pico.enabled;
    let verifier = live.verifier.clone();
    shared.replace_live(live);
    let closed = revalidate(shared, &verifier, pico_enabled);
    tracing::info!(trigger, closed_sockets = closed, "configuration reloaded");
    Ok(Summary { closed_sockets: closed, warnings })
}

/// Closes sockets whose credential the current verifier no longer accepts.
pub(crate) fn revalidate(shared: &Shared, verifier: &Verifier, pico_enabled: bool) -> usize {
    shared.hub.sweep(|conn| {
        if !pico_enabled {
            return Some(CloseReason {
                code: close::GOING_AWAY,
                reason: "the Pico channel was disabled".into(),
            });
        }
        match verifier.verify(conn.credential.expose(), Scope::Chat) {
            Ok(_) => None,
            Err(e) => Some(CloseReason {
                code: close::CREDENTIAL_REVOKED,
                reason: format!("credential {} is no longer valid ({})", conn.principal.id, e.code()),
            }),
        }
    })
}
