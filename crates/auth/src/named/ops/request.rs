//! The typed requests of the token operations. Each field is parsed here once, whether it
//! came from a `picoclaw token` flag or from the admin API's path and body, so both accept
//! exactly the same text and refuse it with the same error, which names the field and
//! says what was expected.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::error::TokenOpError;
use crate::named::format::TokenId;
use crate::named::record::TokenName;
use crate::named::time::{Timestamp, parse_duration};
use crate::named::{FixedCredential, TokenStoreError};
use crate::verify::Scope;

/// What a token operation is addressed to: a named token by id or by name, or one of the
/// fixed credentials (`pico`, `gateway`). Names can never look like ids, so the text alone
/// says which it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKey {
    /// A named token by its public id (12 characters of `a-z2-7`).
    Id(TokenId),
    /// A named token by its name.
    Name(TokenName),
    /// `channels.pico.token` (`pico`) or `gateway.token` (`gateway`).
    Fixed(FixedCredential),
}

const KEY_EXPECTED: &str = "expected `pico`, `gateway`, a token id (12 characters of a-z and 2-7) or a token \
                            name (1 to 64 letters, digits, `.`, `_` and `-`)";

impl TokenKey {
    /// Parses the `ID|NAME` argument of `token revoke|rotate` or the `{key}` of the API path.
    pub fn parse(text: &str) -> Result<TokenKey, TokenOpError> {
        if let Some(credential) = FixedCredential::from_name(text) {
            return Ok(TokenKey::Fixed(credential));
        }
        if text == "runtime" {
            return Err(TokenOpError::InvalidKey {
                reason: "the runtime token is generated anew at each gateway start and cannot be changed \
                         here; restart the gateway for a new one",
            });
        }
        if let Ok(id) = TokenId::parse(text) {
            return Ok(TokenKey::Id(id));
        }
        TokenName::parse(text)
            .map(TokenKey::Name)
            .map_err(|_| TokenOpError::InvalidKey { reason: KEY_EXPECTED })
    }

    /// The key as text (`pico`, an id or a name).
    pub fn as_str(&self) -> &str {
        match self {
            TokenKey::Id(id) => id.as_str(),
            TokenKey::Name(name) => name.as_str(),
            TokenKey::Fixed(credential) => credential.id(),
        }
    }
}

impl fmt::Display for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the duration syntax looks like, for messages.
const DURATIONS: &str = " (durations: e.g. 45s, 10m, 1h, 30d, 2w or 1h30m)";

/// When a new token stops working: `--expires` / `expires`, either a duration from the
/// moment the token is created (`30d`, `1h30m`) or an RFC 3339 time in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// This long after creation.
    After(Duration),
    /// At this instant.
    At(Timestamp),
}

impl Expiry {
    /// Parses `text`; `now` is only used to refuse a time that has already passed.
    pub fn parse(text: &str, now: Timestamp) -> Result<Expiry, TokenOpError> {
        let problem = |problem: &str| TokenOpError::InvalidExpires { problem: problem.to_owned() };
        match parse_duration(text) {
            Ok(d) if d.is_zero() => Err(problem("a token that expires at once is useless; give e.g. 30d")),
            Ok(d) => Ok(Expiry::After(d)),
            Err(duration) => match Timestamp::parse(text) {
                Some(t) if t > now => Ok(Expiry::At(t)),
                Some(_) => Err(problem(
                    "that time is in the past; give a duration such as 30d or an RFC 3339 time in the future",
                )),
                None => Err(TokenOpError::InvalidExpires {
                    problem: format!(
                        "neither a duration ({}) nor an RFC 3339 time such as 2026-01-31T12:00:00Z{DURATIONS}",
                        duration.reason()
                    ),
                }),
            },
        }
    }

    /// The instant it stands for, for a token created at `now`.
    pub fn at(self, now: Timestamp) -> Result<Timestamp, TokenOpError> {
        match self {
            Expiry::After(d) => Ok(now.after(d)),
            Expiry::At(t) if t > now => Ok(t),
            Expiry::At(_) => Err(TokenStoreError::InvalidExpiry.into()),
        }
    }
}

/// How long the old secret keeps working after a rotation: `--grace` / `grace`. None by
/// default: the old secret stops at once, which is what a leaked token needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grace(Duration);

impl Grace {
    /// No grace: the old secret stops working at once.
    pub const NONE: Grace = Grace(Duration::ZERO);

