//! Who is asking: the client address (through trusted proxies only), whether the request
//! arrived over HTTPS, and the `allowed_cidrs` network policy.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use picoclaw_config::Cidrs;

/// The network policy from `launcher.allowed_cidrs` and `launcher.trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// Allowed client networks; empty = any. Loopback is always allowed (the local user).
    pub allowed: Cidrs,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` / `X-Forwarded-Host` are believed.
    pub trusted_proxies: Cidrs,
    /// The launcher listens on loopback only: a request must then name a loopback host
    /// (DNS rebinding: a page on `attacker.example` that resolves to 127.0.0.1 reaches the
    /// listener with `Host: attacker.example`).
    pub loopback_only: bool,
}

/// What the launcher knows about the client of one request.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The client address (the peer, or the first untrusted hop of `X-Forwarded-For`).
    pub ip: IpAddr,
    /// The request reached a trusted proxy over HTTPS.
    pub secure: bool,
    /// The peer is a trusted proxy (its forwarding headers count).
    pub via_proxy: bool,
}

impl NetPolicy {
    /// Identifies the client of a request from `peer`: the right-most untrusted hop of
    /// `X-Forwarded-For` from a trusted proxy, parsed strictly; an unparseable chain is
    /// [`picoclaw_auth::forwarded::UNPARSEABLE_CHAIN`], never the proxy's address
    /// ([`picoclaw_auth::client_addr`]).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> Client {
        let found = picoclaw_auth::client_addr(peer.ip(), headers, &self.trusted_proxies);
        if !found.via_proxy {
            return Client { ip: found.ip, secure: false, via_proxy: false };
        }
        let secure = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
        Client { ip: found.ip, secure, via_proxy: true }
    }

    /// Whether `client` may use the launcher at all.
    pub fn allows(&self, client: &Client) -> bool {
        self.allowed.is_empty() || client.ip.is_loopback() || self.allowed.contains(client.ip)
    }
}

impl NetPolicy {
    /// Whether the request names a host this launcher answers for: any host when it listens
    /// beyond loopback or the request came through a trusted proxy that says which host
    /// it was for (`X-Forwarded-Host`); otherwise `localhost`, a 127/8 address or `[::1]`.
    pub fn host_allowed(&self, headers: &HeaderMap, client: &Client) -> bool {
        if !self.loopback_only || (client.via_proxy && headers.contains_key("x-forwarded-host")) {
            return true;
        }
        let Some(authority) = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()) else {
            // HTTP/1.1 requires Host; a request without one names nothing we could misread.
            return true;
        };
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') || authority.starts_with('[') => {
                if port.bytes().all(|b| b.is_ascii_digit()) { h } else { authority }
            }
            _ => authority,
        };
        picoclaw_config::Host::parse(host).is_ok_and(|h| h.is_loopback())
    }
}

/// The authority (`host[:port]`) the client addressed: `X-Forwarded-Host` from a trusted
/// proxy, else `Host`.
pub fn authority(headers: &HeaderMap, client: &Client) -> Option<String> {
    let forwarded = client
        .via_proxy
        .then(|| headers.get("x-forwarded-host").and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    forwarded
        .or_else(|| headers.get(http::header::HOST).and_then(|v| v.to_str().ok()))
        .map(|s| s.to_ascii_lowercase())
}

/// Same-origin check: the `Origin` header must name the authority the client addressed.
/// A missing `Origin` is not same-origin.
pub fn same_origin(headers: &HeaderMap, client: &Client) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    let origin_authority = rest.trim_end_matches('/').to_ascii_lowercase();
    authority(headers, client).is_some_and(|a| a == origin_authority)
}

/// Why a request is refused as cross-site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSite {
    /// An `Origin` header that is not the dashboard's own origin (or more than one).
    Origin,
    /// A `Sec-Fetch-Site` header other than `same-origin` or `none`.
    FetchSite,
}

impl CrossSite {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            CrossSite::Origin => {
                "cross-site request refused: the Origin header must be this dashboard's own address"
            }
            CrossSite::FetchSite => {
                "cross-site request refused: Sec-Fetch-Site must be `same-origin` or `none` \
                 (another site, or another port of this host, may not change the dashboard)"
            }
        }
    }
}

/// The cross-site check for state-changing requests: an `Origin` header, when present,
/// must name the dashboard's own origin ([`same_origin`]); a `Sec-Fetch-Site` header, when
/// present, must be `same-origin` or `none`. `same-site` is not enough: a page on another
/// port of `localhost` is the same site. A request with neither header (curl, scripts) is
/// not a browser's cross-site request and passes.
pub fn cross_site(headers: &HeaderMap, client: &Client) -> Option<CrossSite> {
    let origins = headers.get_all(http::header::ORIGIN).iter().count();
    if origins > 1 || (origins == 1 && !same_origin(headers, client)) {
        return Some(CrossSite::Origin);
    }
    let fetch_site_ok = |v: &http::HeaderValue| {
        v.to_str().is_ok_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("same-origin") || v.eq_ignore_ascii_case("none")
        })
    };
    if !headers.get_all("sec-fetch-site").iter().all(fetch_site_ok) {
        return Some(CrossSite::FetchSite);
    }
    None
}

/// Whether a GET comes from another page without being a top-level navigation: an
/// `<img>`, `<iframe>`, `fetch` or prefetch made by another site (or another port of this
/// host). Such a request is never a user following a login link, so a `?token=` on it is
/// refused untried and spends nothing of the login limit. A top-level navigation from
/// another site (a login link in a chat app or a mail) stays a login attempt.
pub fn foreign_subresource(headers: &HeaderMap, client: &Client) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let foreign_site = value("sec-fetch-site")
        .is_some_and(|s| !s.eq_ignore_ascii_case("same-origin") && !s.eq_ignore_ascii_case("none"));
    let navigation = value("sec-fetch-mode").is_none_or(|m| m.eq_ignore_ascii_case("navigate"))
        && value("sec-fetch-dest").is_none_or(|d| d.eq_ignore_ascii_case("document"));
    // A navigation sends no `Origin` on GET; a cross-origin fetch does (also in browsers
    // that send no `Sec-Fetch-*`).
    let foreign_origin = headers.contains_key(http::header::ORIGIN) && !same_origin(headers, client);
    foreign_origin || (foreign_site && !navigation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        let open = NetPolicy::default();
        let c = open.client("10.0.0.1:5000".parse().unwrap(), &headers);
        assert_eq!((c.ip, c.secure), (ip("10.0.0.1"), false));
        let proxied =
            NetPolicy { trusted_proxies: Cidrs::parse(["10.0.0.0/8"]).unwrap(), ..Default::default() };
        let c = proxied.client("10.0.0.1:5000".parse().unwrap(), &headers);
        assert_eq!((c.ip, c.secure), (ip("203.0.113.9"), true));
    }

    #[test]
    fn origin_must_match_host() {
        let client = Client { ip: ip("127.0.0.1"), secure: false, via_proxy: false };
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:18800".parse().unwrap());
        assert!(!same_origin(&h, &client));
        h.insert("origin", "http://127.0.0.1:18800".parse().unwrap());
        assert!(same_origin(&h, &client));
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h, &client));
    }

    #[test]
    fn cross_site_rules() {
        let client = Client { ip: ip("127.0.0.1"), secure: false, via_proxy: false };
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            h.insert("host", "127.0.0.1:18800".parse().unwrap());
            for (k, v) in pairs {
                h.append(*k, v.parse().unwrap());
            }
            h
        };
        let own = "http://127.0.0.1:18800";
        for pass in [
            &[][..],
            &[("origin", own)],
            &[("sec-fetch-site", "same-origin")],
            &[("sec-fetch-site", "none")],
            &[("origin", own), ("sec-fetch-site", "same-origin")],
        ] {
            assert_eq!(cross_site(&headers(pass), &client), None, "{pass:?}");
        }
        for (refuse, why) in [
            (&[("origin", "http://evil.example")][..], CrossSite::Origin),
            (&[("origin", "null")], CrossSite::Origin),
            (&[("origin", "http://127.0.0.1:1")], CrossSite::Origin),
            (&[("origin", own), ("origin", own)], CrossSite::Origin),
            (&[("sec-fetch-site", "same-site")], CrossSite::FetchSite),
            (&[("sec-fetch-site", "cross-site")], CrossSite::FetchSite),
            (&[("origin", own), ("sec-fetch-site", "same-site")], CrossSite::FetchSite),
            (&[("sec-fetch-site", "none"), ("sec-fetch-site", "cross-site")], CrossSite::FetchSite),
        ] {
            assert_eq!(cross_site(&headers(refuse), &client), Some(why), "{refuse:?}");
        }
        let link = [
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ];
        for navigation in [&[][..], &[("sec-fetch-site", "none")], &link, &[("origin", own)]] {
            assert!(!foreign_subresource(&headers(navigation), &client), "{navigation:?}");
        }
        for subresource in [
            &[("sec-fetch-site", "cross-site"), ("sec-fetch-dest", "image")][..],
            &[("sec-fetch-site", "same-site"), ("sec-fetch-mode", "no-cors")],
            &[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")],
            &[("origin", "http://evil.example")],
        ] {
            assert!(foreign_subresource(&headers(subresource), &client), "{subresource:?}");
        }
    }
}
