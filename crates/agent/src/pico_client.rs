//! The outbound `channels.pico_client` channel (work in progress: status types only).

use std::sync::{Arc, Mutex};

use picoclaw_config::Settings;
use picoclaw_credentials::Credentials;
use serde::Serialize;

use crate::Engine;

/// Connection state of the pico_client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PicoClientState {
    /// Dialing the remote server.
    Connecting,
    /// Connected and serving.
    Connected,
    /// Waiting before the next attempt.
    BackingOff,
}

/// A point-in-time view of the pico_client, for `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PicoClientSnapshot {
    /// Current state.
    pub state: PicoClientState,
    /// The remote URL (without query).
    pub url: String,
    /// The session id used on the remote server.
    pub session_id: String,
    /// The last connection or protocol error (never contains a token).
    pub last_error: Option<String>,
    /// Reconnects since start.
    pub reconnects: u64,
    /// Inbound messages answered since start.
    pub messages_answered: u64,
}

/// Live status of the pico_client, shared with the gateway.
#[derive(Debug)]
pub struct PicoClientStatus {
    inner: Mutex<PicoClientSnapshot>,
}

impl PicoClientStatus {
    /// The current status.
    pub fn snapshot(&self) -> PicoClientSnapshot {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Starts the pico_client when `channels.pico_client.enabled`; `None` when disabled.
pub fn spawn_pico_client(
    settings: &Settings,
    creds: &Credentials,
    engine: Engine,
) -> Option<Arc<PicoClientStatus>> {
    let _ = (settings, creds, engine);
    None
}
