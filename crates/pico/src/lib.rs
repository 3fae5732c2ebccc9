//! The Pico protocol: one JSON object per WebSocket text frame.
//!
//! Envelope (`type`, `id`, `session_id`, `timestamp` in ms, `payload`) compatible with
//! PicoClaw v1. Client → server: `message.send` (alias `media.send`; inline images in
//! `media` and `attachments`, checked as upstream checks them), `message.delete` (cancel
//! an answer), `ping`. Server → client: `typing.start`, `message.create`,
//! `message.update` (full text so far; `kind: thought` for reasoning), `message.delete`,
//! `typing.stop`, `pong`, `error`; with `?protocol=2` also `message.done`, and every reply
//! carries `reply_to` and `seq` in its payload (extra payload fields a v1 client ignores).
//!
//! With the `client` feature, `client` dials a remote Pico server and answers its messages
//! (`channels.pico_client`), over `dial` (TLS and WebSocket dialing); `conformance` runs
//! the protocol's checks against any Pico server (`picoclaw conformance`).
//!
//! [`decode_client`] turns text into a [`ClientFrame`] or a [`DecodeError`] whose
//! [`code`](DecodeError::code) is the protocol error code (`invalid_message`,
//! `unknown_type`, `empty_content`, `invalid_media`).

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod conformance;
#[cfg(feature = "client")]
pub mod dial;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Frame type names.
pub mod kind {
    /// Client sends a chat message.
    pub const MESSAGE_SEND: &str = "message.send";
    /// Alias of `message.send` (upstream sends media through it).
    pub const MEDIA_SEND: &str = "media.send";
    /// Application-level ping.
    pub const PING: &str = "ping";
    /// Reply to `ping`, echoing its `id`.
    pub const PONG: &str = "pong";
    /// The agent started working on a message.
    pub const TYPING_START: &str = "typing.start";
    /// The agent finished.
    pub const TYPING_STOP: &str = "typing.stop";
    /// A new message bubble.
    pub const MESSAGE_CREATE: &str = "message.create";
    /// The full text so far of an existing bubble.
    pub const MESSAGE_UPDATE: &str = "message.update";
    /// A message bubble is withdrawn (`payload.message_id`): upstream sends it for a
    /// cancelled partial answer or a dismissed tool-progress bubble.
    pub const MESSAGE_DELETE: &str = "message.delete";
    /// End of turn (protocol 2 only).
    pub const MESSAGE_DONE: &str = "message.done";
    /// An error; the socket stays open.
    pub const ERROR: &str = "error";
}

/// Values of `payload.kind` on server messages that are not the answer itself (upstream
/// marks reasoning and tool-call bubbles with them).
pub mod message_kind {
    /// The model's reasoning (upstream also sets the legacy `thought: true`).
    pub const THOUGHT: &str = "thought";
    /// The tool calls the model made (with `payload.tool_calls`).
    pub const TOOL_CALLS: &str = "tool_calls";
}

/// The envelope of every frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Frame {
    /// Frame type, e.g. `message.send`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Client-chosen id (requests) — echoed by `pong` and carried as `reply_to`/`request_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The chat session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Unix time in milliseconds; always set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Type-specific fields.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub payload: Map<String, Value>,
}

impl Frame {
    /// A server frame of `kind` for `session_id`, stamped now.
    pub fn server(kind: &str, session_id: &str) -> Frame {
        Frame {
            kind: kind.to_owned(),
            id: None,
            session_id: Some(session_id.to_owned()),
            timestamp: Some(now_ms()),
            payload: Map::new(),
        }
    }

