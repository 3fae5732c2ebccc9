//! The launcher's HTTP surface and its gate.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /login` | anyone | the login page |
//! | `POST /login` | anyone (rate limited) | JSON `{"token"}` or form `token` → session cookie |
//! | `POST /login/code` | anyone (rate limited) | JSON `{"code"}`: a one-time login code (`login#code=`) → session cookie |
//! | `POST /logout` | anyone | ends the caller's session server-side |
//! | `POST /setup` | session | JSON `{"token","confirm"}`: a custom token, persisted; 409 when set by env |
//! | `GET /`, `/index.html` | session | the dashboard |
//! | `GET /assets/{file}` | anyone | the page's script and style |
//! | `GET /api/session` | session | token source, whether setup is allowed |
//! | `GET /api/gateway/status`, `/api/gateway/logs` | session | gateway state, child output |
//! | `POST /api/gateway/start|stop|restart` | session | process control |
//! | `GET /api/tokens` | session | credentials: sources and fingerprints (never values) |
//! | `POST /api/tokens`, `POST /api/tokens/{key}/rotate`, `DELETE /api/tokens/{key}` | session | forwarded to the gateway's named-token API (nothing else is) |
//! | `GET /api/chat/sessions` | session | the dashboard's chats, newest first, titled (from the gateway's history API) |
//! | `GET /api/chat/sessions/{id}/messages`, `DELETE /api/chat/sessions/{id}` | session | one chat's history; delete it |
//! | `/pico/ws` | session + same origin | the chat socket, proxied to the gateway |
//! | `/pico/media/<id>` | session | a file of an answer, fetched from the gateway |
//!
//! Every state-changing request (any method but GET, HEAD and OPTIONS, `/login` and
//! `/logout` included) that a browser marks as cross-site (`Origin`, `Sec-Fetch-Site`) is
//! refused with 403 `bad_origin` before anything else looks at it.
//! `GET <page>?token=T` logs in and answers 303 to the same page without `token`; the
//! target is always a same-origin path and never holds a credential.
//! With `launcher.base_path` (`/picoclaw`) every route is under the prefix and nothing
//! answers outside it ([`app`]); redirects and the cookie `Path` carry the prefix.
//! Unauthenticated `/api/*` → 401 JSON, pages → 303 `/login`. Every response carries
//! `Referrer-Policy: no-referrer`, a strict CSP, `X-Frame-Options: DENY` and
//! `X-Content-Type-Options: nosniff`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Extension, Form, Json, Router};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use picoclaw_auth::RetryAfter;
use picoclaw_config::BasePath;
use picoclaw_credentials::Secret;
use picoclaw_credentials::launcher::Origin;
use serde::{Deserialize, Serialize};
use tower_layer::Layer;

use crate::LOG;
use crate::net::{self, Client};
use crate::session::{self, SessionId};
use crate::state::AppState;
use crate::{assets, proxy};
use picoclaw_wire::{ApiError, Code, body};

/// Request bodies larger than this are refused.
const MAX_BODY: usize = 16 * 1024;
/// Shortest custom token accepted by `/setup`.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest custom token accepted by `/setup`.
pub const MAX_TOKEN_LEN: usize = 512;

/// The Content-Security-Policy: only this origin, no inline script or style, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The launcher's service: [`router`] at the root, or, with `launcher.base_path` set,
/// under that prefix only. `/picoclaw/x` is routed as `/x`; the bare `/picoclaw` is sent
/// to `/picoclaw/` (the page's relative URLs resolve against that directory; a `?token=`
/// on it is dropped, never put in a `Location`); anything outside the prefix is 404.
pub(crate) fn app(st: Arc<AppState>) -> Router {
    let base = st.base.clone();
    let inner = router(st);
    if base.is_root() {
        return inner;
    }
    let under = middleware::from_fn_with_state(base, under_base).layer(inner);
    Router::new().fallback_service(under).layer(middleware::from_fn(security_headers))
}

