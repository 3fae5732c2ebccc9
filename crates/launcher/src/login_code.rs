//! One-time login codes: a link that logs a browser in once, instead of the long-lived
//! launcher token in a URL.
//!
//! `picoclaw launcher --console` prints `<dashboard>/login#code=<code>` and the tray's
//! "Open dashboard" opens a fresh one each time. The code is 256 random bits (43 characters
//! of base64url, `picoclaw_auth::ticket::one_time_secret`), carried in the URL's fragment
//! (never sent to any server, never in a `Referer`); the login page reads it, drops it from
//! the address bar and posts it to `POST /login/code`. Codes are kept by their SHA-256 only,
//! in memory (a restart forgets them), valid [`CODE_TTL`], usable once, at most
//! [`MAX_OUTSTANDING`] at a time (expired ones are dropped first, then the oldest), and each
//! is bound to the launcher token's generation: changing the token voids every code.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use picoclaw_auth::ticket::{TICKET_LEN, one_time_digest, one_time_secret};
use picoclaw_credentials::Secret;

/// How long a login code is valid.
pub const CODE_TTL: Duration = Duration::from_secs(120);
/// The most codes outstanding at once.
pub const MAX_OUTSTANDING: usize = 8;
/// Length of a code (43 characters of base64url, like a ticket).
pub const CODE_LEN: usize = TICKET_LEN;

/// Why a code was not accepted. The answer to the browser does not tell them apart (any of
/// them is a failed login); the log does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not 43 characters of base64url.
    #[error("malformed login code (expected 43 characters of base64url)")]
    Malformed,
    /// Never issued by this launcher process, or already used.
    #[error("unknown or already used login code")]
    Unknown,
    /// Older than [`CODE_TTL`].
    #[error("expired login code (codes are valid for 2 minutes)")]
    Expired,
    /// Issued before the launcher token changed.
    #[error("login code issued under a launcher token that has since changed")]
    Stale,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    issued: Instant,
    generation: u64,
}

/// The outstanding codes of one launcher process.
#[derive(Debug)]
pub(crate) struct LoginCodes {
    table: Mutex<HashMap<[u8; 32], Entry>>,
    ttl: Duration,
    cap: usize,
}

impl LoginCodes {
    pub fn new() -> LoginCodes {
        LoginCodes::with_limits(CODE_TTL, MAX_OUTSTANDING)
    }

    pub fn with_limits(ttl: Duration, cap: usize) -> LoginCodes {
        LoginCodes { table: Mutex::new(HashMap::new()), ttl, cap: cap.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // Entries are inserted and removed whole: a panic cannot leave one half-written.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh code for token `generation`.
    pub fn mint(&self, generation: u64) -> Result<Secret, getrandom::Error> {
        let code = one_time_secret()?;
        let Some(digest) = one_time_digest(code.expose(), CODE_LEN) else {
            // one_time_secret always has the shape; a broken generator is a random failure.
            return Err(getrandom::Error::UNSUPPORTED);
        };
        let now = Instant::now();
        let mut table = self.lock();
        table.retain(|_, e| now.duration_since(e.issued) < self.ttl);
        while table.len() >= self.cap {
            let Some(oldest) = table.iter().min_by_key(|(_, e)| e.issued).map(|(k, _)| *k) else { break };
            table.remove(&oldest);
        }
        table.insert(digest, Entry { issued: now, generation });
        Ok(code)
    }

    /// Consumes `presented` (whatever the outcome: a code is tried at most once) and
    /// accepts it when it was issued under token `generation` less than the TTL ago.
    pub fn redeem(&self, presented: &str, generation: u64) -> Result<(), CodeError> {
        let digest = one_time_digest(presented, CODE_LEN).ok_or(CodeError::Malformed)?;
        let entry = self.lock().remove(&digest).ok_or(CodeError::Unknown)?;
        if entry.issued.elapsed() >= self.ttl {
            return Err(CodeError::Expired);
        }
        if entry.generation != generation {
            return Err(CodeError::Stale);
        }
        Ok(())
    }

    /// Voids every code (the launcher token changed).
    pub fn clear(&self) {
        self.lock().clear();
    }

    #[cfg(test)]
    fn outstanding(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once() {
        let codes = LoginCodes::new();
        let code = codes.mint(0).unwrap();
        assert_eq!(code.expose().len(), CODE_LEN);
        assert_eq!(codes.redeem(code.expose(), 0), Ok(()));
        assert_eq!(codes.redeem(code.expose(), 0), Err(CodeError::Unknown));
    }

    #[test]
    fn malformed_unknown_stale_and_expired() {
        let codes = LoginCodes::new();
        assert_eq!(codes.redeem("short", 0), Err(CodeError::Malformed));
        assert_eq!(codes.redeem(&"A".repeat(CODE_LEN), 0), Err(CodeError::Unknown));
        let code = codes.mint(0).unwrap();
        assert_eq!(codes.redeem(code.expose(), 1), Err(CodeError::Stale));
        assert_eq!(codes.redeem(code.expose(), 0), Err(CodeError::Unknown), "a stale try burns it");
        let expiring = LoginCodes::with_limits(Duration::ZERO, 4);
        let code = expiring.mint(0).unwrap();
        assert_eq!(expiring.redeem(code.expose(), 0), Err(CodeError::Expired));
    }

    #[test]
    fn bounded_oldest_first_and_cleared() {
        let codes = LoginCodes::with_limits(CODE_TTL, 3);
        let minted: Vec<Secret> = (0..5).map(|_| codes.mint(0).unwrap()).collect();
        assert_eq!(codes.outstanding(), 3);
        assert_eq!(codes.redeem(minted[0].expose(), 0), Err(CodeError::Unknown), "the oldest went first");
        assert_eq!(codes.redeem(minted[4].expose(), 0), Ok(()));
        codes.clear();
        assert_eq!(codes.redeem(minted[3].expose(), 0), Err(CodeError::Unknown));
    }
}
