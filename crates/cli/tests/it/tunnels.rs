//! Same-host tunnels (issue 18 part 2): cloudflared or `tailscale serve` connect from
//! 127.0.0.1 on behalf of remote users. A request with forwarding headers from a loopback
//! peer that is not a trusted proxy is never local: the launcher's
//! `allow_localhost_bypass` does not let it past `allowed_cidrs`, and the gateway's failure
//! limiter does not count it as the local client.

use serde_json::json;

use crate::launcher_support::{self, send};
use crate::support::{TestHome, ws};

async fn status(url: &str, headers: &[(&str, &str)]) -> u16 {
    send("GET", url, None, headers, None).await.status
}

#[tokio::test]
async fn the_launcher_bypass_never_admits_a_relayed_request() {
    let home = launcher_support::home().env("PICOCLAW_LAUNCHER_ALLOWED_CIDRS", "10.0.0.0/8");
    let mut launcher = launcher_support::start(&home, &[]);
    let login = launcher.at("/login");
    // The local user (no forwarding headers): allow_localhost_bypass (default true) admits it.
    assert_ne!(status(&login, &[]).await, 403, "a local browser passes the bypass");
    // The same socket peer (127.0.0.1) relaying remote users, as cloudflared and Tailscale
    // Serve do: refused by allowed_cidrs.
    for relayed in [
        [("x-forwarded-for", "203.0.113.9")],
        [("cf-connecting-ip", "203.0.113.9")],
        [("tailscale-user-login", "alice@example.com")],
        [("forwarded", "for=203.0.113.9;proto=https")],
        [("x-forwarded-for", "127.0.0.1")],
    ] {
        let a = send("GET", &login, None, &relayed, None).await;
        assert_eq!(a.status, 403, "{relayed:?}: {}", a.body);
        assert!(a.body.contains("network policy"), "{}", a.body);
    }
    launcher.stop();

    // With the tunnel listed as a trusted proxy its X-Forwarded-For is believed instead.
    let home = home.env("PICOCLAW_LAUNCHER_TRUSTED_PROXIES", "127.0.0.1/32");
    let mut launcher = launcher_support::start(&home, &[]);
    let login = launcher.at("/login");
    let from = |ip: &'static str| [("x-forwarded-for", ip), ("x-forwarded-host", "127.0.0.1")];
    assert_ne!(status(&login, &from("10.1.2.3")).await, 403, "a listed network through the trusted tunnel");
    assert_eq!(status(&login, &from("203.0.113.9")).await, 403, "an unlisted one");
    launcher.stop();
}

#[tokio::test]
async fn the_gateway_limiter_counts_relayed_requests_apart_from_the_local_client() {
    const PICO: &str = "tunnel-test-pico-token-5b2d7f1c9e3a4d60";
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let wrong = "Bearer wrong-token-guess-0000000000000000";
    // A remote attacker behind a same-host tunnel exhausts its failure budget …
    let mut locked = false;
    for _ in 0..40 {
        let (code, _) =
            ws::rejected(&gw.ws(), &[("authorization", wrong), ("x-forwarded-for", "203.0.113.9")]).await;
        if code == 429 {
            locked = true;
            break;
        }
        assert_eq!(code, 401);
    }
    assert!(locked, "failed guesses through the tunnel are limited");
    // … which does not lock out the local user (a different client: a wrong guess of its
    // own is still answered 401, not 429), while another relayed request shares the
    // tunnel's non-local budget.
    let (code, _) = ws::rejected(&gw.ws(), &[("authorization", wrong)]).await;
    assert_eq!(code, 401, "the local client is not locked out by guesses relayed through a tunnel");
    let (code, _) =
        ws::rejected(&gw.ws(), &[("authorization", wrong), ("cf-connecting-ip", "198.51.100.4")]).await;
    assert_eq!(code, 429, "relayed requests are counted apart from the local client");
}
