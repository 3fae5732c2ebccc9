//! Shared gateway state: what is reloadable (settings, credentials, verifier, agent) and
//! what lives as long as the process (runtime token, hub, limiter, counters).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::http::HeaderMap;
use picoclaw_agent::Engine;
use picoclaw_auth::{AuthError, Extracted, FailureLimiter, Principal, Scope, Verifier, extract};
use picoclaw_config::{Flags, Paths, Settings};
use picoclaw_credentials::{Credentials, Secret};

use crate::error::ApiError;
use crate::hub::Hub;

/// The reloadable part: replaced as a whole by a successful reload.
pub(crate) struct Live {
    pub settings: Settings,
    pub credentials: Credentials,
    pub verifier: Verifier,
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
}

impl Shared {
    pub fn new(
        runtime_token: Secret,
        paths: Paths,
        flags: Flags,
        live: Live,
        limiter: FailureLimiter,
    ) -> Shared {
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

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }

    /// Authenticates a request: rate limit, extract, verify, scope. Wrong credentials
    /// count towards the client's failure limit; missing ones do not.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        client: IpAddr,
        needed: Scope,
        allow_query: bool,
    ) -> Result<(Principal, Extracted), ApiError> {
        if let Err(retry) = self.limiter.check(client) {
            return Err(AuthError::RateLimited { retry_after_secs: retry.0 }.into());
        }
        let outcome = extract(headers, query, allow_query)
            .and_then(|found| found.ok_or(AuthError::Missing))
            .and_then(|found| self.live().verifier.verify(&found.token, needed).map(|p| (p, found)));
        match outcome {
            Ok(ok) => {
                self.limiter.record_success(client);
                Ok(ok)
            }
            Err(e) => {
                if e.counts_as_failure() {
                    self.limiter.record_failure(client);
                }
                tracing::info!(client = %client, code = e.code(), "authentication failed");
                Err(e.into())
            }
        }
    }
}