async fn under_base(State(base): State<BasePath>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == base.as_str() {
        let keep = req
            .uri()
            .query()
            .filter(|q| !form_urlencoded::parse(q.as_bytes()).any(|(key, _)| key == "token"));
        let to = match keep {
            Some(query) => format!("{}/?{query}", base.as_str()),
            None => format!("{}/", base.as_str()),
        };
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, to)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::TEMPORARY_REDIRECT.into_response());
    }
    let Some(rest) = base.strip(path) else {
        return ApiError::new(
            Code::NotFound,
            format!("no such page: the dashboard is under {}/", base.as_str()),
        )
        .into_response();
    };
    let rewritten = match req.uri().query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = rewritten.parse().ok();
    match Uri::from_parts(parts) {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => {
            return ApiError::new(Code::BadRequest, "the request target is not a valid path").into_response();
        }
    }
    next.run(req).await
}

/// Builds the router over shared state.
pub(crate) fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(dashboard_page))
        .route("/index.html", get(dashboard_page))
        .route("/login", get(login_page).post(login))
        .route("/login/code", post(code_login))
        .route("/setup", post(setup))
        .route("/logout", post(logout))
        .route("/assets/{file}", get(asset))
        .route("/api/session", get(session_info))
        .route("/api/gateway/status", get(gateway_status))
        .route("/api/gateway/start", post(gateway_start))
        .route("/api/gateway/stop", post(gateway_stop))
        .route("/api/gateway/restart", post(gateway_restart))
        .route("/api/gateway/logs", get(gateway_logs))
        .route("/api/tokens", get(crate::tokens::list).post(crate::tokens::create).fallback(not_found))
        .route("/api/tokens/{key}", delete(crate::tokens::revoke).fallback(not_found))
        .route("/api/tokens/{key}/rotate", post(crate::tokens::rotate).fallback(not_found))
        .route("/api/pair", post(crate::tokens::pair).fallback(not_found))
        .route("/api/chat/sessions", get(crate::history::list))
        .route("/api/chat/sessions/{id}/messages", get(crate::history::messages))
        .route("/api/chat/sessions/{id}", delete(crate::history::delete))
        .route("/pico/ws", any(proxy::pico_ws))
        .route("/pico/media/{id}", get(proxy::pico_media))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(st.clone(), gate))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(security_headers))
        .with_state(st)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        let cache = if is_asset { "no-cache" } else { "no-store" };
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    resp
}

fn public(path: &str) -> bool {
    matches!(path, "/login" | "/login/code" | "/logout" | "/favicon.ico") || path.starts_with("/assets/")
}

fn api_like(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/pico/media/") || matches!(path, "/pico/ws" | "/setup")
}

/// The caller's live session.
pub(crate) fn session_of(st: &AppState, headers: &HeaderMap) -> Option<SessionId> {
    let cookie = session::from_headers(headers)?;
    let (generation, digest) = st.binding();
    st.sessions.validate(cookie, generation, &digest)
}

async fn gate(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |c| c.0);
    let client = st.net.client(peer, req.headers());
    // Upstream's `allow_localhost_bypass: false`: loopback must be listed too.
    let bypass_refused = !st.localhost_bypass
        && !st.net.allowed.is_empty()
        && client.ip.is_loopback()
        && !st.net.allowed.contains(client.ip);
    if !st.net.allows(&client) || bypass_refused {
        tracing::warn!(client = %client.ip, "request refused by launcher.allowed_cidrs");
        return ApiError::new(Code::AccessDenied, "access denied by network policy").into_response();
    }
    if !st.net.host_allowed(req.headers(), &client) {
        tracing::warn!(client = %client.ip, "request for a host that is not this loopback launcher refused");
        return ApiError::new(
            Code::BadHost,
            "this dashboard listens on loopback and answers only for localhost, 127.0.0.1 or [::1]",
        )
        .into_response();
    }
    req.extensions_mut().insert(client);
    // Before anything else (the login limiter included): a cross-site page must not be
    // able to log the user in or out, spend their failed-login budget or change anything.
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && let Some(why) = net::cross_site(req.headers(), &client)
    {
        // Not the path: it is the client's text and could hold anything.
        tracing::warn!(client = %client.ip, method = %req.method(), "cross-site request refused");
        return ApiError::new(Code::BadOrigin, why.message()).into_response();
    }
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET
        && !api_like(&path)
        && let Some(login) = QueryLogin::parse(req.uri())
    {
        if net::foreign_subresource(req.headers(), &client) {
            tracing::warn!(client = %client.ip, "?token= login from another site's page refused, untried");
            return ApiError::new(
                Code::BadOrigin,
                "cross-site request refused: a ?token= login must be a top-level navigation",
            )
            .into_response();
        }
        return token_login(&st, &client, login);
    }
    if public(&path) {
        return next.run(req).await;
    }
    match session_of(&st, req.headers()) {
        Some(id) => {
            req.extensions_mut().insert(id);
            next.run(req).await
        }
        None if api_like(&path) => {
            ApiError::new(Code::NotLoggedIn, "log in to the dashboard first").into_response()
        }
        None => redirect(&st.base, "/login"),
    }
}

