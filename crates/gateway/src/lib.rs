//! The picoclaw gateway: one HTTP server carrying the health and admin endpoints and the
//! Pico WebSocket channel.
//!
//! Routes (see `docs/gateway.md`):
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /health` | none | `{"status":"ok","uptime_s","version"}` |
//! | `GET /ready` | none | 503 until serving, then 200 |
//! | `POST /reload` | admin | re-read config and secrets; 405 for other methods |
//! | `GET /auth/whoami` | any | the caller's principal: kind, id, scope, source, fingerprint |
//! | `GET /status` | admin | pid, uptime, connections, pico_client state |
//! | `POST /auth/ticket` | chat | a single-use WebSocket ticket |
//! | `/api/tokens…` | admin | named tokens: list, create, revoke, rotate (see `tokens_api`) |
//! | `/pico/ws`, `/pico/ws/` | chat | the Pico channel |
//!
//! Credentials accepted: the gateway token and the runtime token everywhere, the pico
//! token on the Pico channel only. Nothing is composed or rewritten.

mod api;
mod conn;
mod error;
mod hub;
mod reload;
mod server;
mod state;
mod tokens_api;
mod turn;

pub use error::GatewayError;
pub use server::{Gateway, Options};
