//! Property tests: every frame encodes to text that parses back to the same frame, and
//! every client frame the server accepts survives an encode/decode round trip.

use picoclaw_pico::{ClientFrame, Frame, decode_client};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// JSON leaves without floats (whose shortest text form is covered by serde_json itself).
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        prop_oneof![
            Just("message.send".to_owned()),
            Just("message.create".to_owned()),
            Just("message.update".to_owned()),
            Just("ping".to_owned()),
            any::<String>()
        ],
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<i64>()),
        prop::collection::btree_map(any::<String>(), json_value(), 0..5),
    )
        .prop_map(|(kind, id, session_id, timestamp, payload)| Frame {
            kind,
            id,
            session_id,
            timestamp,
            payload: payload.into_iter().collect::<Map<String, Value>>(),
        })
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    // Inline images the server accepts: an allowed type, standard base64 of some bytes.
    let data_url = (
        prop::sample::select(vec!["png", "jpeg", "gif", "webp", "bmp"]),
        prop::collection::vec(any::<u8>(), 1..30),
    )
        .prop_map(|(kind, bytes)| {
            use base64::Engine as _;
            format!("data:image/{kind};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
        });
    prop_oneof![
        (
            proptest::option::of(any::<String>()),
            proptest::option::of(any::<String>()),
            any::<String>(),
            prop::collection::vec(data_url, 0..3),
        )
            .prop_filter("the server rejects a send with neither text nor media", |(_, _, c, m)| {
                !c.trim().is_empty() || !m.is_empty()
            })
            .prop_map(|(id, session_id, content, media)| ClientFrame::Send {
                id,
                session_id,
                content,
                media
            }),
        proptest::option::of(any::<String>()).prop_map(|id| ClientFrame::Ping { id }),
        (proptest::option::of(any::<String>()), "[A-Za-z0-9_-]{1,40}")
            .prop_map(|(id, message_id)| ClientFrame::Delete { id, message_id }),
    ]
}

/// The wire form a client would send for `frame`.
fn encode_client(frame: &ClientFrame) -> String {
    match frame {
        ClientFrame::Send { id, session_id, content, media } => json!({
            "type": "message.send",
            "id": id,
            "session_id": session_id,
            "timestamp": 1_700_000_000_000_i64,
            "payload": { "content": content, "media": media },
        })
        .to_string(),
        ClientFrame::Ping { id } => json!({ "type": "ping", "id": id }).to_string(),
        ClientFrame::Delete { id, message_id } => {
            json!({ "type": "message.delete", "id": id, "payload": { "message_id": message_id } }).to_string()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_frame_round_trips(f in frame()) {
        let text = f.encode();
        let back = Frame::parse(&text).expect("an encoded frame parses");
        prop_assert_eq!(&back, &f);
        prop_assert_eq!(back.encode(), text, "encoding is stable");
    }

    #[test]
    fn client_frames_round_trip(f in client_frame()) {
        let back = decode_client(&encode_client(&f)).expect("a valid client frame decodes");
        prop_assert_eq!(back, f);
    }

    #[test]
    fn server_builders_round_trip(session in any::<String>(), message in any::<String>(), content in any::<String>()) {
        for f in [
            Frame::message_create(&session, &message, &content),
            Frame::message_update(&session, &message, &content),
            Frame::message_done(&session, &message),
            Frame::typing_start(&session),
            Frame::pong(&session, Some(content.clone())),
            Frame::error(Some(&session), "invalid_message", &content, Some(&message)),
        ] {
            let back = Frame::parse(&f.encode()).expect("a server frame parses");
            prop_assert_eq!(back, f);
        }
    }

    #[test]
    fn arbitrary_text_never_panics_and_errors_have_codes(text in any::<String>()) {
        if let Err(e) = decode_client(&text) {
            prop_assert!(["invalid_message", "unknown_type", "empty_content", "invalid_media"].contains(&e.code()));
        }
    }

    #[test]
    fn mangled_frames_never_panic(f in frame(), cut in any::<prop::sample::Index>()) {
        let text = f.encode();
        let mut end = cut.index(text.len() + 1);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let _ = decode_client(&text[..end]);
        let _ = Frame::parse(&text[..end]);
    }
}
