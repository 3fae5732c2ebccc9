//! The token operations — list, create, revoke, rotate — as one service that
//! `picoclaw token` and the gateway's admin API both call, so they parse the same input
//! ([`request`]), answer with the same typed results and JSON ([`results`]), fail with the
//! same [`TokenOpError`] and write the same audit line.
//!
//! What each caller still does itself is what differs by nature: the CLI prints (the new
//! token alone on stdout) and asks the running gateway to reload; the gateway reloads in
//! process and answers HTTP. Everything else happens here:
//!
//! - a credential whose value comes from a `PICOCLAW_*` environment variable is never
//!   rewritten (refused with [`TokenOpError::EnvManaged`], recorded as `denied`);
//! - every change is a locked read-change-write of `.security.yml` ([`TokenFile`]);
//! - every change, and every refusal or failure that concerns a real credential, is
//!   recorded through the caller's [`AuditSink`] with the token in `credential_kind` /
//!   `credential_id`, the caller in `actor`, and the stable error code in `code`.

use std::sync::Arc;

use picoclaw_config::Source;
use picoclaw_credentials::Credentials;

use super::fixed::{FixedCredential, GraceDigests};
use super::time::{Clock, SystemClock, Timestamp};
use super::{TokenFile, TokenSet};
use crate::audit::{AuditEvent, AuditKind, AuditSink, Outcome};
use crate::verify::{CredentialKind, Principal};

mod error;
pub mod request;
pub mod results;

pub use error::{Field, TokenOpError};
pub use request::{CreateRequest, Expiry, Grace, RotateRequest, TokenKey, parse_name, parse_scope};
pub use results::{Created, CredentialSummary, Listed, Revoked, Rotated, ShownOnce};

/// Who asked for a token operation, as its audit line names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// `picoclaw token …` on this machine (`actor: cli`, `endpoint: cli:token <command>`).
    Cli,
    /// The admin API.
    Api {
        /// The id of the admin credential that called (`runtime`, `gateway`, a token id).
        actor: String,
        /// The caller's address.
        client: Option<String>,
    },
    /// A device redeeming a one-time pairing code (`POST /api/pair/redeem`): the token is
    /// created for the admin credential that issued the code.
    Pairing {
        /// The public id of the code (8 hex).
        code_id: String,
        /// The id of the admin credential that issued it.
        issued_by: String,
        /// The device's address.
        client: Option<String>,
    },
}

impl Requester {
    /// An admin API call by `principal` from `client`.
    pub fn api(principal: &Principal, client: Option<String>) -> Requester {
        Requester::Api { actor: principal.id.clone(), client }
    }

    fn endpoint(&self, kind: AuditKind) -> &'static str {
        match (self, kind) {
            (Requester::Cli, AuditKind::Create) => "cli:token create",
            (Requester::Cli, AuditKind::Revoke) => "cli:token revoke",
            (Requester::Cli, _) => "cli:token rotate",
            (Requester::Api { .. }, AuditKind::Create) => "/api/tokens",
            (Requester::Api { .. }, AuditKind::Revoke) => "/api/tokens/{key}",
            (Requester::Api { .. }, _) => "/api/tokens/{key}/rotate",
            (Requester::Pairing { .. }, _) => "/api/pair/redeem",
        }
    }
}

/// The credential a token operation concerns, as the audit line names it.
#[derive(Debug, Clone, Copy)]
struct Target<'a> {
    kind: CredentialKind,
    id: &'a str,
}

impl<'a> Target<'a> {
    fn of_key(key: &'a TokenKey) -> Option<Target<'a>> {
        match key {
            TokenKey::Fixed(c) => Some(Target { kind: c.kind(), id: c.id() }),
            TokenKey::Id(id) => Some(Target { kind: CredentialKind::Named, id: id.as_str() }),
            // The id behind a name is unknown until the file is read.
            TokenKey::Name(_) => None,
        }
    }
}

/// The one audit line of a token operation: `kind` by `by` on `target`, ended `ok` or
/// with the error (whose [`TokenOpError::audit_outcome`] says whether it is recorded).
/// The token's id goes in `credential_id`, never in `code`, which holds only an error's
/// stable code.
fn audit_event(
    kind: AuditKind,
    by: &Requester,
    target: Option<Target<'_>>,
    result: Result<(), &TokenOpError>,
) -> Option<AuditEvent> {
    let outcome = match result {
        Ok(()) => Outcome::Ok,
        Err(e) => e.audit_outcome()?,
    };
    let mut event = AuditEvent::new(kind, outcome).endpoint(by.endpoint(kind));
    event = match by {
        Requester::Cli => event.actor("cli"),
        Requester::Api { actor, client } => event.actor(actor).client(client.as_deref()),
        Requester::Pairing { code_id, issued_by, client } => {
            event.actor(issued_by).client(client.as_deref()).pairing(code_id)
        }
    };
    if let Some(t) = target {
        event = event.credential(t.kind, t.id);
    }
    if let Err(e) = result {
        event = event.code(e.code());
    }
    Some(event)
}

/// The token operations on one `.security.yml`, with the credentials in effect for the
/// caller (to find the old value of `pico`/`gateway` and to refuse env-managed ones).
pub struct TokenOps {
    file: TokenFile,
    current: Credentials,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TokenOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenOps").field("file", &self.file.path()).finish_non_exhaustive()
    }
}

