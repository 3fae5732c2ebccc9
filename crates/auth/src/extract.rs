//! Finding the credentials in a request.
//!
//! A request may carry a credential in several places at once: a reverse proxy adds its
//! own `Authorization: Basic`, a browser library offers `token.<t>` while a native client
//! also sends `Authorization: Bearer`. [`presented`] collects every candidate an endpoint
//! accepts, in precedence order — `Authorization: Bearer`, then the
//! `Sec-WebSocket-Protocol` offers (`token.<t>`, `ticket.<t>`) in the order offered, then
//! `?token=` — and the gate tries them in that order until one is valid. So a foreign or
//! wrong header never hides a valid credential, and nothing is composed or rewritten.

use http::HeaderMap;
use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use serde::Serialize;

use crate::verify::AuthError;

/// How the credential was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presentation {
    /// `Authorization: Bearer <t>`.
    Bearer,
    /// `Sec-WebSocket-Protocol: token.<t>`.
    Subprotocol,
    /// `Sec-WebSocket-Protocol: ticket.<t>` (single-use WebSocket ticket).
    Ticket,
    /// `?token=<t>` (only when allowed).
    Query,
}

/// Which ways of presenting a credential an endpoint accepts, besides
/// `Authorization: Bearer`, which every protected endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Presentations {
    /// `Sec-WebSocket-Protocol: token.<t>`.
    pub subprotocol: bool,
    /// `Sec-WebSocket-Protocol: ticket.<t>`.
    pub ticket: bool,
    /// `?token=<t>`, when `channels.pico.allow_token_query` is also true.
    pub query: bool,
}

impl Presentations {
    /// `Authorization: Bearer` only (every HTTP API endpoint).
    pub const BEARER: Presentations = Presentations { subprotocol: false, ticket: false, query: false };
    /// The Pico socket: Bearer, `token.<t>`, `ticket.<t>`, and `?token=` when allowed.
    pub const SOCKET: Presentations = Presentations { subprotocol: true, ticket: true, query: true };
    /// Pico media downloads: Bearer, and `?token=` when allowed.
    pub const MEDIA: Presentations = Presentations { subprotocol: false, ticket: false, query: true };
}

/// One credential found in a request. `Debug` does not print the token.
#[derive(Clone)]
pub struct Candidate {
    token: String,
    how: Presentation,
    offer: Option<String>,
}

impl Candidate {
    /// The presented token (or ticket), exactly as sent.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// How it was sent.
    pub fn how(&self) -> Presentation {
        self.how
    }

    /// For a subprotocol offer: the offer, to echo in the 101 response.
    pub fn offer(&self) -> Option<&str> {
        self.offer.as_deref()
    }
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate").field("how", &self.how).finish_non_exhaustive()
    }
}

/// Every credential a request presents in a way its endpoint accepts, in the order the
/// gate tries them. `Debug` prints no token.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    candidates: Vec<Candidate>,
    problem: Option<AuthError>,
}

impl Presented {
    /// The candidates in precedence order.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Why something that looked like a credential could not be used (malformed, too
    /// long, a disabled `?token=`), reported when no candidate is valid.
    pub fn problem(&self) -> Option<&AuthError> {
        self.problem.as_ref()
    }

    /// The subprotocol the 101 response must select once `accepted` authenticated the
    /// socket: the accepted offer itself, else a `token.<t>` offer carrying the same token
    /// (a client that sends `Authorization: Bearer` *and* offers its token aborts the
    /// handshake when no offer is echoed). `None` when the client offered neither.
    pub fn echo_for<'a>(&'a self, accepted: &'a Candidate) -> Option<&'a str> {
        if let Some(offer) = accepted.offer() {
            return Some(offer);
        }
        self.candidates
            .iter()
            .find(|c| c.how == Presentation::Subprotocol && c.token == accepted.token)
            .and_then(Candidate::offer)
    }
}

/// Longest token accepted from a request; longer values are rejected unread.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Most credential offers looked at in `Sec-WebSocket-Protocol` (each costs one hash).
pub const MAX_OFFERS: usize = 8;

/// Collects the credentials of a request that its endpoint accepts: `Authorization:
/// Bearer`, then (when `accepts` says so) `Sec-WebSocket-Protocol` offers, then
/// `?token=` (only if `accepts.query` and `allow_query`; otherwise a `?token=` is noted as
/// a problem, so the client learns why it was ignored).
pub fn presented(
    headers: &HeaderMap,
    query: Option<&str>,
    accepts: Presentations,
    allow_query: bool,
) -> Presented {
    let mut out = Presented::default();
    if let Some(value) = headers.get(AUTHORIZATION) {
        match bearer(value) {
            Ok(Some(token)) => match checked(token, Presentation::Bearer, None) {
                Ok(c) => out.candidates.push(c),
                Err(e) => note(&mut out, e),
            },
            // Another scheme (a proxy's Basic, say): not ours, and not a guess of ours.
            Ok(None) => note(&mut out, AuthError::Malformed("Authorization must be \"Bearer <token>\"")),
            Err(e) => note(&mut out, e),
        }
    }
    if accepts.subprotocol || accepts.ticket {
        let offers = headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim);
        let mut looked_at = 0;
        for offer in offers {
            let found = match (offer.strip_prefix("token."), offer.strip_prefix("ticket.")) {
                (Some(token), _) if accepts.subprotocol => Some((token, Presentation::Subprotocol)),
                (_, Some(ticket)) if accepts.ticket => Some((ticket, Presentation::Ticket)),
                _ => None,
            };
            let Some((token, how)) = found else { continue };
            looked_at += 1;
            if looked_at > MAX_OFFERS {
                break;
            }
            match checked(token, how, Some(offer)) {
                Ok(c) => out.candidates.push(c),
                Err(e) => note(&mut out, e),
            }
        }
    }
    if accepts.query
        && let Some(token) = query.and_then(query_token)
    {
        if allow_query {
            match checked(&token, Presentation::Query, None) {
                Ok(c) => out.candidates.push(c),
                Err(e) => note(&mut out, e),
            }
        } else {
            note(&mut out, AuthError::QueryDisabled);
        }
    }
    out
}

