//! MI over HTTP, as OpenSIPS 3.x `mi_http`: `POST /mi` with a JSON-RPC
//! request, and `GET /metrics` in the Prometheus text format.
//!
//! A small HTTP/1.1 server: requests are tiny and come from loopback, so
//! no framework is needed, but every limit a hostile client could push on
//! is bounded: header size, body size (1 MB), time to send a request, time
//! idle between requests, and connections at once. Each connection is its
//! own task, and commands run on the blocking pool, so an idle or slow
//! client holds nothing but its own task.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Ctx;
use crate::config::MiHttp;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest request head (431 beyond).
pub const MAX_HEAD: usize = 16 * 1024;
/// A client must send a whole request within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A keep-alive connection with no new request is closed after this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once; more get 503 and are closed.
pub const MAX_CONNS: usize = 1024;

/// What a request asked for, after the head was read.
struct Head {
    method: String,
    path: String,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
    auth: Option<String>,
    /// `Expect: 100-continue` (curl sends it for larger bodies).
    expect_continue: bool,
}

fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let version = first.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut h = Head {
        method,
        path,
        content_length: None,
        chunked: false,
        close: version == "HTTP/1.0",
        auth: None,
        expect_continue: false,
    };
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => h.content_length = Some(v.parse().ok()?),
            "transfer-encoding" => h.chunked = !v.eq_ignore_ascii_case("identity"),
            "connection" => {
                if v.eq_ignore_ascii_case("close") {
                    h.close = true;
                } else if v.eq_ignore_ascii_case("keep-alive") {
                    h.close = false;
                }
            }
            "authorization" => h.auth = Some(v.to_string()),
            "expect" => h.expect_continue = v.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    Some(h)
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn respond(
    s: &mut TcpStream,
    code: u16,
    ctype: &str,
    body: &[u8],
    close: bool,
    extra: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: {}\r\n{extra}\r\n",
        reason(code),
        body.len(),
        if close { "close" } else { "keep-alive" }
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    tokio::time::timeout(REQUEST_TIMEOUT, s.write_all(&out))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

async fn error_text(s: &mut TcpStream, code: u16) {
    let body = format!("{}\n", reason(code));
    let _ = respond(s, code, "text/plain", body.as_bytes(), true, "").await;
}

/// Finds the end of the head (`\r\n\r\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Serves one connection until it closes, idles out, or misbehaves.
async fn connection(mut s: TcpStream, ctx: Arc<Ctx>, cfg: Arc<MiHttp>) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mi_path = format!("/{}", cfg.root);
    loop {
        // Wait for (the rest of) a head: idle timeout before the first
        // byte, request timeout once it started.
        let started = tokio::time::Instant::now();
        let end = loop {
            if let Some(e) = head_end(&buf) {
                break e;
            }
            if buf.len() > MAX_HEAD {
                return error_text(&mut s, 431).await;
            }
            let limit = if buf.is_empty() {
                IDLE_TIMEOUT
            } else {
                REQUEST_TIMEOUT.saturating_sub(started.elapsed())
            };
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(limit, s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    if !buf.is_empty() {
                        error_text(&mut s, 408).await;
                    }
                    return;
                }
            }
        };
        let Some(head) = parse_head(&buf[..end]) else {
            return error_text(&mut s, 400).await;
        };
        buf.drain(..end + 4);
        if head.chunked {
            return error_text(&mut s, 411).await;
        }
        let len = head.content_length.unwrap_or(0);
        if len > MAX_BODY {
            return error_text(&mut s, 413).await;
        }
        if head.expect_continue
            && buf.len() < len
            && s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
        {
            return;
        }
        while buf.len() < len {
            let mut chunk = vec![0u8; (len - buf.len()).min(64 * 1024)];
            let left = REQUEST_TIMEOUT.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => return error_text(&mut s, 408).await,
            }
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        if let Some(tok) = &cfg.token {
            let given = head.auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
            if given.map(str::trim) != Some(tok.as_str()) {
                let _ = respond(
                    &mut s,
                    401,
                    "text/plain",
                    b"Unauthorized\n",
                    true,
                    "WWW-Authenticate: Bearer\r\n",
                )
                .await;
                return;
            }
        }
        let path = head.path.split('?').next().unwrap_or("");
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        let close = head.close;
        let sent = if path == mi_path {
            if head.method != "POST" {
                respond(
                    &mut s,
                    405,
                    "text/plain",
                    b"use POST\n",
                    close,
                    "Allow: POST\r\n",
                )
                .await
            } else {
                let ctx = ctx.clone();
                let reply =
                    tokio::task::spawn_blocking(move || super::jsonrpc::handle(&ctx, &body)).await;
                match reply {
                    Ok(Some(v)) => {
                        let text = v.to_string();
                        respond(&mut s, 200, "application/json", text.as_bytes(), close, "").await
                    }
                    Ok(None) => respond(&mut s, 204, "application/json", b"", close, "").await,
                    Err(_) => {
                        respond(&mut s, 503, "text/plain", b"command failed\n", true, "").await
                    }
                }
            }
        } else if path == "/metrics" {
            if head.method != "GET" && head.method != "HEAD" {
                respond(
                    &mut s,
                    405,
                    "text/plain",
                    b"use GET\n",
                    close,
                    "Allow: GET\r\n",
                )
                .await
            } else {
                let text = tokio::task::spawn_blocking(super::metrics::render)
                    .await
                    .unwrap_or_default();
                let body = if head.method == "HEAD" {
                    &[][..]
                } else {
                    text.as_bytes()
                };
                respond(&mut s, 200, "text/plain; version=0.0.4", body, close, "").await
            }
        } else {
            respond(&mut s, 404, "text/plain", b"Not Found\n", close, "").await
        };
        if sent.is_err() || close {
            return;
        }
    }
}

/// Accepts connections until the listener fails; each gets its own task.
pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>, cfg: MiHttp) {
    let cfg = Arc::new(cfg);
    let slots = Arc::new(Semaphore::new(MAX_CONNS));
    loop {
        let (mut s, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("mi_http: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tokio::spawn(async move { error_text(&mut s, 503).await });
            continue;
        };
        let (ctx, cfg) = (ctx.clone(), cfg.clone());
        tokio::spawn(async move {
            connection(s, ctx, cfg).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = parse_head(b"POST /mi HTTP/1.1\r\nContent-Length: 12\r\nAuthorization: Bearer x\r\nConnection: close").unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("POST", "/mi"));
        assert_eq!(h.content_length, Some(12));
        assert!(h.close);
        assert_eq!(h.auth.as_deref(), Some("Bearer x"));
        assert!(parse_head(b"GARBAGE").is_none());
        assert!(parse_head(b"GET / SIP/2.0").is_none());
        assert!(parse_head(b"POST /mi HTTP/1.1\r\nContent-Length: -1").is_none());
        assert!(parse_head(b"GET /metrics HTTP/1.0").unwrap().close);
    }
}
