//! The conversation engine the gateway calls for every chat turn: session ownership,
//! history in, agent call, history out.
//!
//! Ownership: the first principal to use a session owns it (recorded durably in the
//! session file before its first socket opens, so it survives a restart and a cache
//! eviction). Every other principal gets [`SessionError::NotFound`] — admin credentials
//! too: an admin that joined a chat client's session would hand that client whatever it
//! writes there (docs/credentials.md, "Derived credentials"). Ids starting with
//! [`RESERVED_PREFIX`] belong to the gateway's own `pico_client` and cannot be claimed by
//! anyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use picoclaw_config::{Paths, Settings};
use picoclaw_credentials::Credentials;
use picoclaw_store::{PgStore, SqliteStore, Store, StoreError, StoreOptions, TurnRecord, storage_target};

use crate::openai::{OpenAiAgent, ProviderConfig, Timeouts};
use crate::{AgentError, ReplyStream, Role, SharedAgent, Turn, TurnRequest};

/// Why a session cannot be used by this caller, or a turn not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session belongs to another principal: to the caller it does not exist (the
    /// answer is the same as for an id nobody uses, so ids cannot be probed).
    #[error("no such session for this credential (a session belongs to the credential that opened it first)")]
    NotFound,
    /// The id is reserved for the gateway's own channels.
    #[error("session ids starting with {RESERVED_PREFIX} are reserved for the gateway's pico_client")]
    Reserved,
    /// The session id is not acceptable (too long, bad characters).
    #[error("invalid session id: {0}")]
    InvalidId(&'static str),
    /// The history could not be read or written.
    #[error("session history is unavailable: {0}")]
    Storage(String),
    /// The history is at its size bound: the turn was refused before any work.
    #[error("{0}")]
    Full(String),
    /// The credential sent more messages than `agents.defaults.messages_per_minute`.
    #[error("too many messages; retry in {retry_after_ms} ms")]
    RateLimited {
        /// When to try again.
        retry_after_ms: u64,
    },
}

impl SessionError {
    /// The stable code of the Pico `error` frame / HTTP answer.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::NotFound => "session_not_found",
            SessionError::Reserved => "reserved_session_id",
            SessionError::InvalidId(_) => "invalid_session_id",
            SessionError::Storage(_) => "session_storage",
            SessionError::Full(_) => "storage_full",
            SessionError::RateLimited { .. } => "rate_limited",
        }
    }
}

fn from_store(e: StoreError) -> SessionError {
    match e {
        StoreError::Full { .. } => SessionError::Full(e.to_string()),
        other => {
            tracing::error!("session store: {other}");
            SessionError::Storage(
                "the session history could not be read or written (see the gateway log)".into(),
            )
        }
    }
}

/// Session ids with this prefix belong to the `pico_client` channel.
pub const RESERVED_PREFIX: &str = "pico_client-";

/// The principal that owns [`RESERVED_PREFIX`] sessions.
pub const PICO_CLIENT_PRINCIPAL: &str = "pico_client";

/// How much history is fed to the agent per turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most recent messages (a turn is two).
    pub max_messages: usize,
    /// Upper bound on their summed text bytes.
    pub max_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits { max_messages: 40, max_bytes: 256 * 1024 }
    }
}

/// Per-credential message rate: a token bucket per principal (bounded table).
struct Rate {
    per_minute: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Principals whose message rate is remembered at once.
const RATE_TABLE: usize = 4096;

impl Rate {
    fn take(&self, principal: &str) -> Result<(), SessionError> {
        let capacity = f64::from(self.per_minute.max(1));
        let per_ms = capacity / 60_000.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= RATE_TABLE && !buckets.contains_key(principal) {
            // Full buckets carry no information: forget those first.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_millis() as f64 * per_ms < capacity
            });
        }
        let (tokens, at) = buckets.entry(principal.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_millis() as f64 * per_ms).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let retry_after_ms = ((1.0 - *tokens) / per_ms).ceil() as u64;
            Err(SessionError::RateLimited { retry_after_ms })
        }
    }
}