/// A 303 to `to` (a path from the root of the dashboard) under the base path.
fn redirect(base: &BasePath, to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, base.join(to))
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::SEE_OTHER.into_response())
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The outcome of presenting a launcher token.
enum Login {
    /// Right: a session may be made for this token generation.
    Accepted { generation: u64, digest: [u8; 32] },
    /// Wrong (counted).
    Wrong,
    /// The client is locked out and the token is guessable (or wrong).
    Limited(RetryAfter),
}

/// Checks a presented launcher token against the failed-login limits. The token is
/// compared first: a right token that cannot be guessed (the random 256-bit token the
/// launcher generates, or any configured one that looks like 128 random bits) is accepted
/// even while the address is locked out, so nobody can lock the owner out of their own
/// dashboard; a guessable one stays refused while locked (docs/credentials.md, "Failure
/// lockout"). Successes are not counted and do not reset the count.
fn verify_login(st: &AppState, client: &Client, presented: &str) -> Login {
    let locked = st.limiter.check(client.ip).err();
    let (ok, generation, digest, guessable) = {
        let token = st.token();
        let guessable = picoclaw_credentials::strength::weakness(&token.secret).is_some();
        (token.secret.matches(presented), token.generation, token.secret.digest(), guessable)
    };
    match (ok, locked) {
        (true, Some(retry)) if guessable => Login::Limited(retry),
        (true, _) => Login::Accepted { generation, digest },
        (false, Some(retry)) => Login::Limited(retry),
        (false, None) => {
            st.limiter.record_failure(client.ip);
            Login::Wrong
        }
    }
}

/// A pasted token without the whitespace around it (spaces, tabs, newlines).
fn trimmed(token: &str) -> &str {
    token.trim()
}

/// `path` when it is a same-origin absolute path: exactly one `/` first (never `//` or
/// `/\`, which a browser reads as another host), also once percent-decoded, and no
/// control character. Anything else is `/`.
fn local_path(path: &str) -> &str {
    fn local(p: &str) -> bool {
        let b = p.as_bytes();
        b.first() == Some(&b'/')
            && !matches!(b.get(1), Some(b'/' | b'\\'))
            && !p.chars().any(char::is_control)
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if local(path) && local(&decoded) { path } else { "/" }
}

/// A `GET <page>?token=...` login: the query is decoded once (`form_urlencoded`, so
/// `%74oken` is `token`), the first `token` is the presented one, and the redirect target
/// is the same page rebuilt from the other decoded pairs, re-encoded.
struct QueryLogin {
    /// The presented token, trimmed.
    token: String,
    /// Where to send the browser after a successful login.
    target: String,
}

impl QueryLogin {
    fn parse(uri: &Uri) -> Option<QueryLogin> {
        let query = uri.query()?;
        let mut token = None;
        let mut kept = form_urlencoded::Serializer::new(String::new());
        let mut any_kept = false;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if key == "token" {
                if token.is_none() {
                    token = Some(trimmed(&value).to_owned());
                }
            } else {
                kept.append_pair(&key, &value);
                any_kept = true;
            }
        }
        let token = token?;
        let path = local_path(uri.path());
        let target = if any_kept { format!("{path}?{}", kept.finish()) } else { path.to_owned() };
        // No Location ever holds the credential, whatever else the URL carried (a copy in
        // another parameter or in the path, encoded or not).
        let decoded = percent_encoding::percent_decode_str(&target).decode_utf8_lossy();
        let target = if !token.is_empty() && (target.contains(&token) || decoded.contains(token.as_str())) {
            "/".to_owned()
        } else {
            target
        };
        Some(QueryLogin { token, target })
    }
}

