//! Starting, serving and stopping the gateway.
//!
//! Order: take the singleton lock (a second gateway fails fast), load and check the
//! configuration (exit 78 on errors), log which credentials are accepted where
//! ([`Gateway::build`]); bind, publish `.picoclaw.pid`, then accept ([`Gateway::serve`]). On SIGTERM/SIGINT: stop taking turns, let
//! running turns finish within `gateway.shutdown_timeout`, close sockets with 1001, exit.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use picoclaw_auth::{FailureLimiter, LimiterConfig, NamedState, Scope};
use picoclaw_config::{Flags, Host, Paths};
use picoclaw_credentials::Secret;
use picoclaw_credentials::runtime::RuntimeRecord;
use picoclaw_serve::admission::{self, Admission};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api;
use crate::error::GatewayError;
use crate::hub::close;
use crate::reload::{build_live, reload};
use crate::state::Shared;

/// How often sockets are re-checked against expiring credentials.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How often named tokens' last-use times are written (throttled writes).
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// Start options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Paths of the home.
    pub paths: Paths,
    /// Command-line overrides (`--host`, `--port`).
    pub flags: Flags,
}

/// A gateway that holds its home's lock and has loaded its configuration, not yet
/// listening. [`Gateway::serve`] binds, publishes `.picoclaw.pid` and serves; tests build
/// one and drive [`Gateway::router`] in process.
pub struct Gateway {
    lock: picoclaw_lifecycle::GatewayLock,
    shared: Arc<Shared>,
}

/// Binds `host:port`. `localhost` also binds IPv6 loopback on the same port when the
/// system has it.
async fn bind(host: &Host, port: u16) -> Result<Vec<TcpListener>, GatewayError> {
    let err = |reason| GatewayError::Bind { addr: format!("{host}:{port}"), reason };
    let targets = {
        let host = host.clone();
        tokio::task::spawn_blocking(move || host.bind_addrs(port))
            .await
            .map_err(|_| err(std::io::Error::other("name resolution did not complete")))?
            .map_err(err)?
    };
    let mut targets = targets.into_iter();
    let first = targets.next().ok_or_else(|| err(std::io::Error::other("host resolves to no address")))?;
    let listener = TcpListener::bind(first).await.map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    let mut listeners = vec![listener];
    for extra in targets {
        // Optional addresses (IPv6 loopback) on the port the first one got.
        if let Ok(l) = TcpListener::bind(SocketAddr::new(extra.ip(), bound.port())).await {
            listeners.push(l);
        }
    }
    Ok(listeners)
}

/// The "port in use" error: the port, the setting that chose it and who holds it.
fn port_in_use(paths: &Paths, settings: &picoclaw_config::Settings, addr: String) -> GatewayError {
    let port = settings.gateway.port;
    let holder = picoclaw_lifecycle::port::holder(paths, port);
    let source_name = settings.origin(&picoclaw_config::schema::GATEWAY_PORT).map_or_else(
        || "the built-in default (18790)".to_owned(),
        |s| match s {
            picoclaw_config::Source::Default => "the built-in default (18790)".to_owned(),
            other => other.to_string(),
        },
    );
    let stop_hint = if holder.is_this_homes_gateway() {
        "; or stop it with `picoclaw gateway stop`".to_owned()
    } else {
        String::new()
    };
    GatewayError::PortInUse { addr, port, source_name, holder, stop_hint }
}

impl Gateway {
    /// Runs the gateway until SIGTERM/SIGINT.
    pub async fn run(options: Options) -> Result<(), GatewayError> {
        Gateway::build(options)?.serve(shutdown_signal()).await
    }

