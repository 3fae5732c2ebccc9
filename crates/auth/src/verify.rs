//! Constant-time verification of presented tokens.

use std::fmt;
use std::sync::Arc;

use picoclaw_credentials::strength::weakness;
use picoclaw_credentials::{Credentials, Fingerprint, Secret};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::named::{FixedCredential, StoredCredentials};

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Reading history only — every session's (`GET /api/sessions`,
    /// `GET /api/sessions/{id}/messages`, `/auth/whoami`): cannot send, delete or open a
    /// socket.
    Read,
    /// The Pico channel (`/pico/ws`, `/pico/media`, `/auth/ticket`, `/auth/whoami`).
    Chat,
    /// Everything, including `/reload` and the token API.
    Admin,
}

impl Scope {
    /// True when this scope includes `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Chat => "chat",
            Scope::Admin => "admin",
        })
    }
}

/// The kind of credential a principal authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `gateway.token` / `PICOCLAW_GATEWAY_TOKEN`.
    Gateway,
    /// The runtime token in `.picoclaw.pid`.
    Runtime,
    /// `channels.pico.token`.
    Pico,
    /// A named token created with `picoclaw token create`.
    Named,
    /// A single-use WebSocket ticket.
    Ticket,
}

/// Who is calling: never the secret, only names. (De)serialized only to carry a ticket's
/// parent between replicas (`picoclaw_store::PgTickets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Principal {
    /// Kind of credential.
    pub kind: CredentialKind,
    /// Stable id: `gateway`, `runtime`, `pico`, or a named token's public id.
    pub id: String,
    /// Human name (named tokens), else the kind.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Where the credential is configured (`env:...`, `.security.yml:...`, ...).
    pub source: String,
    /// First 8 hex of SHA-256 of the credential: with `kind` and `id`, it names the exact
    /// secret value a derived credential (ticket, socket) depends on.
    pub fingerprint: String,
    /// Whether the secret could be guessed by brute force (a short or patterned configured
    /// token, or an old rotated value whose strength is unknown). The failure lockout
    /// never refuses a credential that cannot be guessed: the runtime token, named tokens,
    /// tickets and any configured token that looks like 128 random bits or more.
    #[serde(skip)]
    pub guessable: bool,
}

/// Why a request was not authenticated. Each variant maps to one status and code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential was presented.
    #[error(
        "missing credential: send Authorization: Bearer <token> or Sec-WebSocket-Protocol: token.<token>"
    )]
    Missing,
    /// The credential was presented in a malformed way.
    #[error("malformed credential: {0}")]
    Malformed(&'static str),
    /// `?token=` was used but `channels.pico.allow_token_query` is false.
    #[error(
        "?token= is disabled (channels.pico.allow_token_query is false); use Authorization: Bearer or Sec-WebSocket-Protocol: token.<token>"
    )]
    QueryDisabled,
    /// No configured credential matches.
    #[error("invalid credential")]
    Invalid,
    /// A named token that expired, was revoked or is past its rotation grace.
    #[error("credential {id} is {state}")]
    Expired {
        /// Public id.
        id: String,
        /// Why it no longer opens anything.
        state: Lapse,
    },
    /// Valid, but not allowed here.
    #[error("credential {id} has scope {has}, this endpoint needs {needed}")]
    Scope {
        /// Public id.
        id: String,
        /// Its scope.
        has: Scope,
        /// Required scope.
        needed: Scope,
    },
    /// A named token this gateway cannot check right now: it shares named tokens with other
    /// replicas (`storage.url`) and has lost track of them (the database is unreachable or
    /// a change could not be read), so a revocation made elsewhere may not have reached it.
    #[error(
        "credential {id} cannot be checked right now: this replica has lost track of the replicas' shared named tokens; retry shortly or through another replica"
    )]
    Unverifiable {
        /// Public id.
        id: String,
    },
    /// Too many failures from this client (or globally).
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
}

impl AuthError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Malformed(_) | AuthError::QueryDisabled | AuthError::Invalid => {
                401
            }
            AuthError::Expired { .. } => 401,
            AuthError::Scope { .. } => 403,
            AuthError::RateLimited { .. } => 429,
            AuthError::Unverifiable { .. } => 503,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_credential",
            AuthError::Malformed(_) => "malformed_credential",
            AuthError::QueryDisabled => "query_token_disabled",
            AuthError::Invalid => "invalid_credential",
            AuthError::Expired { .. } => "expired_credential",
            AuthError::Scope { .. } => "insufficient_scope",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::Unverifiable { .. } => "shared_tokens_unavailable",
        }
    }

    /// True for failures that count towards the brute-force limiter (a wrong secret).
    /// Missing credentials and stale-but-real credentials do not.
    pub fn counts_as_failure(&self) -> bool {
        matches!(self, AuthError::Invalid | AuthError::Malformed(_))
    }
}

