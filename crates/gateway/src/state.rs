//! Shared gateway state: what is reloadable (settings, credentials, verifier, agent) and
//! what lives as long as the process (runtime token, hub, limiter, counters).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::http::HeaderMap;
use picoclaw_agent::Engine;
use picoclaw_auth::audit::{AuditEvent, AuditLog};
use picoclaw_auth::{
    AuthError, Extracted, FailureLimiter, Presentation, Principal, Scope, StoredCredentials, TicketStore,
    Verifier, extract,
};
use picoclaw_config::{Flags, Paths, Settings};
use picoclaw_credentials::{Credentials, Secret};

use crate::error::ApiError;
use crate::hub::Hub;

/// The reloadable part: replaced as a whole by a successful reload.
pub(crate) struct Live {
    pub settings: Settings,
    pub credentials: Credentials,
    pub verifier: Verifier,
    pub stored: Arc<StoredCredentials>,
    pub engine: Engine,
}

/// Process-wide state.
pub(crate) struct Shared {
    pub started: Instant,
    pub ready: AtomicBool,
    pub shutting_down: AtomicBool,
    pub runtime_token: Secret,
    pub paths: Paths,
    pub flags: Flags,
    live: RwLock<Arc<Live>>,
    pub hub: Hub,
    pub limiter: FailureLimiter,
    pub connections: AtomicUsize,
    pub active_turns: AtomicUsize,
    pub reload_lock: tokio::sync::Mutex<()>,
    pub tickets: TicketStore,
    pub audit: Option<AuditLog>,
    /// The outbound Pico client, when `channels.pico_client.enabled`.
    pub pico_client: std::sync::Mutex<Option<Arc<picoclaw_agent::PicoClientStatus>>>,
}

impl Shared {
    pub fn new(
        runtime_token: Secret,
        paths: Paths,
        flags: Flags,
        live: Live,
        limiter: FailureLimiter,
    ) -> Shared {
        let paths_audit = paths.audit_log();
        Shared {
            started: Instant::now(),
            ready: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            runtime_token,
            paths,
            flags,
            live: RwLock::new(Arc::new(live)),
            hub: Hub::default(),
            limiter,
            connections: AtomicUsize::new(0),
            active_turns: AtomicUsize::new(0),
            reload_lock: tokio::sync::Mutex::new(()),
            tickets: TicketStore::new(),
            pico_client: std::sync::Mutex::new(None),
            audit: match AuditLog::open(paths_audit) {
                Ok(log) => Some(log),
                Err(e) => {
                    tracing::warn!("audit log unavailable: {e}");
                    None
                }
            },
        }
    }

    /// The current reloadable state.
    pub fn live(&self) -> Arc<Live> {
        // The lock is only held to clone an Arc; a poisoned lock still holds valid data.
        self.live.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the reloadable state.
    pub fn replace_live(&self, live: Live) {
        *self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(live);
    }

    /// (Re)starts the outbound Pico client from the current state; stops a running one.
    pub fn restart_pico_client(&self) {
        let live = self.live();
        let next = picoclaw_agent::spawn_pico_client(&live.settings, &live.credentials, live.engine.clone());
        let mut slot = self.pico_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = slot.take() {
            old.stop();
        }
        *slot = next;
    }

    /// The outbound Pico client's state, `null` when disabled.
    pub fn pico_client_status(&self) -> serde_json::Value {
        let slot = self.pico_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.as_ref() {
            Some(status) => serde_json::to_value(status.snapshot()).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::Null,
        }
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }

    /// Records an audit event (never blocks the request).
    pub fn audit(&self, event: AuditEvent) {
        if let Some(log) = &self.audit {
            log.record(&event);
        }
    }

    /// Authenticates a request: rate limit, extract, verify (or redeem a ticket), scope.
    /// Wrong credentials count towards the client's failure limit; missing ones do not.
    /// Every outcome is written to the audit log.
    #[allow(clippy::too_many_arguments)]
    pub fn authenticate(
        &self,
        endpoint: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        client: IpAddr,
        needed: Scope,
        allow_query: bool,
    ) -> Result<(Principal, Extracted), ApiError> {
        let client_text = client.to_string();
        if let Err(retry) = self.limiter.check(client) {
            let e = AuthError::RateLimited { retry_after_secs: retry.0 };
            self.audit(AuditEvent::auth_failure(endpoint, Some(&client_text), &e));
            return Err(e.into());
        }
        let origin = headers.get(axum::http::header::ORIGIN).and_then(|o| o.to_str().ok());
        let outcome = extract(headers, query, allow_query)
            .and_then(|found| found.ok_or(AuthError::Missing))
            .and_then(|found| {
                let principal = match found.how {
                    Presentation::Ticket => {
                        self.tickets.redeem(&found.token, origin).map_err(AuthError::from)?
                    }
                    _ => self.live().verifier.identify(&found.token)?,
                };
                if !principal.scope.allows(needed) {
                    return Err(AuthError::Scope { id: principal.id, has: principal.scope, needed });
                }
                Ok((principal, found))
            });
        match outcome {
            Ok(ok) => {
                self.limiter.record_success(client);
                self.audit(AuditEvent::auth_success(endpoint, Some(&client_text), &ok.0));
                Ok(ok)
            }
            Err(e) => {
                if e.counts_as_failure() {
                    self.limiter.record_failure(client);
                }
                tracing::info!(client = %client, endpoint, code = e.code(), "authentication failed");
                self.audit(AuditEvent::auth_failure(endpoint, Some(&client_text), &e));
                Err(e.into())
            }
        }
    }
}