    /// Takes the singleton lock, makes the runtime token, loads and checks the
    /// configuration (refusing combinations that would expose the gateway) and builds the
    /// shared state. Nothing listens yet.
    pub fn build(options: Options) -> Result<Gateway, GatewayError> {
        let Options { paths, flags } = options;
        let lock = picoclaw_lifecycle::acquire(&paths)?;
        let runtime = Secret::generate().map_err(picoclaw_credentials::CredentialError::from)?;
        // Writers killed mid-write (crash, SIGKILL) leave temporary files that may hold an old
        // secret; remove those older than a minute (a newer one may be a write in progress).
        for dir in [paths.config_dir(), paths.home()] {
            let removed = picoclaw_config::files::remove_stale_temp_files(dir, Duration::from_secs(60));
            if removed > 0 {
                tracing::info!(removed, dir = %dir.display(), "removed temporary files left by an interrupted write");
            }
        }
        let (live, warnings) = build_live(&paths, &flags, &runtime, None)?;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let settings = &live.settings;
        let creds = &live.credentials;
        if settings.pico.enabled && creds.pico().is_none() && creds.gateway().is_none() {
            return Err(GatewayError::Refused(
                "channels.pico.enabled is true but no token is configured: set channels.pico.token in .security.yml \
                 (`picoclaw onboard` does this), or PICOCLAW_CHANNELS_PICO_TOKEN, or PICOCLAW_GATEWAY_TOKEN"
                    .into(),
            ));
        }
        if !settings.gateway.host.is_loopback() && creds.gateway().is_none() && creds.pico().is_none() {
            return Err(GatewayError::Refused(format!(
                "refusing to bind {} (not loopback) with no gateway or pico token configured: anyone on the network \
                 could connect; set PICOCLAW_GATEWAY_TOKEN or run `picoclaw onboard`",
                settings.gateway.host
            )));
        }
        log_credentials(&live, settings);
        let limiter = FailureLimiter::new(LimiterConfig {
            per_key_max: 20,
            global_max: 1000,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
            capacity: 8192,
        });
        let shared = Arc::new(Shared::new(runtime, paths, flags, live, limiter));
        Ok(Gateway { lock, shared })
    }

    /// The router over this gateway's state (every endpoint of the table).
    pub fn router(&self) -> axum::Router {
        api::router(self.shared.clone())
    }

    /// The runtime token (in-process tests present it like a local tool would).
    #[doc(hidden)]
    pub fn runtime_token(&self) -> &Secret {
        &self.shared.runtime_token
    }

    /// Binds, publishes `.picoclaw.pid` — before the first request is served, so whoever
    /// reaches the gateway can already discover it — and serves until `shutdown`
    /// completes; then stops taking turns, lets running turns finish within
    /// `gateway.shutdown_timeout`, closes sockets with 1001 and releases the lock.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), GatewayError> {
        let Gateway { lock, shared } = self;
        let settings = shared.live().settings.clone();
        let paths = shared.paths.clone();
        let listeners = match bind(&settings.gateway.host, settings.gateway.port).await {
            Err(GatewayError::Bind { addr, reason }) if reason.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(port_in_use(&paths, &settings, addr));
            }
            other => other?,
        };
        let bound = listeners[0]
            .local_addr()
            .map_err(|reason| GatewayError::Bind { addr: settings.gateway.host.to_string(), reason })?;
        let record_host = match bound.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            ip => ip.to_string(),
        };
        let record = RuntimeRecord {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            host: record_host,
            port: bound.port(),
            started_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            token: shared.runtime_token.clone(),
        };
        let router = api::served(shared.clone(), &settings.gateway.base_path);
        let (stop_tx, stop_rx) = watch::channel(false);
        // HTTP connections that are not (yet) Pico sockets: their own budget, apart from
        // `max_connections` (see `admission`).
        let admission = Admission::new(admission::PER_ADDRESS, admission::TOTAL);
        if settings.gateway.hot_reload {
            spawn_watcher(shared.clone(), &paths);
        }
        start_relay(&shared);
        start_token_watch(&shared).await;
        tokio::spawn(beat_loop(paths.clone(), stop_rx.clone()));
        tokio::spawn(sweep_loop(shared.clone(), stop_rx.clone()));
        tokio::spawn(last_used_loop(shared.clone(), stop_rx.clone()));
        shared.restart_pico_client();
        shared.ready.store(true, Ordering::Release);
        // Published before any connection is accepted (they wait in the listen backlog):
        // a client that got an answer can always find the record, and never a stale one.
        lock.publish(&record)?;
        let mut accept_tasks = Vec::new();
        for listener in listeners {
            accept_tasks.push(tokio::spawn(picoclaw_serve::accept_loop(
                listener,
                router.clone(),
                stop_rx.clone(),
                admission.clone(),
            )));
        }
        tracing::info!(
            pid = record.pid,
            "gateway listening on http://{} (Pico channel {})",
            bound,
            if settings.pico.enabled { "at /pico/ws" } else { "disabled" }
        );

        shutdown.await;
        tracing::info!("shutting down: finishing running turns");
        shared.shutting_down.store(true, Ordering::Release);
        let drain_until = tokio::time::Instant::now() + settings.gateway.shutdown_timeout;
        while shared.active_turns.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(client) =
            shared.pico_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        {
            client.stop();
        }
        shared.hub.close_all(close::GOING_AWAY, "gateway shutting down");
        let _ = stop_tx.send(true);
        let close_until = tokio::time::Instant::now() + Duration::from_secs(2);
        while shared.connections.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < close_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in accept_tasks {
            task.abort();
        }
        // The audit writer batches lines (10 ms): write what is queued before the exit.
        let audit = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            audit.audit.as_ref().map(|log| log.flush(Duration::from_secs(2)))
        })
        .await;
        drop(lock);
        tracing::info!("gateway stopped");
        Ok(())
    }
}

