//! One-time pairing over HTTP (issue 19): `POST /api/pair` issues a code (admin),
//! `POST /api/pair/redeem` exchanges it once for a named token (public: the code is the
//! credential), and `GET /pair` + `/pair.js` are the page a pairing link opens.
//!
//! The codes live in memory ([`picoclaw_auth::pairing::PairingStore`]): a restart ends
//! them, and `Shared::apply` drops those whose issuing credential is no longer accepted.
//! The token a redemption creates goes through the same token service as
//! `POST /api/tokens` (stored hashed in `.security.yml`, one audit line, applied by a
//! reload before the answer). The link carries the code in its fragment only; the page
//! removes it from the address bar before it does anything else and sends no `Referer`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use picoclaw_auth::NamedState;
use picoclaw_auth::audit::{AuditEvent, AuditKind, Outcome};
use picoclaw_auth::named::ops::{CreateRequest, Requester, TokenOpError, TokenOps};
use picoclaw_auth::pairing::{PairRequest, RedeemRequest};
use picoclaw_wire::{ApiError, Code, body};

use crate::LOG;
use crate::authenticated::{Admin, Authenticated};
use crate::state::Shared;

const PAGE: &str = include_str!("../assets/pair.html");
const SCRIPT: &str = include_str!("../assets/pair.js");

/// The page's policy: its own script, requests to this gateway only, no framing, no
/// `Referer` anywhere.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; \
                        img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Headers of every pairing answer: never cached, never sent on as `Referer`.
