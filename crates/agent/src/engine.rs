//! The conversation engine the gateway calls for every chat turn: session ownership,
//! history in, agent call, history out.
//!
//! Ownership: the first principal to use a session owns it (recorded durably in the
//! session file before its first socket opens, so it survives a restart and a cache
//! eviction). Another principal gets [`SessionError::Forbidden`]. Admin
//! principals (the gateway token and the runtime token, ids [`ADMIN_PRINCIPALS`], or any
//! caller of [`Engine::claim_as`] with `admin = true`) may open any session: they can
//! already read every file of the home directory through the admin API and the host.

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
    /// The session id is not acceptable (too long, bad characters).
    #[error("invalid session id: {0}")]
    InvalidId(&'static str),
    /// The session file could not be read or written.
    #[error("session history is unavailable: {0}")]
    Storage(String),
}

/// Principal ids with admin scope that may open any session.
pub const ADMIN_PRINCIPALS: &[&str] = &["gateway", "runtime"];

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

    /// Checks that `principal` may use `session_id`, claiming it when new. The gateway
    /// and runtime tokens (admin) may use any session.
    pub fn claim(&self, session_id: &str, principal: &str) -> Result<(), SessionError> {
        self.claim_as(session_id, principal, ADMIN_PRINCIPALS.contains(&principal))
    }

    /// Like [`claim`](Self::claim), with the admin decision made by the caller (e.g. a
    /// named token with admin scope). An admin opening a new session claims it too.
    pub fn claim_as(&self, session_id: &str, principal: &str, admin: bool) -> Result<(), SessionError> {
        validate_session_id(session_id)?;
        let Some(store) = &self.store else { return Ok(()) };
        let owner = store.claim(session_id, principal).map_err(|e| {
            tracing::error!(session = %session_id, "{e}");
            SessionError::Storage(
                "the session file could not be read or written (see the gateway log)".into(),
            )
        })?;
        owner_allows(&owner, principal, admin)
    }

    /// [`claim_as`](Self::claim_as) when it needs no disk access: the session is cached
    /// with its (durable) owner. `None`: call `claim_as` off the async workers instead.
    pub fn claim_cached(
        &self,
        session_id: &str,
        principal: &str,
        admin: bool,
    ) -> Option<Result<(), SessionError>> {
        if let Err(e) = validate_session_id(session_id) {
            return Some(Err(e));
        }
        let Some(store) = &self.store else { return Some(Ok(())) };
        let owner = store.cached_owner(session_id)?;
        Some(owner_allows(&owner, principal, admin))
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

/// The owner of a session, or an admin, may use it.
fn owner_allows(owner: &str, principal: &str, admin: bool) -> Result<(), SessionError> {
    if owner == principal || admin { Ok(()) } else { Err(SessionError::Forbidden) }
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
    fn first_principal_owns_admin_may_enter() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SessionStore::open(tmp.path(), HistoryLimits::default());
        let engine = Engine::with_store(Arc::new(crate::EchoAgent), store);
        engine.claim("s", "alice").unwrap();
        engine.claim("s", "alice").unwrap();
        assert_eq!(engine.claim("s", "bob"), Err(SessionError::Forbidden));
        engine.claim("s", "runtime").unwrap();
        engine.claim_as("s", "ops", true).unwrap();
        assert_eq!(engine.owner("s").as_deref(), Some("alice"));
    }
}
