//! Presenting and verifying credentials.
//!
//! - [`extract`]: finds the credential in a request — `Authorization: Bearer <t>`, then a
//!   `Sec-WebSocket-Protocol` offer `token.<t>` (or `ticket.<t>`), then `?token=<t>` only
//!   when allowed. Nothing is ever composed or rewritten.
//! - [`Verifier`]: checks a presented token against the configured set in constant time
//!   (SHA-256 both sides, compare digests, no early exit) and returns a [`Principal`]
//!   with its kind, id, scope and source — or a typed [`AuthError`].
//! - [`FailureLimiter`]: failed-attempt limiting per client address and globally, with
//!   bounded memory.
//! - [`named`]: named tokens (`pcl_<id>_<secret>_<check>`, stored as SHA-256 in
//!   `.security.yml`), rotation grace for the fixed credentials, O(1) verification.
//! - [`ticket`]: single-use, origin-bound, 30-second WebSocket tickets.
//! - [`audit`]: the `logs/audit.jsonl` writer.

pub mod audit;
mod extract;
mod limiter;
pub mod named;
pub mod ticket;
mod verify;

pub use extract::{Extracted, Presentation, extract};
pub use limiter::{FailureLimiter, LimiterConfig, RetryAfter};
pub use named::{GraceDigests, NamedTokenStore, StoredCredentials};
pub use ticket::TicketStore;
pub use verify::{AuthError, CredentialKind, NamedTokens, Principal, Scope, Verifier};
