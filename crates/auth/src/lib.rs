//! Presenting and verifying credentials.
//!
//! - [`presented`]: collects the credentials of a request an endpoint accepts —
//!   `Authorization: Bearer <t>`, then `Sec-WebSocket-Protocol` offers `token.<t>` /
//!   `ticket.<t>`, then `?token=<t>` only when allowed. Nothing is composed or rewritten.
//! - [`Gate`]: tries them in order against the [`Verifier`] and the [`TicketStore`],
//!   applies the failure lockout (never to a credential that cannot be guessed) and the
//!   scope.
//! - [`endpoints`]: the one table of every endpoint and what guards it; the gateway's
//!   router, `picoclaw auth explain` ([`explain`]) and docs/credentials.md follow it.
//! - [`Verifier`]: checks a presented token against the configured set in constant time
//!   (SHA-256 both sides, compare digests, no early exit) and returns a [`Principal`]
//!   with its kind, id, scope and source — or a typed [`AuthError`].
//! - [`FailureLimiter`]: failed-attempt limiting per client address and globally, with
//!   bounded memory.
//! - [`named`]: named tokens (`pcl_<id>_<secret>_<check>`, stored as SHA-256 in
//!   `.security.yml`), rotation grace for the fixed credentials, O(1) verification.
//! - [`ticket`]: single-use, origin-bound, 30-second WebSocket tickets.
//! - [`audit`]: the `logs/audit.jsonl` writer.
//! - [`forwarded`]: the client address behind trusted proxies (`X-Forwarded-For`, strict).

pub mod audit;
pub mod endpoints;
pub mod explain;
mod extract;
pub mod forwarded;
mod gate;
mod limiter;
pub mod named;
pub mod one_time;
pub mod pairing;
pub mod ticket;
mod verify;

pub use extract::{Candidate, MAX_OFFERS, MAX_TOKEN_LEN, Presentation, Presentations, Presented, presented};
pub use forwarded::{ClientAddr, client_addr};
pub use gate::{Admitted, Gate};
pub use limiter::{FailureLimiter, LimiterConfig, RetryAfter};
pub use named::{GraceDigests, NamedTokenStore, StoredCredentials};
pub use one_time::OneTimeTable;
pub use ticket::TicketStore;
pub use verify::{AuthError, CredentialKind, Lapse, NamedState, NamedTokens, Principal, Scope, Verifier};
