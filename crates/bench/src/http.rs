//! A minimal HTTP/1.1 client over one loopback TCP connection (`Connection: close`): enough
//! to poll `/ready` and post a login, without pulling a full client into timing loops.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Longest response read (headers and body); these endpoints answer a few hundred bytes.
const MAX_RESPONSE: usize = 64 * 1024;

/// Sends one request on `stream` and returns the status code and the body.
pub async fn request(
    stream: TcpStream,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    send(stream, method, path, "", body).await
}

/// Like [`request`], without a body and with extra header lines (`Name: value`, separated
/// by CRLF).
pub async fn request_with(
    stream: TcpStream,
    method: &str,
    path: &str,
    headers: &str,
) -> Result<(u16, String)> {
    send(stream, method, path, headers, None).await
}

async fn send(
    mut stream: TcpStream,
    method: &str,
    path: &str,
    headers: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if !headers.is_empty() {
        req.push_str(headers);
        req.push_str("\r\n");
    }
    if let Some(body) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    if let Some(body) = body {
        req.push_str(body);
    }
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut limited = (&mut stream).take(MAX_RESPONSE as u64);
    limited.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| {
            format!("not an HTTP/1.1 response: {:?}", text.chars().take(40).collect::<String>())
        })?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// `GET path` on 127.0.0.1:`port` with a time limit.
pub async fn get(port: u16, path: &str, limit: Duration) -> Result<(u16, String)> {
    let fut = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        request(stream, "GET", path, None).await
    };
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => bail!("GET {path} timed out"),
    }
}

/// Connects from `source` (a loopback address, port chosen by the OS) to `target`.
pub async fn connect_from(source: SocketAddr, target: SocketAddr) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(source).with_context(|| format!("bind source address {source}"))?;
    let stream = socket.connect(target).await?;
    stream.set_zero_linger()?;
    Ok(stream)
}