impl TokenOps {
    /// Operations on `file` (normally `Paths::security_file()`), with the system clock.
    pub fn new(file: TokenFile, current: Credentials) -> TokenOps {
        TokenOps { file, current, clock: Arc::new(SystemClock) }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> TokenOps {
        self.clock = clock;
        self
    }

    /// The time by this service's clock (for parsing an [`Expiry`] against it).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Every named token and the `pico` / `gateway` credentials. The file is validated
    /// whole (`tokens:` and `rotated:`), as before any change.
    pub fn list(&self) -> Result<Listed, TokenOpError> {
        let now = self.now();
        let (tree, set) = self.file.read()?;
        let grace = GraceDigests::from_tree(&tree)?;
        Ok(Listed {
            tokens: summaries(&set, now),
            credentials: [FixedCredential::Pico, FixedCredential::Gateway]
                .into_iter()
                .map(|c| self.credential_summary(c, &grace, now))
                .collect(),
        })
    }

    fn credential_summary(
        &self,
        c: FixedCredential,
        grace: &GraceDigests,
        now: Timestamp,
    ) -> CredentialSummary {
        let resolved = match c {
            FixedCredential::Pico => self.current.pico(),
            FixedCredential::Gateway => self.current.gateway(),
        };
        CredentialSummary {
            id: c.id(),
            key: c.key(),
            scope: c.scope(),
            set: resolved.is_some(),
            source: resolved.map(|r| r.source.to_string()),
            fingerprint: resolved.map(|r| r.secret.fingerprint().to_string()),
            grace_until: grace_until(grace, c, now),
        }
    }

    /// Creates a named token.
    pub fn create(
        &self,
        request: &CreateRequest,
        by: &Requester,
        audit: &dyn AuditSink,
    ) -> Result<Created, TokenOpError> {
        let now = self.now();
        let result = request.expires.map(|e| e.at(now)).transpose().and_then(|expires| {
            Ok(self.file.create_named(request.name.clone(), request.scope, expires, now)?)
        });
        let target =
            result.as_ref().ok().map(|(r, _)| Target { kind: CredentialKind::Named, id: r.id.as_str() });
        record_line(audit, audit_event(AuditKind::Create, by, target, result.as_ref().map(|_| ())));
        let (record, secret) = result?;
        Ok(Created::new(record.summary(now), secret))
    }

    /// Revokes a named token at once. `pico` and `gateway` cannot be revoked, only
    /// rotated ([`TokenOpError::NotRevocable`]; [`TokenOpError::EnvManaged`] first when
    /// their value comes from the environment).
    pub fn revoke(
        &self,
        key: &TokenKey,
        by: &Requester,
        audit: &dyn AuditSink,
    ) -> Result<Revoked, TokenOpError> {
        let now = self.now();
        let result = match key {
            TokenKey::Fixed(c) => Err(match TokenFile::check_not_env(*c, &self.current) {
                Err(env_managed) => env_managed.into(),
                Ok(()) => TokenOpError::NotRevocable { credential: *c },
            }),
            TokenKey::Id(_) | TokenKey::Name(_) => {
                self.file.revoke(key.as_str(), now).map(|r| r.summary(now)).map_err(TokenOpError::from)
            }
        };
        let target = match &result {
            Ok(summary) => Some(Target { kind: CredentialKind::Named, id: summary.id.as_str() }),
            Err(_) => Target::of_key(key),
        };
        record_line(audit, audit_event(AuditKind::Revoke, by, target, result.as_ref().map(|_| ())));
        Ok(Revoked { summary: result? })
    }

    /// Gives a credential a new secret. A named token keeps its id, name, scope and
    /// expiry; `pico`/`gateway` get a new 256-bit value in `.security.yml`. The old value
    /// keeps working for the request's grace (not at all without one).
    pub fn rotate(
        &self,
        request: &RotateRequest,
        by: &Requester,
        audit: &dyn AuditSink,
    ) -> Result<Rotated, TokenOpError> {
        let now = self.now();
        let grace = request.grace;
        let result = match &request.key {
            TokenKey::Fixed(c) => self.rotate_fixed(*c, grace, now),
            key => self.file.rotate(key.as_str(), grace.duration(), now).map_err(TokenOpError::from).map(
                |(record, secret)| {
                    Rotated::named(record.summary(now), grace.until(now).map(|t| t.to_string()), secret)
                },
            ),
        };
        let target = match &result {
            Ok(r) => Some(Target { kind: r.kind, id: r.id.as_str() }),
            Err(_) => Target::of_key(&request.key),
        };
        record_line(audit, audit_event(AuditKind::Rotate, by, target, result.as_ref().map(|_| ())));
        result
    }

    fn rotate_fixed(
        &self,
        c: FixedCredential,
        grace: Grace,
        now: Timestamp,
    ) -> Result<Rotated, TokenOpError> {
        let rotation = self.file.rotate_fixed(c, &self.current, grace.duration(), now)?;
        let credential = CredentialSummary {
            id: c.id(),
            key: c.key(),
            scope: c.scope(),
            set: true,
            source: Some(Source::SecurityFile(c.key().to_owned()).to_string()),
            fingerprint: Some(rotation.secret.fingerprint().to_string()),
            grace_until: rotation.old_valid_until.map(|t| t.to_string()),
        };
        Ok(Rotated::fixed(credential, c.kind(), &rotation.old_source, rotation.secret))
    }
}

fn record_line(audit: &dyn AuditSink, event: Option<AuditEvent>) {
    if let Some(event) = event {
        audit.record(&event);
    }
}

fn summaries(set: &TokenSet, now: Timestamp) -> Vec<super::TokenSummary> {
    set.records().iter().map(|r| r.summary(now)).collect()
}

fn grace_until(grace: &GraceDigests, c: FixedCredential, now: Timestamp) -> Option<String> {
    grace
        .entries()
        .iter()
        .filter(|e| e.credential == c && e.valid_until > now)
        .map(|e| e.valid_until)
        .max()
        .map(|t| t.to_string())
}

#[cfg(test)]
mod tests;
