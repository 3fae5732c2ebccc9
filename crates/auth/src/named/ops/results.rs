//! The typed results of the token operations. `picoclaw token … --json` and the admin API
//! serialize these same values, so one operation has one JSON shape wherever it ran. Only
//! [`Created`] and [`Rotated`] hold a secret — the new token, shown once — and their
//! `Debug` never prints it.

use std::fmt;

use picoclaw_config::Source;
use picoclaw_credentials::Secret;
use serde::{Serialize, Serializer};

use crate::named::TokenSummary;
use crate::verify::{CredentialKind, Scope};

/// A new token value, shown once: serialized as the value itself (the only serialization
/// of a secret in picoclaw), never printed by `Debug`.
pub struct ShownOnce(Secret);

impl ShownOnce {
    pub(crate) fn new(secret: Secret) -> ShownOnce {
        ShownOnce(secret)
    }
}

impl Serialize for ShownOnce {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Shown once: this is the answer that carries the new token to its owner.
        s.serialize_str(self.0.expose())
    }
}

impl fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShownOnce(..)")
    }
}

/// A created named token: its summary (as `token list` shows it) and the token, once.
#[derive(Debug, Serialize)]
pub struct Created {
    /// The new record.
    #[serde(flatten)]
    pub summary: TokenSummary,
    #[serde(rename = "token")]
    secret: ShownOnce,
}

impl Created {
    pub(crate) fn new(summary: TokenSummary, secret: Secret) -> Created {
        Created { summary, secret: ShownOnce::new(secret) }
    }

    /// The new token, to be shown once.
    pub fn secret(&self) -> &Secret {
        &self.secret.0
    }
}

/// A revoked named token: its summary after the change (`state: revoked`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revoked {
    /// The record after the change.
    #[serde(flatten)]
    pub summary: TokenSummary,
}

/// A rotated credential — a named token, `pico` or `gateway` — in one shape: what was
/// rotated, the new value's fingerprint, until when the old value works, the record
/// (`record` for a named token, `credential` for `pico`/`gateway`, the other one null)
/// and the new value, once.
#[derive(Debug, Serialize)]
pub struct Rotated {
    /// `named`, `pico` or `gateway`.
    pub kind: CredentialKind,
    /// The token id, or `pico` / `gateway`.
    pub id: String,
    /// The token name, or `pico` / `gateway`.
    pub name: String,
    /// Its scope (unchanged by the rotation).
    pub scope: Scope,
    /// Fingerprint of the new value.
    pub fingerprint: String,
    /// RFC 3339: until when the old value keeps working; `null` when it stopped at once.
    pub grace_until: Option<String>,
    /// A named token's record after the rotation.
    pub record: Option<TokenSummary>,
    /// `pico` / `gateway` after the rotation.
    pub credential: Option<CredentialSummary>,
    /// `pico` / `gateway`: where the old value was set (`config.json:…` means it is still
    /// there, shadowed by the new value in `.security.yml`, and should be removed).
    pub old_source: Option<String>,
    #[serde(skip)]
    old_in_config_file: bool,
    #[serde(rename = "token")]
    secret: ShownOnce,
}

impl Rotated {
    pub(crate) fn named(summary: TokenSummary, grace_until: Option<String>, secret: Secret) -> Rotated {
        Rotated {
            kind: CredentialKind::Named,
            id: summary.id.clone(),
            name: summary.name.clone(),
            scope: summary.scope,
            fingerprint: summary.fingerprint.clone(),
            grace_until,
            record: Some(summary),
            credential: None,
            old_source: None,
            old_in_config_file: false,
            secret: ShownOnce::new(secret),
        }
    }

    pub(crate) fn fixed(
        credential: CredentialSummary,
        kind: CredentialKind,
        old: &Source,
        secret: Secret,
    ) -> Rotated {
        Rotated {
            kind,
            id: credential.id.to_owned(),
            name: credential.id.to_owned(),
            scope: credential.scope,
            fingerprint: secret.fingerprint().to_string(),
            grace_until: credential.grace_until.clone(),
            record: None,
            credential: Some(credential),
            old_source: Some(old.to_string()),
            old_in_config_file: matches!(old, Source::ConfigFile(_)),
            secret: ShownOnce::new(secret),
        }
    }

    /// The new value, to be shown once.
    pub fn secret(&self) -> &Secret {
        &self.secret.0
    }

    /// True when the old value of `pico`/`gateway` is still written in `config.json`,
    /// where the new value in `.security.yml` now shadows it.
    pub fn old_value_in_config_file(&self) -> bool {
        self.old_in_config_file
    }
}

/// `pico` or `gateway` as `token list` shows it: where it is set and its fingerprint,
/// never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialSummary {
    /// `pico` or `gateway`.
    pub id: &'static str,
    /// Its key, `channels.pico.token` or `gateway.token`.
    pub key: &'static str,
    /// Its scope.
    pub scope: Scope,
    /// Whether it is configured at all.
    pub set: bool,
    /// Where its value comes from (`env:…`, `.security.yml:…`, `config.json:…`).
    pub source: Option<String>,
    /// First 8 hex of the SHA-256 of its value.
    pub fingerprint: Option<String>,
    /// RFC 3339: until when an old value is still accepted after a rotation.
    pub grace_until: Option<String>,
}

/// Every named token and the two fixed credentials, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// The named tokens, in file order (revoked ones too).
    pub tokens: Vec<TokenSummary>,
    /// `pico` and `gateway`.
    pub credentials: Vec<CredentialSummary>,
}
