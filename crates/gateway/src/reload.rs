//! Building the reloadable state, and applying a reload: validate everything first, keep
//! the old state on any error, then apply it (`Shared::apply`: tickets and sockets whose
//! credential is no longer valid end).

use std::sync::Arc;

use picoclaw_agent::Engine;
use picoclaw_auth::named::{FixedCredential, SystemClock, Timestamp};
use picoclaw_auth::{NamedState, StoredCredentials, Verifier};
use picoclaw_config::{Flags, Paths, ProcessEnv, Settings};
use picoclaw_credentials::{Credentials, Resolved, Secret};

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
    let mut warnings: Vec<String> = loaded.warnings().iter().map(ToString::to_string).collect();
    // With `storage.url` the named tokens are the replicas' shared ones (PostgreSQL); the
    // home's `tokens:` was stored there at the first use and is not read afterwards.
    let records = picoclaw_store::token_records(paths, &loaded.settings, &loaded.credentials);
    let shared_tree = if records.is_shared() {
        let (tree, _) =
            records.read().map_err(|e| GatewayError::Refused(format!("named tokens (storage.url): {e}")))?;
        let home = loaded.token_records().get("tokens").and_then(serde_json::Value::as_array);
        if home.is_some_and(|h| !h.is_empty()) && loaded.token_records().get("tokens") != tree.get("tokens") {
            warnings.push(format!(
                "{}: its `tokens:` list is not used: with storage.url the named tokens are shared by every \
                 replica in PostgreSQL (see `picoclaw token list`); remove the list from this home",
                paths.security_file().display()
            ));
        }
        Some(tree)
    } else {
        None
    };
    let tree = shared_tree.as_ref().unwrap_or_else(|| loaded.token_records()).clone();
    let picoclaw_credentials::Loaded { settings, credentials, .. } = loaded;
    let file_grace = match previous {
        Some(old) => file_rotations(old, &credentials, settings.gateway.rotation_grace)?,
        None => Vec::new(),
    };
    let (stored, verifier) = verifier_of(paths, &tree, &settings, &credentials, runtime, &file_grace)?;
    let engine = match previous {
        Some(old) if same_agent(&old.settings, &settings) => old.engine.clone(),
        _ => make_engine(&settings, &credentials, paths)?,
    };
    Ok((Live { settings, credentials, verifier, stored, engine, file_grace }, warnings))
}

/// The stored credentials of `tree` (named tokens, `rotated:` graces, plus the graces of
/// replaced secret files) and the verifier over them and `credentials`.
fn verifier_of(
    paths: &Paths,
    tree: &serde_json::Value,
    settings: &Settings,
    credentials: &Credentials,
    runtime: &Secret,
    file_grace: &[FileGrace],
) -> Result<(Arc<StoredCredentials>, Verifier), GatewayError> {
    let mut stored =
        StoredCredentials::from_tree(tree, credentials, settings.pico.enabled, Arc::new(SystemClock))
            .map_err(|e| GatewayError::Refused(format!("{}: {e}", paths.security_file().display())))?;
    for g in file_grace {
        if g.credential != FixedCredential::Pico || settings.pico.enabled {
            stored.grace.push(g.credential, &g.old, g.until);
        }
    }
    let stored = Arc::new(stored);
    let verifier = Verifier::new(credentials, runtime, settings.pico.enabled).with_named(stored.clone());
    Ok((stored, verifier))
}

/// Applies a change of the replicas' shared named tokens (PostgreSQL, announced by another
/// replica or found by the poll): only the named tokens are read again and swapped into
/// the state in force — settings, secrets and the agent stay as they are, so an unrelated
/// error in config.json (or `gateway.hot_reload: false`) can neither block a revocation
/// nor be applied by one. Sockets and tickets of a token that is no longer valid end, and
/// a suspension is kept (`Shared::apply`): only the watch of the shared tokens knows
/// whether changes made elsewhere are being seen, and resumes them.
pub(crate) async fn refresh_shared_tokens(shared: &Arc<Shared>) -> Result<(), String> {
    let _one_at_a_time = shared.reload_lock.lock().await;
    let old = shared.live();
    let (paths, runtime, now) = (shared.paths.clone(), shared.runtime_token.clone(), old.clone());
    let built = tokio::task::spawn_blocking(move || {
        let records = picoclaw_store::token_records(&paths, &now.settings, &now.credentials);
        let (tree, _) =
            records.read().map_err(|e| GatewayError::Refused(format!("named tokens (storage.url): {e}")))?;
        let file_grace: Vec<FileGrace> =
            now.file_grace.iter().filter(|g| g.until > Timestamp::now()).cloned().collect();
        let (stored, verifier) =
            verifier_of(&paths, &tree, &now.settings, &now.credentials, &runtime, &file_grace)?;
        Ok::<_, GatewayError>(Live {
            settings: now.settings.clone(),
            credentials: now.credentials.clone(),
            verifier,
            stored,
            engine: now.engine.clone(),
            file_grace,
        })
    })
    .await
    .unwrap_or_else(|_| Err(GatewayError::Refused("the refresh was interrupted".into())));
    let live = built.map_err(|e| e.to_string())?;
    let applied = shared.apply(live);
    shared.audit(
        picoclaw_auth::audit::AuditEvent::new(
            picoclaw_auth::audit::AuditKind::Reload,
            picoclaw_auth::audit::Outcome::Ok,
        )
        .actor("shared tokens changed"),
    );
    tracing::info!(
        closed_sockets = applied.closed_sockets,
        dropped_tickets = applied.dropped_tickets,
        dropped_pairing_codes = applied.dropped_pairing_codes,
        "shared tokens: applied the replicas' named tokens"
    );
    Ok(())
}

