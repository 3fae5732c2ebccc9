//! Gateway errors: startup failures and the JSON error body of every HTTP rejection.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use picoclaw_auth::AuthError;
use serde_json::json;

/// Why the gateway could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// Configuration is invalid (exit code 78).
    #[error(transparent)]
    Config(#[from] picoclaw_config::ConfigError),
    /// Credentials are invalid or cannot be generated.
    #[error(transparent)]
    Credentials(#[from] picoclaw_credentials::CredentialError),
    /// Lock / record problems, including "already running".
    #[error(transparent)]
    Lifecycle(#[from] picoclaw_lifecycle::LifecycleError),
    /// A refused combination, e.g. a public bind without any credential.
    #[error("{0}")]
    Refused(String),
    /// Binding or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The agent could not be built.
    #[error("agent: {0}")]
    Agent(String),
}

impl GatewayError {
    /// Process exit code: 78 (EX_CONFIG) for configuration problems, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            GatewayError::Config(_) | GatewayError::Credentials(_) | GatewayError::Refused(_) => 78,
            _ => 1,
        }
    }
}

/// An HTTP error answer: status, stable code, message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    /// A 500 whose detail went to the log.
    pub fn internal() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see logs/gateway.log")
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let retry_after = match e {
            AuthError::RateLimited { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        ApiError {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED),
            code: e.code(),
            message: e.to_string(),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
