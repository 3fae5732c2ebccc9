//! Pico frame decoding: `Frame::parse` and `decode_client` over arbitrary text.
//!
//! Besides "no panic": a frame that parses re-encodes to text that parses back to the same
//! frame, and a client frame that decodes, re-encoded as `message.send`/`ping`, decodes
//! back to the same client frame. Every rejection carries a protocol error code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picoclaw_pico::{ClientFrame, Frame, decode_client};
use serde_json::{Map, Value, json};

/// Equal JSON, except that floats may differ in their last bits: serde_json parses floats
/// "best effort" (its `float_roundtrip` feature is off), so `5.0e130` can come back one
/// ULP away. No Pico field is a float; this only concerns opaque extra payload fields.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = Frame::parse(text) {
        let encoded = frame.encode();
        let again = Frame::parse(&encoded).expect("an encoded frame parses");
        assert!(
            again.kind == frame.kind
                && again.id == frame.id
                && again.session_id == frame.session_id
                && again.timestamp == frame.timestamp
                && same(&Value::Object(again.payload.clone()), &Value::Object(frame.payload.clone())),
            "frame changed in an encode/parse round trip: {frame:?} became {again:?}"
        );
    }
    match decode_client(text) {
        Ok(decoded) => {
            let mut frame = Frame::default();
            match &decoded {
                ClientFrame::Send { id, session_id, content, media } => {
                    frame.kind = "message.send".into();
                    frame.id = id.clone();
                    frame.session_id = session_id.clone();
                    let mut payload = Map::new();
                    payload.insert("content".into(), Value::from(content.as_str()));
                    payload.insert("media".into(), json!(media));
                    frame.payload = payload;
                }
                ClientFrame::Delete { id, message_id } => {
                    frame.kind = "message.delete".into();
                    frame.id = id.clone();
                    frame.payload.insert("message_id".into(), Value::from(message_id.as_str()));
                }
                ClientFrame::Ping { id } => {
                    frame.kind = "ping".into();
                    frame.id = id.clone();
                }
            }
            let back = decode_client(&frame.encode()).expect("a re-encoded client frame decodes");
            assert_eq!(back, decoded, "client frame changed in an encode/decode round trip");
        }
        Err(e) => {
            assert!(
                ["invalid_message", "unknown_type", "empty_content", "invalid_media"].contains(&e.code()),
                "unexpected error code {}",
                e.code()
            );
            let _ = e.to_string();
        }
    }
});
