//! Keeps the dashboard's credentials equal to their sources while the launcher runs.
//!
//! The launcher token and the dashboard password are read at start; without this, a
//! token rotated where it lives (`PICOCLAW_LAUNCHER_TOKEN_FILE` replaced by a Secret
//! update, `launcher-config.json` edited, `picoclaw launcher token …` in another shell)
//! would leave the running dashboard accepting the old value and refusing the new one —
//! the very disagreement picoclaw exists to prevent. So `launcher-config.json` (and the
//! home's other credential files), every `_FILE` directory and `$CREDENTIALS_DIRECTORY`
//! are watched ([`picoclaw_serve::sources`]); on a change the credentials are resolved again by the one loader
//! (`picoclaw_credentials::load`), and when the token or the password hash differs from
//! the one in force, the new one is swapped in and the generation moves on: every
//! dashboard session (and the chat sockets they proxy) and every one-time login code
//! made under the old one ends. A source that cannot be read keeps the value in force
//! (logged), rather than locking everyone out.

use std::sync::Arc;

use picoclaw_config::{Flags, ProcessEnv};

use crate::state::AppState;

/// Starts watching (for as long as the process runs); logs and gives up when the platform
/// offers no file watching.
pub(crate) fn spawn(state: Arc<AppState>) {
    use picoclaw_serve::sources::{SourceWatch, Sources};
    let paths = &state.paths;
    // The files of the home the launcher's credentials are read from, by name (the home
    // also holds the pid record and the database, written all the time), and every
    // secret file's directory whole.
    let mut sources =
        Sources::new().file(paths.launcher_file()).file(paths.config_file()).file(paths.security_file());
    match picoclaw_credentials::load(paths, &ProcessEnv, &Flags::new()) {
        Ok(loaded) => sources = sources.dirs(loaded.credentials.secret_dirs()),
        Err(e) => tracing::warn!("cannot list the launcher's secret files to watch: {e}"),
    }
    let (mut watch, unwatched) = match SourceWatch::start(sources) {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!("file watching unavailable ({e}); restart the launcher after changing its token");
            return;
        }
    };
    for miss in unwatched {
        tracing::warn!(
            "cannot watch {} ({}); restart the launcher after changing its token there",
            miss.dir.display(),
            miss.error
        );
    }
    tokio::spawn(async move {
        loop {
            watch.changed().await;
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