/// Runs turns: ownership check, history, agent call, recording.
#[derive(Clone)]
pub struct Engine {
    agent: SharedAgent,
    store: Option<Arc<dyn Store>>,
    limits: HistoryLimits,
    rate: Arc<Rate>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("agent", &self.agent.name()).finish_non_exhaustive()
    }
}

fn rate(per_minute: usize) -> Arc<Rate> {
    Arc::new(Rate {
        per_minute: u32::try_from(per_minute).unwrap_or(u32::MAX),
        buckets: Mutex::new(HashMap::new()),
    })
}

impl Engine {
    /// An engine answering with `agent`, keeping no history (tests, tools).
    pub fn new(agent: SharedAgent) -> Engine {
        Engine { agent, store: None, limits: HistoryLimits::default(), rate: rate(usize::MAX) }
    }

    /// An engine answering with `agent`, keeping sessions in `store`.
    pub fn with_store(agent: SharedAgent, store: Arc<dyn Store>) -> Engine {
        Engine { store: Some(store), ..Engine::new(agent) }
    }

    /// An engine with the built-in echo agent (no persistence).
    pub fn echo() -> Engine {
        Engine::new(Arc::new(crate::EchoAgent))
    }

    /// The engine the configuration asks for: the echo agent when
    /// `agents.defaults.model` is unset, else the OpenAI-compatible provider of that
    /// `model_list` entry with its key(s) from the credentials. Sessions live in
    /// `paths.sessions_dir()/sessions.db`.
    pub fn from_config(
        settings: &Settings,
        creds: &Credentials,
        paths: &Paths,
    ) -> Result<Engine, AgentError> {
        let options = StoreOptions {
            max_session_bytes: settings.storage.max_session_bytes,
            max_total_bytes: settings.storage.max_total_bytes,
        };
        let store: Arc<dyn Store> = match storage_target(settings, creds) {
            None => SqliteStore::shared(&paths.sessions_dir(), options).map_err(|e| {
                AgentError::new("session_storage", format!("cannot open the session history: {e}"))
            })?,
            Some(target) => PgStore::shared(&target, options).map_err(|e| {
                AgentError::new(
                    "session_storage",
                    format!("cannot open the session history at storage.url {target:?}: {e}"),
                )
            })?,
        };
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
        let limits = HistoryLimits {
            max_messages: settings.agents.history_messages,
            max_bytes: settings.agents.history_bytes,
        };
        Ok(Engine { agent, store: Some(store), limits, rate: rate(settings.agents.messages_per_minute) })
    }

    /// The agent's name (for `model_name` in frames).
    pub fn agent_name(&self) -> &str {
        self.agent.name()
    }

    /// The session store, for the history API.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Checks that `principal` may use `session_id`, claiming it (durably) when new;
    /// answers the last stored `seq` of the session.
    pub async fn claim(&self, session_id: &str, principal: &str) -> Result<u64, SessionError> {
        check_claim(session_id, principal)?;
        let Some(store) = &self.store else { return Ok(0) };
        let claim = store.claim(session_id.to_owned(), principal.to_owned()).await.map_err(from_store)?;
        owner_allows(&claim.owner, principal)?;
        Ok(claim.last_seq)
    }

    /// [`claim`](Self::claim) when it needs no disk access: the session is cached with its
    /// (durable) owner. `None`: call `claim`.
    pub fn claim_cached(&self, session_id: &str, principal: &str) -> Option<Result<u64, SessionError>> {
        if let Err(e) = check_claim(session_id, principal) {
            return Some(Err(e));
        }
        let Some(store) = &self.store else { return Some(Ok(0)) };
        let claim = store.cached_owner(session_id)?;
        Some(owner_allows(&claim.owner, principal).map(|()| claim.last_seq))
    }

