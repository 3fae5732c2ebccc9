//! Shared gateway state: what is reloadable (settings, credentials, verifier, agent) and
//! what lives as long as the process (runtime token, hub, limiter, counters).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use picoclaw_agent::Engine;
use picoclaw_auth::audit::{AuditEvent, AuditLog};
use picoclaw_auth::{FailureLimiter, NamedState, StoredCredentials, TicketStore, Verifier};
use picoclaw_config::{Flags, Paths, Settings};
use picoclaw_credentials::{Credentials, Secret};

use crate::hub::{CloseReason, Hub, close};
use crate::outbox::QueuedBytes;

/// The reloadable part: replaced as a whole by a successful reload.
#[derive(Clone)]
pub(crate) struct Live {
    pub settings: Settings,
    pub credentials: Credentials,
    pub verifier: Verifier,
    pub stored: Arc<StoredCredentials>,
    pub engine: Engine,
    /// Old values of secret files that changed (`_FILE`, `$CREDENTIALS_DIRECTORY`), in
    /// their `gateway.rotation_grace`; carried from reload to reload until it ends (memory
    /// only: picoclaw does not own those files, and a restart ends the grace).
    pub file_grace: Vec<crate::reload::FileGrace>,
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
    /// Bytes queued for sending on every socket (bounded by
    /// `channels.pico.send_queue_total_bytes`).
    pub queued: Arc<QueuedBytes>,
    pub active_turns: AtomicUsize,
    pub reload_lock: tokio::sync::Mutex<()>,
    /// With `storage.url`: the named tokens are the replicas' shared ones, watched. Whether
    /// those in force are current is the verifier's own [`NamedState`] (set only by
    /// [`Shared::set_named_state`]).
    pub shares_tokens: AtomicBool,
    pub tickets: TicketStore,
    /// With `storage.url`: tickets and pairing codes any replica redeems once (set at
    /// start; `crate::replicated`).
    pub shared_one_time: std::sync::OnceLock<picoclaw_store::PgOneTime>,
    /// Outstanding one-time pairing codes (`POST /api/pair`).
    pub pairing: picoclaw_auth::pairing::PairingStore,
    /// Files of answers (`/pico/media/<id>`).
    pub media: crate::media::MediaStore,
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
            queued: Arc::new(QueuedBytes::default()),
            active_turns: AtomicUsize::new(0),
            reload_lock: tokio::sync::Mutex::new(()),
            shares_tokens: AtomicBool::new(false),
            tickets: TicketStore::new(),
            shared_one_time: std::sync::OnceLock::new(),
            pairing: picoclaw_auth::pairing::PairingStore::new(),
            media: crate::media::MediaStore::default(),
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
        self.ready.load(Ordering::Acquire)
            && !self.shutting_down.load(Ordering::Acquire)
            && self.live().verifier.named_state() == NamedState::Current
    }

    /// With `storage.url`, whether the replicas' shared named tokens in force are current
    /// (`None` without it).
    pub fn shared_tokens_state(&self) -> Option<&'static str> {
        if !self.shares_tokens.load(Ordering::Acquire) {
            return None;
        }
        Some(match self.live().verifier.named_state() {
            NamedState::Current => "current",
            NamedState::Suspended => "stale",
        })
    }

    /// Records an audit event (never blocks the request).
    pub fn audit(&self, event: AuditEvent) {
        if let Some(log) = &self.audit {
            log.record(&event);
        }
    }

    /// The one way the gateway's credentials change (start-up excepted): swaps in `live`,
    /// then checks every credential derived from the old state against the new one —
    /// outstanding tickets and pairing codes are dropped and sockets closed with 4001 when their parent is
    /// no longer accepted. Revoke, rotate, a file edit and a removal all end here.
    /// The state of the named tokens is carried over: a reload neither suspends nor
    /// resumes them (only the shared-token watch knows whether they are current, and sets
    /// it with [`Shared::set_named_state`]).
    pub fn apply(&self, mut live: Live) -> Applied {
        {
            // Read and written under one lock: a reload and the watch cannot undo each other.
            let mut slot = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            live.verifier = live.verifier.with_named_state(slot.verifier.named_state());
            *slot = Arc::new(live);
        }
        self.sweep()
    }

    /// From the watch of the replicas' shared named tokens: they are current (just read,
    /// with the listener up) or suspended (lost track of them; see
    /// [`NamedState::Suspended`]: sockets opened with one close with 1013, its tickets
    /// are dropped). Changes the state in force in place, so a reload applied meanwhile is
    /// kept. `None` when it already was `named`.
    pub fn set_named_state(&self, named: NamedState) -> Option<Applied> {
        {
            let mut slot = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if slot.verifier.named_state() == named {
                return None;
            }
            let mut live = Live::clone(&slot);
            live.verifier = live.verifier.with_named_state(named);
            *slot = Arc::new(live);
        }
        Some(self.sweep())
    }

    /// Ends what the state in force no longer accepts.
    fn sweep(&self) -> Applied {
        let verifier = &self.live().verifier;
        let dropped_tickets = self.tickets.retain_valid(verifier);
        let dropped_pairing_codes = self.pairing.retain_valid(verifier);
        let closed_sockets = self.close_revoked_sockets();
        Applied { closed_sockets, dropped_tickets, dropped_pairing_codes }
    }

    /// Closes sockets whose credential is no longer accepted: revoked, expired, rotated past
    /// its grace, or removed from the configuration. Checked by principal and fingerprint
    /// (`Verifier::still_valid`), so the gateway keeps no presented secret in memory; a
    /// socket opened with a ticket carries its parent's principal and dies with it.
    pub fn close_revoked_sockets(&self) -> usize {
        let live = self.live();
        let pico_enabled = live.settings.pico.enabled;
        self.hub.sweep(|conn| {
            if !pico_enabled {
                return Some(CloseReason {
                    code: close::GOING_AWAY,
                    reason: "the Pico channel was disabled".into(),
                });
            }
            live.verifier
                .still_valid(&conn.principal)
                .err()
                .map(|e| close::for_refused(&conn.principal.id, &e))
        })
    }
}

/// What applying a new state ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Applied {
    pub closed_sockets: usize,
    pub dropped_tickets: usize,
    pub dropped_pairing_codes: usize,
}
