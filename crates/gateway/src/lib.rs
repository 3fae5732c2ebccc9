//! The picoclaw gateway: one HTTP server carrying the health and admin endpoints and the
//! Pico WebSocket channel.
//!
//! Routes: the gateway rows of `picoclaw_auth::endpoints::ENDPOINTS` (docs/credentials.md
//! prints the table). The router is built from that table (`api::router`), each protected
//! handler takes the [`Authenticated`](authenticated) extractor of its row, and the
//! in-process matrix test checks every row against every kind of credential.
//!
//! Credentials accepted: the gateway token and the runtime token everywhere, the pico
//! token (scope chat) on the chat endpoints, named tokens per scope, tickets on the Pico
//! socket only. Nothing is composed or rewritten.

/// The log a 500 answer points the operator to.
pub(crate) const LOG: &str = "logs/gateway.log";

mod api;
mod authenticated;
mod conn;
mod error;
mod history;
mod hub;
mod media;
mod openai;
mod outbox;
mod pairing;
mod reload;
mod replicated;
mod server;
mod state;
mod tokens_api;
mod turn;

#[cfg(test)]
mod tests;

pub use error::GatewayError;
pub use server::{Gateway, Options};
