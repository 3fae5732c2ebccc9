//! The stable codes of the doctor's findings.

use std::fmt;

use serde::{Serialize, Serializer};

/// What a finding is about. Its string form ([`Code::as_str`]) is stable: scripts match
/// on it in `--json` output, and `docs/doctor.md` documents each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// A file, key or variable does not load.
    ConfigInvalid,
    /// Unknown keys and similar.
    ConfigWarning,
    /// A secret file other users can read.
    InsecurePermissions,
    /// A home or config directory other users can write.
    InsecureHomePermissions,
    /// A home or record that belongs to another user.
    ForeignOwner,
    /// A gateway is starting (holds the lock, no record yet).
    GatewayStarting,
    /// `.picoclaw.pid` does not describe the lock holder.
    GatewayUnverified,
    /// `.picoclaw.pid` left by a crash.
    StalePidFile,
    /// No gateway runs.
    GatewayNotRunning,
    /// The gateway holds the lock but does not answer.
    GatewayUnreachable,
    /// A picoclaw token in a systemd unit or launchd plist.
    TokenEmbeddedInUnit,
    /// Our unit differs from what this picoclaw renders, or starts a missing binary.
    UnitOutdated,
    /// A secret in config.json.
    SecretInConfigJson,
    /// config.json or .security.yml in upstream PicoClaw's version-3 shape.
    UpstreamConfigShape,
    /// A token or user:password in `channels.pico_client.url`.
    SecretInUrl,
    /// An environment variable overrides a different value in a file.
    EnvShadowsFile,
    /// A secret file (or `.security.yml`) is a single file mounted on its own — a
    /// Kubernetes `subPath` mount — which never sees an update of its source.
    SecretMountSubpath,
    /// `.security.yml` cannot be written (read-only mount, a Secret volume's `..data`
    /// symlink), though the gateway writes named tokens and rotations there.
    SecurityFileReadOnly,
    /// Two gateways write the same home (and its `sessions.db`): a volume shared by
    /// several machines, where the `.picoclaw.pid` lock does not reach.
    SharedHome,
    /// `channels.pico.allow_token_query` is on.
    QueryTokenEnabled,
    /// A public bind with an empty `allow_origins`.
    PublicBindWithoutOrigins,
    /// A placeholder or short token.
    WeakToken,
    /// The pico token is the gateway token.
    PicoTokenEqualsGatewayToken,
    /// The running gateway is not on loopback (or 0.0.0.0): not checked.
    GatewayCheckSkipped,
    /// The running gateway's version differs from this binary's.
    GatewayVersionMismatch,
    /// `/ready` does not answer 200.
    GatewayNotReady,
    /// A configured token is rejected by (or different in) the running gateway.
    ClientGatewayTokenMismatch,
    /// A configured token could not be checked against the running gateway.
    ClientGatewayTokenUnverified,
}

impl Code {
    /// Every code, in documentation order.
    pub const ALL: [Code; 28] = [
        Code::ConfigInvalid,
        Code::ConfigWarning,
        Code::UpstreamConfigShape,
        Code::SecretInConfigJson,
        Code::SecretInUrl,
        Code::EnvShadowsFile,
        Code::SecretMountSubpath,
        Code::SecurityFileReadOnly,
        Code::InsecurePermissions,
        Code::SharedHome,
        Code::StalePidFile,
        Code::GatewayUnverified,
        Code::InsecureHomePermissions,
        Code::ForeignOwner,
        Code::TokenEmbeddedInUnit,
        Code::UnitOutdated,
        Code::GatewayUnreachable,
        Code::GatewayVersionMismatch,
        Code::GatewayNotReady,
        Code::ClientGatewayTokenMismatch,
        Code::ClientGatewayTokenUnverified,
        Code::QueryTokenEnabled,
        Code::PublicBindWithoutOrigins,
        Code::WeakToken,
        Code::PicoTokenEqualsGatewayToken,
        Code::GatewayNotRunning,
        Code::GatewayStarting,
        Code::GatewayCheckSkipped,
    ];

    /// The stable kebab-case form, e.g. `token-embedded-in-unit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ConfigInvalid => "config-invalid",
            Code::ConfigWarning => "config-warning",
            Code::InsecurePermissions => "insecure-permissions",
            Code::InsecureHomePermissions => "insecure-home-permissions",
            Code::ForeignOwner => "foreign-owner",
            Code::GatewayStarting => "gateway-starting",
            Code::GatewayUnverified => "gateway-unverified",
            Code::StalePidFile => "stale-pid-file",
            Code::GatewayNotRunning => "gateway-not-running",
            Code::GatewayUnreachable => "gateway-unreachable",
            Code::TokenEmbeddedInUnit => "token-embedded-in-unit",
            Code::UnitOutdated => "unit-outdated",
            Code::SecretInConfigJson => "secret-in-config-json",
            Code::UpstreamConfigShape => "upstream-config-shape",
            Code::SecretInUrl => "secret-in-url",
            Code::EnvShadowsFile => "env-shadows-file",
            Code::SecretMountSubpath => "secret-mount-subpath",
            Code::SecurityFileReadOnly => "security-file-read-only",
            Code::SharedHome => "shared-home",
            Code::QueryTokenEnabled => "query-token-enabled",
            Code::PublicBindWithoutOrigins => "public-bind-without-origins",
            Code::WeakToken => "weak-token",
            Code::PicoTokenEqualsGatewayToken => "pico-token-equals-gateway-token",
            Code::GatewayCheckSkipped => "gateway-check-skipped",
            Code::GatewayVersionMismatch => "gateway-version-mismatch",
            Code::GatewayNotReady => "gateway-not-ready",
            Code::ClientGatewayTokenMismatch => "client-gateway-token-mismatch",
            Code::ClientGatewayTokenUnverified => "client-gateway-token-unverified",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn strings_are_distinct_kebab_case_and_serialize_as_is() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{s}");
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(s));
            assert_eq!(code.to_string(), s);
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../../docs/doctor.md");
        for code in Code::ALL {
            assert!(doc.contains(&format!("`{code}`")), "{code} missing from docs/doctor.md");
        }
    }
}
