//! Credential extraction over arbitrary header bytes, subprotocol lists and query strings.
//!
//! Input layout: byte 0 holds flags (bit 0 `allow_query`, bit 1 send `Authorization`,
//! bit 2 send a query string); the rest is split on NUL into the `Authorization` value,
//! any number of `Sec-WebSocket-Protocol` values and, last, the query string. Besides "no
//! panic", every credential found must be one the request really carried.
#![no_main]

use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use picoclaw_auth::{Presentation, Presentations, presented};

/// `picoclaw_auth`'s longest accepted token.
const MAX_TOKEN_LEN: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let allow_query = flags & 1 != 0;
    let mut parts: Vec<&[u8]> = rest.split(|b| *b == 0).collect();
    let query = if flags & 4 != 0 { parts.pop().map(String::from_utf8_lossy) } else { None };
    let mut headers = HeaderMap::new();
    let mut auth_sent = None;
    if flags & 2 != 0 && !parts.is_empty() {
        let value = parts.remove(0);
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(AUTHORIZATION, v);
            auth_sent = Some(value);
        }
    }
    let mut offers = Vec::new();
    for part in &parts {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            if let Ok(s) = v.to_str() {
                offers.extend(s.split(',').map(|o| o.trim().to_owned()));
            }
            headers.append(SEC_WEBSOCKET_PROTOCOL, v);
        }
    }

    let all = presented(&headers, query.as_deref(), Presentations::SOCKET, allow_query);
    assert!(all.candidates().len() <= 2 + picoclaw_auth::MAX_OFFERS, "candidates are bounded");
    for (i, found) in all.candidates().iter().enumerate() {
        assert!(!found.token().is_empty() && found.token().len() <= MAX_TOKEN_LEN, "token length out of bounds");
        match found.how() {
            Presentation::Bearer => {
                assert_eq!(i, 0, "Bearer comes first");
                let sent = auth_sent.expect("Bearer found without an Authorization header");
                let sent = std::str::from_utf8(sent).expect("accepted Authorization is ASCII");
                assert!(sent.contains(found.token()), "Bearer token is not what was sent");
                assert_eq!(found.token().trim(), found.token(), "Bearer token keeps surrounding blanks");
                assert!(found.offer().is_none());
            }
            Presentation::Subprotocol | Presentation::Ticket => {
                let echo = all.echo_for(found).expect("subprotocol credential without echo");
                assert!(offers.iter().any(|o| o == echo), "echo {echo:?} was never offered");
                let prefix = if found.how() == Presentation::Subprotocol { "token." } else { "ticket." };
                assert_eq!(echo.strip_prefix(prefix), Some(found.token()), "echo is not the offer");
            }
            Presentation::Query => {
                assert!(allow_query, "query token accepted while allow_query is false");
                assert_eq!(i, all.candidates().len() - 1, "the query token comes last");
                assert!(found.offer().is_none());
            }
        }
        // Debug shows how the credential came, never the credential.
        assert_eq!(format!("{found:?}"), format!("Candidate {{ how: {:?}, .. }}", found.how()));
    }
});
