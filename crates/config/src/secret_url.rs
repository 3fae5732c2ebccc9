//! URLs that may carry a credential in their userinfo (`ws://user:password@host/...`).
//!
//! A password in a URL is a secret that looks like a setting: it would be shown by
//! `config show`, logged with the URL, and served by `/status`. So the settings keep the
//! URL without it — [`PicoClientUrl::dial`] to connect to, [`PicoClientUrl::shown`] to
//! display and log, with the password as `***` (`ws://user:***@host/pico`; a userinfo
//! without a password is often a token and is shown as `***` whole) — and the
//! `picoclaw-credentials` crate resolves the userinfo itself, as a secret, through
//! [`split_userinfo`].

use std::fmt;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// Splits `scheme://[userinfo@]host[:port][/path][?query][#fragment]` into the userinfo and
/// the URL without it; `None` when there is no userinfo. The authority ends at the first
/// `/`, `?` or `#` (RFC 3986), and the userinfo at its last `@`, so a password holding an
/// unencoded `@` is still taken out whole.
pub fn split_userinfo(url: &str) -> Option<(&str, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let at = authority.rfind('@')?;
    Some((&authority[..at], format!("{scheme}://{}{}", &authority[at + 1..], &rest[end..])))
}

/// The userinfo as it may be shown: `user:***`, or `***` when there is no password.
fn redacted(userinfo: &str) -> String {
    match userinfo.split_once(':') {
        Some((user, _)) if !user.is_empty() => format!("{user}:***"),
        _ => "***".to_owned(),
    }
}

/// A per-process keyed hash of the userinfo, so that two settings with different
/// passwords compare unequal (a reload then restarts the client) while the settings hold
/// nothing that could be reversed or compared across processes.
fn tag(userinfo: &str) -> u64 {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(Default::default).hash_one(userinfo)
}

/// Query parameters that carry a credential (upstream Pico servers accept `?token=`).
const SECRET_PARAMS: &[&str] = &["token", "access_token", "ticket"];

/// `url` with the values of [`SECRET_PARAMS`] replaced by `***`; `None` when it has none.
fn redact_query(url: &str) -> Option<String> {
    let (before, after) = url.split_once('?')?;
    let (query, fragment) = match after.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (after, None),
    };
    let mut hit = false;
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            let decoded: String = form_decode(key);
            if SECRET_PARAMS.contains(&decoded.as_str()) {
                hit = true;
                format!("{key}=***")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    hit.then(|| {
        let mut out = format!("{before}?{}", pairs.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    })
}

fn form_decode(key: &str) -> String {
    url::form_urlencoded::parse(format!("{key}=").as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

/// `channels.pico_client.url` without its userinfo. `Debug` and `Display` print the
/// redacted form (userinfo and credential query parameters as `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct PicoClientUrl {
    dial: String,
    shown: String,
    userinfo: Option<u64>,
    secret_query: bool,
}

/// Why a value is not a Pico server URL. Names no part of the value (it may hold a
/// password).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected a ws:// or wss:// URL with a host, e.g. ws://host:18790/pico/ws")]
pub struct UrlError;

impl PicoClientUrl {
    /// What a valid value looks like.
    pub const EXPECTED: &'static str = "a ws:// or wss:// URL with a host, e.g. ws://host:18790/pico/ws";

    /// Parses the configured value (any userinfo is taken out): a `ws://` or `wss://` URL
    /// with a host.
    pub fn parse(raw: &str) -> Result<PicoClientUrl, UrlError> {
        let raw = raw.trim();
        let url = match split_userinfo(raw) {
            Some((userinfo, dial)) => {
                // `dial` is `scheme://rest` (split_userinfo found the `://`).
                let shown = match dial.split_once("://") {
                    Some((scheme, rest)) => format!("{scheme}://{}@{rest}", redacted(userinfo)),
                    None => dial.clone(),
                };
                PicoClientUrl { dial, shown, userinfo: Some(tag(userinfo)), secret_query: false }
            }
            None => PicoClientUrl {
                dial: raw.to_owned(),
                shown: raw.to_owned(),
                userinfo: None,
                secret_query: false,
            },
        };
        let mut url = url;
        if let Some(shown) = redact_query(&url.shown) {
            url.shown = shown;
            url.secret_query = true;
        }
        let parsed = url::Url::parse(&url.dial).map_err(|_| UrlError)?;
        if !matches!(parsed.scheme(), "ws" | "wss") || parsed.host_str().is_none_or(str::is_empty) {
            return Err(UrlError);
        }
        Ok(url)
    }

    /// The URL to connect to: no userinfo (the credential goes in a header).
    pub fn dial(&self) -> &str {
        &self.dial
    }

    /// The URL to display or log: the password is `***`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the configured URL carried a userinfo (a credential).
    pub fn has_userinfo(&self) -> bool {
        self.userinfo.is_some()
    }

    /// Whether its query carries a credential (`?token=`, `access_token`, `ticket`): the
    /// URL is then dialed as configured, but shown with the value as `***`.
    pub fn has_secret_query(&self) -> bool {
        self.secret_query
    }
}

impl fmt::Debug for PicoClientUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PicoClientUrl").field(&self.shown).finish()
    }
}

