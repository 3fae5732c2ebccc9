//! Which credential a client presents, to which gateway.
//!
//! - A client targeting the **local** gateway (the one recorded in `.picoclaw.pid`) always
//!   presents that gateway's runtime token. Environment variables and files cannot make it
//!   disagree with the process that is actually running.
//! - A client targeting a **remote** gateway (`--url`) uses the configured credentials,
//!   resolved by [`Credentials::resolve`] — the very function the gateway uses — so both
//!   sides pick the same value from the same source.
//!
//! A client never retries a rejected credential as another kind.

use picoclaw_config::Source;

use crate::error::CredentialError;
use crate::resolve::Credentials;
use crate::runtime::RuntimeRecord;
use crate::secret::Secret;

/// What the client wants to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The Pico channel (`/pico/ws`, `/pico/media`).
    Chat,
    /// Admin endpoints (`/reload`, token API, `/auth/whoami` for doctor).
    Admin,
}

/// Which gateway.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The gateway recorded in `.picoclaw.pid` (already checked to be live).
    Local(&'a RuntimeRecord),
    /// A gateway at a URL given by the user.
    Remote,
}

/// The credential a client will present.
#[derive(Debug, Clone)]
pub struct Presented {
    /// The secret.
    pub secret: Secret,
    /// `runtime`, `gateway` or `pico`.
    pub kind: &'static str,
    /// Where it came from.
    pub source: Source,
}

/// Chooses the credential for `endpoint` on `target`.
///
/// Remote chat prefers the pico token (least privilege) and falls back to the gateway
/// token; remote admin needs the gateway token.
pub fn choose(
    endpoint: Endpoint,
    target: Target<'_>,
    creds: &Credentials,
) -> Result<Presented, CredentialError> {
    match target {
        Target::Local(record) => {
            Ok(Presented { secret: record.token.clone(), kind: "runtime", source: Source::PidFile })
        }
        Target::Remote => {
            let pico = creds.pico().map(|r| (r, "pico"));
            let gateway = creds.gateway().map(|r| (r, "gateway"));
            let chosen = match endpoint {
                Endpoint::Chat => pico.or(gateway),
                Endpoint::Admin => gateway,
            };
            let (r, kind) = chosen.ok_or(match endpoint {
                Endpoint::Chat => CredentialError::Missing {
                    endpoint: "/pico/ws",
                    hint: "set PICOCLAW_CHANNELS_PICO_TOKEN or PICOCLAW_GATEWAY_TOKEN (or the same keys in .security.yml)",
                },
                Endpoint::Admin => CredentialError::Missing {
                    endpoint: "admin endpoints",
                    hint: "set PICOCLAW_GATEWAY_TOKEN (or gateway.token in .security.yml)",
                },
            })?;
            Ok(Presented { secret: r.secret.clone(), kind, source: r.source.clone() })
        }
    }
}