    /// Before any work for a turn: the credential's message rate, and room in the history.
    pub fn begin_turn(&self, session_id: &str, principal: &str) -> Result<(), SessionError> {
        self.rate.take(principal)?;
        if let Some(store) = &self.store {
            store.check_room(session_id).map_err(from_store)?;
        }
        Ok(())
    }

    /// Answers `text` in `session_id`, feeding the agent the session's bounded history.
    pub async fn run_turn(&self, session_id: &str, text: String, media: Vec<String>) -> ReplyStream {
        let history = if self.agent.uses_history() { self.history(session_id).await } else { Vec::new() };
        self.agent.reply(TurnRequest { session_id: session_id.to_owned(), history, text, media })
    }

    /// Records a finished turn (or the partial answer of a failed one); durable when it
    /// returns (group-committed with the other sockets' turns).
    pub async fn finish_turn(&self, turn: TurnRecord) -> Result<(), SessionError> {
        let Some(store) = &self.store else { return Ok(()) };
        store.record_turn(turn).await.map_err(from_store)
    }

    /// The session's bounded history, oldest first (empty when unknown or unreadable).
    pub async fn history(&self, session_id: &str) -> Vec<Turn> {
        let Some(store) = &self.store else { return Vec::new() };
        if validate_session_id(session_id).is_err() {
            return Vec::new();
        }
        match store.history(session_id.to_owned(), self.limits.max_messages, self.limits.max_bytes).await {
            Ok(messages) => messages
                .into_iter()
                .map(|m| Turn {
                    role: match m.role {
                        picoclaw_store::Role::User => Role::User,
                        picoclaw_store::Role::Assistant => Role::Assistant,
                    },
                    content: m.content,
                })
                .collect(),
            Err(e) => {
                tracing::error!(session = %session_id, "could not read the history: {e}");
                Vec::new()
            }
        }
    }
}

/// Longest accepted session id.
pub const MAX_SESSION_ID: usize = 128;

/// Only the owner may use a session.
fn owner_allows(owner: &str, principal: &str) -> Result<(), SessionError> {
    if owner == principal { Ok(()) } else { Err(SessionError::NotFound) }
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
        let parts: Vec<_> = engine.run_turn("s", "héllo  world".into(), vec![]).await.collect().await;
        assert_eq!(parts, vec![Ok(crate::Delta::Text("héllo  world".to_owned()))]);
    }

    #[test]
    fn session_ids_are_safe() {
        assert!(validate_session_id("s1").is_ok());
        assert!(validate_session_id("../etc").is_err());
        assert!(validate_session_id("").is_err());
        assert!(validate_session_id(&"a".repeat(129)).is_err());
    }

    #[tokio::test]
    async fn first_principal_owns_and_nobody_else_enters() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(tmp.path(), StoreOptions::default()).unwrap();
        let engine = Engine::with_store(Arc::new(crate::EchoAgent), store);
        engine.claim("s", "alice").await.unwrap();
        engine.claim("s", "alice").await.unwrap();
        assert_eq!(engine.claim("s", "bob").await, Err(SessionError::NotFound));
        assert_eq!(engine.claim("s", "runtime").await, Err(SessionError::NotFound), "admins too");
        assert_eq!(engine.claim_cached("s", "bob"), Some(Err(SessionError::NotFound)));
        assert_eq!(engine.claim("pico_client-x", "alice").await, Err(SessionError::Reserved));
        engine.claim("pico_client-x", PICO_CLIENT_PRINCIPAL).await.unwrap();
    }

    #[test]
    fn the_message_rate_is_per_credential() {
        let r = rate(3);
        for _ in 0..3 {
            r.take("a").unwrap();
        }
        assert!(
            matches!(r.take("a"), Err(SessionError::RateLimited { retry_after_ms }) if retry_after_ms > 0)
        );
        r.take("b").unwrap();
    }
}