    /// Adds a payload field (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Frame {
        self.payload.insert(key.to_owned(), value.into());
        self
    }

    /// `typing.start`.
    pub fn typing_start(session_id: &str) -> Frame {
        Frame::server(kind::TYPING_START, session_id)
    }

    /// `typing.stop`.
    pub fn typing_stop(session_id: &str) -> Frame {
        Frame::server(kind::TYPING_STOP, session_id)
    }

    /// `message.create` with the first text of a new bubble.
    pub fn message_create(session_id: &str, message_id: &str, content: &str) -> Frame {
        Frame::server(kind::MESSAGE_CREATE, session_id)
            .with("message_id", message_id)
            .with("content", content)
    }

    /// `message.update` with the full text so far.
    pub fn message_update(session_id: &str, message_id: &str, content: &str) -> Frame {
        Frame::server(kind::MESSAGE_UPDATE, session_id)
            .with("message_id", message_id)
            .with("content", content)
    }

    /// `message.delete`: the bubble `message_id` is withdrawn (a cancelled answer).
    pub fn message_delete(session_id: &str, message_id: &str) -> Frame {
        Frame::server(kind::MESSAGE_DELETE, session_id).with("message_id", message_id)
    }

    /// `message.done` (protocol 2): the turn is complete.
    pub fn message_done(session_id: &str, message_id: &str) -> Frame {
        Frame::server(kind::MESSAGE_DONE, session_id).with("message_id", message_id)
    }

    /// `pong` echoing the ping's `id`.
    pub fn pong(session_id: &str, id: Option<String>) -> Frame {
        Frame { id, ..Frame::server(kind::PONG, session_id) }
    }

    /// `error` with a code, a message and the request id when known.
    pub fn error(session_id: Option<&str>, code: &str, message: &str, request_id: Option<&str>) -> Frame {
        let mut frame = Frame {
            kind: kind::ERROR.to_owned(),
            id: None,
            session_id: session_id.map(str::to_owned),
            timestamp: Some(now_ms()),
            payload: Map::new(),
        }
        .with("code", code)
        .with("message", message);
        if let Some(id) = request_id {
            frame = frame.with("request_id", id);
        }
        frame
    }

    /// JSON text of the frame.
    pub fn encode(&self) -> String {
        // Serializing a struct of strings, numbers and a JSON map cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }

    /// Parses any frame (used by clients reading server frames).
    pub fn parse(text: &str) -> Result<Frame, DecodeError> {
        let value: Value = serde_json::from_str(text).map_err(|_| DecodeError::InvalidMessage)?;
        if !value.is_object() {
            return Err(DecodeError::InvalidMessage);
        }
        serde_json::from_value(value).map_err(|_| DecodeError::InvalidMessage)
    }

    /// True for a message that is not answer text: `payload.kind` `thought` or
    /// `tool_calls` (any case), or the legacy `thought: true`.
    pub fn is_thought_or_tool_calls(&self) -> bool {
        let kind = self.text("kind").map(str::trim).unwrap_or("");
        kind.eq_ignore_ascii_case(message_kind::THOUGHT)
            || kind.eq_ignore_ascii_case(message_kind::TOOL_CALLS)
            || self.payload.get("thought").and_then(Value::as_bool) == Some(true)
    }

    /// A string payload field.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.payload.get(key).and_then(Value::as_str)
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A frame a client may send.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `message.send` / `media.send`.
    Send {
        /// The client's id for this request.
        id: Option<String>,
        /// Envelope session id (overrides the connection's, as upstream).
        session_id: Option<String>,
        /// The text.
        content: String,
        /// Inline media (`data:` URLs), passed to agents that understand them.
        media: Vec<String>,
    },
    /// `message.delete`: cancel the answer `message_id` (the answer's `message_id`, or the
    /// `id` of the `message.send` it answers) while it runs.
    Delete {
        /// The client's id for this request.
        id: Option<String>,
        /// Which answer.
        message_id: String,
    },
    /// `ping`.
    Ping {
        /// Echoed by the `pong`.
        id: Option<String>,
    },
}

/// Why a client frame was rejected. The socket stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a JSON object with a string `type`.
    #[error("frame is not a JSON object with a string \"type\"")]
    InvalidMessage,
    /// A `type` the server does not accept from clients.
    #[error("unknown frame type {0:?}; expected message.send, media.send, message.delete or ping")]
    UnknownType(String),
    /// A required payload field is missing or not a string.
    #[error("payload.{field} must be a non-empty string")]
    MissingField {
        /// The field.
        field: &'static str,
        /// The request id, if the frame had one.
        request_id: Option<String>,
    },
    /// `message.send` without text or media.
    #[error("message content is empty")]
    EmptyContent {
        /// The request id, if the frame had one.
        request_id: Option<String>,
    },
    /// `media` or `attachments` hold something other than inline images upstream accepts.
    #[error("{place}{problem}")]
    InvalidMedia {
        /// The request id, if the frame had one.
        request_id: Option<String>,
        /// Which item.
        place: MediaPlace,
        /// What is wrong with it.
        problem: MediaProblem,
    },
}

/// Where in a `message.send` payload a media problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaPlace {
    /// `payload.media` itself (a single string, or not a list).
    Media,
    /// `payload.media[i]`.
    MediaItem(usize),
    /// `payload.attachments` itself.
    Attachments,
    /// `payload.attachments[i]`.
    Attachment(usize),
}

impl std::fmt::Display for MediaPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaPlace::Media | MediaPlace::Attachments => Ok(()),
            MediaPlace::MediaItem(i) => write!(f, "media[{i}]: "),
            MediaPlace::Attachment(i) => write!(f, "attachments[{i}]: "),
        }
    }
}

