//! Building the reloadable state, and applying a reload: validate everything first, keep
//! the old state on any error, then apply it (`Shared::apply`: tickets and sockets whose
//! credential is no longer valid end).

use std::sync::Arc;

use picoclaw_agent::Engine;
use picoclaw_auth::named::SystemClock;
use picoclaw_auth::{StoredCredentials, Verifier};
use picoclaw_config::{Flags, Paths, ProcessEnv, Settings};
use picoclaw_credentials::{Credentials, Secret};

use crate::error::GatewayError;
use crate::state::{Live, Shared};

/// Loads settings and credentials and builds the verifier and agent. `previous` lets a
/// reload keep the running agent when its configuration did not change.
pub(crate) fn build_live(
    paths: &Paths,
    flags: &Flags,
    runtime: &Secret,
    previous: Option<&Live>,
) -> Result<(Live, Vec<String>), GatewayError> {
    let loaded = picoclaw_credentials::load(paths, &ProcessEnv, flags)?;
    let warnings = loaded.warnings().iter().map(ToString::to_string).collect();
    let stored = StoredCredentials::from_tree(
        loaded.token_records(),
        &loaded.credentials,
        loaded.settings.pico.enabled,
        Arc::new(SystemClock),
    )
    .map_err(|e| GatewayError::Refused(format!("{}: {e}", paths.security_file().display())))?;
    let picoclaw_credentials::Loaded { settings, credentials, .. } = loaded;
    let stored = Arc::new(stored);
    let verifier = Verifier::new(&credentials, runtime, settings.pico.enabled).with_named(stored.clone());
    let engine = match previous {
        Some(old) if same_agent(&old.settings, &settings) => old.engine.clone(),
        _ => make_engine(&settings, &credentials, paths)?,
    };
    Ok((Live { settings, credentials, verifier, stored, engine }, warnings))
}

fn same_agent(a: &Settings, b: &Settings) -> bool {
    a.agents == b.agents && a.models == b.models
}

fn make_engine(settings: &Settings, creds: &Credentials, paths: &Paths) -> Result<Engine, GatewayError> {
    Engine::from_config(settings, creds, paths).map_err(GatewayError::Agent)
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
    if live.settings.gateway.base_path != old.settings.gateway.base_path {
        tracing::warn!("gateway.base_path changed; restart the gateway to apply it");
    }
    let client_changed = live.settings.pico_client != old.settings.pico_client
        || live.credentials.pico_client().map(|r| r.secret.fingerprint())
            != old.credentials.pico_client().map(|r| r.secret.fingerprint())
        || !same_agent(&live.settings, &old.settings);
    let applied = shared.apply(live);
    if client_changed {
        shared.restart_pico_client();
    }
    let closed = applied.closed_sockets;
    shared.audit(
        picoclaw_auth::audit::AuditEvent::new(
            picoclaw_auth::audit::AuditKind::Reload,
            picoclaw_auth::audit::Outcome::Ok,
        )
        .actor(trigger),
    );
    tracing::info!(
        trigger,
        closed_sockets = closed,
        dropped_tickets = applied.dropped_tickets,
        "configuration reloaded"
    );
    Ok(Summary { closed_sockets: closed, warnings })
}
