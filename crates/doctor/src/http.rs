//! A tiny blocking HTTP/1.1 client for the local gateway only.
//!
//! The doctor presents credentials to prove that client and gateway agree; it must never
//! send one anywhere but the gateway recorded in `.picoclaw.pid`. This client therefore
//! connects only to loopback addresses, with short timeouts and a bounded response.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// Largest response read.
const MAX_RESPONSE: u64 = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A response: status and parsed JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body as JSON.
    pub body: Value,
}

/// Why a request did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The recorded host is not a loopback address; nothing was sent.
    #[error("{0} is not a loopback address; the doctor only talks to a gateway on this machine")]
    NotLoopback(String),
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer was not HTTP.
    #[error("the answer is not an HTTP response")]
    Malformed,
}

/// Resolves the record's host to a loopback socket address.
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

/// Sends one request to `addr` (a loopback address from [`loopback_addr`]).
/// `bearer` is sent as `Authorization: Bearer`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
) -> Result<Response, HttpError> {
    if !addr.ip().is_loopback() {
        return Err(HttpError::NotLoopback(addr.ip().to_string()));
    }
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut head = zeroize::Zeroizing::new(format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: 0\r\n"
    ));
    if let Some(token) = bearer {
        head.push_str("Authorization: Bearer ");
        head.push_str(token);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut raw)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Response, HttpError> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or(HttpError::Malformed)?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| HttpError::Malformed)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or(HttpError::Malformed)?;
    let status: u16 =
        status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(HttpError::Malformed)?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = &raw[split + 4..];
    let body = if chunked { dechunk(body) } else { body.to_vec() };
    Ok(Response { status, body: serde_json::from_slice(&body).unwrap_or(Value::Null) })
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(body.len());
        out.extend_from_slice(&body[start..end]);
        body = body.get(end + 2..).unwrap_or(&[]);
    }
    out
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
    }

    #[test]
    fn parses_plain_and_chunked() {
        let r = parse(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(r.status, 401);
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body["a"], 1);
    }
}