fn log_credentials(live: &crate::state::Live, settings: &picoclaw_config::Settings) {
    for p in live.verifier.principals() {
        let endpoints = match p.scope {
            Scope::Admin => "every endpoint (including /pico/ws)",
            Scope::Chat => "the chat endpoints (/pico/ws, /pico/media, /v1, history)",
            Scope::Read => "the history endpoints only",
        };
        tracing::info!(
            "accepting the {} token from {} (fingerprint {}) on {}",
            p.id,
            p.source,
            p.fingerprint,
            endpoints
        );
    }
    if settings.pico.allow_token_query {
        tracing::warn!(
            "channels.pico.allow_token_query is on: tokens in URLs end up in logs and browser history"
        );
    }
    for w in live.credentials.shadow_warnings() {
        tracing::warn!("{w}");
    }
    for (key, r) in settings.entries() {
        for shadowed in &r.shadowed {
            // A flag is an explicit choice for this run; env and files shadowing each other
            // is the confusing case worth a warning.
            if matches!(r.source, picoclaw_config::Source::Flag(_)) {
                tracing::info!("{key}: {} overrides {shadowed}", r.source);
            } else {
                tracing::warn!("{key}: {} overrides a different value in {shadowed}", r.source);
            }
        }
    }
}

async fn sweep_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let closed = shared.close_revoked_sockets();
        shared.tickets.sweep();
        if closed > 0 {
            tracing::info!(closed, "closed sockets whose credential expired");
        }
    }
}

/// Writes named tokens' last-use times to `.security.yml`, at most once a minute.
async fn last_used_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LAST_USED_EVERY);
    tick.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        let updates = shared.live().stored.named.take_last_used();
        if !updates.is_empty() {
            let live = shared.live();
            let file = picoclaw_store::token_records(&shared.paths, &live.settings, &live.credentials);
            let written = tokio::task::spawn_blocking(move || file.persist_last_used(&updates)).await;
            if let Ok(Err(e)) = written {
                tracing::warn!("cannot record token last-use times: {e}");
            }
        }
        if stopping {
            return;
        }
    }
}

