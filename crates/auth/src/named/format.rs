//! The self-describing named-token format: `pcl_<id>_<secret>_<check>`.
//!
//! - `pcl_`: a fixed prefix, so secret scanners can match
//!   `pcl_[a-z2-7]{12}_[A-Za-z0-9_-]{43}_[a-z2-7]{6}`;
//! - `<id>`: 12 characters of lowercase base32 (60 random bits), the public id used for
//!   the O(1) lookup and shown by `token list`;
//! - `<secret>`: 43 characters of unpadded base64url (256 random bits);
//! - `<check>`: 6 characters of lowercase base32 — the first 30 bits of SHA-256 over
//!   `pcl_<id>_<secret>` — so a mistyped or truncated token is rejected offline, before
//!   any lookup.
//!
//! The parts have fixed lengths, so parsing is by position (the base64url alphabet also
//! contains `_`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use data_encoding::BASE32_NOPAD;
use picoclaw_credentials::Secret;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The fixed prefix of every named token.
pub const PREFIX: &str = "pcl_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 43;
const CHECK_LEN: usize = 6;
/// Total length of a named token.
pub const TOKEN_LEN: usize = PREFIX.len() + ID_LEN + 1 + SECRET_LEN + 1 + CHECK_LEN;

const ID_START: usize = PREFIX.len();
const SEP1: usize = ID_START + ID_LEN;
const SECRET_START: usize = SEP1 + 1;
const SEP2: usize = SECRET_START + SECRET_LEN;
const CHECK_START: usize = SEP2 + 1;

/// Why a string is not a well-formed named token. Never carries any part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// It does not start with `pcl_`.
    #[error("a picoclaw token starts with `pcl_`")]
    Prefix,
    /// Wrong total length.
    #[error(
        "a picoclaw token is {TOKEN_LEN} characters long, this one has {0} (truncated or extra characters?)"
    )]
    Length(usize),
    /// A separator `_` is missing.
    #[error("a picoclaw token has `_` at positions 17 and 61 (pcl_<id>_<secret>_<check>)")]
    Separator,
    /// The id is not 12 characters of `a-z2-7`.
    #[error("the token id (characters 5-16) must be 12 characters of a-z and 2-7")]
    Id,
    /// The secret is not 43 characters of base64url.
    #[error("the token secret (characters 18-60) must be 43 characters of A-Z, a-z, 0-9, - and _")]
    Secret,
    /// The checksum does not match: a typo or a truncated copy.
    #[error("the token checksum does not match: it was mistyped or copied incompletely")]
    Checksum,
}

impl FormatError {
    /// A short static reason, for [`crate::AuthError::Malformed`].
    pub fn reason(self) -> &'static str {
        match self {
            FormatError::Prefix => "named token: wrong prefix",
            FormatError::Length(_) => "named token: wrong length",
            FormatError::Separator => "named token: missing separator",
            FormatError::Id => "named token: bad id",
            FormatError::Secret => "named token: bad secret characters",
            FormatError::Checksum => "named token: checksum mismatch (mistyped or truncated)",
        }
    }
}

/// The public id of a named token: 12 characters of lowercase base32.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(String);

impl TokenId {
    /// Parses an id as shown by `token list`.
    pub fn parse(s: &str) -> Result<TokenId, FormatError> {
        if s.len() == ID_LEN && s.bytes().all(is_base32) {
            Ok(TokenId(s.to_owned()))
        } else {
            Err(FormatError::Id)
        }
    }

    /// True when `s` has the shape of an id.
    pub fn looks_like(s: &str) -> bool {
        s.len() == ID_LEN && s.bytes().all(is_base32)
    }

    /// A fresh random id (60 bits).
    pub fn generate() -> Result<TokenId, getrandom::Error> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)?;
        Ok(TokenId(base32(&bytes, ID_LEN)))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for TokenId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

