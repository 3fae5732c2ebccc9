//! Requests to the local gateway — the one recorded in `.picoclaw.pid` — for the CLI
//! (`gateway status|reload`, `token …`) and `doctor`.
//!
//! Credentials presented here must never go anywhere but that gateway, so [`request`]
//! takes a [`VerifiedGateway`] (a record whose pid holds the lock and owns the listening
//! socket), dials loopback addresses only, ignores `HTTP_PROXY`/`http_proxy` (a proxy
//! would see the token), uses short timeouts and reads a bounded answer.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use picoclaw_credentials::Secret;
use serde_json::Value;

use crate::VerifiedGateway;

/// Largest answer read by [`request`].
const MAX_RESPONSE: usize = 64 * 1024;
/// Connect and whole-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An answer: status and its body parsed as JSON (`Null` when not JSON).
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body as JSON.
    pub body: Value,
}

/// Why a request did not produce an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The recorded host is not a loopback address; nothing was sent.
    #[error("{0} is not a loopback address; picoclaw only sends credentials to a gateway on this machine")]
    NotLoopback(String),
    /// Connecting, sending or reading failed (the message names no credential).
    #[error("{0}")]
    Request(String),
    /// The answer is larger than the bound of the request (64 KiB for [`request`]).
    #[error("the gateway's answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// Resolves a record's host to a loopback socket address.
pub fn loopback_addr(host: &str, port: u16) -> Result<SocketAddr, HttpError> {
    let trimmed = host.trim_matches(['[', ']']);
    let ip: IpAddr = match trimmed {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        other => other.parse().map_err(|_| HttpError::NotLoopback(host.to_owned()))?,
    };
    if !ip.is_loopback() {
        return Err(HttpError::NotLoopback(host.to_owned()));
    }
    Ok(SocketAddr::new(ip, port))
}

/// What a request presents as `Authorization: Bearer`.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// Nothing (`/health`, `/ready`).
    None,
    /// The gateway's runtime token, from its verified record.
    Runtime,
    /// A configured credential (the doctor's `/auth/whoami` checks).
    Configured(&'a Secret),
}

/// Sends one request (blocking) to a verified local gateway, at its loopback address;
/// reads at most 64 KiB of answer.
pub fn request(
    gateway: &VerifiedGateway,
    method: &str,
    path: &str,
    credential: Credential<'_>,
) -> Result<Response, HttpError> {
    request_bounded(gateway, method, path, credential, MAX_RESPONSE)
}

/// [`request`], reading at most `max_response` bytes of answer (history pages).
pub fn request_bounded(
    gateway: &VerifiedGateway,
    method: &str,
    path: &str,
    credential: Credential<'_>,
    max_response: usize,
) -> Result<Response, HttpError> {
    let addr = gateway.loopback_addr()?;
    send(addr, method, path, bearer(gateway, credential), None, max_response)
}

/// [`request`] with a JSON body (`POST /api/pair`).
pub fn request_json(
    gateway: &VerifiedGateway,
    method: &str,
    path: &str,
    credential: Credential<'_>,
    body: &Value,
) -> Result<Response, HttpError> {
    let addr = gateway.loopback_addr()?;
    send(addr, method, path, bearer(gateway, credential), Some(body), MAX_RESPONSE)
}

/// The `Authorization: Bearer` value: presented only to the gateway whose pid holds the
/// lock and owns this listener.
fn bearer<'a>(gateway: &'a VerifiedGateway, credential: Credential<'a>) -> Option<&'a str> {
    match credential {
        Credential::None => None,
        Credential::Runtime => Some(gateway.record().token.expose()),
        Credential::Configured(secret) => Some(secret.expose()),
    }
}

/// Sends one request (blocking) to `addr`, which must be a loopback address;
/// `bearer` goes out as `Authorization: Bearer`.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    json: Option<&Value>,
    max_response: usize,
) -> Result<Response, HttpError> {
    if !addr.ip().is_loopback() {
        return Err(HttpError::NotLoopback(addr.ip().to_string()));
    }
    let failed =
        |e: &dyn std::fmt::Display| HttpError::Request(format!("cannot reach the gateway at {addr}: {e}"));
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| failed(&e))?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| failed(&e))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| failed(&e.without_url()))?;
        let mut req =
            client.request(method, format!("http://{addr}{path}")).header("accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(json) = json {
            req = req.header("content-type", "application/json").body(json.to_string());
        }
        let mut resp = req.send().await.map_err(|e| failed(&e.without_url()))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| failed(&e.without_url()))? {
            if body.len() + chunk.len() > max_response {
                return Err(HttpError::TooLarge(max_response));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, body: serde_json::from_slice(&body).unwrap_or(Value::Null) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_dialled() {
        assert!(loopback_addr("127.0.0.1", 1).is_ok());
        assert!(loopback_addr("[::1]", 1).is_ok());
        assert!(loopback_addr("localhost", 1).is_ok());
        assert!(matches!(loopback_addr("10.0.0.1", 1), Err(HttpError::NotLoopback(_))));
        assert!(matches!(loopback_addr("example.com", 1), Err(HttpError::NotLoopback(_))));
        let remote: SocketAddr = "192.0.2.1:80".parse().unwrap();
        assert!(matches!(
            send(remote, "GET", "/", Some("t"), None, MAX_RESPONSE),
            Err(HttpError::NotLoopback(_))
        ));
    }

    #[test]
    fn closed_port_is_a_request_error_naming_no_token() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err =
            send(addr, "GET", "/ready", Some("secret-canary"), None, MAX_RESPONSE).unwrap_err().to_string();
        assert!(err.contains("cannot reach") && !err.contains("secret-canary"), "{err}");
    }
}