/// Watches config.json, .security.yml and every place a secret file is or may appear
/// (`_FILE` directories, `$CREDENTIALS_DIRECTORY`) and reloads on a change
/// ([`picoclaw_serve::sources`]).
fn spawn_watcher(shared: Arc<Shared>, paths: &Paths) {
    use picoclaw_serve::sources::{SourceWatch, Sources};
    let config_dir = paths.config_dir().to_owned();
    let secret_dirs: Vec<std::path::PathBuf> =
        shared.live().credentials.secret_dirs().into_iter().filter(|d| *d != config_dir).collect();
    let sources = Sources::new()
        .file(paths.config_file())
        .file(paths.security_file())
        .dirs(secret_dirs.iter().cloned());
    let (mut watch, unwatched) = match SourceWatch::start(sources) {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!("file watching unavailable ({e}); use `picoclaw gateway reload` after edits");
            return;
        }
    };
    for miss in &unwatched {
        if miss.dir == config_dir {
            tracing::warn!(
                "cannot watch {} ({}); use `picoclaw gateway reload` after edits",
                miss.dir.display(),
                miss.error
            );
        } else {
            tracing::warn!(
                "cannot watch {} ({}); after replacing a secret file there, run `picoclaw gateway reload`",
                miss.dir.display(),
                miss.error
            );
        }
    }
    for dir in secret_dirs.iter().filter(|d| !unwatched.iter().any(|m| m.dir == **d)) {
        tracing::info!("watching secret files in {}", dir.display());
    }
    tokio::spawn(async move {
        loop {
            watch.changed().await;
            let _ = reload(&shared, "file change").await;
        }
    });
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// With `storage.url`: frames of this replica's sessions go to the other replicas, and
/// theirs come to this replica's sockets (`picoclaw_store::PgBus`, LISTEN/NOTIFY).
fn start_relay(shared: &Arc<Shared>) {
    let live = shared.live();
    let Some(target) = picoclaw_store::storage_target(&live.settings, &live.credentials) else { return };
    let (bus, mut frames) = picoclaw_store::PgBus::start(&target);
    shared.hub.relay_to(bus);
    let weak = Arc::downgrade(shared);
    tokio::spawn(async move {
        while let Some(relayed) = frames.recv().await {
            let Some(shared) = weak.upgrade() else { return };
            match relayed {
                picoclaw_store::Relayed::Frame(frame) => shared.hub.deliver_remote(frame),
                picoclaw_store::Relayed::Deleted { session } => {
                    let closed = shared.hub.forget(
                        &session,
                        crate::hub::close::SESSION_DELETED,
                        "the session was deleted (on another replica)",
                    );
                    shared.media.forget_session(&session);
                    tracing::info!(session = %session, closed_sockets = closed, "session deleted on another replica");
                }
            }
        }
    });
}

/// With `storage.url`: a change of the shared named tokens made through any replica (or
/// `picoclaw token` on any home) is read here at once, so a revoked token is refused and
/// its sockets close with 4001 here too (`Shared::apply`). While this
/// replica cannot know of such a change — the listening connection is down, or a change
/// could not be read — every named token is suspended (refused with 503
/// `shared_tokens_unavailable`, its sockets closed with 1013, `/ready` 503) until the
/// tokens are read again: it fails closed. Always on, whatever `gateway.hot_reload` says:
/// it is a credential change, not a file edit. Tickets and pairing codes are shared too
/// (`crate::replicated`): issued here, redeemable once anywhere.
async fn start_token_watch(shared: &Arc<Shared>) {
    let live = shared.live();
    let Some(target) = picoclaw_store::storage_target(&live.settings, &live.credentials) else { return };
    match picoclaw_store::PgOneTime::new(&target) {
        Ok(table) => {
            let _ = shared.shared_one_time.set(table);
        }
        Err(e) => tracing::warn!("shared tickets and pairing codes unavailable (this replica only): {e}"),
    }
    shared.shares_tokens.store(true, Ordering::Release);
    // Until the listener is up and the tokens are read, a change made elsewhere could go
    // unseen: named tokens are accepted from that first read on.
    shared.set_named_state(NamedState::Suspended);
    let feed = picoclaw_store::watch_tokens(&target);
    let (first_read, first) = tokio::sync::oneshot::channel();
    tokio::spawn(follow_shared_tokens(Arc::downgrade(shared), feed, first_read));
    // The store is reachable (it opened): the first read takes milliseconds. Bounded, so a
    // slow database delays the start by at most this, then the replica starts suspended.
    if tokio::time::timeout(FIRST_READ_WITHIN, first).await.is_err() {
        tracing::warn!(
            "shared tokens: not read within {} s; named tokens are refused until they are",
            FIRST_READ_WITHIN.as_secs()
        );
    }
}

/// How long the start waits for the first read of the shared tokens.
const FIRST_READ_WITHIN: Duration = Duration::from_secs(10);