fn token_login(st: &AppState, client: &Client, login: QueryLogin) -> Response {
    let QueryLogin { token: presented, target } = login;
    if presented.is_empty() {
        // A blank `?token=` is a missing token, not a wrong one: nothing is counted.
        return redirect(&st.base, "/login?error=missing");
    }
    let (generation, digest) = match verify_login(st, client, &presented) {
        Login::Accepted { generation, digest } => (generation, digest),
        Login::Limited(retry) => {
            let mut resp = redirect(&st.base, "/login?error=rate_limited");
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry.0));
            return resp;
        }
        Login::Wrong => {
            tracing::warn!(client = %client.ip, "dashboard login with ?token= failed: wrong token");
            return redirect(&st.base, "/login?error=invalid");
        }
    };
    let Ok((_, cookie)) = st.sessions.create(generation, &digest) else {
        return ApiError::internal(LOG).into_response();
    };
    tracing::info!(client = %client.ip, "dashboard login (?token=)");
    with_cookie(redirect(&st.base, &target), &session::set_cookie(&cookie, client.secure, &st.base))
}

async fn dashboard_page() -> Html<&'static str> {
    Html(assets::INDEX_HTML)
}

async fn login_page(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if session_of(&st, &headers).is_some() {
        return redirect(&st.base, "/");
    }
    Html(assets::LOGIN_HTML).into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match assets::lookup(&file) {
        Some((body, content_type)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        None => not_found().await.into_response(),
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such page")
}

#[derive(Deserialize)]
struct TokenBody {
    token: Option<String>,
    /// Password login (upstream PicoClaw's `{"password": "..."}`).
    password: Option<String>,
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

async fn login(
    State(st): State<Arc<AppState>>,
    Extension(client): Extension<Client>,
    req: Request,
) -> Response {
    let form = is_form(req.headers());
    let body = if form {
        Form::<TokenBody>::from_request(req, &()).await.ok().map(|f| f.0)
    } else {
        match Json::<TokenBody>::from_request(req, &()).await {
            Ok(body) => Some(body.0),
            Err(_) => {
                return ApiError::new(
                    Code::BadRequest,
                    "expected JSON {\"token\": \"...\"} or {\"password\": \"...\"}, or a form field `token` or `password`",
                )
                .into_response();
            }
        }
    };
    let (presented, password) = body.map_or((None, None), |b| (b.token, b.password));
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        return password_login(&st, &client, password, form).await;
    }
    // A pasted token often comes with a space or a newline around it.
    let Some(presented) = presented.as_deref().map(trimmed).filter(|t| !t.is_empty()) else {
        return ApiError::new(
            Code::MissingToken,
            "the token field is empty (or only whitespace): paste the launcher token",
        )
        .into_response();
    };
    let (generation, digest) = match verify_login(&st, &client, presented) {
        Login::Accepted { generation, digest } => (generation, digest),
        Login::Limited(retry) => {
            tracing::warn!(client = %client.ip, "dashboard login refused: rate limited");
            return ApiError::rate_limited(
                retry.0,
                format!("too many failed logins; try again in {} s", retry.0),
            )
            .into_response();
        }
        Login::Wrong => {
            tracing::warn!(client = %client.ip, "dashboard login failed: wrong token");
            if form {
                let page = "<!doctype html><meta charset=utf-8><title>Wrong token</title>\
                        <p>Wrong token. <a href=\"login\">Try again</a>.</p>";
                return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
            }
            return ApiError::new(Code::WrongToken, "wrong launcher token").into_response();
        }
    };
    let Ok((_, cookie)) = st.sessions.create(generation, &digest) else {
        return ApiError::internal(LOG).into_response();
    };
    tracing::info!(client = %client.ip, "dashboard login");
    let resp = if form { redirect(&st.base, "/") } else { Json(body::Done::OK).into_response() };
    with_cookie(resp, &session::set_cookie(&cookie, client.secure, &st.base))
}

#[derive(Deserialize)]
struct CodeBody {
    code: Option<String>,
}

/// `POST /login/code`: a one-time login code from a `login#code=` link (`login_code`).
/// A code is 256 random bits, so a right one is accepted even while the address is locked
/// out (like the generated token); a wrong, used, expired or stale one is a failed login.
async fn code_login(
    State(st): State<Arc<AppState>>,
    Extension(client): Extension<Client>,
    body: Result<Json<CodeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return ApiError::new(
            Code::BadRequest,
            "expected JSON {\"code\": \"<the code after #code= in the login link>\"}",
        )
        .into_response();
    };
    let Some(code) = body.code.as_deref().map(str::trim).filter(|c| !c.is_empty()) else {
        return ApiError::new(Code::BadRequest, "the code field is empty: open the whole login link")
            .into_response();
    };
    let locked = st.limiter.check(client.ip).err();
    let (generation, digest) = st.binding();
    match (st.codes.redeem(code, generation), locked) {
        (Ok(()), _) => {}
        (Err(_), Some(retry)) => {
            tracing::warn!(client = %client.ip, "dashboard login with a login code refused: rate limited");
            return ApiError::rate_limited(
                retry.0,
                format!("too many failed logins; try again in {} s", retry.0),
            )
            .into_response();
        }
        (Err(why), None) => {
            st.limiter.record_failure(client.ip);
            tracing::warn!(client = %client.ip, "dashboard login failed: {why}");
            return ApiError::new(
                Code::WrongLoginCode,
                "this login link is not valid: it was already used, is older than 2 minutes, or the launcher \
                 restarted or changed its token since; open a new one (tray \"Open dashboard\" or \
                 `picoclaw launcher --console`) or log in with the token",
            )
            .into_response();
        }
    }
    let Ok((_, cookie)) = st.sessions.create(generation, &digest) else {
        return ApiError::internal(LOG).into_response();
    };
    tracing::info!(client = %client.ip, "dashboard login (one-time login code)");
    with_cookie(Json(body::Done::OK).into_response(), &session::set_cookie(&cookie, client.secure, &st.base))
}

/// Password login: the second mode beside the token (upstream PicoClaw's bcrypt hash, or
/// an argon2id one set from this dashboard). A password is guessable, so a locked-out
/// address is refused before the (slow) hash is checked, and every failure counts.
async fn password_login(st: &Arc<AppState>, client: &Client, password: String, form: bool) -> Response {
    let Some(stored) = st.password() else {
        return ApiError::new(
            Code::PasswordNotSet,
            "no dashboard password is set: log in with the launcher token (then set a password with POST /setup)",
        )
        .into_response();
    };
    if let Err(retry) = st.limiter.check(client.ip) {
        tracing::warn!(client = %client.ip, "dashboard password login refused: rate limited");
        return ApiError::rate_limited(
            retry.0,
            format!("too many failed logins; try again in {} s", retry.0),
        )
        .into_response();
    }
    // Zeroized on drop, like every secret.
    let password = Secret::new(password);
    let ok = tokio::task::spawn_blocking(move || stored.verify(password.expose())).await.unwrap_or(false);
    if !ok {
        st.limiter.record_failure(client.ip);
        tracing::warn!(client = %client.ip, "dashboard login failed: wrong password");
        if form {
            let page = "<!doctype html><meta charset=utf-8><title>Wrong password</title>\
                    <p>Wrong password. <a href=\"login\">Try again</a>.</p>";
            return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
        }
        return ApiError::new(Code::WrongPassword, "invalid password").into_response();
    }
    let (generation, digest) = st.binding();
    let Ok((_, cookie)) = st.sessions.create(generation, &digest) else {
        return ApiError::internal(LOG).into_response();
    };
    tracing::info!(client = %client.ip, "dashboard login (password)");
    let resp = if form { redirect(&st.base, "/") } else { Json(body::Done::OK).into_response() };
    with_cookie(resp, &session::set_cookie(&cookie, client.secure, &st.base))
}

async fn logout(
    State(st): State<Arc<AppState>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = session_of(&st, &headers) {
        st.sessions.revoke(id);
        tracing::info!(client = %client.ip, "dashboard logout");
    }
    let resp =
        if is_form(&headers) { redirect(&st.base, "/login") } else { Json(body::Done::OK).into_response() };
    with_cookie(resp, &session::clear_cookie(client.secure, &st.base))
}

#[derive(Deserialize)]
struct SetupBody {
    #[serde(default)]
    token: String,
    confirm: Option<String>,
    /// A new dashboard password (stored as an argon2id hash) instead of a token.
    password: Option<String>,
}

fn validate_new_token(body: &SetupBody) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::new(Code::UnacceptableToken, m);
    let t = &body.token;
    if body.confirm.as_deref().is_some_and(|c| c != t) {
        return Err(bad("the confirmation does not match the token".into()));
    }
    if t.chars().count() < MIN_TOKEN_LEN {
        return Err(bad(format!("the token must be at least {MIN_TOKEN_LEN} characters long")));
    }
    if t.len() > MAX_TOKEN_LEN {
        return Err(bad(format!("the token must be at most {MAX_TOKEN_LEN} bytes long")));
    }
    if t.trim() != t || t.chars().any(char::is_control) {
        return Err(bad("the token must not contain control characters or leading/trailing spaces".into()));
    }
    Ok(())
}

