//! The conversation engine the gateway calls for every chat turn: session ownership,
//! history in, agent call, history out.
//!
//! Ownership: the first principal to use a session owns it (recorded durably in the
//! session file before its first socket opens, so it survives a restart and a cache
//! eviction). Every other principal gets [`SessionError::Forbidden`] — admin credentials
//! too: an admin that joined a chat client's session would hand that client whatever it
//! writes there (docs/credentials.md, "Derived credentials"). Ids starting with
//! [`RESERVED_PREFIX`] belong to the gateway's own `pico_client` and cannot be claimed by
//! anyone else.

use std::sync::Arc;

use picoclaw_config::{Paths, Settings};
use picoclaw_credentials::Credentials;

use crate::openai::{OpenAiAgent, ProviderConfig, Timeouts};
use crate::sessions::{HistoryLimits, SessionStore};
use crate::{AgentError, ReplyStream, SharedAgent, Turn, TurnRequest};

/// Why a session cannot be used by this caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session belongs to another principal.
    #[error("session belongs to another credential")]
    Forbidden,
    /// The id is reserved for the gateway's own channels.
    #[error("session ids starting with {RESERVED_PREFIX} are reserved for the gateway's pico_client")]
    Reserved,
    /// The session id is not acceptable (too long, bad characters).
    #[error("invalid session id: {0}")]
    InvalidId(&'static str),
    /// The session file could not be read or written.
    #[error("session history is unavailable: {0}")]
    Storage(String),
}

/// Session ids with this prefix belong to the `pico_client` channel.
pub const RESERVED_PREFIX: &str = "pico_client-";

/// The principal that owns [`RESERVED_PREFIX`] sessions.
pub const PICO_CLIENT_PRINCIPAL: &str = "pico_client";

/// Runs turns: ownership check, history, agent call.
#[derive(Clone)]
pub struct Engine {
    agent: SharedAgent,
    store: Option<Arc<SessionStore>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("agent", &self.agent.name()).field("store", &self.store).finish()
    }
}

impl Engine {
    /// An engine answering with `agent`, keeping history in memory only (tests, tools).
    pub fn new(agent: SharedAgent) -> Engine {
        Engine { agent, store: None }
    }

    /// An engine answering with `agent`, persisting sessions in `store`.
    pub fn with_store(agent: SharedAgent, store: Arc<SessionStore>) -> Engine {
        Engine { agent, store: Some(store) }
    }

    /// An engine with the built-in echo agent (no persistence).
    pub fn echo() -> Engine {
        Engine::new(Arc::new(crate::EchoAgent))
    }

    /// The engine the configuration asks for: the echo agent when
    /// `agents.defaults.model` is unset, else the OpenAI-compatible provider of that
    /// `model_list` entry with its key(s) from the credentials. Sessions live in
    /// `paths.sessions_dir()`.
    pub fn from_config(
        settings: &Settings,
        creds: &Credentials,
        paths: &Paths,
    ) -> Result<Engine, AgentError> {
        let limits = HistoryLimits {
            max_messages: settings.agents.history_messages,
            max_bytes: settings.agents.history_bytes,
        };
        let store = SessionStore::open(&paths.sessions_dir(), limits);
        let agent: SharedAgent = match (&settings.agents.default_model, settings.default_model()) {
            (None, _) => Arc::new(crate::EchoAgent),
            (Some(name), None) => {
                return Err(AgentError::new(
                    "provider_config",
                    format!("agents.defaults.model names {name:?}, which is not in model_list"),
                ));
            }
            (Some(_), Some(entry)) => {
                let keys = creds.model(&entry.model_name).map(|m| m.keys.clone()).unwrap_or_default();
                Arc::new(OpenAiAgent::new(ProviderConfig {
                    model_name: entry.model_name.clone(),
                    model: entry.model.clone(),
                    api_base: entry.api_base.clone(),
                    keys,
                    timeouts: Timeouts::from_request_timeout(settings.agents.provider_timeout),
                })?)
            }
        };
        Ok(Engine::with_store(agent, store))
    }

    /// The agent's name (for `model_name` in frames).
    pub fn agent_name(&self) -> &str {
        self.agent.name()
    }

