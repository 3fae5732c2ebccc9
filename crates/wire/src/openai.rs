//! The bodies of the OpenAI-compatible endpoints (`POST /v1/chat/completions`,
//! `GET /v1/models`), in OpenAI's own shapes so its client libraries work unchanged.
//! Fields picoclaw does not use are accepted and ignored.

use serde::{Deserialize, Serialize};

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    /// Any model name: the gateway answers with its configured agent and says which.
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation; the last one must be the user's message to answer.
    pub messages: Vec<ChatMessage>,
    /// Answer as server-sent events of `chat.completion.chunk`s.
    #[serde(default)]
    pub stream: bool,
    /// Selects the session when no `X-Picoclaw-Session` header does.
    #[serde(default)]
    pub user: Option<String>,
}

/// One message of the request.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// A string, or a list of parts of which only `text` parts are accepted.
    #[serde(default)]
    pub content: Option<Content>,
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts (`{"type":"text","text":"..."}`).
    Parts(Vec<Part>),
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct Part {
    /// `text`, `image_url`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

/// The answer of a non-streaming request.
#[derive(Debug, Serialize)]
pub struct Completion {
    /// `chatcmpl-...`.
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The agent that answered.
    pub model: String,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Token counts are not measured: all zero.
    pub usage: Usage,
}

/// The one choice of a [`Completion`].
#[derive(Debug, Serialize)]
pub struct Choice {
    /// 0.
    pub index: u32,
    /// The answer.
    pub message: AssistantMessage,
    /// `stop`.
    pub finish_reason: &'static str,
}

/// The assistant's message.
#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    /// `assistant`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

/// Token usage (not measured by picoclaw).
#[derive(Debug, Default, Serialize)]
pub struct Usage {
    /// 0.
    pub prompt_tokens: u64,
    /// 0.
    pub completion_tokens: u64,
    /// 0.
    pub total_tokens: u64,
}

/// One server-sent event of a streaming answer.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    /// The same `chatcmpl-...` on every chunk.
    pub id: &'a str,
    /// `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The agent that answers.
    pub model: &'a str,
    /// One choice.
    pub choices: [ChunkChoice<'a>; 1],
}

/// The one choice of a [`Chunk`].
#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    /// 0.
    pub index: u32,
    /// What is new.
    pub delta: Delta<'a>,
    /// `null` until the last chunk, then `stop`.
    pub finish_reason: Option<&'static str>,
}

/// New text of a [`Chunk`].
#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// The text added since the previous chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    /// The one model the gateway serves.
    pub data: Vec<Model>,
}

/// One model.
#[derive(Debug, Serialize)]
pub struct Model {
    /// Its name (the configured agent).
    pub id: String,
    /// `model`.
    pub object: &'static str,
    /// Unix seconds (the gateway's start).
    pub created: u64,
    /// `picoclaw`.
    pub owned_by: &'static str,
}