async fn setup(
    State(st): State<Arc<AppState>>,
    Extension(session): Extension<SessionId>,
    Extension(client): Extension<Client>,
    body: Result<Json<SetupBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return ApiError::new(
            Code::BadRequest,
            "expected JSON {\"token\": \"<new token>\", \"confirm\": \"<new token>\"} or {\"password\": \"<new password>\", \"confirm\": \"<new password>\"}",
        )
        .into_response();
    };
    if let Some(password) = body.password {
        return set_password(&st, session, &client, password, body.confirm).await;
    }
    if st.token().origin == Origin::Env {
        // The variable itself, or a file named by PICOCLAW_LAUNCHER_TOKEN_FILE or in
        // $CREDENTIALS_DIRECTORY: say which, so the user changes the right thing.
        let paths = st.paths.clone();
        let source = tokio::task::spawn_blocking(move || {
            picoclaw_credentials::load(&paths, &picoclaw_config::ProcessEnv, &picoclaw_config::Flags::new())
                .ok()
                .and_then(|loaded| loaded.launcher_token())
                .map(|token| token.source)
        })
        .await
        .ok()
        .flatten();
        let message = match source {
            None | Some(picoclaw_config::Source::Env(_)) => {
                "the launcher token is set by the PICOCLAW_LAUNCHER_TOKEN \
                                                environment variable; change or unset it there and restart \
                                                the launcher"
                    .to_owned()
            }
            Some(other) => format!(
                "the launcher token comes from {other}, a file managed outside picoclaw; change that file \
                 (or stop pointing the launcher at it) and restart the launcher"
            ),
        };
        return ApiError::new(Code::TokenFromEnv, message).into_response();
    }
    if let Err(e) = validate_new_token(&body) {
        return e.into_response();
    }
    let secret = Secret::new(body.token);
    let path = st.paths.launcher_file();
    let to_store = secret.clone();
    let stored =
        tokio::task::spawn_blocking(move || picoclaw_credentials::launcher::store(&path, &to_store)).await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!("cannot save the launcher token: {e}");
            return ApiError::new(Code::SaveFailed, format!("cannot save the token: {e}")).into_response();
        }
        Err(_) => return ApiError::internal(LOG).into_response(),
    }
    let fingerprint = secret.fingerprint().to_string();
    let new_digest = secret.digest();
    let generation = {
        let mut token = st.token.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        token.secret = secret;
        token.origin = Origin::Config;
        token.generation += 1;
        token.generation
    };
    st.codes.clear();
    st.sessions.rotate(Some(session), generation);
    // The caller's cookie was signed under the old token: hand it one under the new token
    // for the same session (its open chat socket stays up).
    let cookie = st.sessions.cookie_value(session, &new_digest);
    tracing::info!(fingerprint = %fingerprint, "launcher token changed from the dashboard; other sessions ended");
    with_cookie(
        Json(SetupDone { status: "ok", source: "config", fingerprint }).into_response(),
        &session::set_cookie(&cookie, client.secure, &st.base),
    )
}

