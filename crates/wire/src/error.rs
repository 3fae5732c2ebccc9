//! One error type for every HTTP answer that is not a success.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use picoclaw_auth::AuthError;
use picoclaw_auth::named::ops::TokenOpError;
use picoclaw_auth::pairing::PairingError;
use serde::Serialize;

/// Every failure the gateway or the launcher answers with, besides credential and
/// token-operation errors: one status and one stable code each (docs/gateway.md and
/// docs/launcher.md list them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// 400 `bad_request`: the body is not what the endpoint takes.
    BadRequest,
    /// 400 `bad_query`: a query parameter does not parse.
    BadQuery,
    /// 400 `bad_subprotocol`: a `Sec-WebSocket-Protocol` offer is not a token.
    BadSubprotocol,
    /// 400 `missing_token`: a login without a token.
    MissingToken,
    /// 400 `invalid_token`: a custom launcher token that is not acceptable.
    UnacceptableToken,
    /// 400 `invalid_session_id`: a session id that is not 1–128 safe characters.
    InvalidSessionId,
    /// 401 `invalid_token`: a wrong launcher token.
    WrongToken,
    /// 401 `not_logged_in`: a dashboard request without a live session.
    NotLoggedIn,
    /// 401 `invalid_password`: a wrong dashboard password.
    WrongPassword,
    /// 401 `invalid_login_code`: a one-time login code that is unknown, used, expired or
    /// from before the launcher token changed.
    WrongLoginCode,
    /// 400 `invalid_password`: a new dashboard password that is not acceptable.
    UnacceptablePassword,
    /// 409 `password_not_set`: a password login while no dashboard password is set.
    PasswordNotSet,
    /// 403 `bad_origin`: a cross-site request to the dashboard.
    BadOrigin,
    /// 403 `access_denied`: the client's network is not in `launcher.allowed_cidrs`.
    AccessDenied,
    /// 403 `origin_not_allowed`: an `Origin` not in `channels.pico.allow_origins`.
    OriginNotAllowed,
    /// 403 `reserved_session_id`: a session id reserved for the gateway's `pico_client`.
    ReservedSessionId,
    /// 404 `not_found`.
    NotFound,
    /// 404 `session_not_found`: no such session for this credential (another credential's
    /// session answers the same).
    NoSuchSession,
    /// 413 `too_large`: a message longer than `channels.pico.max_frame_bytes`.
    TooLarge,
    /// 404 `channel_disabled`: the Pico channel is off.
    ChannelDisabled,
    /// 405 `method_not_allowed`.
    MethodNotAllowed,
    /// 409 `not_applied`: a change was written but the configuration does not reload.
    NotApplied,
    /// 409 `token_from_env`: the launcher token is set by the environment.
    TokenFromEnv,
    /// 421 `bad_host`: a request naming a host this loopback listener does not serve.
    BadHost,
    /// 422 `invalid_config`: a reload was refused; the previous configuration stays.
    InvalidConfig,
    /// 426 `websocket_required`: the Pico channel needs a WebSocket upgrade.
    WebSocketRequired,
    /// 429 `rate_limited`.
    RateLimited,
    /// 500 `internal`.
    Internal,
    /// 500 `config_error`: the configuration does not load.
    ConfigError,
    /// 500 `save_failed`: a file could not be written (the old one is intact).
    SaveFailed,
    /// 500 `random_failed`: the OS random source failed.
    RandomFailed,
    /// 501 `tokens_api_unavailable`: a gateway without the named-token API.
    TokensApiUnavailable,
    /// 502 `agent_failed`: the agent (model provider) failed to answer.
    AgentFailed,
    /// 502 `gateway_unreachable`.
    GatewayUnreachable,
    /// 502 `gateway_refused`: the gateway refused the proxied chat socket.
    GatewayRefused,
    /// 502 `start_failed`.
    StartFailed,
    /// 502 `stop_failed`.
    StopFailed,
    /// 502 `restart_failed`.
    RestartFailed,
    /// 503 `gateway_unavailable`: no gateway is running.
    GatewayUnavailable,
    /// 503 `shutting_down`.
    ShuttingDown,
    /// 503 `too_many_connections`.
    TooManyConnections,
    /// 503 `no_randomness`: no session id could be made.
    NoRandomness,
    /// 503 `session_storage`: session history could not be read or written.
    SessionStorage,
    /// 507 `storage_full`: the history is at `storage.max_total_bytes`.
    StorageFull,
    /// 503 `shared_state_unavailable`: with replicas, a ticket or pairing code could not be
    /// stored in PostgreSQL for the other replicas.
    SharedStateUnavailable,
    /// 503 `shared_tokens_unavailable`: with replicas, this one has lost track of the shared
    /// named tokens (docs/storage.md, "fails closed"): retry shortly.
    SharedTokensUnavailable,
    /// 400 `invalid_pairing_code`: not 43 characters of base64url.
    MalformedPairingCode,
    /// 404 `pairing_code_unknown`: no such code, or it was used already.
    UnknownPairingCode,
    /// 410 `pairing_code_expired`: the code is past its lifetime.
    ExpiredPairingCode,
    /// 409 `pairing_name_pending`: an outstanding pairing code already carries that name.
    PairingNamePending,
    /// 403 `pairing_code_revoked`: the admin credential that issued the code is no longer
    /// accepted.
    RevokedPairingCode,
}