/// Keeps the first problem seen.
fn note(out: &mut Presented, e: AuthError) {
    out.problem.get_or_insert(e);
}

/// The token of an `Authorization: Bearer <t>` value; `Ok(None)` for another scheme.
fn bearer(value: &http::HeaderValue) -> Result<Option<&str>, AuthError> {
    let value = value.to_str().map_err(|_| AuthError::Malformed("Authorization header is not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::Malformed("Authorization: Bearer has no token"));
    }
    Ok(Some(token))
}

fn checked(token: &str, how: Presentation, offer: Option<&str>) -> Result<Candidate, AuthError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed("token is empty or longer than 4096 bytes"));
    }
    Ok(Candidate { token: token.to_owned(), how, offer: offer.map(str::to_owned) })
}

/// The value of the first `token` parameter of a query string, form-decoded.
fn query_token(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn found(p: &Presented) -> Vec<(&str, Presentation)> {
        p.candidates().iter().map(|c| (c.token(), c.how())).collect()
    }

    #[test]
    fn bearer_then_offers_then_query() {
        let h = headers(&[(&AUTHORIZATION, "Bearer abc"), (&SEC_WEBSOCKET_PROTOCOL, "chat, token.def")]);
        let p = presented(&h, Some("token=ghi"), Presentations::SOCKET, true);
        assert_eq!(
            found(&p),
            [("abc", Presentation::Bearer), ("def", Presentation::Subprotocol), ("ghi", Presentation::Query)]
        );
        let p = presented(&HeaderMap::new(), Some("session_id=1&token=g%2Bh"), Presentations::SOCKET, true);
        assert_eq!(found(&p), [("g+h", Presentation::Query)]);
    }

    #[test]
    fn only_what_the_endpoint_accepts() {
        let h = headers(&[(&SEC_WEBSOCKET_PROTOCOL, "token.def, ticket.xyz")]);
        assert!(presented(&h, Some("token=q"), Presentations::BEARER, true).candidates().is_empty());
        let p = presented(&h, Some("token=q"), Presentations::MEDIA, true);
        assert_eq!(found(&p), [("q", Presentation::Query)]);
    }

    #[test]
    fn query_token_is_a_problem_unless_allowed() {
        let p = presented(&HeaderMap::new(), Some("token=x"), Presentations::SOCKET, false);
        assert!(p.candidates().is_empty());
        assert_eq!(p.problem(), Some(&AuthError::QueryDisabled));
        let p = presented(&HeaderMap::new(), Some("session_id=x"), Presentations::SOCKET, false);
        assert!(p.candidates().is_empty() && p.problem().is_none());
    }

    #[test]
    fn a_foreign_authorization_does_not_hide_an_offer() {
        let h = headers(&[(&AUTHORIZATION, "Basic Zm9v"), (&SEC_WEBSOCKET_PROTOCOL, "token.good")]);
        let p = presented(&h, None, Presentations::SOCKET, false);
        assert_eq!(found(&p), [("good", Presentation::Subprotocol)]);
        assert!(matches!(p.problem(), Some(AuthError::Malformed(_))));
        let h = headers(&[(&AUTHORIZATION, "bearer   tok ")]);
        assert_eq!(
            found(&presented(&h, None, Presentations::BEARER, false)),
            [("tok", Presentation::Bearer)]
        );
    }

    #[test]
    fn the_echo_is_the_accepted_offer_or_the_offer_of_the_same_token() {
        let h =
            headers(&[(&AUTHORIZATION, "Bearer same"), (&SEC_WEBSOCKET_PROTOCOL, "token.other, token.same")]);
        let p = presented(&h, None, Presentations::SOCKET, false);
        let bearer = &p.candidates()[0];
        assert_eq!(p.echo_for(bearer), Some("token.same"));
        let other = &p.candidates()[1];
        assert_eq!(p.echo_for(other), Some("token.other"));
        let h = headers(&[(&AUTHORIZATION, "Bearer alone")]);
        let p = presented(&h, None, Presentations::SOCKET, false);
        assert_eq!(p.echo_for(&p.candidates()[0]), None);
    }

    #[test]
    fn offers_are_bounded() {
        let many: Vec<String> = (0..100).map(|i| format!("token.t{i}")).collect();
        let h = headers(&[(&SEC_WEBSOCKET_PROTOCOL, &many.join(","))]);
        assert_eq!(presented(&h, None, Presentations::SOCKET, false).candidates().len(), MAX_OFFERS);
    }

    #[test]
    fn query_decoding_survives_garbage() {
        assert_eq!(query_token("token=%").as_deref(), Some("%"));
        assert_eq!(query_token("token=%zz").as_deref(), Some("%zz"));
        assert_eq!(query_token("a=1&token=a%41").as_deref(), Some("aA"));
        assert_eq!(query_token("tok=1"), None);
    }
}
