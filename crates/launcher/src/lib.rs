//! The web launcher: a small dashboard server in front of the gateway.
//!
//! It logs the user in with the launcher token (seed 001, "Web Launcher Dashboard Token"),
//! keeps server-side sessions in HMAC-signed cookies, limits failed logins, controls the
//! gateway process (adopting one found through `.picoclaw.pid`, or starting a child), and
//! proxies the Pico chat socket so the browser never holds a gateway or pico token.
//! Routes are listed in `routes`; decisions are written down in `docs/launcher.md`.

/// The log a 500 answer points the operator to.
pub(crate) const LOG: &str = "logs/launcher.log";

mod assets;
mod error;
mod gateway;
mod history;
mod login_code;
mod net;
mod proxy;
mod routes;
mod session;
mod state;
mod tokens;
mod watch;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use picoclaw_auth::{FailureLimiter, LimiterConfig};
use picoclaw_config::{Host, LauncherSettings, Paths};
use picoclaw_credentials::launcher::LauncherToken;
use picoclaw_serve::admission::{self, Admission};

pub use error::LauncherError;
pub use gateway::{ControlError, GatewayControl, GatewayState, GatewayStatus, LOG_LINES};
pub use login_code::{CODE_TTL, CodeError, MAX_OUTSTANDING as MAX_LOGIN_CODES};
pub use routes::{CSP, MAX_TOKEN_LEN, MIN_TOKEN_LEN};
pub use session::{COOKIE, MAX_AGE};

/// Failed-login limits: 10 wrong tokens per address per minute, then a one-minute lockout;
/// 100 per minute across all addresses; at most 4096 addresses remembered.
pub const LOGIN_LIMITS: LimiterConfig = LimiterConfig {
    per_key_max: 10,
    global_max: 100,
    window: std::time::Duration::from_secs(60),
    lockout: std::time::Duration::from_secs(60),
    capacity: 4096,
};

/// What the launcher needs to start.
#[derive(Debug)]
pub struct Options {
    /// Absolute paths (they are handed to the gateway child).
    pub paths: Paths,
    /// `launcher.*` settings.
    pub settings: LauncherSettings,
    /// The dashboard token.
    pub token: LauncherToken,
    /// The dashboard password, when one is set (password login beside the token).
    pub password: Option<picoclaw_credentials::password::DashboardPassword>,
    /// The `picoclaw` executable, to start the gateway with.
    pub exe: PathBuf,
    /// Where `launcher.port` came from (`flag:--port`, `env:…`, `launcher-config.json:port`,
    /// `the built-in default (18800)`), for the "port in use" error.
    pub port_source: String,
}

/// A bound, not yet serving launcher.
#[derive(Debug)]
pub struct Launcher {
    listener: tokio::net::TcpListener,
    state: Arc<state::AppState>,
    public: bool,
}

/// The address the dashboard listens on: every interface when `public`, else the first
/// address of `launcher.host` (`localhost` = 127.0.0.1).
fn bind_addr(settings: &LauncherSettings) -> Result<SocketAddr, LauncherError> {
    let host = if settings.public { Host::Any } else { settings.host.clone() };
    let err = |reason| LauncherError::Bind { addr: format!("{host}:{}", settings.port), reason };
    host.bind_addrs(settings.port)
        .map_err(err)?
        .into_iter()
        .next()
        .ok_or_else(|| err(std::io::Error::other("the host resolves to no address")))
}

