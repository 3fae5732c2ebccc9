//! Property tests of credential extraction: whatever the header bytes, `presented` never
//! panics and every candidate is something the request really carried; a Bearer token is
//! recovered exactly; a subprotocol credential's echo is exactly the offer the client
//! made; the order Bearer > subprotocol > query always holds.

use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use http::{HeaderMap, HeaderValue};
use picoclaw_auth::{AuthError, Presentation, Presentations, presented};
use proptest::prelude::*;

/// Characters a token may have inside a header (visible ASCII, no space).
const TOKEN: &str = "[!-~]{1,200}";
/// Characters a subprotocol offer may have (no comma, no blank).
const OFFER_TOKEN: &str = "[A-Za-z0-9._~+/=-]{1,200}";
/// A whole `token.<t>` offer.
const CREDENTIAL_OFFER: &str = "token\\.[A-Za-z0-9._~+/=-]{1,200}";

fn headers(auth: Option<&str>, protocols: &[String]) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(a) = auth {
        h.insert(AUTHORIZATION, HeaderValue::from_str(a).expect("test header is valid"));
    }
    for p in protocols {
        h.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(p).expect("test header is valid"));
    }
    h
}

/// Percent-encodes every byte, the way a careful client builds `?token=`.
fn percent_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Subprotocol offers that are not credentials.
fn other_offer() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9.-]{0,15}"
        .prop_filter("not a credential offer", |o| !o.starts_with("token.") && !o.starts_with("ticket."))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_header_bytes_never_panic(
        auth in proptest::option::of(prop::collection::vec(any::<u8>(), 0..300)),
        protocols in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..4),
        query in proptest::option::of(any::<String>()),
        allow_query in any::<bool>(),
    ) {
        let mut h = HeaderMap::new();
        if let Some(Ok(v)) = auth.as_deref().map(HeaderValue::from_bytes) {
            h.insert(AUTHORIZATION, v);
        }
        for p in &protocols {
            if let Ok(v) = HeaderValue::from_bytes(p) {
                h.append(SEC_WEBSOCKET_PROTOCOL, v);
            }
        }
        let found = presented(&h, query.as_deref(), Presentations::SOCKET, allow_query);
        for c in found.candidates() {
            prop_assert!(!c.token().is_empty() && c.token().len() <= 4096);
            prop_assert!(c.how() != Presentation::Query || allow_query);
        }
        prop_assert!(found.candidates().len() <= 1 + picoclaw_auth::MAX_OFFERS + 1);
    }

    #[test]
    fn bearer_token_is_recovered_exactly(
        token in TOKEN,
        scheme in prop_oneof![Just("Bearer"), Just("bearer"), Just("BEARER"), Just("bEaReR")],
        pad in 0usize..3,
        protocols in prop::collection::vec(CREDENTIAL_OFFER, 0..3),
        query_token in TOKEN,
    ) {
        let value = format!("{scheme} {}{token}{}", " ".repeat(pad), " ".repeat(pad));
        let query = format!("token={}", percent_encode(&query_token));
        let all = presented(&headers(Some(&value), &protocols), Some(&query), Presentations::SOCKET, true);
        let found = all.candidates().first().expect("a Bearer header is a credential");
        prop_assert_eq!(found.how(), Presentation::Bearer);
        prop_assert_eq!(found.token(), token.as_str());
        prop_assert!(found.offer().is_none());
        prop_assert_eq!(all.candidates().last().map(|c| c.how()), Some(Presentation::Query), "query last");
    }

    #[test]
    fn subprotocol_echo_is_exactly_the_offer(
        token in OFFER_TOKEN,
        before in prop::collection::vec(other_offer(), 0..3),
        after in prop::collection::vec(prop_oneof![other_offer(), CREDENTIAL_OFFER], 0..3),
        split in any::<bool>(),
    ) {
        let offer = format!("token.{token}");
        let mut all = before.clone();
        all.push(offer.clone());
        all.extend(after);
        // One header with a comma list, or one header per offer: both are valid HTTP.
        let protocols = if split { all.clone() } else { vec![all.join(", ")] };
        let got = presented(&headers(None, &protocols), None, Presentations::SOCKET, false);
        let found = got.candidates().first().expect("a subprotocol credential is found");
        prop_assert_eq!(found.how(), Presentation::Subprotocol);
        prop_assert_eq!(found.token(), token.as_str());
        prop_assert_eq!(got.echo_for(found), Some(offer.as_str()));
        prop_assert!(all.contains(&offer), "the echo is one of the offers");
    }

    #[test]
    fn query_token_is_decoded_exactly_and_only_when_allowed(
        token in "\\PC{1,100}",
        before in "[a-z_]{1,10}=[a-z0-9]{0,10}",
    ) {
        prop_assume!(!before.starts_with("token="));
        let query = format!("{before}&token={}", percent_encode(&token));
        let all = presented(&HeaderMap::new(), Some(&query), Presentations::SOCKET, true);
        let found = all.candidates().first().expect("a query token is found");
        prop_assert_eq!(found.how(), Presentation::Query);
        prop_assert_eq!(found.token(), token.as_str());
        let off = presented(&HeaderMap::new(), Some(&query), Presentations::SOCKET, false);
        prop_assert!(off.candidates().is_empty());
        prop_assert_eq!(off.problem(), Some(&AuthError::QueryDisabled));
    }

    #[test]
    fn oversized_tokens_are_malformed_in_every_presentation(extra in 1usize..2048) {
        let token = "a".repeat(4096 + extra);
        let malformed = |h: &HeaderMap, q: Option<&str>| {
            let p = presented(h, q, Presentations::SOCKET, true);
            p.candidates().is_empty() && matches!(p.problem(), Some(AuthError::Malformed(_)))
        };
        let bearer = headers(Some(&format!("Bearer {token}")), &[]);
        prop_assert!(malformed(&bearer, None));
        let offer = headers(None, &[format!("token.{token}")]);
        prop_assert!(malformed(&offer, None));
        let query = format!("token={token}");
        prop_assert!(malformed(&HeaderMap::new(), Some(&query)));
        let at_limit = "a".repeat(4096);
        let ok = presented(&headers(Some(&format!("Bearer {at_limit}")), &[]), None, Presentations::BEARER, false);
        prop_assert_eq!(ok.candidates().first().map(|c| c.token().to_owned()), Some(at_limit));
    }

    #[test]
    fn debug_never_prints_the_token(token in "[A-Za-z0-9]{24,64}") {
        let found = presented(&headers(Some(&format!("Bearer {token}")), &[]), None, Presentations::BEARER, false);
        let shown = format!("{found:?}");
        prop_assert!(!shown.contains(&token), "Debug printed the token: {}", shown);
        prop_assert_eq!(shown, "Presented { candidates: [Candidate { how: Bearer, .. }], problem: None }");
    }
}