/// Suspends the replicas' shared named tokens on this replica (`why` it lost track of
/// them; see [`NamedState::Suspended`]): each is refused until they are read again, and
/// the sockets and tickets of every named token end. Nothing happens when they already are.
pub(crate) fn suspend_shared_tokens(shared: &Shared, why: &str) {
    let Some(applied) = shared.set_named_state(NamedState::Suspended) else { return };
    shared.audit(
        picoclaw_auth::audit::AuditEvent::new(
            picoclaw_auth::audit::AuditKind::Reload,
            picoclaw_auth::audit::Outcome::Error,
        )
        .actor("shared tokens suspended"),
    );
    tracing::error!(
        closed_sockets = applied.closed_sockets,
        dropped_tickets = applied.dropped_tickets,
        "shared tokens: {why}; every named token is refused (503 shared_tokens_unavailable) and /ready \
         answers 503 until they are read again"
    );
}

/// The old value of a gateway or pico token that came from a secret file which changed:
/// still accepted until `until`.
#[derive(Clone)]
pub(crate) struct FileGrace {
    pub credential: FixedCredential,
    pub old: Secret,
    pub until: Timestamp,
}

/// What a reload does to secrets read from files (`_FILE`, `$CREDENTIALS_DIRECTORY`):
/// a changed value starts a grace for the old one (`gateway.rotation_grace`), carried
/// over with the earlier ones that have not ended; a secret file that appears and shadows
/// a value from a file of picoclaw's own starts the same grace. A secret file that disappeared (its
/// credential now resolves from a lower source, or from none) is refused: the reload is
/// rejected and the last good value stays, rather than silently falling back.
fn file_rotations(
    old: &Live,
    new: &Credentials,
    grace: std::time::Duration,
) -> Result<Vec<FileGrace>, GatewayError> {
    let now = Timestamp::now();
    let mut out: Vec<FileGrace> = old
        .file_grace
        .iter()
        .filter(|g| g.until > now)
        .map(|g| FileGrace { credential: g.credential, old: g.old.clone(), until: g.until })
        .collect();
    let pairs: [(FixedCredential, Option<&Resolved>, Option<&Resolved>); 2] = [
        (FixedCredential::Gateway, old.credentials.gateway(), new.gateway()),
        (FixedCredential::Pico, old.credentials.pico(), new.pico()),
    ];
    for (credential, before, after) in pairs {
        let Some(before) = before else { continue };
        if !before.source.is_secret_file() {
            // A secret file that appeared (a credential added to $CREDENTIALS_DIRECTORY
            // after start) now shadows the value in effect: a rotation made outside
            // picoclaw, with the same grace as a replaced file.
            if let Some(after) = after
                && after.source.is_secret_file()
                && after.secret.fingerprint() != before.secret.fingerprint()
            {
                out.push(FileGrace { credential, old: before.secret.clone(), until: now.after(grace) });
            }
            continue;
        }
        match after {
            Some(after) if after.source == before.source => {
                if after.secret.fingerprint() != before.secret.fingerprint() {
                    out.push(FileGrace { credential, old: before.secret.clone(), until: now.after(grace) });
                }
            }
            _ => {
                return Err(GatewayError::Refused(format!(
                    "{}: {} is gone (its file was removed or emptied); keeping its last value until the file is back",
                    credential.key(),
                    before.source
                )));
            }
        }
    }
    // The current values are never "old" (a file switched back and forth).
    out.retain(|g| {
        let current = match g.credential {
            FixedCredential::Gateway => new.gateway(),
            FixedCredential::Pico => new.pico(),
        };
        current.is_none_or(|c| c.secret.fingerprint() != g.old.fingerprint())
    });
    Ok(out)
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
    // Off the async workers: it reads files and, with shared tokens, the database.
    let built = {
        let (paths, flags, runtime, old) =
            (shared.paths.clone(), shared.flags.clone(), shared.runtime_token.clone(), old.clone());
        tokio::task::spawn_blocking(move || build_live(&paths, &flags, &runtime, Some(&old)))
            .await
            .unwrap_or_else(|_| Err(GatewayError::Refused("the reload was interrupted".into())))
    };
    let (live, warnings) = match built {
        Ok(built) => built,
        Err(e) => {
            tracing::error!(trigger, "reload rejected, keeping the previous configuration: {e}");
            return Err(e.to_string());
        }
    };
    if live.settings.storage.url != old.settings.storage.url {
        // Sessions, the fan-out and the watch of the shared tokens stay where they were
        // opened: applying the rest (named tokens read from elsewhere) would split them.
        let e = "storage.url changed; restart the gateway to apply it (the previous configuration is kept)";
        tracing::error!(trigger, "reload rejected: {e}");
        return Err(e.to_owned());
    }
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
        dropped_pairing_codes = applied.dropped_pairing_codes,
        "configuration reloaded"
    );
    Ok(Summary { closed_sockets: closed, warnings })
}