/// `POST /setup` with `password`: hashes it with argon2id, stores the hash as
/// `dashboard_password_hash` in launcher-config.json (0600, atomic) and ends every other
/// session; the caller's stays.
async fn set_password(
    st: &Arc<AppState>,
    session: SessionId,
    client: &Client,
    password: String,
    confirm: Option<String>,
) -> Response {
    let bad = |m: String| ApiError::new(Code::UnacceptablePassword, m).into_response();
    let password = Secret::new(password.trim());
    if confirm.as_deref().map(str::trim) != Some(password.expose()) {
        return bad("the confirmation does not match the password".into());
    }
    let min = picoclaw_credentials::password::MIN_PASSWORD_CHARS;
    if password.expose().chars().count() < min {
        return bad(format!("the password must be at least {min} characters long"));
    }
    if password.expose().len() > picoclaw_credentials::password::MAX_PASSWORD_BYTES {
        return bad("the password is too long".into());
    }
    let path = st.paths.launcher_file();
    let made = tokio::task::spawn_blocking(move || {
        let source = picoclaw_config::Source::LauncherFile(
            picoclaw_config::schema::LAUNCHER_DASHBOARD_PASSWORD_HASH.file_key.to_owned(),
        );
        let hashed = picoclaw_credentials::password::DashboardPassword::create(&password, source)?;
        picoclaw_credentials::password::store(&path, &hashed)?;
        Ok::<_, picoclaw_credentials::CredentialError>(hashed)
    })
    .await;
    let hashed = match made {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::error!("cannot save the dashboard password: {e}");
            return ApiError::new(Code::SaveFailed, format!("cannot save the password: {e}")).into_response();
        }
        Err(_) => return ApiError::internal(LOG).into_response(),
    };
    *st.password.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hashed);
    let (generation, digest) = {
        let mut token = st.token.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        token.generation += 1;
        (token.generation, token.secret.digest())
    };
    st.codes.clear();
    st.sessions.rotate(Some(session), generation);
    let cookie = st.sessions.cookie_value(session, &digest);
    tracing::info!("dashboard password set from the dashboard (argon2id); other sessions ended");
    with_cookie(Json(body::Done::OK).into_response(), &session::set_cookie(&cookie, client.secure, &st.base))
}