fn is_base32(b: u8) -> bool {
    b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The first `chars` characters of the lowercase RFC 4648 base32 of `bytes` (most
/// significant bits first, no padding). data-encoding's `BASE32_NOPAD` is the RFC
/// alphabet in upper case; lowering it gives exactly the alphabet of every token ever
/// issued (`a-z2-7`, checked against a token made by the former hand-written encoder).
fn base32(bytes: &[u8], chars: usize) -> String {
    let mut out = BASE32_NOPAD.encode(bytes);
    out.truncate(chars);
    out.make_ascii_lowercase();
    out
}

fn checksum(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    base32(&digest[..4], CHECK_LEN)
}

/// Checks the format and checksum of `token` offline and returns its id. The secret part
/// is not verified here (that needs the store).
pub fn parse(token: &str) -> Result<TokenId, FormatError> {
    let bytes = token.as_bytes();
    if !token.starts_with(PREFIX) {
        return Err(FormatError::Prefix);
    }
    if bytes.len() != TOKEN_LEN {
        return Err(FormatError::Length(token.chars().count()));
    }
    if bytes[SEP1] != b'_' || bytes[SEP2] != b'_' {
        return Err(FormatError::Separator);
    }
    if !bytes[ID_START..SEP1].iter().copied().all(is_base32) {
        return Err(FormatError::Id);
    }
    if !bytes[SECRET_START..SEP2].iter().copied().all(is_base64url) {
        return Err(FormatError::Secret);
    }
    if !bytes[CHECK_START..].iter().copied().all(is_base32) {
        return Err(FormatError::Checksum);
    }
    // All bytes are ASCII from here on, so slicing the str is on char boundaries.
    let body = &token[..SEP2];
    if checksum(body) != token[CHECK_START..] {
        return Err(FormatError::Checksum);
    }
    Ok(TokenId(token[ID_START..SEP1].to_owned()))
}

/// A fresh token for `id`: 256 random bits, assembled in place so no stray copy of the
/// secret is left in memory.
pub fn generate_for(id: &TokenId) -> Result<Secret, getrandom::Error> {
    let mut random = Zeroizing::new([0u8; 32]);
    getrandom::fill(random.as_mut())?;
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(PREFIX);
    token.push_str(id.as_str());
    token.push('_');
    URL_SAFE_NO_PAD.encode_string(random.as_ref(), &mut token);
    let check = checksum(&token);
    token.push('_');
    token.push_str(&check);
    Ok(Secret::new(token))
}

/// A fresh token with a fresh id.
pub fn generate() -> Result<(TokenId, Secret), getrandom::Error> {
    let id = TokenId::generate()?;
    let secret = generate_for(&id)?;
    Ok((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_parse_back_to_their_id() {
        let (id, token) = generate().unwrap();
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(parse(token.expose()).unwrap(), id);
        assert!(token.expose().starts_with("pcl_"));
    }

    #[test]
    fn rejects_wrong_shapes_with_a_typed_error() {
        let (_, token) = generate().unwrap();
        let t = token.expose();
        assert_eq!(parse("abc"), Err(FormatError::Prefix));
        assert_eq!(parse(&t[..TOKEN_LEN - 1]), Err(FormatError::Length(TOKEN_LEN - 1)));
        assert_eq!(parse(&format!("{t}x")), Err(FormatError::Length(TOKEN_LEN + 1)));
        let mut upper = t.to_owned();
        upper.replace_range(5..6, "A");
        assert_eq!(parse(&upper), Err(FormatError::Id));
        let mut sep = t.to_owned();
        sep.replace_range(SEP1..SEP1 + 1, "-");
        assert_eq!(parse(&sep), Err(FormatError::Separator));
        let mut bad = t.to_owned();
        bad.replace_range(SECRET_START..SECRET_START + 1, "+");
        assert_eq!(parse(&bad), Err(FormatError::Secret));
    }

    #[test]
    fn errors_never_contain_the_token() {
        let (_, token) = generate().unwrap();
        let mut typo = token.expose().to_owned();
        typo.replace_range(30..31, if &typo[30..31] == "a" { "b" } else { "a" });
        let err = parse(&typo).unwrap_err();
        assert_eq!(err, FormatError::Checksum);
        assert!(!err.to_string().contains(&typo[SECRET_START..SEP2]));
    }

    /// Made by the hand-written base32 encoder this module had before data-encoding
    /// (id from the bytes below, secret from `i * 37 + 11` for i in 0..32), and checked
    /// against Python's `base64.b32encode`: tokens issued then still parse.
    const ISSUED_BEFORE: &str = "pcl_t46fuapoij35_CzBVep_E6Q4zWH2ix-wRNluApcrvFDleg6jN8hc8YYY_limr6g";

    #[test]
    fn tokens_issued_by_the_former_encoder_still_parse() {
        assert_eq!(parse(ISSUED_BEFORE).map(|id| id.0), Ok("t46fuapoij35".to_owned()));
        assert_eq!(base32(&[0x9f, 0x3c, 0x5a, 0x01, 0xee, 0x42, 0x77, 0xd0], ID_LEN), "t46fuapoij35");
        let secret: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
        let mut body = String::from("pcl_t46fuapoij35_");
        URL_SAFE_NO_PAD.encode_string(&secret, &mut body);
        assert_eq!(format!("{body}_{}", checksum(&body)), ISSUED_BEFORE);
    }

    #[test]
    fn base32_matches_rfc4648_lowercase() {
        // RFC 4648 test vector: BASE32("foobar") = "MZXW6YTBOI======".
        assert_eq!(base32(b"foobar", 10), "mzxw6ytboi");
        assert_eq!(base32(b"f", 2), "my");
    }

    proptest! {
        #[test]
        fn round_trip(id_bytes in any::<[u8; 8]>(), secret in any::<[u8; 32]>()) {
            let id = TokenId(base32(&id_bytes, ID_LEN));
            let mut t = format!("{PREFIX}{id}_");
            URL_SAFE_NO_PAD.encode_string(secret, &mut t);
            let check = checksum(&t);
            t.push('_');
            t.push_str(&check);
            prop_assert_eq!(parse(&t), Ok(id));
        }

        #[test]
        fn any_single_character_change_is_rejected(pos in 0usize..TOKEN_LEN, replacement in "[a-zA-Z0-9_-]") {
            let (_, token) = generate().unwrap();
            let original = token.expose();
            prop_assume!(original[pos..pos + 1] != replacement);
            let mut typo = original.to_owned();
            typo.replace_range(pos..pos + 1, &replacement);
            prop_assert!(parse(&typo).is_err());
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }
    }
}
