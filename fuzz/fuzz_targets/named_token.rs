//! Named-token format (`pcl_<id>_<secret>_<check>`): the offline parser over arbitrary
//! text, and checksum rejection.
//!
//! Byte 0 selects the mode. Even: the rest is parsed as it is (never a panic; whatever is
//! accepted has the documented shape), also as the admin API's token requests (path key
//! and JSON bodies, raw and as the value of each field), whose errors never echo a value. Odd: the rest seeds a well-formed token built here
//! from the documented format (checksum = first 30 bits of SHA-256 over `pcl_<id>_<secret>`
//! as 6 base32 characters), which must parse to its id; then one character, chosen and
//! replaced by the input, is changed — that token must be rejected.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use picoclaw_auth::named::ops::{CreateRequest, RotateRequest, TokenKey};
use picoclaw_auth::named::{PREFIX, TOKEN_LEN, Timestamp, TokenId, TokenName, format, parse_duration};
use sha2::{Digest, Sha256};

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The first `chars * 5` bits of `bytes` as lowercase base32.
fn base32_bits(bytes: &[u8], chars: usize) -> String {
    let bit = |i: usize| (bytes[i / 8] >> (7 - i % 8)) & 1;
    (0..chars)
        .map(|c| {
            let v = (0..5).fold(0u8, |acc, k| (acc << 1) | bit(c * 5 + k));
            char::from(BASE32[usize::from(v)])
        })
        .collect()
}

fn build(seed: &[u8]) -> String {
    let byte = |i: usize| seed.get(i).copied().unwrap_or(i as u8);
    let id: String = (0..12).map(|i| char::from(BASE32[usize::from(byte(i) % 32)])).collect();
    let secret: Vec<u8> = (0..32).map(|i| byte(12 + i)).collect();
    let body = format!("{PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let digest = Sha256::digest(body.as_bytes());
    format!("{body}_{}", base32_bits(&digest[..4], 6))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        let now = Timestamp::from_unix(1_800_000_000);
        let _ = CreateRequest::from_json(rest, now).map_err(|e| e.to_string());
        let _ = RotateRequest::from_json("pico", rest).map_err(|e| e.to_string());
        let Ok(text) = std::str::from_utf8(rest) else { return };
        // A value sent in any field, or as the whole body, is never repeated back: it
        // starts with U+0001, which no message contains, raw or escaped (`\u{1}`), unless
        // it echoes the value.
        let value = serde_json::Value::from(format!("\u{1}{text}")).to_string();
        let echoes = |message: String| message.contains('\u{1}') || message.contains("\\u{1}");
        let bodies = [
            value.clone(),
            format!(r#"{{"name":{value},"scope":"chat"}}"#),
            format!(r#"{{"name":"n","scope":{value}}}"#),
            format!(r#"{{"name":"n","scope":"chat","expires":{value}}}"#),
            format!(r#"{{"name":"n","scope":"chat","token":{value}}}"#),
            format!(r#"{{"name":["#) + &value + "]}",
        ];
        for body in &bodies {
            if let Err(e) = CreateRequest::from_json(body.as_bytes(), now) {
                assert!(!echoes(e.to_string()), "a create error echoes a value");
            }
        }
        let grace = format!(r#"{{"grace":{value}}}"#);
        if let Err(e) = RotateRequest::from_json("pico", grace.as_bytes()) {
            assert!(!echoes(e.to_string()), "a rotate error echoes a value");
        }
        let _ = TokenKey::parse(text).map_err(|e| e.to_string());
        if let Ok(id) = format::parse(text) {
            assert_eq!(text.len(), TOKEN_LEN);
            assert!(text.starts_with(PREFIX));
            assert_eq!(&text[PREFIX.len()..PREFIX.len() + 12], id.as_str());
            assert!(TokenId::parse(id.as_str()).is_ok(), "a parsed token's id is a valid id");
        }
        let _ = TokenId::parse(text);
        let _ = TokenName::parse(text).map_err(|e| e.to_string());
        let _ = parse_duration(text).map_err(|e| e.to_string());
        return;
    }
    let token = build(rest);
    assert_eq!(token.len(), TOKEN_LEN);
    let id = format::parse(&token).unwrap_or_else(|e| panic!("a well-formed token is refused: {e}"));
    assert_eq!(id.as_str(), &token[PREFIX.len()..PREFIX.len() + 12]);
    // Change one character (never the prefix) to another one.
    let at = PREFIX.len() + usize::from(rest.first().copied().unwrap_or(0)) % (TOKEN_LEN - PREFIX.len());
    let old = token.as_bytes()[at];
    let pool: &[u8] =
        if old == b'_' { B64URL } else { b"abcdefghijklmnopqrstuvwxyz234567ABCDEFGHIJKLMNOPQRSTUVWXYZ01-_" };
    let mut new = pool[usize::from(rest.get(1).copied().unwrap_or(0)) % pool.len()];
    if new == old {
        new = if old == b'a' { b'b' } else { b'a' };
    }
    let mut mutated = token.into_bytes();
    mutated[at] = new;
    let mutated = String::from_utf8(mutated).expect("ASCII");
    assert!(format::parse(&mutated).is_err(), "a token with one character changed at {at} is accepted");
});
