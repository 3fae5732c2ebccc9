//! The gate every protected request passes: try the presented candidates in order, redeem
//! tickets against the current verifier, apply the failure lockout, check the scope.
//!
//! The lockout rule (docs/credentials.md, "Failure lockout"): every wrong secret a request
//! presents counts (per client — an IPv4 address, an IPv6 /64, or this machine for every
//! loopback address — and globally); a locked-out client, or any client once the global
//! budget is spent, is refused with 429 — unless the credential it presents is valid and
//! cannot be guessed (the runtime token,
//! a named token, a ticket, a configured token that looks like at least 128 random bits).
//! A lockout exists to stop guessing; refusing a credential nobody can guess would only
//! let an attacker lock the local tools out of their own gateway. A guessable credential
//! (a short or patterned configured token) stays refused while the address is locked,
//! even when it is right, so the lockout keeps limiting what can be guessed.

use std::net::IpAddr;

use crate::extract::{Presentation, Presented};
use crate::limiter::FailureLimiter;
use crate::ticket::TicketStore;
use crate::verify::{AuthError, Principal, Scope, Verifier};

/// What the gate consults: the current verifier, the outstanding tickets, the limiter.
#[derive(Debug, Clone, Copy)]
pub struct Gate<'a> {
    /// The credentials accepted now.
    pub verifier: &'a Verifier,
    /// Outstanding WebSocket tickets.
    pub tickets: &'a TicketStore,
    /// Failed-attempt limits.
    pub limiter: &'a FailureLimiter,
}

/// A request the gate let through.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Who is calling. For a ticket, the credential that minted it.
    pub principal: Principal,
    /// How the accepted credential was presented.
    pub how: Presentation,
    /// The subprotocol the 101 response must select, if any (see
    /// [`Presented::echo_for`]).
    pub echo: Option<String>,
}