/// `POST /setup`.
#[derive(Serialize)]
struct SetupDone {
    status: &'static str,
    source: &'static str,
    fingerprint: String,
}

/// `GET /api/session`.
#[derive(Serialize)]
struct SessionInfo {
    authenticated: bool,
    token_source: String,
    token_fingerprint: String,
    setup_allowed: bool,
    min_token_length: usize,
}

/// `POST /api/gateway/start|stop|restart`.
#[derive(Serialize)]
struct GatewayAction {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_pid: Option<Option<u32>>,
    gateway: crate::gateway::GatewayStatus,
}

/// `GET /api/gateway/logs`.
#[derive(Serialize)]
struct Logs {
    source: &'static str,
    lines: Vec<String>,
}

async fn session_info(State(st): State<Arc<AppState>>) -> Json<SessionInfo> {
    let token = st.token();
    Json(SessionInfo {
        authenticated: true,
        token_source: token.origin.to_string(),
        token_fingerprint: token.secret.fingerprint().to_string(),
        setup_allowed: token.origin != Origin::Env,
        min_token_length: MIN_TOKEN_LEN,
    })
}

async fn gateway_status(State(st): State<Arc<AppState>>) -> Json<crate::gateway::GatewayStatus> {
    Json(st.gateway.status().await)
}

async fn gateway_start(State(st): State<Arc<AppState>>) -> Response {
    match st.gateway.start().await {
        Ok(_) => Json(GatewayAction { status: "ok", stopped_pid: None, gateway: st.gateway.status().await })
            .into_response(),
        Err(e) => ApiError::new(Code::StartFailed, e.to_string()).into_response(),
    }
}

async fn gateway_stop(State(st): State<Arc<AppState>>) -> Response {
    match st.gateway.stop().await {
        Ok(pid) => Json(GatewayAction {
            status: if pid.is_some() { "ok" } else { "not_running" },
            stopped_pid: Some(pid),
            gateway: st.gateway.status().await,
        })
        .into_response(),
        Err(e) => ApiError::new(Code::StopFailed, e.to_string()).into_response(),
    }
}