/// What is wrong with an inline image (the messages are upstream's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaProblem {
    /// `media` is neither a string nor a list.
    #[error("media must be a string or array of strings")]
    NotStringOrList,
    /// `attachments` is not a list.
    #[error("attachments must be an array")]
    AttachmentsNotList,
    /// An attachment is not an object.
    #[error("attachment must be an object")]
    AttachmentNotObject,
    /// A `media` item is not a string (or an object with `url`/`data_url`).
    #[error("image payload must be a string or object")]
    NotStringOrObject,
    /// An image attachment has neither `url` nor `data_url`.
    #[error("image payload must include url or data_url")]
    NoUrl,
    /// An empty string.
    #[error("image payload is empty")]
    Empty,
    /// Not a `data:image/…` URL (remote URLs, `text/plain`, …).
    #[error("only inline image data URLs are supported")]
    NotInlineImage,
    /// No `,`, or nothing after it.
    #[error("image data URL is malformed")]
    Malformed,
    /// No `;base64` in the header.
    #[error("image data URL must be base64 encoded")]
    NotBase64,
    /// An image type other than JPEG, PNG, GIF, WebP and BMP (SVG among them).
    #[error("unsupported image format: {0}")]
    UnsupportedFormat(String),
    /// Larger than [`MAX_MEDIA_BYTES`] decoded.
    #[error("image exceeds {MAX_MEDIA_BYTES} byte limit")]
    TooLarge,
    /// The data does not decode as (padded, standard) base64.
    #[error("invalid base64 image data")]
    BadBase64,
    /// More than [`MAX_MEDIA_ITEMS`] images in one message.
    #[error("more than {MAX_MEDIA_ITEMS} images in one message")]
    TooMany,
}

/// Image types accepted inline (upstream's list).
const IMAGE_TYPES: [&str; 5] = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"];

/// Largest inline image, decoded (upstream's default media size; a frame is bounded by
/// `channels.pico.max_frame_bytes` first).
pub const MAX_MEDIA_BYTES: usize = 20 * 1024 * 1024;

/// Most inline images in one message (`media` and `attachments` together).
pub const MAX_MEDIA_ITEMS: usize = 16;

/// Longest media type echoed back in an error message.
const MAX_ECHOED_MEDIA_TYPE: usize = 64;

/// Checks one inline image as upstream does: `data:image/<jpeg|png|gif|webp|bmp>;base64,…`
/// with non-empty data that decodes.
pub fn check_inline_image(url: &str) -> Result<(), MediaProblem> {
    decode_inline_image(url).map(|_| ())
}

/// True for the raster image types upstream accepts inline (`image/jpeg`, `png`, `gif`,
/// `webp`, `bmp`) — never SVG, which can carry script.
pub fn is_raster_image_type(content_type: &str) -> bool {
    IMAGE_TYPES.contains(&content_type)
}

/// An inline image checked as [`check_inline_image`] checks it, decoded: its media type
/// (one of the raster types upstream accepts) and its bytes (never empty, at most
/// [`MAX_MEDIA_BYTES`]).
pub fn decode_inline_image(url: &str) -> Result<(&str, Vec<u8>), MediaProblem> {
    use base64::Engine as _;
    if url.is_empty() {
        return Err(MediaProblem::Empty);
    }
    if !url.starts_with("data:image/") {
        return Err(MediaProblem::NotInlineImage);
    }
    let Some((header, data)) = url.split_once(',') else { return Err(MediaProblem::Malformed) };
    let data = data.trim();
    if data.is_empty() {
        return Err(MediaProblem::Malformed);
    }
    if !header.contains(";base64") {
        return Err(MediaProblem::NotBase64);
    }
    let mime = header.trim_start_matches("data:").split(';').next().unwrap_or("");
    if !IMAGE_TYPES.contains(&mime) {
        return Err(MediaProblem::UnsupportedFormat(mime.chars().take(MAX_ECHOED_MEDIA_TYPE).collect()));
    }
    if data.len() / 4 * 3 > MAX_MEDIA_BYTES {
        return Err(MediaProblem::TooLarge);
    }
    match base64::engine::general_purpose::STANDARD.decode(data) {
        Ok(bytes) if bytes.len() > MAX_MEDIA_BYTES => Err(MediaProblem::TooLarge),
        Ok(bytes) if !bytes.is_empty() => Ok((mime, bytes)),
        Ok(_) => Err(MediaProblem::Malformed),
        Err(_) => Err(MediaProblem::BadBase64),
    }
}