fn private_headers(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// Where the link should point: the `public_url` asked for, else a trusted proxy's
/// `X-Forwarded-Proto`/`X-Forwarded-Host` (plus `gateway.base_path`, which the proxy
/// forwards unchanged), else the `Host` the request was sent to.
fn public_base(
    asked: Option<&str>,
    headers: &HeaderMap,
    via_proxy: bool,
    base_path: &picoclaw_config::BasePath,
) -> Result<(String, &'static str), ApiError> {
    if let Some(text) = asked {
        return checked_base(text).map(|u| (u, "request"));
    }
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if via_proxy && let Some(host) = header_text("x-forwarded-host") {
        let host = host.split(',').next().unwrap_or_default().trim();
        let proto =
            match header_text("x-forwarded-proto").map(|p| p.split(',').next().unwrap_or_default().trim()) {
                Some("https") => "https",
                _ => "http",
            };
        if let Ok(base) = checked_base(&format!("{proto}://{host}{}", base_path.as_str())) {
            return Ok((base, "forwarded"));
        }
    }
    let host = header_text("host").unwrap_or_default();
    checked_base(&format!("http://{host}"))
        .map(|u| (u, "host"))
        .map_err(|_| ApiError::new(Code::BadRequest, "no usable Host header: give `public_url` in the body"))
}

/// A base URL a device can open: `http` or `https`, a host, no user name or password, no
/// query or fragment; returned without a trailing `/`.
fn checked_base(text: &str) -> Result<String, ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            Code::BadRequest,
            format!(
                "invalid `public_url`: {why}; expected the URL devices reach this gateway at, such as \
                 https://picoclaw.example.com or http://192.168.1.20:18790"
            ),
        )
    };
    if text.len() > 2048 {
        return Err(bad("longer than 2048 bytes"));
    }
    let url = url::Url::parse(text.trim()).map_err(|_| bad("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not carry a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or a fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `POST /api/pair`.
pub(crate) async fn issue(
    State(shared): State<Arc<Shared>>,
    auth: Authenticated<Admin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let live = shared.live();
    let request = PairRequest::from_json(&body)?;
    let gateway = &live.settings.gateway;
    let via_proxy = picoclaw_auth::client_addr(peer.ip(), &headers, &gateway.trusted_proxies).via_proxy;
    let (base, source) = public_base(request.public_url.as_deref(), &headers, via_proxy, &gateway.base_path)?;
    // A name already in use would make the redemption fail after the code is spent.
    let ops = TokenOps::new(
        picoclaw_store::token_records(&shared.paths, &live.settings, &live.credentials),
        live.credentials.clone(),
    );
    let name = request.name.clone();
    let listed =
        tokio::task::spawn_blocking(move || ops.list()).await.map_err(|_| ApiError::internal(LOG))??;
    if listed.tokens.iter().any(|t| t.name == name.as_str() && t.revoked.is_none()) {
        return Err(TokenOpError::NameTaken { name: name.as_str().to_owned() }.into());
    }
    let issued = shared.pairing.issue(&auth.principal, request.scope, &request.name, request.ttl)?;
    // With replicas, the device may reach another one: the code is shared, once.
    crate::replicated::share(&shared, &shared.pairing, &issued.code.digest(), &auth.principal).await?;
    shared.audit(
        AuditEvent::new(AuditKind::Pair, Outcome::Ok)
            .endpoint("/api/pair")
            .client(Some(&auth.client.to_string()))
            .actor(&auth.principal.id)
            .pairing(&issued.id),
    );
    tracing::info!(
        pairing_id = %issued.id,
        scope = %request.scope,
        name = %request.name.as_str(),
        "pairing code issued (valid {} s)",
        request.ttl.as_secs()
    );
    let answer = body::PairIssued {
        link: format!("{base}/pair#code={}", issued.code.expose()),
        id: issued.id,
        public_url: base,
        public_url_source: source,
        scope: request.scope,
        name: request.name.as_str().to_owned(),
        expires_at: issued.expires.unix(),
        ttl_s: request.ttl.as_secs(),
        single_use: true,
    };
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    private_headers(&mut response);
    Ok(response)
}

/// `POST /api/pair/redeem`.
pub(crate) async fn redeem(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = match redeem_inner(&shared, peer, &headers, &body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    private_headers(&mut response);
    response
}

async fn redeem_inner(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let live = shared.live();
    let client = picoclaw_auth::client_addr(peer.ip(), headers, &live.settings.gateway.trusted_proxies).ip;
    let refused = |code: &'static str| {
        AuditEvent::new(AuditKind::Pair, Outcome::Denied)
            .endpoint("/api/pair/redeem")
            .client(Some(&client.to_string()))
            .code(code)
    };
    let request = RedeemRequest::from_json(body)?;
    if live.verifier.named_state() == NamedState::Suspended {
        // It would create a named token in a shared set this replica has lost track of:
        // refused before the code is spent, so it can be used once the replica is back.
        shared.audit(refused("shared_tokens_unavailable"));
        return Err(ApiError::new(
            Code::SharedTokensUnavailable,
            "this replica has lost track of the replicas' shared named tokens; retry shortly (the code is not used up)",
        )
        .with_retry_after(5));
    }
    crate::replicated::take(shared, &shared.pairing, request.code.expose()).await;
    // The state in force now: a revocation may have landed while taking the code.
    let grant = match shared.pairing.redeem(request.code.expose(), &shared.live().verifier) {
        Ok(grant) => grant,
        Err(e) => {
            let e = ApiError::from(e);
            shared.audit(refused(e.code()));
            return Err(e);
        }
    };
    let ops = TokenOps::new(
        picoclaw_store::token_records(&shared.paths, &live.settings, &live.credentials),
        live.credentials.clone(),
    );
    let create = CreateRequest::new(grant.name.as_str(), grant.scope, None, ops.now())?;
    let by = Requester::Pairing {
        code_id: grant.id.clone(),
        issued_by: grant.parent.id.clone(),
        client: Some(client.to_string()),
    };
    let sink = shared.clone();
    let created = tokio::task::spawn_blocking(move || ops.create(&create, &by, &*sink))
        .await
        .map_err(|_| ApiError::internal(LOG))?
        .map_err(ApiError::from)?;
    crate::tokens_api::apply(shared, "token created by pairing").await?;
    tracing::info!(pairing_id = %grant.id, token_id = %created.summary.id, "pairing code redeemed");
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /pair`.
pub(crate) async fn page() -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP)),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        ],
        PAGE,
    )
        .into_response();
    private_headers(&mut response);
    response
}

/// `GET /pair.js`.
pub(crate) async fn script() -> Response {
    let mut response =
        ([(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"))], SCRIPT)
            .into_response();
    private_headers(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_checked_and_normalised() {
        assert_eq!(checked_base("https://pc.example.com/").unwrap(), "https://pc.example.com");
        assert_eq!(checked_base("http://192.168.1.20:18790/gw").unwrap(), "http://192.168.1.20:18790/gw");
        for bad in ["ftp://x", "https://u:p@x", "https://x/?token=1", "https://x/#a", "not a url", "http://"]
        {
            assert!(checked_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_host_only_from_a_trusted_proxy() {
        let root = picoclaw_config::BasePath::default();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:18790"));
        h.insert("x-forwarded-host", HeaderValue::from_static("pc.example.com"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(public_base(None, &h, false, &root).unwrap(), ("http://127.0.0.1:18790".into(), "host"));
        let base = picoclaw_config::BasePath::parse("/gw").unwrap();
        assert_eq!(
            public_base(None, &h, true, &base).unwrap(),
            ("https://pc.example.com/gw".into(), "forwarded")
        );
        assert_eq!(
            public_base(Some("https://mine.example"), &h, true, &root).unwrap(),
            ("https://mine.example".into(), "request")
        );
    }
}