async fn gateway_restart(State(st): State<Arc<AppState>>) -> Response {
    match st.gateway.restart().await {
        Ok(_) => Json(GatewayAction { status: "ok", stopped_pid: None, gateway: st.gateway.status().await })
            .into_response(),
        Err(e) => ApiError::new(Code::RestartFailed, e.to_string()).into_response(),
    }
}

async fn gateway_logs(State(st): State<Arc<AppState>>) -> Json<Logs> {
    let lines = st.gateway.logs();
    if !lines.is_empty() {
        return Json(Logs { source: "child", lines });
    }
    // An adopted gateway's output is not ours: show the tail of the log it writes itself.
    let path = st.paths.gateway_log();
    let tail = tokio::task::spawn_blocking(move || file_tail(&path, crate::gateway::LOG_LINES)).await;
    Json(Logs { source: "logs/gateway.log", lines: tail.unwrap_or_default() })
}

/// The last `n` lines of a file, reading at most its last 256 KiB.
fn file_tail(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 256 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else { return Vec::new() };
    let len = file.metadata().map_or(0, |m| m.len());
    if file.seek(SeekFrom::Start(len.saturating_sub(WINDOW))).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.take(WINDOW).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if len > WINDOW && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| l.chars().take(crate::gateway::LOG_LINE_MAX).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_login(uri: &str) -> Option<(String, String)> {
        QueryLogin::parse(&uri.parse::<Uri>().unwrap()).map(|q| (q.token, q.target))
    }

    #[test]
    fn query_login_keeps_other_parameters_and_drops_the_token() {
        let got = |u: &str| query_login(u).unwrap();
        assert_eq!(got("/index.html?a=1&token=abc&b=2"), ("abc".into(), "/index.html?a=1&b=2".into()));
        assert_eq!(got("/?token=abc"), ("abc".into(), "/".into()));
        assert_eq!(got("/?tok=1&token=%2Fx"), ("/x".into(), "/?tok=1".into()));
        // Decoded once: an encoded key is still `token`, and never echoed.
        assert_eq!(got("/?%74oken=abc&lang=en"), ("abc".into(), "/?lang=en".into()));
        assert_eq!(got("/?token=abc&%74oken=abc"), ("abc".into(), "/".into()));
        // Re-encoded.
        assert_eq!(got("/?q=a%20b%26c&token=t"), ("t".into(), "/?q=a+b%26c".into()));
        // Trimmed; blank is empty.
        assert_eq!(got("/?token=%20abc%0A"), ("abc".into(), "/".into()));
        assert_eq!(got("/?token=+%09+"), (String::new(), "/".into()));
        // A copy of the token elsewhere in the URL never reaches the Location.
        assert_eq!(got("/?x=secret1&token=secret1").1, "/");
        assert_eq!(got("/s%65cret1?token=secret1").1, "/");
        assert!(query_login("/?lang=en").is_none());
    }

    #[test]
    fn redirect_targets_stay_on_the_origin() {
        for bad in
            ["//evil.example/", "///evil", "/\\evil", "/%2f%2fevil", "/%5Cevil", "/%2F/evil", "/%0d%0a"]
        {
            assert_eq!(local_path(bad), "/", "{bad}");
        }
        for good in ["/", "/index.html", "/a//b", "/%20x"] {
            assert_eq!(local_path(good), good);
        }
        assert_eq!(query_login("//evil.example/?token=t").unwrap().1, "/");
        assert_eq!(query_login("//evil.example/?token=t&a=1").unwrap().1, "/?a=1");
    }

    #[test]
    fn file_tail_is_bounded() {
        let dir = std::env::temp_dir().join(format!("picoclaw-launcher-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.log");
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let tail = file_tail(&path, 3);
        assert_eq!(tail, ["line 997", "line 998", "line 999"]);
        assert!(file_tail(&dir.join("missing"), 3).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn setup_validation() {
        let body = |t: &str, c: Option<&str>| SetupBody {
            token: t.into(),
            confirm: c.map(Into::into),
            password: None,
        };
        assert!(validate_new_token(&body("0123456789abcdef", Some("0123456789abcdef"))).is_ok());
        assert!(validate_new_token(&body("0123456789abcdef", Some("0123456789abcdeX"))).is_err());
        assert!(validate_new_token(&body("short", None)).is_err());
        assert!(validate_new_token(&body(" 0123456789abcdef", None)).is_err());
    }
}
