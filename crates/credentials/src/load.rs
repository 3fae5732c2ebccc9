//! The one entry point that loads a setup: [`load`] reads `config.json`,
//! `.security.yml`, `launcher-config.json`, the environment and the flags, and resolves
//! the typed settings and every credential with one precedence (flag > environment >
//! `.security.yml` > `config.json` > default). The gateway (at start and at every
//! reload), the launcher, every CLI command and `doctor` call it and nothing else, so they
//! cannot disagree about which value is in force (`tests/one_loader.rs` checks that no
//! other code assembles the pipeline itself).
//!
//! [`Loaded`] hands out typed views only: the settings, the credentials (each secret a
//! [`Secret`] with its source), the launcher token, the named-token records (hashes only)
//! and the names of secrets misplaced in `config.json`. The parsed file trees, which hold
//! secret values, stay inside.

use std::path::Path;

use picoclaw_config::{ConfigWarning, EnvSource, Flags, Layers, Paths, Settings};
use serde_json::{Map, Value};

use crate::error::CredentialError;
use crate::launcher::{self, LauncherToken};
use crate::migrate::{ConfigSecret, config_secrets};
use crate::resolve::Credentials;

/// A loaded setup.
pub struct Loaded {
    /// The home and its files.
    pub paths: Paths,
    /// Every non-secret setting, typed, with provenance.
    pub settings: Settings,
    /// Every gateway-side secret, resolved.
    pub credentials: Credentials,
    layers: Layers,
    launcher: Option<LauncherToken>,
    token_records: Value,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("paths", &self.paths).finish_non_exhaustive()
    }
}

/// Loads the setup of `paths` from its files, `env` and `flags`.
pub fn load(paths: &Paths, env: &dyn EnvSource, flags: &Flags) -> Result<Loaded, CredentialError> {
    let layers = Layers::load(paths, env, flags)?;
    let settings = Settings::resolve(&layers)?;
    let credentials = Credentials::resolve(&layers, &settings)?;
    let launcher = launcher::peek(&layers)?;
    // Only the hash-only parts of `.security.yml`: the named-token records and the
    // digests of rotated values.
    let mut token_records = Map::new();
    if let Some(tree) = layers.security_tree() {
        for key in ["tokens", "rotated"] {
            if let Some(v) = tree.get(key) {
                token_records.insert(key.to_owned(), v.clone());
            }
        }
    }
    Ok(Loaded {
        paths: paths.clone(),
        settings,
        credentials,
        layers,
        launcher,
        token_records: Value::Object(token_records),
    })
}

impl Loaded {
    /// Unknown keys and other non-fatal findings of the files.
    pub fn warnings(&self) -> &[ConfigWarning] {
        self.layers.warnings()
    }

    /// The files that were read.
    pub fn loaded_files(&self) -> Vec<&Path> {
        self.layers.loaded_files()
    }

    /// The dashboard token, when one is configured (never generates one).
    pub fn launcher_token(&self) -> Option<LauncherToken> {
        self.launcher.clone()
    }

    /// The dashboard token; a random one is generated and persisted when none is
    /// configured (the launcher at start).
    pub fn launcher_token_or_create(&self) -> Result<LauncherToken, CredentialError> {
        launcher::resolve_or_create(&self.layers)
    }

    /// The dashboard password (launcher-config.json `dashboard_password_hash`: upstream's
    /// bcrypt hash, or an argon2id one set from the dashboard), if one is set.
    pub fn dashboard_password(&self) -> Result<Option<crate::password::DashboardPassword>, CredentialError> {
        crate::password::peek(&self.layers)
    }

    /// The loaded files in upstream PicoClaw's version-3 shape (read as they are;
    /// `doctor --fix` rewrites them with [`crate::upstream::rewrite_upstream_files`]).
    pub fn upstream_shaped(&self) -> Vec<&Path> {
        self.layers.upstream_shaped()
    }

    /// `tokens:` and `rotated:` of `.security.yml` — named-token records and digests of
    /// rotated values, hashes only — as a tree for `picoclaw_auth`'s loaders.
    pub fn token_records(&self) -> &Value {
        &self.token_records
    }

    /// The secrets found in `config.json` (names and fingerprints only), which belong in
    /// `.security.yml`.
    pub fn config_secrets(&self) -> Vec<ConfigSecret> {
        self.layers.config_tree().map(config_secrets).unwrap_or_default()
    }
}
