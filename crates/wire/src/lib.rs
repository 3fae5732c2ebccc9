//! The HTTP wire layer shared by the gateway and the launcher.
//!
//! - [`ApiError`]: every refusal and failure either server answers, as
//!   `{"error":{"code","message"}}` with its status (and `Retry-After`,
//!   `WWW-Authenticate` where they apply). Each failure is one [`Code`] — a typed name with
//!   one status and one stable string — or a credential error ([`picoclaw_auth::AuthError`])
//!   or token-operation error ([`picoclaw_auth::named::ops::TokenOpError`]), which carry
//!   their own codes. A 5xx never says more than "internal error"; the detail is logged.
//! - [`body`]: the typed JSON bodies of the answers both servers send.
//! - [`openai`]: the request and answer bodies of the OpenAI-compatible endpoints.

pub mod body;
mod error;
pub mod openai;

pub use error::{ApiError, Code};
