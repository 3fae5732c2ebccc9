//! PicoClaw configuration: where the files live, what keys exist, and which source won.
//!
//! This crate owns the *settings* side of the configuration:
//!
//! - [`Paths`]: `PICOCLAW_HOME` (default `~/.picoclaw`), `PICOCLAW_CONFIG`, and every file
//!   derived from them (`.security.yml` always sits beside `config.json`).
//! - [`schema`]: the one fixed table of keys, their types, defaults, environment variable
//!   names and command-line flags. `picoclaw config env` prints it; nothing derives an
//!   environment name by splitting on `_`.
//! - [`Layers`]: the parsed sources, validated against the schema, with the precedence
//!   **flag > environment > `.security.yml` > `config.json` > default** for every key.
//! - [`Settings`]: the typed, non-secret settings, each value remembering its [`Source`]
//!   (`Settings::origin(&schema::GATEWAY_PORT)`); hosts, log levels, networks and URLs
//!   are parsed into [`Host`], [`LogLevel`], [`Cidrs`] and [`PicoClientUrl`] where they
//!   enter, so no later check is needed and no dotted key string is read back.
//!
//! Secrets are *not* read here. A URL's userinfo (`ws://user:password@host`) is a secret
//! too: [`PicoClientUrl`] keeps the URL without it, and the credentials crate resolves it.
//! Other secret keys are validated (a token must be a string) but
//! their values are only handed to the `picoclaw-credentials` crate through
//! [`Layers::candidates`], which is the one resolver every reader uses.

mod env;
mod error;
pub mod files;
mod layers;
pub mod origin;
mod paths;
pub mod providers;
pub mod schema;
mod secret_url;
mod seed;
mod settings;
mod source;
mod storage_url;
pub mod upstream;
mod values;

pub use env::{EnvSource, MapEnv, ProcessEnv};
pub use error::{ConfigError, ConfigWarning};
pub use layers::{
    Candidate, Flags, Layers, validate_config_text, validate_launcher_text, validate_security_text,
};
pub use paths::{CONFIG_VAR, HOME_VAR, Paths};
pub use secret_url::{PicoClientUrl, UrlError, split_userinfo};
pub use settings::{
    AgentSettings, GatewaySettings, LauncherSettings, ModelEntry, PicoClientSettings, PicoSettings,
    Resolution, Settings, StorageSettings, resolve,
};
pub use source::Source;
pub use storage_url::{StorageUrl, StorageUrlError};
pub use values::{BasePath, BasePathError, Cidrs, Host, HostError, LogLevel, canonical};
