//! Finding the credential in a request.

use http::HeaderMap;
use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};

use crate::verify::AuthError;

/// How the credential was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// A credential found in a request. `Debug` does not print the token.
#[derive(Clone)]
pub struct Extracted {
    /// The presented token (or ticket), exactly as sent.
    pub token: String,
    /// How it was sent.
    pub how: Presentation,
    /// For subprotocol presentation: the offer to echo in the 101 response.
    pub echo_protocol: Option<String>,
}

impl std::fmt::Debug for Extracted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extracted").field("how", &self.how).finish_non_exhaustive()
    }
}

/// Longest token accepted from a request; longer values are rejected unread.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Finds the credential: Bearer header, then subprotocol, then `?token=` when
/// `allow_query`. `Ok(None)` means no credential was presented.
pub fn extract(
    headers: &HeaderMap,
    query: Option<&str>,
    allow_query: bool,
) -> Result<Option<Extracted>, AuthError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::Malformed("Authorization header is not ASCII"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed("Authorization must be \"Bearer <token>\""));
        }
        let token = rest.trim();
        if token.is_empty() {
            return Err(AuthError::Malformed("Authorization: Bearer has no token"));
        }
        return checked(token, Presentation::Bearer, None).map(Some);
    }
    for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
        let Ok(value) = value.to_str() else { continue };
        for offer in value.split(',').map(str::trim) {
            if let Some(token) = offer.strip_prefix("token.") {
                return checked(token, Presentation::Subprotocol, Some(offer)).map(Some);
            }
            if let Some(ticket) = offer.strip_prefix("ticket.") {
                return checked(ticket, Presentation::Ticket, Some(offer)).map(Some);
            }
        }
    }
    if let Some(token) = query.and_then(query_token) {
        if !allow_query {
            return Err(AuthError::QueryDisabled);
        }
        return checked(&token, Presentation::Query, None).map(Some);
    }
    Ok(None)
}

fn checked(token: &str, how: Presentation, echo: Option<&str>) -> Result<Extracted, AuthError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed("token is empty or longer than 4096 bytes"));
    }
    Ok(Extracted { token: token.to_owned(), how, echo_protocol: echo.map(str::to_owned) })
}

/// The value of `token` in a query string, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == "token").then(|| percent_decode(v))
    })
}

/// Minimal `application/x-www-form-urlencoded` value decoding (`+` and `%XX`).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], decoded) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

    #[test]
    fn bearer_wins_then_subprotocol_then_query() {
        let h = headers(&[(&AUTHORIZATION, "Bearer abc"), (&SEC_WEBSOCKET_PROTOCOL, "token.def")]);
        let e = extract(&h, Some("token=ghi"), true).unwrap().unwrap();
        assert_eq!((e.token.as_str(), e.how), ("abc", Presentation::Bearer));
        let h = headers(&[(&SEC_WEBSOCKET_PROTOCOL, "chat, token.def")]);
        let e = extract(&h, Some("token=ghi"), true).unwrap().unwrap();
        assert_eq!((e.token.as_str(), e.echo_protocol.as_deref()), ("def", Some("token.def")));
        let e = extract(&HeaderMap::new(), Some("session_id=1&token=g%2Bh"), true).unwrap().unwrap();
        assert_eq!((e.token.as_str(), e.how), ("g+h", Presentation::Query));
    }

    #[test]
    fn query_token_is_refused_unless_allowed() {
        assert!(matches!(extract(&HeaderMap::new(), Some("token=x"), false), Err(AuthError::QueryDisabled)));
        assert!(extract(&HeaderMap::new(), Some("session_id=x"), false).unwrap().is_none());
    }

    #[test]
    fn malformed_authorization_is_distinct() {
        let h = headers(&[(&AUTHORIZATION, "Basic Zm9v")]);
        assert!(matches!(extract(&h, None, false), Err(AuthError::Malformed(_))));
        let h = headers(&[(&AUTHORIZATION, "bearer   tok ")]);
        assert_eq!(extract(&h, None, false).unwrap().unwrap().token, "tok");
    }

    #[test]
    fn percent_decoding_survives_garbage() {
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a%41"), "aA");
    }
}
