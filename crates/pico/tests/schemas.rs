//! The published JSON Schemas (`docs/protocol/schemas/<type>.schema.json`) against the
//! implementation: every frame type of `kind` has a schema; every server frame the crate
//! builds validates against its schema and parses back unchanged; a valid client frame
//! per type validates and decodes with `decode_client`; every schema rejects malformed
//! frames (a missing required field, a wrong type) that the decoder rejects too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use picoclaw_pico::{ClientFrame, Frame, decode_client, kind, message_kind};
use serde_json::{Value, json};

/// Frame types clients send (`decode_client` accepts them).
const CLIENT: [&str; 4] = [kind::MESSAGE_SEND, kind::MEDIA_SEND, kind::MESSAGE_DELETE, kind::PING];

const PNG: &str = "data:image/png;base64,iVBORw0KGgo=";

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol/schemas")
}

/// The frame type names of the `kind` module, read from its source so a new constant
/// without a schema fails this test.
fn kinds() -> BTreeSet<String> {
    let source = include_str!("../src/lib.rs");
    let start = source.find("pub mod kind {").expect("kind module");
    let body = &source[start..];
    let body = &body[..body.find("\n}").expect("end of kind module")];
    body.lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter_map(|line| line.split('"').nth(1))
        .map(str::to_owned)
        .collect()
}