/// Why a real credential is no longer accepted. Shown as `expired`, `revoked` or
/// `rotated` (in error messages; the wire code stays `expired_credential`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lapse {
    /// Past its `expires`, or a ticket past its 30 s.
    Expired,
    /// Revoked (or a ticket whose parent was).
    Revoked,
    /// Replaced by a rotation and past its grace period.
    Rotated,
}

impl Lapse {
    /// `expired`, `revoked` or `rotated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lapse::Expired => "expired",
            Lapse::Revoked => "revoked",
            Lapse::Rotated => "rotated",
        }
    }
}

impl std::fmt::Display for Lapse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lookup of named tokens (implemented by the token stores).
pub trait NamedTokens: Send + Sync {
    /// `None` when `presented` is not in the named-token format (the verifier then tries
    /// the fixed credentials); otherwise the verdict.
    fn verify(&self, presented: &str) -> Option<Result<Principal, AuthError>>;
}

struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// Whether the named tokens a verifier holds may be trusted to be current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedState {
    /// As last read: a token revoked anywhere has been seen here.
    Current,
    /// Shared with other replicas and possibly out of date (the database was lost, or a
    /// change could not be read): every named token — and whatever derives from one — is
    /// refused with [`AuthError::Unverifiable`] until the tokens are read again. The fixed
    /// credentials, which are this replica's own, are unaffected.
    Suspended,
}

/// The set of credentials a gateway accepts, with their principals.
#[derive(Clone)]
pub struct Verifier {
    fixed: Arc<Vec<Entry>>,
    stored: Option<Arc<StoredCredentials>>,
    named_state: NamedState,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("fixed", &self.fixed.len()).finish_non_exhaustive()
    }
}

fn entry(secret: &Secret, kind: CredentialKind, id: &str, scope: Scope, source: String) -> Entry {
    let fingerprint: Fingerprint = secret.fingerprint();
    Entry {
        digest: secret.digest(),
        principal: Principal {
            kind,
            id: id.to_owned(),
            name: id.to_owned(),
            scope,
            source,
            fingerprint: fingerprint.to_string(),
            guessable: kind != CredentialKind::Runtime && weakness(secret).is_some(),
        },
    }
}

impl Verifier {
    /// The gateway's accepted set: the gateway token (admin), the runtime token (admin)
    /// and, when the Pico channel is enabled, the pico token (chat).
    pub fn new(creds: &Credentials, runtime: &Secret, pico_enabled: bool) -> Verifier {
        let mut fixed = Vec::new();
        if let Some(g) = creds.gateway() {
            fixed.push(entry(
                &g.secret,
                CredentialKind::Gateway,
                "gateway",
                Scope::Admin,
                g.source.to_string(),
            ));
        }
        fixed.push(entry(
            runtime,
            CredentialKind::Runtime,
            "runtime",
            Scope::Admin,
            ".picoclaw.pid".to_owned(),
        ));
        if pico_enabled && let Some(p) = creds.pico() {
            fixed.push(entry(&p.secret, CredentialKind::Pico, "pico", Scope::Chat, p.source.to_string()));
        }
        Verifier { fixed: Arc::new(fixed), stored: None, named_state: NamedState::Current }
    }

    /// Adds the named tokens and the rotation grace of `.security.yml`.
    pub fn with_named(mut self, stored: Arc<StoredCredentials>) -> Verifier {
        self.stored = Some(stored);
        self
    }

    /// This verifier with its named tokens in `state` (see [`NamedState::Suspended`]).
    #[must_use]
    pub fn with_named_state(mut self, state: NamedState) -> Verifier {
        self.named_state = state;
        self
    }

    /// Whether the named tokens are trusted to be current.
    pub fn named_state(&self) -> NamedState {
        self.named_state
    }

    /// The named tokens and grace digests, when loaded.
    pub fn stored(&self) -> Option<&StoredCredentials> {
        self.stored.as_deref()
    }

    /// The fixed principals (for the startup log and `auth explain`).
    pub fn principals(&self) -> impl Iterator<Item = &Principal> {
        self.fixed.iter().map(|e| &e.principal)
    }

    /// Verifies `presented` and checks it has `needed` scope.
    pub fn verify(&self, presented: &str, needed: Scope) -> Result<Principal, AuthError> {
        let principal = self.identify(presented)?;
        if !principal.scope.allows(needed) {
            return Err(AuthError::Scope { id: principal.id, has: principal.scope, needed });
        }
        Ok(principal)
    }