    /// Parses a duration (`45s`, `10m`, `1h30m`, `0` for none).
    pub fn parse(text: &str) -> Result<Grace, TokenOpError> {
        parse_duration(text).map(Grace).map_err(|e| TokenOpError::InvalidGrace {
            problem: format!("invalid duration: {}{DURATIONS}", e.reason()),
        })
    }

    /// [`Grace::parse`] of an optional flag or field; absent is [`Grace::NONE`].
    pub fn parse_optional(text: Option<&str>) -> Result<Grace, TokenOpError> {
        text.map_or(Ok(Grace::NONE), Grace::parse)
    }

    /// The duration (zero for none).
    pub fn duration(self) -> Duration {
        self.0
    }

    /// True when the old secret stops at once.
    pub fn is_none(self) -> bool {
        self.0.is_zero()
    }

    /// Until when the old secret works, for a rotation at `now` (`None`: it stopped).
    pub fn until(self, now: Timestamp) -> Option<Timestamp> {
        (!self.is_none()).then(|| now.after(self.0))
    }
}

/// `token create` / `POST /api/tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// The new token's name, unique among tokens that are not revoked.
    pub name: TokenName,
    /// What it may do.
    pub scope: Scope,
    /// When it stops working; `None`: never.
    pub expires: Option<Expiry>,
}

/// `scope`: `read`, `chat` or `admin`.
pub fn parse_scope(text: &str) -> Result<Scope, TokenOpError> {
    match text {
        "read" => Ok(Scope::Read),
        "chat" => Ok(Scope::Chat),
        "admin" => Ok(Scope::Admin),
        _ => Err(TokenOpError::InvalidScope),
    }
}

/// `name`: a valid token name.
pub fn parse_name(text: &str) -> Result<TokenName, TokenOpError> {
    TokenName::parse(text).map_err(TokenOpError::from)
}

impl CreateRequest {
    /// From the CLI's flags (the scope already typed by the argument parser).
    pub fn new(
        name: &str,
        scope: Scope,
        expires: Option<&str>,
        now: Timestamp,
    ) -> Result<CreateRequest, TokenOpError> {
        Ok(CreateRequest {
            name: parse_name(name)?,
            scope,
            expires: expires.map(|e| Expiry::parse(e, now)).transpose()?,
        })
    }

    /// From the admin API's body: `{"name": "...", "scope": "read"|"chat"|"admin", "expires": "30d"}`.
    pub fn from_json(body: &[u8], now: Timestamp) -> Result<CreateRequest, TokenOpError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            name: String,
            scope: String,
            #[serde(default)]
            expires: Option<String>,
        }
        let body: Body = json_body(body, CREATE_BODY)?;
        CreateRequest::new(&body.name, parse_scope(&body.scope)?, body.expires.as_deref(), now)
    }
}

/// `token rotate` / `POST /api/tokens/{key}/rotate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateRequest {
    /// What to rotate.
    pub key: TokenKey,
    /// How long the old secret keeps working.
    pub grace: Grace,
}

impl RotateRequest {
    /// From the CLI's argument and `--grace`.
    pub fn new(key: &str, grace: Option<&str>) -> Result<RotateRequest, TokenOpError> {
        Ok(RotateRequest { key: TokenKey::parse(key)?, grace: Grace::parse_optional(grace)? })
    }

    /// From the admin API's path key and body `{"grace": "10m"}` (an empty body is `{}`).
    pub fn from_json(key: &str, body: &[u8]) -> Result<RotateRequest, TokenOpError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            #[serde(default)]
            grace: Option<String>,
        }
        let key = TokenKey::parse(key)?;
        let body: Body = json_body(body, ROTATE_BODY)?;
        Ok(RotateRequest { key, grace: Grace::parse_optional(body.grace.as_deref())? })
    }
}

const CREATE_BODY: &str = r#"{"name": "...", "scope": "read"|"chat"|"admin", "expires": "30d"}"#;
const ROTATE_BODY: &str = r#"{"grace": "10m"}"#;

/// A JSON body (all whitespace counts as `{}`). serde's message may quote a value the
/// caller sent (perhaps a token in the wrong field): quoted text is blanked.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], expected: &'static str) -> Result<T, TokenOpError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| TokenOpError::InvalidBody {
        expected,
        detail: crate::named::tree::redact_quoted(&e.to_string()),
    })
}