/// The inline images of a `message.send` payload: `media` (a string or a list of strings)
/// then the image `attachments` (`{type, url | data_url}`; other types and non-`data:`
/// URLs are skipped, as upstream does). Every image is checked with
/// [`check_inline_image`].
pub fn inline_images(payload: &Map<String, Value>) -> Result<Vec<String>, (MediaPlace, MediaProblem)> {
    let mut out = Vec::new();
    let push = |out: &mut Vec<String>, place: MediaPlace, url: &str| {
        check_inline_image(url).map_err(|p| (place, p))?;
        if out.len() >= MAX_MEDIA_ITEMS {
            return Err((place, MediaProblem::TooMany));
        }
        out.push(url.to_owned());
        Ok(())
    };
    match payload.get("media") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => push(&mut out, MediaPlace::Media, s.trim())?,
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let place = MediaPlace::MediaItem(i);
                let url = image_value(item).map_err(|p| (place, p))?;
                push(&mut out, place, url)?;
            }
        }
        Some(_) => return Err((MediaPlace::Media, MediaProblem::NotStringOrList)),
    }
    match payload.get("attachments") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let place = MediaPlace::Attachment(i);
                let Value::Object(attachment) = item else {
                    return Err((place, MediaProblem::AttachmentNotObject));
                };
                let kind = attachment.get("type").and_then(Value::as_str).unwrap_or("").trim();
                let image = kind.eq_ignore_ascii_case("image");
                if !kind.is_empty() && !image {
                    continue;
                }
                let url = match image_value(item) {
                    Ok(url) => url,
                    Err(p) if image => return Err((place, p)),
                    Err(_) => continue,
                };
                if url.starts_with("data:") {
                    push(&mut out, place, url)?;
                }
            }
        }
        Some(_) => return Err((MediaPlace::Attachments, MediaProblem::AttachmentsNotList)),
    }
    Ok(out)
}

/// The URL of a `media` item or an attachment: a string, or an object's `url`/`data_url`.
fn image_value(item: &Value) -> Result<&str, MediaProblem> {
    match item {
        Value::String(s) if s.trim().is_empty() => Err(MediaProblem::Empty),
        Value::String(s) => Ok(s.trim()),
        Value::Object(o) => ["url", "data_url"]
            .iter()
            .filter_map(|k| o.get(*k).and_then(Value::as_str).map(str::trim))
            .find(|s| !s.is_empty())
            .ok_or(MediaProblem::NoUrl),
        _ => Err(MediaProblem::NotStringOrObject),
    }
}