impl Code {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        use Code::*;
        match self {
            BadRequest | BadQuery | BadSubprotocol | MissingToken | UnacceptableToken
            | UnacceptablePassword | InvalidSessionId | MalformedPairingCode => StatusCode::BAD_REQUEST,
            WrongToken | WrongPassword | WrongLoginCode | NotLoggedIn => StatusCode::UNAUTHORIZED,
            BadOrigin | AccessDenied | OriginNotAllowed | ReservedSessionId | RevokedPairingCode => {
                StatusCode::FORBIDDEN
            }
            NotFound | NoSuchSession | ChannelDisabled | UnknownPairingCode => StatusCode::NOT_FOUND,
            ExpiredPairingCode => StatusCode::GONE,
            TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            NotApplied | TokenFromEnv | PasswordNotSet | PairingNamePending => StatusCode::CONFLICT,
            BadHost => StatusCode::MISDIRECTED_REQUEST,
            InvalidConfig => StatusCode::UNPROCESSABLE_ENTITY,
            WebSocketRequired => StatusCode::UPGRADE_REQUIRED,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Internal | ConfigError | SaveFailed | RandomFailed => StatusCode::INTERNAL_SERVER_ERROR,
            TokensApiUnavailable => StatusCode::NOT_IMPLEMENTED,
            AgentFailed | GatewayUnreachable | GatewayRefused | StartFailed | StopFailed | RestartFailed => {
                StatusCode::BAD_GATEWAY
            }
            GatewayUnavailable
            | ShuttingDown
            | TooManyConnections
            | NoRandomness
            | SessionStorage
            | SharedStateUnavailable
            | SharedTokensUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    /// The stable code clients match on.
    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            BadRequest => "bad_request",
            BadQuery => "bad_query",
            BadSubprotocol => "bad_subprotocol",
            MissingToken => "missing_token",
            UnacceptableToken | WrongToken => "invalid_token",
            InvalidSessionId => "invalid_session_id",
            NotLoggedIn => "not_logged_in",
            WrongPassword | UnacceptablePassword => "invalid_password",
            WrongLoginCode => "invalid_login_code",
            PasswordNotSet => "password_not_set",
            BadOrigin => "bad_origin",
            AccessDenied => "access_denied",
            OriginNotAllowed => "origin_not_allowed",
            ReservedSessionId => "reserved_session_id",
            NotFound => "not_found",
            NoSuchSession => "session_not_found",
            TooLarge => "too_large",
            ChannelDisabled => "channel_disabled",
            MethodNotAllowed => "method_not_allowed",
            NotApplied => "not_applied",
            TokenFromEnv => "token_from_env",
            BadHost => "bad_host",
            InvalidConfig => "invalid_config",
            WebSocketRequired => "websocket_required",
            RateLimited => "rate_limited",
            Internal => "internal",
            ConfigError => "config_error",
            SaveFailed => "save_failed",
            RandomFailed => "random_failed",
            TokensApiUnavailable => "tokens_api_unavailable",
            AgentFailed => "agent_failed",
            GatewayUnreachable => "gateway_unreachable",
            GatewayRefused => "gateway_refused",
            StartFailed => "start_failed",
            StopFailed => "stop_failed",
            RestartFailed => "restart_failed",
            GatewayUnavailable => "gateway_unavailable",
            ShuttingDown => "shutting_down",
            TooManyConnections => "too_many_connections",
            NoRandomness => "no_randomness",
            SessionStorage => "session_storage",
            StorageFull => "storage_full",
            SharedStateUnavailable => "shared_state_unavailable",
            SharedTokensUnavailable => "shared_tokens_unavailable",
            MalformedPairingCode => "invalid_pairing_code",
            UnknownPairingCode => "pairing_code_unknown",
            ExpiredPairingCode => "pairing_code_expired",
            RevokedPairingCode => "pairing_code_revoked",
            PairingNamePending => "pairing_name_pending",
        }
    }
}

