//! Authentication as a type: a handler that takes [`Authenticated<G>`] cannot run unless
//! the request passed the gate for guard `G`; a handler that does not take it is public.
//!
//! The guards match the rows of [`picoclaw_auth::endpoints::ENDPOINTS`]: [`Admin`],
//! [`Chat`] and [`Read`] take `Authorization: Bearer` only; [`PicoSocket`] also takes `token.<t>` and
//! `ticket.<t>` offers and `?token=` when allowed; [`PicoMedia`] takes Bearer and
//! `?token=` when allowed. The in-process matrix test (`tests.rs`) checks every row of the
//! table against what its handler really does.

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::header;
use axum::http::request::Parts;
use picoclaw_auth::audit::AuditEvent;
use picoclaw_auth::{Gate, Presentation, Presentations, Principal, Scope, presented};

use crate::LOG;
use crate::state::Shared;
use picoclaw_wire::{ApiError, Code};

/// What a guard requires.
pub(crate) trait Guard: Send + Sync + 'static {
    /// The scope needed.
    const SCOPE: Scope;
    /// Ways of presenting a credential besides `Authorization: Bearer`.
    const PRESENTATIONS: Presentations;
    /// A Pico-channel endpoint: 404 while the channel is disabled, 503 while shutting down.
    const PICO: bool;
}

/// Admin scope, `Authorization: Bearer`.
pub(crate) struct Admin;
/// Chat scope, `Authorization: Bearer`.
pub(crate) struct Chat;
/// Read scope (any valid credential), `Authorization: Bearer`.
pub(crate) struct Read;
/// The Pico socket: chat scope; Bearer, `token.<t>` / `ticket.<t>` offers, `?token=` when allowed.
pub(crate) struct PicoSocket;
/// Pico media: chat scope; Bearer and `?token=` when allowed.
pub(crate) struct PicoMedia;

impl Guard for Admin {
    const SCOPE: Scope = Scope::Admin;
    const PRESENTATIONS: Presentations = Presentations::BEARER;
    const PICO: bool = false;
}

impl Guard for Chat {
    const SCOPE: Scope = Scope::Chat;
    const PRESENTATIONS: Presentations = Presentations::BEARER;
    const PICO: bool = false;
}

impl Guard for Read {
    const SCOPE: Scope = Scope::Read;
    const PRESENTATIONS: Presentations = Presentations::BEARER;
    const PICO: bool = false;
}

impl Guard for PicoSocket {
    const SCOPE: Scope = Scope::Chat;
    const PRESENTATIONS: Presentations = Presentations::SOCKET;
    const PICO: bool = true;
}

impl Guard for PicoMedia {
    const SCOPE: Scope = Scope::Chat;
    const PRESENTATIONS: Presentations = Presentations::MEDIA;
    const PICO: bool = true;
}

/// A request that passed the gate for `G`.
pub(crate) struct Authenticated<G> {
    /// Who is calling (for a ticket: the credential that minted it).
    pub principal: Principal,
    /// How the accepted credential was presented.
    pub how: Presentation,
    /// The subprotocol the 101 response must select (Pico socket only).
    pub echo: Option<String>,
    /// The client address: the peer, or behind `gateway.trusted_proxies` the right-most
    /// untrusted `X-Forwarded-For` hop ([`picoclaw_auth::client_addr`]).
    pub client: IpAddr,
    _guard: PhantomData<G>,
}

impl<G: Guard> FromRequestParts<Arc<Shared>> for Authenticated<G> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let live = shared.live();
        if G::PICO {
            if !live.settings.pico.enabled {
                return Err(ApiError::new(
                    Code::ChannelDisabled,
                    "the Pico channel is disabled (set channels.pico.enabled to true)",
                ));
            }
            if shared.shutting_down.load(Ordering::Acquire) {
                return Err(ApiError::new(Code::ShuttingDown, "the gateway is shutting down"));
            }
        }
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied() else {
            // Every connection is served with its peer address; fail closed if not.
            tracing::error!("request without a peer address; refusing it");
            return Err(ApiError::internal(LOG));
        };
        let client =
            picoclaw_auth::client_addr(peer.ip(), &parts.headers, &live.settings.gateway.trusted_proxies).ip;
        let endpoint = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
        let found = presented(
            &parts.headers,
            parts.uri.query(),
            G::PRESENTATIONS,
            live.settings.pico.allow_token_query,
        );
        let origin = parts.headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        // With replicas, a ticket may come from another one: take it from the shared table.
        for ticket in found.candidates().iter().filter(|c| c.how() == Presentation::Ticket) {
            crate::replicated::take(shared, &shared.tickets, ticket.token()).await;
        }
        // The state in force now: a revocation or suspension may have landed meanwhile.
        let live = shared.live();
        let gate = Gate { verifier: &live.verifier, tickets: &shared.tickets, limiter: &shared.limiter };
        let client_text = client.to_string();
        match gate.admit(&found, G::SCOPE, client, origin) {
            Ok(admitted) => {
                shared.audit(AuditEvent::auth_success(&endpoint, Some(&client_text), &admitted.principal));
                Ok(Authenticated {
                    principal: admitted.principal,
                    how: admitted.how,
                    echo: admitted.echo,
                    client,
                    _guard: PhantomData,
                })
            }
            Err(e) => {
                tracing::info!(client = %client, endpoint, code = e.code(), "authentication failed");
                shared.audit(AuditEvent::auth_failure(&endpoint, Some(&client_text), &e));
                Err(e.into())
            }
        }
    }
}
