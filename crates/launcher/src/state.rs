//! What every request handler shares: the token, the session table, the failure limiter,
//! the one-time login codes, the network policy and gateway control.

use std::sync::RwLock;

use picoclaw_auth::FailureLimiter;
use picoclaw_config::{BasePath, Paths};
use picoclaw_credentials::Secret;
use picoclaw_credentials::launcher::Origin;
use picoclaw_credentials::password::DashboardPassword;

use crate::gateway::GatewayControl;
use crate::login_code::LoginCodes;
use crate::net::NetPolicy;
use crate::session::Sessions;

/// The active dashboard token.
#[derive(Debug)]
pub(crate) struct TokenState {
    pub secret: Secret,
    pub origin: Origin,
    /// Bumped on every change; sessions of an older generation are void.
    pub generation: u64,
}

/// Shared state.
#[derive(Debug)]
pub(crate) struct AppState {
    pub paths: Paths,
    pub sessions: Sessions,
    /// Outstanding one-time login codes (`login#code=`).
    pub codes: LoginCodes,
    pub token: RwLock<TokenState>,
    pub limiter: FailureLimiter,
    pub gateway: GatewayControl,
    pub net: NetPolicy,
    /// `launcher.allow_localhost_bypass`: loopback clients pass `allowed_cidrs`.
    pub localhost_bypass: bool,
    /// The dashboard password (`dashboard_password_hash`), when one is set.
    pub password: RwLock<Option<DashboardPassword>>,
    /// `launcher.base_path`: every route, redirect and cookie is under it.
    pub base: BasePath,
}

impl AppState {
    pub fn password(&self) -> Option<DashboardPassword> {
        self.password.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn token(&self) -> std::sync::RwLockReadGuard<'_, TokenState> {
        // A panic cannot leave the token half-written (it is replaced whole).
        self.token.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn generation(&self) -> u64 {
        self.token().generation
    }

    /// Generation and SHA-256 of the current token (what session cookies are bound to).
    pub fn binding(&self) -> (u64, [u8; 32]) {
        let token = self.token();
        (token.generation, token.secret.digest())
    }
}
