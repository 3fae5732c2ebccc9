//! Loading the configuration and credentials the same way for every command: one call to
//! `picoclaw_credentials::load`.

use anyhow::Result;
use picoclaw_config::{Flags, Paths, ProcessEnv, Settings};
use picoclaw_credentials::{Credentials, Loaded};

/// Everything a command needs to know about the setup.
pub struct Context {
    /// Paths.
    pub paths: Paths,
    /// Non-secret settings.
    pub settings: Settings,
    /// Gateway-side credentials.
    pub credentials: Credentials,
    /// The whole loaded setup (launcher token, named-token records, warnings).
    pub loaded: Loaded,
}

impl Context {
    /// The token service over this setup's records (`.security.yml`, the named tokens in
    /// PostgreSQL with `storage.url`: `picoclaw_store::token_records`).
    pub fn token_ops(&self) -> picoclaw_auth::named::ops::TokenOps {
        picoclaw_auth::named::ops::TokenOps::new(self.token_records(), self.credentials.clone())
    }

    /// Where this setup's token records are.
    pub fn token_records(&self) -> picoclaw_auth::named::TokenFile {
        picoclaw_store::token_records(&self.paths, &self.settings, &self.credentials)
    }

    /// Loads from the process environment, the files and `flags`.
    pub fn load(flags: &Flags) -> Result<Context> {
        let env = ProcessEnv;
        let paths = Paths::from_env(&env)?;
        let loaded = picoclaw_credentials::load(&paths, &env, flags)?;
        Ok(Context {
            paths,
            settings: loaded.settings.clone(),
            credentials: loaded.credentials.clone(),
            loaded,
        })
    }

    /// Prints configuration warnings (unknown keys, secret files readable by others) to
    /// stderr.
    pub fn print_warnings(&self) {
        for w in self.loaded.warnings() {
            eprintln!("warning: {w}");
        }
        let secret_files = [self.paths.security_file(), self.paths.launcher_file(), self.paths.pid_file()];
        for file in secret_files.iter().chain([&self.paths.config_file().to_path_buf()]) {
            if let Some(mode) = picoclaw_config::files::too_open(file) {
                eprintln!(
                    "warning: {} has mode {mode:04o}; files holding secrets must be 0600 (run `chmod 600 {}` or `picoclaw doctor --fix`)",
                    file.display(),
                    file.display()
                );
            }
        }
    }
}