impl fmt::Display for PicoClientUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_taken_out_and_redacted() {
        let u = PicoClientUrl::parse("ws://alice:s3cret@host:1/pico?x=1").unwrap();
        assert_eq!(u.dial(), "ws://host:1/pico?x=1");
        assert_eq!(u.shown(), "ws://alice:***@host:1/pico?x=1");
        assert!(u.has_userinfo());
        assert!(!format!("{u:?} {u}").contains("s3cret"));

        let token_only = PicoClientUrl::parse("wss://tok3n@host/pico").unwrap();
        assert_eq!(token_only.shown(), "wss://***@host/pico");
        assert_eq!(token_only.dial(), "wss://host/pico");

        let at_in_password = PicoClientUrl::parse("ws://bob:p@ss@[::1]:9/p").unwrap();
        assert_eq!(at_in_password.dial(), "ws://[::1]:9/p");
        assert_eq!(split_userinfo("ws://bob:p@ss@[::1]:9/p").map(|(u, _)| u), Some("bob:p@ss"));

        let plain = PicoClientUrl::parse("ws://host/pico/ws?next=a@b").unwrap();
        assert_eq!(
            (plain.dial(), plain.shown(), plain.has_userinfo()),
            ("ws://host/pico/ws?next=a@b", plain.dial(), false)
        );
    }

    #[test]
    fn a_changed_password_compares_unequal() {
        let parse = |u| PicoClientUrl::parse(u).unwrap();
        let a = parse("ws://u:one@h/p");
        assert_eq!(a, parse("ws://u:one@h/p"));
        assert_ne!(a, parse("ws://u:two@h/p"));
        assert_eq!(a.shown(), parse("ws://u:two@h/p").shown());
    }

    #[test]
    fn credential_query_parameters_are_shown_redacted() {
        let u = PicoClientUrl::parse("ws://h:1/pico/ws?x=1&token=QCANARY&%74oken=Q2#f").unwrap();
        assert_eq!(u.dial(), "ws://h:1/pico/ws?x=1&token=QCANARY&%74oken=Q2#f");
        assert_eq!(u.shown(), "ws://h:1/pico/ws?x=1&token=***&%74oken=***#f");
        assert!(u.has_secret_query() && !format!("{u:?} {u}").contains("CANARY"));
        assert!(!PicoClientUrl::parse("ws://h/p?session_id=1").unwrap().has_secret_query());
    }

    #[test]
    fn only_websocket_urls_with_a_host() {
        for bad in ["http://h/p", "ws://", "host:1/p", "", "wss://u:pw@"] {
            assert_eq!(PicoClientUrl::parse(bad), Err(UrlError), "{bad:?}");
        }
    }
}