    /// Finds the principal for `presented` without a scope check: a named token (by its
    /// id, O(1)), then the fixed credentials, then old values still in their rotation
    /// grace. A configured gateway or pico token may itself look like a named token
    /// (`pcl_…`): when no named token matches it, the fixed credentials still decide.
    pub fn identify(&self, presented: &str) -> Result<Principal, AuthError> {
        let mut named_verdict = None;
        if self.stored.is_some() && self.named_state == NamedState::Suspended {
            // The records may be out of date (revoked, or created, elsewhere): a token of
            // the named format is not looked up at all — nothing is accepted, counted as a
            // guess or recorded as used — until they are read again. A fixed credential
            // that looks like one still decides below.
            if let Ok(id) = crate::named::format::parse(presented) {
                named_verdict = Some(AuthError::Unverifiable { id: id.to_string() });
            }
        } else if let Some(stored) = &self.stored
            && let Some(verdict) = stored.named.verify(presented)
        {
            match verdict {
                // The secret matched a named token: its verdict is final.
                Ok(p) => return Ok(p),
                Err(e @ AuthError::Expired { .. }) => return Err(e),
                Err(e) => named_verdict = Some(e),
            }
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare against every entry without stopping at the first match, so timing does
        // not reveal which (or whether an earlier) credential matched.
        let mut found: Option<&Entry> = None;
        for e in self.fixed.iter() {
            let hit: Choice = e.digest.ct_eq(&digest);
            if bool::from(hit) && found.is_none() {
                found = Some(e);
            }
        }
        if let Some(e) = found {
            return Ok(e.principal.clone());
        }
        if let Some(p) = self.stored.as_ref().and_then(|s| s.grace.verify(presented)) {
            return Ok(p);
        }
        Err(named_verdict.unwrap_or(AuthError::Invalid))
    }

    /// Whether something derived from `principal` (an open socket, a ticket) may still
    /// act for it now: the exact secret it authenticated with (its kind, id and
    /// fingerprint) is still accepted — current, or an old value within its rotation grace
    /// — and, for a named token, not revoked or expired. After a revoke, a rotation past
    /// its grace or a removal from the configuration this is false, whatever path made
    /// the change.
    pub fn still_valid(&self, principal: &Principal) -> Result<(), AuthError> {
        if principal.kind == CredentialKind::Named && self.named_state == NamedState::Suspended {
            return Err(AuthError::Unverifiable { id: principal.id.clone() });
        }
        if let Some(verdict) = self.stored.as_ref().and_then(|s| s.still_valid(principal)) {
            return verdict;
        }
        let current = self
            .fixed
            .iter()
            .any(|e| e.principal.kind == principal.kind && e.principal.fingerprint == principal.fingerprint);
        let in_grace = self.stored.as_ref().is_some_and(|s| {
            FixedCredential::from_name(&principal.id)
                .is_some_and(|c| c.kind() == principal.kind && s.grace.accepts(c, &principal.fingerprint))
        });
        if current || in_grace {
            Ok(())
        } else {
            Err(AuthError::Expired { id: principal.id.clone(), state: Lapse::Revoked })
        }
    }

    /// True when `presented` is exactly the given secret (used for pinned checks).
    pub fn is(secret: &Secret, presented: &str) -> bool {
        secret.matches(presented)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};

    fn creds(env: MapEnv) -> Credentials {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let layers = Layers::load(&paths, &env, &Flags::new()).unwrap();
        let settings = Settings::resolve(&layers).unwrap();
        Credentials::resolve(&layers, &settings).unwrap()
    }

    #[test]
    fn gateway_token_is_admin_pico_token_is_chat_only() {
        let c = creds(
            MapEnv::new()
                .with("PICOCLAW_GATEWAY_TOKEN", "gw-token")
                .with("PICOCLAW_CHANNELS_PICO_TOKEN", "pico-tok"),
        );
        let v = Verifier::new(&c, &Secret::new("rt"), true);
        let g = v.verify("gw-token", Scope::Chat).unwrap();
        assert_eq!((g.kind, g.source.as_str()), (CredentialKind::Gateway, "env:PICOCLAW_GATEWAY_TOKEN"));
        assert_eq!(v.verify("gw-token", Scope::Admin).unwrap().kind, CredentialKind::Gateway);
        assert_eq!(v.verify("pico-tok", Scope::Chat).unwrap().kind, CredentialKind::Pico);
        assert!(matches!(v.verify("pico-tok", Scope::Admin), Err(AuthError::Scope { .. })));
        assert_eq!(v.verify("rt", Scope::Admin).unwrap().kind, CredentialKind::Runtime);
        assert_eq!(v.verify("nope", Scope::Chat), Err(AuthError::Invalid));
        // Never composed: the upstream "pico-" + runtime + token form is just wrong.
        assert_eq!(v.verify("pico-rtpico-tok", Scope::Chat), Err(AuthError::Invalid));
    }

    #[test]
    fn pico_token_is_not_accepted_when_channel_disabled() {
        let c = creds(MapEnv::new().with("PICOCLAW_CHANNELS_PICO_TOKEN", "pico-tok"));
        let v = Verifier::new(&c, &Secret::new("rt"), false);
        assert_eq!(v.verify("pico-tok", Scope::Chat), Err(AuthError::Invalid));
    }
}