impl DecodeError {
    /// The protocol error code.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::InvalidMessage | DecodeError::MissingField { .. } => "invalid_message",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::EmptyContent { .. } => "empty_content",
            DecodeError::InvalidMedia { .. } => "invalid_media",
        }
    }

    /// The request id to echo, when known.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            DecodeError::EmptyContent { request_id }
            | DecodeError::InvalidMedia { request_id, .. }
            | DecodeError::MissingField { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

/// Longest `message_id` a `message.delete` may name (ids are the server's or the
/// client's own request ids).
const MAX_MESSAGE_ID: usize = 256;

/// Longest unknown `type` echoed back in an error message.
const MAX_ECHOED_TYPE: usize = 64;

/// Decodes a client frame.
pub fn decode_client(text: &str) -> Result<ClientFrame, DecodeError> {
    let frame = Frame::parse(text)?;
    match frame.kind.as_str() {
        kind::MESSAGE_SEND | kind::MEDIA_SEND => {
            let request_id = frame.id.clone();
            let content = frame.payload.get("content").and_then(Value::as_str).unwrap_or("").to_owned();
            let media = inline_images(&frame.payload).map_err(|(place, problem)| {
                DecodeError::InvalidMedia { request_id: request_id.clone(), place, problem }
            })?;
            if content.trim().is_empty() && media.is_empty() {
                return Err(DecodeError::EmptyContent { request_id });
            }
            Ok(ClientFrame::Send { id: frame.id, session_id: frame.session_id, content, media })
        }
        kind::MESSAGE_DELETE => match frame.text("message_id").map(str::trim) {
            Some(message_id) if !message_id.is_empty() && message_id.len() <= MAX_MESSAGE_ID => {
                Ok(ClientFrame::Delete { message_id: message_id.to_owned(), id: frame.id })
            }
            _ => Err(DecodeError::MissingField { field: "message_id", request_id: frame.id }),
        },
        kind::PING => Ok(ClientFrame::Ping { id: frame.id }),
        other => Err(DecodeError::UnknownType(other.chars().take(MAX_ECHOED_TYPE).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_v1_send_and_ping() {
        let f = decode_client(r#"{"type":"message.send","id":"r1","payload":{"content":"hi"}}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Send {
                id: Some("r1".into()),
                session_id: None,
                content: "hi".into(),
                media: vec![]
            }
        );
        assert_eq!(
            decode_client(r#"{"type":"ping","id":"p"}"#).unwrap(),
            ClientFrame::Ping { id: Some("p".into()) }
        );
    }

    #[test]
    fn error_codes_match_upstream() {
        assert_eq!(decode_client("not json").unwrap_err().code(), "invalid_message");
        assert_eq!(decode_client("[1]").unwrap_err().code(), "invalid_message");
        assert_eq!(decode_client(r#"{"type":"typing.start"}"#).unwrap_err().code(), "unknown_type");
        let e = decode_client(r#"{"type":"message.send","id":"r9","payload":{"content":"  "}}"#).unwrap_err();
        assert_eq!((e.code(), e.request_id()), ("empty_content", Some("r9")));
        let e = decode_client(r#"{"type":"message.send","id":"m","payload":{"media":5}}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_media");
    }

    const PNG: &str = "data:image/png;base64,iVBORw0KGgo=";

    fn media_error(payload: Value) -> (String, Option<String>) {
        let text = json_frame(payload);
        let e = decode_client(&text).unwrap_err();
        assert_eq!(e.code(), "invalid_media", "{text}");
        (e.to_string(), e.request_id().map(str::to_owned))
    }

    fn json_frame(payload: Value) -> String {
        serde_json::json!({ "type": "message.send", "id": "r1", "payload": payload }).to_string()
    }

    #[test]
    fn inline_images_are_checked_like_upstream() {
        use serde_json::json;
        for (payload, message) in [
            (
                json!({ "media": "data:image/svg+xml;base64,PHN2Zz4=" }),
                "unsupported image format: image/svg+xml",
            ),
            (
                json!({ "media": ["data:text/plain;base64,aGk="] }),
                "media[0]: only inline image data URLs are supported",
            ),
            (
                json!({ "media": [PNG, "data:image/png,rawbytes"] }),
                "media[1]: image data URL must be base64 encoded",
            ),
            (json!({ "media": "data:image/png;base64,@@@@" }), "invalid base64 image data"),
            (json!({ "media": "data:image/png;base64," }), "image data URL is malformed"),
            (json!({ "media": "data:image/png;base64" }), "image data URL is malformed"),
            (json!({ "media": "https://example.com/a.png" }), "only inline image data URLs are supported"),
            (json!({ "media": [""] }), "media[0]: image payload is empty"),
            (
                json!({ "attachments": [{ "type": "image" }] }),
                "attachments[0]: image payload must include url or data_url",
            ),
            (
                json!({ "attachments": [{ "type": "image", "url": "data:image/gif;base64,%%" }] }),
                "attachments[0]: invalid base64 image data",
            ),
            (json!({ "attachments": {} }), "attachments must be an array"),
            (json!({ "attachments": [3] }), "attachments[0]: attachment must be an object"),
            (
                json!({ "media": vec![PNG; MAX_MEDIA_ITEMS + 1] }),
                "media[16]: more than 16 images in one message",
            ),
        ] {
            assert_eq!(media_error(payload), (message.to_owned(), Some("r1".to_owned())));
        }
    }

    #[test]
    fn attachments_add_images_and_skip_the_rest() {
        use serde_json::json;
        let text = json_frame(json!({ "content": "look", "media": PNG, "attachments": [
            { "type": "image", "data_url": PNG },
            { "type": "file", "url": "data:text/plain;base64,aGk=" },
            { "url": "/pico/media/abc" },
            { "type": "image", "url": "https://example.com/x.png" },
        ] }));
        let Ok(ClientFrame::Send { media, .. }) = decode_client(&text) else { panic!("{text}") };
        assert_eq!(media, vec![PNG.to_owned(), PNG.to_owned()]);
        // Media alone is a message.
        assert!(decode_client(&json_frame(json!({ "media": [PNG] }))).is_ok());
    }

    #[test]
    fn server_frames_round_trip() {
        let f = Frame::message_create("s1", "m1", "Hel");
        let back = Frame::parse(&f.encode()).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.text("content"), Some("Hel"));
        let pong = Frame::pong("s1", Some("p1".into()));
        assert!(pong.encode().contains("\"id\":\"p1\""));
        let err = Frame::error(Some("s1"), "empty_content", "message content is empty", Some("r1"));
        assert!(err.encode().contains("\"request_id\":\"r1\""));
    }
}