fn validator(kind: &str) -> jsonschema::Validator {
    let path = schema_dir().join(format!("{kind}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{}", path.display());
    jsonschema::meta::validate(&schema)
        .unwrap_or_else(|e| panic!("{}: not a valid schema: {e}", path.display()));
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_valid(text: &str) -> Value {
    let value: Value = serde_json::from_str(text).unwrap();
    let kind = value["type"].as_str().unwrap().to_owned();
    if let Err(e) = validator(&kind).validate(&value) {
        panic!("{text} does not validate against {kind}.schema.json: {e}");
    }
    value
}

fn assert_invalid(kind: &str, value: &Value) {
    assert!(!validator(kind).is_valid(value), "{kind}.schema.json accepts the malformed {value}");
}

#[test]
fn every_frame_type_has_a_schema_and_every_schema_a_frame_type() {
    let kinds = kinds();
    assert!(kinds.len() >= 11, "{kinds:?}");
    let files: BTreeSet<String> = std::fs::read_dir(schema_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".schema.json").map(str::to_owned))
        .collect();
    let missing: Vec<_> = kinds.difference(&files).collect();
    assert!(missing.is_empty(), "frame types without docs/protocol/schemas/<type>.schema.json: {missing:?}");
    let stale: Vec<_> = files.difference(&kinds).collect();
    assert!(stale.is_empty(), "schemas for no frame type of picoclaw_pico::kind: {stale:?}");
    for kind in &kinds {
        validator(kind);
    }
}

/// Every server frame constructor, with the fields the gateway adds (`model_name`,
/// `kind: thought`, `reply_to`, `seq`, `cancelled`, `retry_after_ms`).
fn server_frames() -> Vec<Frame> {
    vec![
        Frame::typing_start("s1"),
        Frame::typing_start("s1").with("reply_to", "r1").with("seq", 1),
        Frame::typing_stop("s1"),
        Frame::typing_stop("s1").with("reply_to", "r1").with("seq", 9),
        Frame::message_create("s1", "m1", ""),
        Frame::message_create("s1", "m1", "Hel")
            .with("model_name", "echo")
            .with("reply_to", "r1")
            .with("seq", 2),
        Frame::message_create("s1", "m1-thought", "hmm")
            .with("kind", message_kind::THOUGHT)
            .with("thought", true)
            .with("model_name", "gpt"),
        Frame::message_update("s1", "m1", "Hello").with("model_name", "echo").with("seq", 3),
        Frame::message_update("s1", "m1-thought", "hmm, so")
            .with("kind", message_kind::THOUGHT)
            .with("thought", true),
        Frame::server(kind::MESSAGE_CREATE, "s1")
            .with("message_id", "t1")
            .with("content", "")
            .with("kind", message_kind::TOOL_CALLS)
            .with("tool_calls", json!([{ "name": "x" }])),
        Frame::message_delete("s1", "m1"),
        Frame::message_delete("s1", "m1").with("reply_to", "r1").with("seq", 4),
        Frame::message_done("s1", "m1"),
        Frame::message_done("s1", "m1").with("reply_to", "r1").with("seq", 5).with("cancelled", true),
        Frame::pong("s1", Some("p1".into())),
        Frame::pong("s1", None),
        Frame::error(Some("s1"), "empty_content", "message content is empty", Some("r1")),
        Frame::error(None, "invalid_message", "frame is not a JSON object", None),
        Frame::error(Some("s1"), "rate_limited", "slow down", Some("r1")).with("retry_after_ms", 1500),
        Frame::error(Some("s1"), "replay_gap", "some frames after last_seq are no longer buffered", None),
        Frame::error(Some("s1"), "provider_timeout", "the model timed out", Some("r1")).with("seq", 6),
    ]
}

#[test]
fn server_frames_validate_and_round_trip() {
    let mut seen = BTreeSet::new();
    for frame in server_frames() {
        let text = frame.encode();
        let value = assert_valid(&text);
        assert_eq!(value["type"], frame.kind.as_str());
        assert_eq!(Frame::parse(&text).unwrap(), frame, "{text}");
        seen.insert(frame.kind.clone());
        // A server frame is never accepted from a client, except message.delete.
        if frame.kind != kind::MESSAGE_DELETE {
            assert_eq!(decode_client(&text).unwrap_err().code(), "unknown_type", "{text}");
        }
    }
    let client_only = [kind::MESSAGE_SEND, kind::MEDIA_SEND, kind::PING];
    let server: BTreeSet<String> =
        kinds().into_iter().filter(|k| !client_only.contains(&k.as_str())).collect();
    assert_eq!(seen, server, "server frame types without an example here");
}

/// A valid example per client frame type.
fn client_frames() -> Vec<Value> {
    vec![
        json!({ "type": "message.send", "id": "r1", "session_id": "s1", "payload": { "content": "hi" } }),
        json!({ "type": "message.send", "payload": { "content": "look", "media": PNG } }),
        json!({ "type": "message.send", "id": "r2", "timestamp": 1_700_000_000_000_i64, "payload": {
            "media": [PNG, { "data_url": PNG }],
            "attachments": [{ "type": "image", "url": PNG }, { "type": "file", "url": "/pico/media/a" }],
        } }),
        json!({ "type": "media.send", "id": "r3", "payload": { "content": "", "media": [PNG] } }),
        json!({ "type": "message.delete", "id": "d1", "payload": { "message_id": "m1" } }),
        json!({ "type": "ping", "id": "p1" }),
        json!({ "type": "ping" }),
    ]
}

#[test]
fn client_frames_validate_and_decode() {
    let mut seen = BTreeSet::new();
    for value in client_frames() {
        let text = value.to_string();
        assert_valid(&text);
        let decoded = decode_client(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let kind = value["type"].as_str().unwrap();
        let matches = match &decoded {
            ClientFrame::Send { id, .. } => {
                (kind == kind::MESSAGE_SEND || kind == kind::MEDIA_SEND)
                    && id.as_deref() == value["id"].as_str()
            }
            ClientFrame::Delete { message_id, .. } => {
                kind == kind::MESSAGE_DELETE
                    && Some(message_id.as_str()) == value["payload"]["message_id"].as_str()
            }
            ClientFrame::Ping { id } => kind == kind::PING && id.as_deref() == value["id"].as_str(),
        };
        assert!(matches, "{text} decoded as {decoded:?}");
        seen.insert(kind.to_owned());
    }
    assert_eq!(seen, CLIENT.iter().map(|k| k.to_string()).collect(), "client frame types without an example");
}

#[test]
fn client_schemas_reject_what_the_decoder_rejects() {
    for (value, code) in [
        (json!({ "payload": { "content": "hi" } }), "invalid_message"),
        (json!({ "type": "message.send", "id": 7, "payload": { "content": "hi" } }), "invalid_message"),
        (
            json!({ "type": "message.send", "timestamp": "now", "payload": { "content": "hi" } }),
            "invalid_message",
        ),
        (json!({ "type": "message.send", "payload": { "content": "  " } }), "empty_content"),
        (json!({ "type": "message.send" }), "empty_content"),
        (json!({ "type": "message.send", "payload": { "media": 5 } }), "invalid_media"),
        (
            json!({ "type": "message.send", "payload": { "media": "data:image/svg+xml;base64,PHN2Zz4=" } }),
            "invalid_media",
        ),
        (
            json!({ "type": "media.send", "payload": { "media": ["https://example.com/a.png"] } }),
            "invalid_media",
        ),
        (json!({ "type": "media.send", "session_id": 1, "payload": { "content": "hi" } }), "invalid_message"),
        (json!({ "type": "message.delete", "payload": {} }), "invalid_message"),
        (json!({ "type": "message.delete", "payload": { "message_id": 3 } }), "invalid_message"),
        (json!({ "type": "message.delete", "payload": { "message_id": " " } }), "invalid_message"),
        (json!({ "type": "ping", "id": 1 }), "invalid_message"),
        (json!({ "type": "ping", "payload": [] }), "invalid_message"),
    ] {
        let kind = value["type"].as_str().unwrap_or(kind::MESSAGE_SEND).to_owned();
        assert_invalid(&kind, &value);
        let text = value.to_string();
        assert_eq!(decode_client(&text).map_err(|e| e.code()), Err(code), "{text}");
    }
}

#[test]
fn server_schemas_reject_malformed_frames() {
    for kind in kinds().iter().filter(|k| !CLIENT.contains(&k.as_str()) || k.as_str() == kind::MESSAGE_DELETE)
    {
        // Wrong types in the envelope, and another frame's type.
        assert_invalid(kind, &json!({ "type": kind, "session_id": "s1", "timestamp": "now" }));
        assert_invalid(kind, &json!({ "type": kind, "session_id": 5, "timestamp": 1 }));
        assert_invalid(kind, &json!({ "type": "nope", "session_id": "s1", "timestamp": 1 }));
    }
    for value in [
        json!({ "type": "typing.start", "timestamp": 1 }),
        json!({ "type": "typing.stop", "session_id": "s1" }),
        json!({ "type": "typing.start", "session_id": "s1", "timestamp": 1, "payload": { "seq": "1" } }),
        json!({ "type": "pong", "session_id": "s1", "timestamp": 1, "id": 3 }),
        json!({ "type": "message.create", "session_id": "s1", "timestamp": 1, "payload": { "content": "x" } }),
        json!({ "type": "message.create", "session_id": "s1", "timestamp": 1, "payload": { "message_id": "m", "content": 1 } }),
        json!({ "type": "message.update", "session_id": "s1", "timestamp": 1, "payload": { "message_id": "m" } }),
        json!({ "type": "message.update", "session_id": "s1", "timestamp": 1,
            "payload": { "message_id": "m", "content": "x", "kind": "answer" } }),
        json!({ "type": "message.delete", "session_id": "s1", "timestamp": 1 }),
        json!({ "type": "message.done", "session_id": "s1", "timestamp": 1, "payload": { "cancelled": true } }),
        json!({ "type": "message.done", "session_id": "s1", "timestamp": 1,
            "payload": { "message_id": "m", "cancelled": "yes" } }),
        json!({ "type": "error", "timestamp": 1, "payload": { "message": "no code" } }),
        json!({ "type": "error", "timestamp": 1, "payload": { "code": "busy", "message": "x", "request_id": 4 } }),
        json!({ "type": "error", "timestamp": 1, "payload": { "code": "rate_limited", "message": "x", "retry_after_ms": -1 } }),
    ] {
        assert_invalid(value["type"].as_str().unwrap(), &value);
    }
}
