//! `channels.pico.allow_origins` patterns: what a browser's `Origin` header must match.
//!
//! Grammar (one entry; matching ignores ASCII case and a trailing `/`):
//! - `*` — any origin (the same as an empty list);
//! - `scheme://host[:port]` — exactly that origin, e.g. `https://chat.example.com`,
//!   `http://localhost:3000`, `chrome-extension://abcdefghijklmnopabcdefghijklmnop`;
//! - `scheme://*` — any origin of that scheme, e.g. `moz-extension://*` (Firefox gives each
//!   installation of an extension its own random UUID, so the id cannot be listed);
//! - `scheme://*.domain[:port]` — any subdomain of `domain` (one label or more, not `domain`
//!   itself) with exactly that port (none = the scheme's default), e.g. `https://*.example.com`;
//! - `null` — the opaque origin `null` (sandboxed frames, `file://` pages); never matched by
//!   a wildcard.
//!
//! Anything else — a path, a userinfo, a `*` elsewhere, a missing scheme — is refused when
//! the configuration loads, naming the entry and this grammar.

/// What a valid entry looks like (for error messages).
pub const EXPECTED: &str = "*, null, scheme://host[:port], scheme://* or scheme://*.domain[:port] (no path)";

/// Checks one entry; `Err` says what is wrong.
pub fn check_pattern(pattern: &str) -> Result<(), &'static str> {
    let p = pattern.trim().trim_end_matches('/');
    if p == "*" || p.eq_ignore_ascii_case("null") {
        return Ok(());
    }
    let Some((scheme, rest)) = p.split_once("://") else { return Err("it has no scheme:// part") };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err("its scheme is not a URL scheme");
    }
    if rest.is_empty() {
        return Err("it has no host");
    }
    if rest.contains(['/', '?', '#', '@']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an origin has no path, query, fragment, userinfo or spaces");
    }
    if rest == "*" {
        return Ok(());
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    if host.contains('*') {
        return Err("'*' may only be the whole host (scheme://*) or its first label (scheme://*.domain)");
    }
    if host.is_empty() || host.starts_with('.') || host.starts_with(':') {
        return Err("it has no host");
    }
    Ok(())
}

/// Whether `origin` (an `Origin` header value) matches any of `patterns`.
pub fn origin_allowed(patterns: &[String], origin: &str) -> bool {
    patterns.iter().any(|p| matches(p, origin))
}

fn matches(pattern: &str, origin: &str) -> bool {
    let p = pattern.trim().trim_end_matches('/').to_ascii_lowercase();
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if p == "*" {
        return true;
    }
    if p == "null" || o == "null" {
        return p == o;
    }
    let (Some((ps, prest)), Some((os, orest))) = (p.split_once("://"), o.split_once("://")) else {
        return false;
    };
    if ps != os || orest.is_empty() {
        return false;
    }
    if prest == "*" {
        return true;
    }
    match prest.strip_prefix("*.") {
        // `*.example.com[:port]`: the origin is `<labels>.example.com[:port]`, same port.
        Some(suffix) => {
            orest.len() > suffix.len() + 1
                && orest.ends_with(suffix)
                && orest.as_bytes()[orest.len() - suffix.len() - 1] == b'.'
                && !orest[..orest.len() - suffix.len() - 1].contains([':', '/'])
        }
        None => prest == orest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(pattern: &str, origin: &str) -> bool {
        assert_eq!(check_pattern(pattern), Ok(()), "{pattern}");
        origin_allowed(&[pattern.to_owned()], origin)
    }

    #[test]
    fn the_grammar_matches_what_it_says() {
        assert!(allowed("https://chat.example.com/", "https://Chat.Example.com"));
        assert!(!allowed("https://chat.example.com", "http://chat.example.com"));
        assert!(!allowed("https://chat.example.com", "https://chat.example.com:8443"));
        assert!(allowed("chrome-extension://abcdefghijklmnop", "chrome-extension://abcdefghijklmnop"));
        assert!(!allowed("chrome-extension://abcdefghijklmnop", "chrome-extension://ponmlkjihgfedcba"));
        assert!(allowed("moz-extension://*", "moz-extension://0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"));
        assert!(!allowed("moz-extension://*", "https://evil.example"));
        assert!(!allowed("moz-extension://*", "null"));
        assert!(allowed("https://*.example.com", "https://a.b.example.com"));
        assert!(!allowed("https://*.example.com", "https://example.com"));
        assert!(!allowed("https://*.example.com", "https://evilexample.com"));
        assert!(!allowed("https://*.example.com", "https://a.example.com:8443"));
        assert!(!allowed("https://*.example.com", "https://example.com.evil.net"));
        assert!(allowed("https://*.example.com:8443", "https://a.example.com:8443"));
        assert!(allowed("null", "null"));
        assert!(!allowed("https://*.example.com", "null"));
        assert!(allowed("*", "null"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "example.com",
            "https://a.com/path",
            "https://*example.com",
            "https://a.*.com",
            "https://",
            "1x://a",
            "https://u@a.com",
        ] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
    }
}