/// What the watch of the shared tokens does next.
enum Next {
    /// Wait for news from the listener.
    Wait,
    /// Read again after this delay, or at once on news.
    Retry(Duration),
    /// Look at the feed again at once (it moved during a read).
    Again,
}

/// Keeps the named tokens in force equal to the shared ones (`feed`: the listener's
/// news): reads them when a change is announced and resumes them; suspends them while the
/// listener is down, when a read fails (retried, 1 s doubling to 30 s) and when the
/// listener drops during a read. They are resumed only after a read during which nothing
/// moved. `first_read` is told when they are first in force.
async fn follow_shared_tokens(
    weak: std::sync::Weak<Shared>,
    mut feed: watch::Receiver<picoclaw_store::TokenFeed>,
    first_read: tokio::sync::oneshot::Sender<()>,
) {
    let mut first_read = Some(first_read);
    let mut applied = None;
    let mut wait = Duration::from_secs(1);
    loop {
        let now = *feed.borrow_and_update();
        let Some(shared) = weak.upgrade() else { return };
        let suspended = shared.live().verifier.named_state() == NamedState::Suspended;
        let next = if !now.listening {
            if applied.is_some() {
                // A revocation made elsewhere from now on would go unseen.
                crate::reload::suspend_shared_tokens(
                    &shared,
                    "the database connection that listens for token changes is down",
                );
            }
            Next::Wait
        } else if applied == Some(now.changes) && !suspended {
            Next::Wait
        } else {
            let read = tokio::select! {
                read = crate::reload::refresh_shared_tokens(&shared) => Some(read),
                seen = feed.wait_for(|f| !f.listening) => {
                    if seen.is_err() {
                        return watch_ended(&shared);
                    }
                    None
                }
            };
            match read {
                None => {
                    crate::reload::suspend_shared_tokens(
                        &shared,
                        "the listening connection dropped during a read",
                    );
                    Next::Again
                }
                Some(Ok(())) if *feed.borrow() == now => {
                    applied = Some(now.changes);
                    wait = Duration::from_secs(1);
                    let resumed = shared.set_named_state(NamedState::Current).is_some();
                    // The start, when it is still waiting for this read, says nothing more.
                    let told = first_read.take().is_some_and(|tell| tell.send(()).is_ok());
                    if resumed && !told {
                        tracing::info!("shared tokens: current again; named tokens accepted, ready");
                    }
                    Next::Wait
                }
                // Something moved during the read: read again before resuming.
                Some(Ok(())) => Next::Again,
                Some(Err(e)) => {
                    crate::reload::suspend_shared_tokens(
                        &shared,
                        &format!("a change could not be read ({e})"),
                    );
                    tracing::error!("shared tokens: retrying in {} s", wait.as_secs());
                    let delay = wait;
                    wait = (wait * 2).min(Duration::from_secs(30));
                    Next::Retry(delay)
                }
            }
        };
        drop(shared);
        let news = match next {
            Next::Again => Ok(()),
            Next::Wait => feed.changed().await,
            Next::Retry(delay) => tokio::select! {
                () = tokio::time::sleep(delay) => Ok(()),
                news = feed.changed() => news,
            },
        };
        if news.is_err() {
            if let Some(shared) = weak.upgrade() {
                watch_ended(&shared);
            }
            return;
        }
    }
}

/// The listener's task is gone (it only ends when its receiver is dropped, so it
/// failed): nothing will tell this replica of a change again, so the named tokens stay
/// suspended until a restart.
fn watch_ended(shared: &Shared) {
    crate::reload::suspend_shared_tokens(
        shared,
        "the watch of the shared tokens ended unexpectedly (restart the gateway)",
    );
}

/// Refreshes this gateway's heartbeat in the home (`picoclaw_lifecycle::writers`: doctor's
/// `shared-home`), and removes it when the gateway stops.
async fn beat_loop(paths: picoclaw_config::Paths, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(picoclaw_lifecycle::writers::BEAT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let p = paths.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || picoclaw_lifecycle::writers::beat(&p)).await {
                    tracing::warn!("cannot write the gateway heartbeat in the home: {e}");
                }
            }
            _ = stop.changed() => {
                picoclaw_lifecycle::writers::remove(&paths);
                return;
            }
        }
    }
}
