//! `channels.pico.allow_origins` patterns (issue 18 part 3) through real WebSocket
//! handshakes: exact origins, `scheme://*` for browser extensions and `scheme://*.domain`.

use serde_json::json;

use crate::support::TestHome;
use crate::support::ws;

const PICO: &str = "origins-test-pico-token-7c1e9a3b5d2f4e60";

async fn status(gw: &crate::support::Gateway, origin: Option<&str>) -> u16 {
    let auth = format!("Bearer {PICO}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    match ws::connect(&gw.ws(), &headers).await {
        Ok(_) => 101,
        Err((status, _)) => status.as_u16(),
    }
}

#[tokio::test]
async fn extension_and_subdomain_patterns_are_matched_on_the_handshake() {
    let home = TestHome::with_pico(
        PICO,
        json!({ "allow_origins": [
            "https://chat.example.net",
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
            "moz-extension://*",
            "https://*.example.com"
        ] }),
    );
    let gw = home.spawn_gateway(&[]);
    let cases = [
        (Some("https://chat.example.net"), 101),
        (Some("https://CHAT.example.net"), 101),
        (Some("http://chat.example.net"), 403),
        (Some("chrome-extension://abcdefghijklmnopabcdefghijklmnop"), 101),
        (Some("chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba"), 403),
        (Some("moz-extension://0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"), 101),
        (Some("https://app.example.com"), 101),
        (Some("https://a.b.example.com"), 101),
        (Some("https://example.com"), 403),
        (Some("https://evilexample.com"), 403),
        (Some("https://example.com.evil.net"), 403),
        (Some("https://app.example.com:8443"), 403),
        (Some("null"), 403),
        (None, 101),
    ];
    for (origin, want) in cases {
        assert_eq!(status(&gw, origin).await, want, "Origin {origin:?}");
    }
}

#[test]
fn a_bad_pattern_is_refused_at_start_naming_it() {
    let home =
        TestHome::with_pico(PICO, json!({ "allow_origins": ["https://ok.example", "example.com/chat"] }));
    let out = home.run(&["gateway", "--port", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("channels.pico.allow_origins") && err.contains("\"example.com/chat\""), "{err}");
    assert!(err.contains("scheme://*.domain"), "the error states the grammar: {err}");
}