/// A refusal or failure, as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
    /// A credential was missing or wrong: say how to present one.
    challenge: bool,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    fn body(&self) -> Body<'_> {
        Body { error: Detail { code: self.code, message: &self.message } }
    }

    /// The JSON body, `{"error":{"code","message"}}` (for an error that ends a stream
    /// whose status was already sent).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.body()).unwrap_or_default()
    }

    /// `code` with a message for the client (what was wrong, what to do; never a secret).
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            status: code.status(),
            code: code.as_str(),
            message: message.into(),
            retry_after: None,
            challenge: false,
        }
    }

    /// A 500 whose detail went to the log named by `log` (`logs/gateway.log`, …).
    pub fn internal(log: &str) -> ApiError {
        ApiError::new(Code::Internal, format!("internal error; see {log}"))
    }

    /// This error, telling the client to retry after `secs` seconds (`Retry-After`).
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    /// 429 with `Retry-After: secs`.
    pub fn rate_limited(secs: u64, message: impl Into<String>) -> ApiError {
        ApiError { retry_after: Some(secs), ..ApiError::new(Code::RateLimited, message) }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let retry_after = match e {
            AuthError::RateLimited { retry_after_secs } => Some(retry_after_secs),
            // The tokens are read again within seconds of the database answering.
            AuthError::Unverifiable { .. } => Some(5),
            _ => None,
        };
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        ApiError {
            status,
            code: e.code(),
            message: e.to_string(),
            retry_after,
            challenge: status == StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<TokenOpError> for ApiError {
    fn from(e: TokenOpError) -> ApiError {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            // The message names a file or key, never a value; it is logged too, for the
            // operator who did not make the request.
            tracing::warn!(code = e.code(), "token operation failed: {e}");
        }
        ApiError { status, code: e.code(), message: e.to_string(), retry_after: None, challenge: false }
    }
}

impl From<PairingError> for ApiError {
    fn from(e: PairingError) -> ApiError {
        let code = match e {
            PairingError::AdminScope | PairingError::Ttl(_) | PairingError::Request(_) => Code::BadRequest,
            PairingError::NamePending(_) => Code::PairingNamePending,
            PairingError::Malformed => Code::MalformedPairingCode,
            PairingError::Unknown => Code::UnknownPairingCode,
            PairingError::Expired => Code::ExpiredPairingCode,
            PairingError::ParentRevoked => Code::RevokedPairingCode,
            PairingError::ParentUnverifiable => Code::SharedTokensUnavailable,
            PairingError::Random => Code::RandomFailed,
            // `PairingError` is non-exhaustive: a new variant must be mapped above.
            _ => Code::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, Json(body)).into_response();
        if self.challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        assert_eq!(Code::NoSuchSession.status(), StatusCode::NOT_FOUND);
        assert_eq!(Code::NoSuchSession.as_str(), "session_not_found");
        let e = ApiError::from(AuthError::Missing);
        assert_eq!((e.status(), e.code()), (StatusCode::UNAUTHORIZED, "missing_credential"));
        let r = ApiError::rate_limited(7, "slow down").into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }
}
