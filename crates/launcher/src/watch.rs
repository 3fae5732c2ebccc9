//! Keeps the dashboard's credentials equal to their sources while the launcher runs.
//!
//! The launcher token and the dashboard password are read at start; without this, a
//! token rotated where it lives (`PICOCLAW_LAUNCHER_TOKEN_FILE` replaced by a Secret
//! update, `launcher-config.json` edited, `picoclaw launcher token …` in another shell)
//! would leave the running dashboard accepting the old value and refusing the new one —
//! the very disagreement picoclaw exists to prevent. So the directory of
//! `launcher-config.json`, every `_FILE` directory and `$CREDENTIALS_DIRECTORY` are
//! watched; on a change the credentials are resolved again by the one loader
//! (`picoclaw_credentials::load`), and when the token or the password hash differs from
//! the one in force, the new one is swapped in and the generation moves on: every
//! dashboard session (and the chat sockets they proxy) and every one-time login code
//! made under the old one ends. A source that cannot be read keeps the value in force
//! (logged), rather than locking everyone out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use picoclaw_config::{Flags, ProcessEnv};

use crate::state::AppState;

/// Starts watching (for as long as the process runs); logs and gives up when the platform
/// offers no file watching.
pub(crate) fn spawn(state: Arc<AppState>) {
    use notify::Watcher;
    let mut dirs: Vec<PathBuf> = vec![state.paths.config_dir().to_owned()];
    match picoclaw_credentials::load(&state.paths, &ProcessEnv, &Flags::new()) {
        Ok(loaded) => dirs.extend(loaded.credentials.secret_dirs()),
        Err(e) => tracing::warn!("cannot list the launcher's secret files to watch: {e}"),
    }
    dirs.sort();
    dirs.dedup();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(8);
    let watched = dirs.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event.paths.iter().any(|p| p.parent().is_some_and(|d| watched.iter().any(|w| w == d))) {
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("file watching unavailable ({e}); restart the launcher after changing its token");
            return;
        }
    };
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(
                "cannot watch {} ({e}); restart the launcher after changing its token there",
                dir.display()
            );
        }
    }
    tokio::spawn(async move {
        let _keep = watcher;
        while rx.recv().await.is_some() {
            // Let a burst of events (temporary file, rename, Secret symlink swap) settle.
            tokio::time::sleep(Duration::from_millis(250)).await;
            while rx.try_recv().is_ok() {}
            let st = state.clone();
            let _ = tokio::task::spawn_blocking(move || refresh(&st)).await;
        }
    });
}

/// Resolves the token and password again; on a change swaps them in and ends every
/// session and login code of the old ones.
fn refresh(st: &AppState) {
    let loaded = match picoclaw_credentials::load(&st.paths, &ProcessEnv, &Flags::new()) {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::warn!("the launcher's credentials do not load, keeping the ones in force: {e}");
            return;
        }
    };
    let Some(token) = loaded.launcher_token() else {
        tracing::warn!(
            "the launcher token is gone from its source; keeping the one in force until it is back"
        );
        return;
    };
    let password = match loaded.dashboard_password() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("the dashboard password hash does not read, keeping the one in force: {e}");
            return;
        }
    };
    let password_changed = match (&password, &st.password()) {
        (Some(new), Some(old)) => !new.same_hash(old),
        (None, None) => false,
        _ => true,
    };
    let generation = {
        let mut current = st.token.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let token_changed = current.secret.digest() != token.secret.digest();
        if !token_changed && !password_changed {
            // The origin may still have moved (a random token the user now set as their own).
            current.origin = token.origin;
            return;
        }
        if token_changed {
            tracing::info!(
                source = %token.source,
                fingerprint = %token.secret.fingerprint(),
                "launcher token changed at its source; every dashboard session and login code ended"
            );
        }
        current.secret = token.secret;
        current.origin = token.origin;
        current.generation += 1;
        current.generation
    };
    if password_changed {
        tracing::info!("dashboard password changed at its source; every dashboard session ended");
        *st.password.write().unwrap_or_else(std::sync::PoisonError::into_inner) = password;
    }
    st.codes.clear();
    st.sessions.rotate(None, generation);
}