impl Launcher {
    /// Parses the network settings and binds the listening socket.
    pub async fn bind(options: Options) -> Result<Launcher, LauncherError> {
        let addr = bind_addr(&options.settings)?;
        let ip = addr.ip();
        let net = net::NetPolicy {
            allowed: options.settings.allowed_cidrs.clone(),
            trusted_proxies: options.settings.trusted_proxies.clone(),
            loopback_only: ip.is_loopback(),
        };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|reason| {
            if reason.kind() == std::io::ErrorKind::AddrInUse {
                LauncherError::PortInUse {
                    addr: addr.to_string(),
                    port: addr.port(),
                    source_name: options.port_source.clone(),
                    holder: picoclaw_lifecycle::port::holder(&options.paths, addr.port()),
                }
            } else {
                LauncherError::Bind { addr: addr.to_string(), reason }
            }
        })?;
        let public = !ip.is_loopback();
        if public && net.allowed.is_empty() {
            tracing::warn!(
                "the dashboard listens on all interfaces with no launcher.allowed_cidrs: anyone who can reach \
                 {addr} may try to log in; set allowed_cidrs or put it behind a TLS proxy"
            );
        }
        let state = Arc::new(state::AppState {
            sessions: session::Sessions::new().map_err(|_| LauncherError::Random)?,
            codes: login_code::LoginCodes::new(),
            token: RwLock::new(state::TokenState {
                secret: options.token.secret,
                origin: options.token.origin,
                generation: 0,
            }),
            limiter: FailureLimiter::new(LOGIN_LIMITS),
            gateway: gateway::GatewayControl::new(options.paths.clone(), options.exe),
            localhost_bypass: options.settings.allow_localhost_bypass,
            password: RwLock::new(options.password),
            base: options.settings.base_path.clone(),
            paths: options.paths,
            net,
        });
        Ok(Launcher { listener, state, public })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The dashboard URL a local user opens (`http://127.0.0.1:PORT/`, or
    /// `http://127.0.0.1:PORT/picoclaw/` under a base path; loopback when bound to all
    /// interfaces).
    pub fn url(&self) -> String {
        let addr = self.local_addr().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let ip = if addr.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { addr.ip() };
        format!("http://{}{}/", SocketAddr::new(ip, addr.port()), self.state.base.as_str())
    }

    /// A handle for front-ends beside the dashboard (the console, the tray): login links,
    /// gateway control, the token for "Copy Console Token". It stays valid while
    /// [`Launcher::run`] serves.
    pub fn handle(&self) -> Handle {
        Handle { state: self.state.clone(), url: self.url() }
    }

    /// Whether it listens beyond loopback.
    pub fn is_public(&self) -> bool {
        self.public
    }

    /// Adopts a running gateway or starts one. A failed start is logged and shown on the
    /// dashboard; the launcher keeps serving.
    pub async fn ensure_gateway(&self) -> Result<GatewayStatus, ControlError> {
        match self.state.gateway.start().await {
            Ok(record) => {
                let status = self.state.gateway.status().await;
                let how = if status.owned { "started" } else { "adopted" };
                tracing::info!(pid = record.pid, url = %record.base_url(), "gateway {how}");
                Ok(status)
            }
            Err(e) => {
                tracing::warn!("{e}");
                Err(e)
            }
        }
    }

    /// Serves until `shutdown` completes, then stops the gateway if this launcher started it.
    /// Connections are accepted like the gateway's (`picoclaw_serve`): HTTP connections that
    /// are not chat sockets have their own budget (32 per address, 256 in all, idle ones
    /// evicted first) and 5 s to send their request head.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), LauncherError> {
        let state = self.state.clone();
        watch::spawn(state.clone());
        let router = routes::app(self.state);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let admission = Admission::new(admission::PER_ADDRESS, admission::TOTAL);
        let accept = tokio::spawn(picoclaw_serve::accept_loop(self.listener, router, rx, admission.clone()));
        shutdown.await;
        let _ = tx.send(true);
        let _ = accept.await;
        // Open chat sockets do not hold the exit: after the signal, give requests a short
        // grace, then go on to stop the gateway.
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while admission.counted() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        state.gateway.shutdown().await;
        Ok(())
    }
}

/// What "Copy Console Token" may copy (seed 001, "Tray/GUI mode").
#[derive(Debug)]
pub enum ConsoleToken {
    /// The token's value (it comes from `launcher-config.json` or was generated).
    Value(picoclaw_credentials::Secret),
    /// The token is set by the environment or a file managed outside picoclaw: its value
    /// stays there.
    External,
}

/// The launcher seen from a front-end running beside it (console, tray): the same state
/// the dashboard's routes use, so there is one gateway control and one token.
#[derive(Debug, Clone)]
pub struct Handle {
    state: Arc<state::AppState>,
    url: String,
}

impl Handle {
    /// The dashboard URL (see [`Launcher::url`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A fresh one-time login link, `<dashboard>/login#code=<code>` (under the base path):
    /// it logs one browser in once within [`CODE_TTL`]. The link is a credential: it is a
    /// `Secret` so it is never printed by accident.
    pub fn login_link(&self) -> Result<picoclaw_credentials::Secret, LauncherError> {
        let code = self.state.codes.mint(self.state.generation()).map_err(|_| LauncherError::Random)?;
        Ok(picoclaw_credentials::Secret::new(format!("{}login#code={}", self.url, code.expose())))
    }

    /// Gateway control, the same the dashboard's Start / Stop / Restart use.
    pub fn gateway(&self) -> &GatewayControl {
        &self.state.gateway
    }

    /// The current launcher token for "Copy Console Token", or `External` when its value
    /// is managed outside picoclaw.
    pub fn console_token(&self) -> ConsoleToken {
        let token = self.state.token();
        match token.origin {
            picoclaw_credentials::launcher::Origin::Env => ConsoleToken::External,
            _ => ConsoleToken::Value(token.secret.clone()),
        }
    }
}

/// Entry points for the fuzz targets in `fuzz/` (not a public API).
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::OnceLock;

    use crate::session::{self, Sessions};

    const DIGEST: [u8; 32] = [0x5a; 32];

    /// Decodes `input` as a session cookie value and as a `Cookie` header. Panics if a
    /// value other than the one issued (up to the letter case of its hex) is accepted.
    pub fn cookie(input: &str) {
        static STATE: OnceLock<Option<(Sessions, String)>> = OnceLock::new();
        let state = STATE.get_or_init(|| {
            let sessions = Sessions::new().ok()?;
            let (_, cookie) = sessions.create(1, &DIGEST).ok()?;
            Some((sessions, cookie))
        });
        let Some((sessions, issued)) = state else { return };
        if sessions.validate(input, 1, &DIGEST).is_some() {
            assert_eq!(&input.to_ascii_lowercase(), issued, "a forged session cookie was accepted");
        }
        if let Ok(value) = http::HeaderValue::from_str(input) {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::COOKIE, value);
            if let Some(found) = session::from_headers(&headers) {
                let _ = sessions.validate(found, 1, &DIGEST);
            }
        }
    }
}
