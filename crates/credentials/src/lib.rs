//! The one resolver for every PicoClaw secret.
//!
//! Servers (gateway, launcher) and clients (CLI, doctor, tests) all obtain credentials
//! here and nowhere else, so they cannot resolve the same token from different places in
//! different orders — the failure behind seeds 003 and 004.
//!
//! - [`Secret`]: a token or key. `Debug`/`Display` print `[redacted]`; the value is read
//!   with [`Secret::expose`]; a [`Fingerprint`] (first 8 hex of SHA-256) names it safely.
//! - [`load`]: the one entry point: files, environment and flags → [`Loaded`] (typed
//!   settings, credentials, launcher token, named-token records), for every process.
//! - [`Credentials::resolve`]: gateway, pico, pico_client and model API keys with the
//!   precedence environment > `.security.yml` > `config.json` (secrets have no flags:
//!   argv is visible to every user), each with its [`Source`] and the sources it shadows.
//! - [`launcher`]: the dashboard token: environment > `launcher-config.json` > a random
//!   256-bit token persisted with mode 0600.
//! - [`runtime`]: the gateway's discovery record `.picoclaw.pid` and its runtime token.
//! - [`client`]: which credential a client presents to which gateway.
//! - [`handed`]: a token handed to one command for a server that is not this home's
//!   (a named environment variable or stdin, never argv).
//! - [`store`]: atomic 0600 writes of secrets into `.security.yml`.

pub mod client;
mod error;
pub mod handed;
pub mod launcher;
mod load;
pub mod migrate;
pub mod password;
mod resolve;
pub mod runtime;
mod secret;
mod secret_file;
pub mod store;
pub mod strength;
pub mod upstream;

pub use error::CredentialError;
pub use load::{Loaded, load};
pub use picoclaw_config::Source;
pub use resolve::{Credentials, ModelCredential, Resolved, ShadowWarning};
pub use secret::{Fingerprint, Secret};