    /// Checks that `principal` may use `session_id`, claiming it (durably) when new.
    pub fn claim_as(&self, session_id: &str, principal: &str) -> Result<(), SessionError> {
        check_claim(session_id, principal)?;
        let Some(store) = &self.store else { return Ok(()) };
        let owner = store.claim(session_id, principal).map_err(|e| {
            tracing::error!(session = %session_id, "{e}");
            SessionError::Storage(
                "the session file could not be read or written (see the gateway log)".into(),
            )
        })?;
        owner_allows(&owner, principal)
    }

    /// [`claim_as`](Self::claim_as) when it needs no disk access: the session is cached
    /// with its (durable) owner. `None`: call `claim_as` off the async workers instead.
    pub fn claim_cached(&self, session_id: &str, principal: &str) -> Option<Result<(), SessionError>> {
        if let Err(e) = check_claim(session_id, principal) {
            return Some(Err(e));
        }
        let Some(store) = &self.store else { return Some(Ok(())) };
        let owner = store.cached_owner(session_id)?;
        Some(owner_allows(&owner, principal))
    }

    /// Answers `text` in `session_id`, feeding the agent the session's bounded history.
    pub fn run_turn(&self, session_id: &str, text: String, media: Vec<String>) -> ReplyStream {
        let history = if self.agent.uses_history() { self.history(session_id) } else { Vec::new() };
        self.agent.reply(TurnRequest { session_id: session_id.to_owned(), history, text, media })
    }

    /// Records the finished answer (or the partial text of a failed one) and fsyncs it.
    /// A storage failure is logged; the chat goes on.
    pub fn finish_turn(&self, session_id: &str, user_text: &str, answer: &str) {
        if let Some(store) = &self.store
            && let Err(e) = store.append_turn(session_id, user_text, answer)
        {
            tracing::error!(session = %session_id, "could not record the turn: {e}");
        }
    }

    /// The session's bounded history, oldest first (empty when unknown or unreadable).
    pub fn history(&self, session_id: &str) -> Vec<Turn> {
        let Some(store) = &self.store else { return Vec::new() };
        if validate_session_id(session_id).is_err() {
            return Vec::new();
        }
        store.history(session_id).unwrap_or_else(|e| {
            tracing::error!(session = %session_id, "could not read the history: {e}");
            Vec::new()
        })
    }

    /// The owner of a session, if it has one.
    pub fn owner(&self, session_id: &str) -> Option<String> {
        validate_session_id(session_id).ok()?;
        self.store.as_ref()?.owner(session_id).ok().flatten()
    }
}

/// Longest accepted session id.
pub const MAX_SESSION_ID: usize = 128;

/// Only the owner may use a session.
fn owner_allows(owner: &str, principal: &str) -> Result<(), SessionError> {
    if owner == principal { Ok(()) } else { Err(SessionError::Forbidden) }
}

/// A valid id, and not a reserved one (unless the caller is the one it is reserved for).
fn check_claim(session_id: &str, principal: &str) -> Result<(), SessionError> {
    validate_session_id(session_id)?;
    if session_id.starts_with(RESERVED_PREFIX) && principal != PICO_CLIENT_PRINCIPAL {
        return Err(SessionError::Reserved);
    }
    Ok(())
}

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

    #[test]
    fn first_principal_owns_and_nobody_else_enters() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SessionStore::open(tmp.path(), HistoryLimits::default());
        let engine = Engine::with_store(Arc::new(crate::EchoAgent), store);
        engine.claim_as("s", "alice").unwrap();
        engine.claim_as("s", "alice").unwrap();
        assert_eq!(engine.claim_as("s", "bob"), Err(SessionError::Forbidden));
        assert_eq!(engine.claim_as("s", "runtime"), Err(SessionError::Forbidden), "admins too");
        assert_eq!(engine.owner("s").as_deref(), Some("alice"));
        assert_eq!(engine.claim_as("pico_client-x", "alice"), Err(SessionError::Reserved));
        engine.claim_as("pico_client-x", PICO_CLIENT_PRINCIPAL).unwrap();
    }
}
