//! Who is asking: the client address (through trusted proxies only), whether the request
//! arrived over HTTPS, and the `allowed_cidrs` network policy.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::error::LauncherError;

/// An address or network: `10.0.0.0/8`, `192.168.1.5`, `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/prefix`; `key` names the setting in the error.
    pub fn parse(key: &'static str, value: &str) -> Result<Cidr, LauncherError> {
        let bad = || LauncherError::Cidr { key, value: value.to_owned() };
        let (addr, prefix) = match value.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (value.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Parses a list.
    pub fn parse_all(key: &'static str, values: &[String]) -> Result<Vec<Cidr>, LauncherError> {
        values.iter().filter(|v| !v.trim().is_empty()).map(|v| Cidr::parse(key, v)).collect()
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The network policy from `launcher.allowed_cidrs` and `launcher.trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// Allowed client networks; empty = any. Loopback is always allowed (the local user).
    pub allowed: Vec<Cidr>,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` / `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<Cidr>,
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
    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }

    /// Identifies the client of a request from `peer`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> Client {
        let peer_ip = canonical(peer.ip());
        if !self.trusted(peer_ip) {
            return Client { ip: peer_ip, secure: false, via_proxy: false };
        }
        // Walk X-Forwarded-For from the right, skipping our own trusted proxies: the first
        // untrusted hop is the client (entries further left are client-controlled).
        let mut ip = peer_ip;
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Ok(hop_ip) = hop.parse::<IpAddr>() else { break };
            ip = canonical(hop_ip);
            if !self.trusted(ip) {
                break;
            }
        }
        let secure = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
        Client { ip, secure, via_proxy: true }
    }

    /// Whether `client` may use the launcher at all.
    pub fn allows(&self, client: &Client) -> bool {
        self.allowed.is_empty()
            || client.ip.is_loopback()
            || self.allowed.iter().any(|c| c.contains(client.ip))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("k", "192.168.1.0/24").unwrap();
        assert!(c.contains(ip("192.168.1.77")));
        assert!(!c.contains(ip("192.168.2.1")));
        assert!(c.contains(ip("::ffff:192.168.1.5")));
        assert!(Cidr::parse("k", "0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("k", "::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("k", "10.0.0.0/33").is_err());
        assert!(Cidr::parse("k", "nonsense").is_err());
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        let open = NetPolicy::default();
        let c = open.client("10.0.0.1:5000".parse().unwrap(), &headers);
        assert_eq!((c.ip, c.secure), (ip("10.0.0.1"), false));
        let proxied = NetPolicy {
            trusted_proxies: vec![Cidr::parse("k", "10.0.0.0/8").unwrap()],
            ..Default::default()
        };
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
}
