//! Agents that answer chat messages, and the sessions they answer in.
//!
//! - [`Agent`]: the trait every answering backend implements; a reply is a stream of
//!   [`Delta`]s, answer text or reasoning (the gateway turns them into `message.create` +
//!   `message.update` frames with the full text so far, reasoning as a `kind: thought`
//!   bubble).
//! - [`EchoAgent`]: the built-in default when `agents.defaults.model` is unset; replies
//!   with exactly the user's text, needs no network.
//! - [`OpenAiAgent`]: the OpenAI-compatible chat-completions provider, streaming over SSE.
//! - [`Engine`]: what the gateway calls: it checks session ownership, feeds history to the
//!   agent and records each turn.
//! - sessions are kept by a [`Store`] (`picoclaw_store`: SQLite with group commit).
//! - [`pico_client`]: the outbound `channels.pico_client` channel.

use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;

mod echo;
mod engine;
pub mod net;
mod openai;
pub mod pico_client;
mod sse;

pub use echo::EchoAgent;
pub use engine::{
    Engine, HistoryLimits, MAX_SESSION_ID, PICO_CLIENT_PRINCIPAL, RESERVED_PREFIX, SessionError,
    validate_session_id,
};
pub use openai::{MAX_ANSWER_BYTES, OpenAiAgent, ProviderConfig, Timeouts};
pub use pico_client::{PicoClientSnapshot, PicoClientState, PicoClientStatus, spawn_pico_client};
pub use picoclaw_store::{Store, TurnRecord};

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person chatting.
    User,
    /// The agent.
    Assistant,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    /// Speaker.
    pub role: Role,
    /// Text.
    pub content: String,
}

/// What an agent is asked to answer.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    /// The session.
    pub session_id: String,
    /// Earlier turns, oldest first (bounded by the session store).
    pub history: Vec<Turn>,
    /// The new user text.
    pub text: String,
    /// Inline media (`data:` URLs).
    pub media: Vec<String>,
}

/// A failure while answering. `code` is a stable Pico error code; `message` is safe to
/// show a user (it never contains a key or token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    /// Stable code, e.g. `provider_unreachable`, `provider_auth`, `provider_rate_limited`,
    /// `provider_timeout`, `provider_bad_stream`, `provider_error`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl AgentError {
    /// An error with a stable `code` and a user-safe `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> AgentError {
        AgentError { code, message: message.into() }
    }
}

/// One piece of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// More answer text.
    Text(String),
    /// More of the model's reasoning (a provider's `reasoning_content`): shown apart from
    /// the answer (a Pico `kind: thought` bubble) and never kept in the history.
    Thought(String),
    /// A file that is part of the answer: delivered as upstream delivers files, a
    /// `message.create` whose `attachments` link to `/pico/media/<id>` (owner-only).
    Attachment(Attachment),
}

/// A file an agent answers with.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Its media type, e.g. `image/png`.
    pub content_type: String,
    /// A file name for downloads (no path).
    pub filename: String,
    /// The content.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("content_type", &self.content_type)
            .field("filename", &self.filename)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// The answer: deltas in order. The stream ends when the answer is complete.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<Delta, AgentError>> + Send>>;

/// Something that answers chat messages.
pub trait Agent: Send + Sync + 'static {
    /// A short name for logs and `model_name` in frames (`echo`, or the model's name).
    fn name(&self) -> &str;

    /// Answers one turn.
    fn reply(&self, request: TurnRequest) -> ReplyStream;

    /// Whether [`reply`](Agent::reply) reads [`TurnRequest::history`]. An agent that does
    /// not (the echo agent) is handed an empty one, so its turns skip copying it.
    fn uses_history(&self) -> bool {
        true
    }
}

/// A shared agent.
pub type SharedAgent = Arc<dyn Agent>;

pub use picoclaw_store::storage_target;
