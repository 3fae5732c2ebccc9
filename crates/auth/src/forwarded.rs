//! The client address of a request that may have come through reverse proxies, for the
//! gateway and the launcher alike (`gateway.trusted_proxies`, `launcher.trusted_proxies`).
//!
//! A peer outside the trusted networks is the client, whatever it sends. From a trusted
//! peer, `X-Forwarded-For` is walked from the right (the hop the nearest proxy appended)
//! and the first hop that is not itself a trusted proxy is the client; hops further left
//! were written by that client and mean nothing. Every hop on the way must be a bare IP
//! address (`203.0.113.9`, `2001:db8::1`): `unknown`, `ip:port`, `[v6]`, an empty hop or
//! a header that is not ASCII make the chain unparseable, and the request is then counted
//! as [`UNPARSEABLE_CHAIN`] — one untrusted, non-loopback address shared by every such
//! request — never as the proxy's own (often loopback) address.
//!
//! **Forwarded headers from an untrusted peer are never local.** A tunnel daemon on the
//! same host (cloudflared, `tailscale serve`, ngrok) connects from 127.0.0.1 on behalf of
//! remote users and says so in [`FORWARDING_HEADERS`]. When a loopback peer that is not a
//! trusted proxy sends any of them, the request is counted as [`UNPARSEABLE_CHAIN`] too:
//! not loopback, so no loopback exemption (`launcher.allow_localhost_bypass`) applies and
//! `allowed_cidrs` cannot be bypassed through a local tunnel. List the tunnel's address in
//! `trusted_proxies` to have its `X-Forwarded-For` believed instead.

use std::net::{IpAddr, Ipv4Addr};

use http::HeaderMap;
use picoclaw_config::{Cidrs, canonical};

/// The address a request with an unparseable `X-Forwarded-For` chain from a trusted proxy
/// is counted as (`0.0.0.0`): not loopback, in no allowed network unless `0.0.0.0/0` is,
/// and one limiter client for all such requests.
pub const UNPARSEABLE_CHAIN: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Headers that say a request was relayed for someone else (standard, de-facto and the
/// ones cloudflared and Tailscale Serve add).
pub const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "cf-ray",
    "tailscale-user-login",
];

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client address (see the module documentation).
    pub ip: IpAddr,
    /// The TCP peer is a trusted proxy (its other forwarding headers may be believed).
    pub via_proxy: bool,
}

/// The client of a request from `peer` with `headers`, believing `X-Forwarded-For` only
/// from `trusted` peers.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &Cidrs) -> ClientAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        if peer.is_loopback() && FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h)) {
            // A same-host tunnel relaying a remote user: never local (module docs).
            return ClientAddr { ip: UNPARSEABLE_CHAIN, via_proxy: false };
        }
        return ClientAddr { ip: peer, via_proxy: false };
    }
    let unparseable = ClientAddr { ip: UNPARSEABLE_CHAIN, via_proxy: true };
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { return unparseable };
        hops.extend(value.split(',').map(str::trim));
    }
    // No header: the proxy's host itself is the client.
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { return unparseable };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    ClientAddr { ip: client, via_proxy: true }
}

/// One hop: a bare IPv4 or IPv6 address, nothing else (no port, brackets, zone or name).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn proxied() -> Cidrs {
        Cidrs::parse(["127.0.0.0/8", "10.0.0.0/8"]).unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let c = client_addr(ip("203.0.113.5"), &headers(&["198.51.100.1"]), &proxied());
        assert_eq!(c, ClientAddr { ip: ip("203.0.113.5"), via_proxy: false });
        let c = client_addr(ip("127.0.0.1"), &HeaderMap::new(), &Cidrs::default());
        assert_eq!(c.ip, ip("127.0.0.1"), "a local client without forwarding headers is local");
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_loopback_peer_are_never_local() {
        for (name, value) in [
            ("x-forwarded-for", "198.51.100.1"),
            ("cf-connecting-ip", "198.51.100.1"),
            ("forwarded", "for=198.51.100.1"),
            ("tailscale-user-login", "alice@example.com"),
            ("x-forwarded-for", "127.0.0.1"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            for peer in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
                let c = client_addr(ip(peer), &h, &Cidrs::default());
                assert_eq!(c, ClientAddr { ip: UNPARSEABLE_CHAIN, via_proxy: false }, "{peer} {name}");
                assert!(!c.ip.is_loopback());
            }
            // A trusted tunnel is believed instead; a remote peer is itself.
            let trusted = Cidrs::parse(["127.0.0.1/32"]).unwrap();
            if name == "x-forwarded-for" && value != "127.0.0.1" {
                assert_eq!(client_addr(ip("127.0.0.1"), &h, &trusted).ip, ip(value));
            }
            assert_eq!(client_addr(ip("203.0.113.5"), &h, &Cidrs::default()).ip, ip("203.0.113.5"));
        }
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = proxied();
        let peer = ip("127.0.0.1");
        for (chain, client) in [
            (&["198.51.100.7"][..], "198.51.100.7"),
            (&["1.1.1.1, 198.51.100.7"], "198.51.100.7"),
            (&["1.1.1.1, 198.51.100.7, 10.0.0.2"], "198.51.100.7"),
            (&["1.1.1.1", "198.51.100.7, 10.0.0.2"], "198.51.100.7"),
            (&["unknown, 198.51.100.7"], "198.51.100.7"),
            (&["2001:db8::1"], "2001:db8::1"),
            (&["::ffff:198.51.100.7"], "198.51.100.7"),
            (&["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
            (&[], "127.0.0.1"),
        ] {
            assert_eq!(client_addr(peer, &headers(chain), &t).ip, ip(client), "{chain:?}");
        }
    }

    #[test]
    fn an_unparseable_chain_is_never_the_proxy() {
        let t = proxied();
        for chain in [
            &["unknown"][..],
            &["198.51.100.7:4711"],
            &["[2001:db8::1]"],
            &["[2001:db8::1]:443"],
            &["198.51.100.7, unknown"],
            &["198.51.100.7, unknown, 10.0.0.2"],
            &[""],
            &["198.51.100.7,"],
            &["fe80::1%eth0"],
            &["01.2.3.4"],
            &["localhost"],
        ] {
            let c = client_addr(ip("127.0.0.1"), &headers(chain), &t);
            assert_eq!(c.ip, UNPARSEABLE_CHAIN, "{chain:?}");
            assert!(!c.ip.is_loopback());
        }
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_bytes(b"198.51.100.7\xff").unwrap());
        assert_eq!(client_addr(ip("127.0.0.1"), &h, &t).ip, UNPARSEABLE_CHAIN);
    }
}