impl Gate<'_> {
    /// Admits a request presenting `presented` from `client` (with `origin`, for tickets)
    /// to an endpoint that needs `needed`.
    pub fn admit(
        &self,
        presented: &Presented,
        needed: Scope,
        client: IpAddr,
        origin: Option<&str>,
    ) -> Result<Admitted, AuthError> {
        let locked = self.limiter.check(client).err();
        let mut first_error = None;
        let mut accepted = None;
        // Every candidate that was a wrong secret is a guess, whatever else rode along.
        let mut guesses = 0;
        for candidate in presented.candidates() {
            let verdict = match candidate.how() {
                Presentation::Ticket => self
                    .tickets
                    .redeem(candidate.token(), origin, self.verifier)
                    .map(|mut parent| {
                        // The ticket itself is 256 random bits: it cannot be guessed.
                        parent.guessable = false;
                        parent
                    })
                    .map_err(AuthError::from),
                _ => self.verifier.identify(candidate.token()),
            };
            match verdict {
                Ok(principal) => {
                    accepted = Some((principal, candidate));
                    break;
                }
                Err(e) => {
                    guesses += usize::from(e.counts_as_failure());
                    first_error.get_or_insert(e);
                }
            }
        }
        for _ in 0..guesses {
            self.limiter.record_failure(client);
        }
        let Some((principal, candidate)) = accepted else {
            if let Some(retry) = locked {
                return Err(AuthError::RateLimited { retry_after_secs: retry.0 });
            }
            // Only a secret that was tried and found wrong is a guess (counted above); a
            // missing credential, a foreign Authorization scheme or a real-but-stale one is
            // not.
            return Err(first_error.or_else(|| presented.problem().cloned()).unwrap_or(AuthError::Missing));
        };
        if let Some(retry) = locked
            && principal.guessable
        {
            return Err(AuthError::RateLimited { retry_after_secs: retry.0 });
        }
        if !principal.scope.allows(needed) {
            return Err(AuthError::Scope { id: principal.id, has: principal.scope, needed });
        }
        let echo = presented.echo_for(candidate).map(str::to_owned);
        Ok(Admitted { principal, how: candidate.how(), echo })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
    use http::{HeaderMap, HeaderValue};
    use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};
    use picoclaw_credentials::{Credentials, Secret};

    use super::*;
    use crate::extract::{Presentations, presented};
    use crate::limiter::LimiterConfig;

    const STRONG: &str = "7f3a9c01e4b2d8567a0c3e9f1b4d6a28e5c70b93d1f46a2c";

    fn verifier(pico: &str) -> Verifier {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let env = MapEnv::new().with("PICOCLAW_CHANNELS_PICO_TOKEN", pico);
        let layers = Layers::load(&paths, &env, &Flags::new()).unwrap();
        let settings = Settings::resolve(&layers).unwrap();
        let creds = Credentials::resolve(&layers, &settings).unwrap();
        Verifier::new(&creds, &Secret::new("runtime-token-with-plenty-of-random-bits-0123456789"), true)
    }

    fn bearer(token: &str) -> Presented {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        presented(&h, None, Presentations::SOCKET, false)
    }

    fn limiter() -> FailureLimiter {
        FailureLimiter::new(LimiterConfig {
            per_key_max: 3,
            global_max: 1000,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
            capacity: 16,
        })
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_lockout_never_refuses_an_unguessable_credential() {
        let (v, t, l) = (verifier("short-pico"), TicketStore::new(), limiter());
        let gate = Gate { verifier: &v, tickets: &t, limiter: &l };
        for _ in 0..3 {
            assert_eq!(
                gate.admit(&bearer("wrong"), Scope::Chat, LOCAL, None).unwrap_err().code(),
                "invalid_credential"
            );
        }
        assert!(matches!(
            gate.admit(&bearer("wrong"), Scope::Chat, LOCAL, None),
            Err(AuthError::RateLimited { .. })
        ));
        let runtime = gate.admit(
            &bearer("runtime-token-with-plenty-of-random-bits-0123456789"),
            Scope::Admin,
            LOCAL,
            None,
        );
        assert!(runtime.is_ok(), "the runtime token is not locked out: {runtime:?}");
        assert!(
            matches!(
                gate.admit(&bearer("short-pico"), Scope::Chat, LOCAL, None),
                Err(AuthError::RateLimited { .. })
            ),
            "a guessable token stays refused while the address is locked"
        );
        let strong = verifier(STRONG);
        let gate = Gate { verifier: &strong, tickets: &t, limiter: &l };
        assert!(
            gate.admit(&bearer(STRONG), Scope::Chat, LOCAL, None).is_ok(),
            "a 128-bit random token passes"
        );
    }

    #[test]
    fn a_wrong_or_foreign_header_does_not_block_a_valid_offer() {
        let (v, t, l) = (verifier(STRONG), TicketStore::new(), limiter());
        let gate = Gate { verifier: &v, tickets: &t, limiter: &l };
        for (auth, guesses) in [("Basic Zm9vOmJhcg==", 0), ("Bearer wrong", 1)] {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
            h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(&format!("token.{STRONG}")).unwrap());
            let admitted =
                gate.admit(&presented(&h, None, Presentations::SOCKET, false), Scope::Chat, LOCAL, None);
            let admitted = admitted.unwrap_or_else(|e| panic!("{auth}: {e}"));
            assert_eq!(admitted.echo.as_deref(), Some(format!("token.{STRONG}").as_str()));
            assert_eq!(l.tracked(), guesses, "{auth}: a wrong secret beside a valid one is still a guess");
        }
    }

    #[test]
    fn a_missing_credential_or_a_foreign_scheme_is_not_a_guess() {
        let (v, t, l) = (verifier(STRONG), TicketStore::new(), limiter());
        let gate = Gate { verifier: &v, tickets: &t, limiter: &l };
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic Zm9v"));
        for _ in 0..10 {
            let p = presented(&h, None, Presentations::BEARER, false);
            assert!(matches!(gate.admit(&p, Scope::Chat, LOCAL, None), Err(AuthError::Malformed(_))));
            let empty = presented(&HeaderMap::new(), None, Presentations::BEARER, false);
            assert_eq!(gate.admit(&empty, Scope::Chat, LOCAL, None).unwrap_err(), AuthError::Missing);
        }
        assert_eq!(l.tracked(), 0);
    }
}
