//! MI over HTTP, as OpenSIPS 3.x `mi_http`: `POST /mi` with a JSON-RPC
//! request, and `GET /metrics` in the Prometheus text format.
//!
//! HTTP/1.1 is hyper's: strict framing (two different Content-Length
//! values, or Content-Length with chunked, are refused with 400, the
//! request-smuggling shapes), chunked bodies, `Expect: 100-continue`, a
//! 16 KB head (431 past it) and a time limit on reading it. The body is
//! bounded here (1 MB, 413). Each connection is its own task and commands
//! run on the blocking pool, so an idle or slow client holds only its own
//! connection. Every request must carry the token (`token.rs`) unless
//! `config.modules.mi_http.token = false`.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Ctx;
use crate::config::MiHttp;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest request head (431 beyond).
pub const MAX_HEAD: usize = 16 * 1024;
/// A client must send a whole head within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more get 503 and are closed.
pub const MAX_CONNS: usize = 1024;

/// What every request of one listener shares.
struct Server {
    ctx: Arc<Ctx>,
    mi_path: String,
    /// The token requests must present; None: `token = false`.
    token: Option<String>,
}

type Reply = Response<Full<Bytes>>;

fn reply(code: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn text(code: StatusCode) -> Reply {
    let body = format!("{}\n", code.canonical_reason().unwrap_or("Error"));
    reply(code, "text/plain", body)
}

fn with(mut r: Reply, name: &'static str, value: &'static str) -> Reply {
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    r
}

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| super::token::matches(given.trim(), token))
}

async fn handle(req: Request<Incoming>, srv: Arc<Server>) -> Result<Reply, Infallible> {
    if let Some(tok) = &srv.token {
        if !authorized(&req, tok) {
            let r = text(StatusCode::UNAUTHORIZED);
            return Ok(with(r, "www-authenticate", "Bearer"));
        }
    }
    let path = req.uri().path();
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    if path == srv.mi_path {
        if req.method() != Method::POST {
            let r = reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use POST\n");
            return Ok(with(r, "allow", "POST"));
        }
        if req.body().size_hint().lower() > MAX_BODY as u64 {
            return Ok(text(StatusCode::PAYLOAD_TOO_LARGE));
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Ok(text(StatusCode::PAYLOAD_TOO_LARGE))
            }
            Err(_) => return Ok(text(StatusCode::BAD_REQUEST)),
        };
        let ctx = srv.ctx.clone();
        let out = tokio::task::spawn_blocking(move || super::jsonrpc::handle(&ctx, &body)).await;
        return Ok(match out {
            Ok(Some(v)) => reply(StatusCode::OK, "application/json", v.to_string()),
            Ok(None) => reply(StatusCode::NO_CONTENT, "application/json", Bytes::new()),
            Err(_) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "command failed\n",
            ),
        });
    }
    if path == "/metrics" {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let r = reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n");
            return Ok(with(r, "allow", "GET"));
        }
        let modules = srv.ctx.modules.clone();
        let body = tokio::task::spawn_blocking(move || {
            // Statistics a module computes read its state.
            let _in = crate::state::enter(modules);
            super::metrics::render()
        })
        .await
        .unwrap_or_default();
        return Ok(reply(StatusCode::OK, "text/plain; version=0.0.4", body));
    }
    Ok(text(StatusCode::NOT_FOUND))
}

/// Accepts connections until the listener fails; each gets its own task.
/// `token`: what requests must present (None: open).
pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>, cfg: MiHttp, token: Option<String>) {
    let srv = Arc::new(Server {
        ctx,
        mi_path: format!("/{}", cfg.root),
        token,
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNS));
    loop {
        let (s, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("mi_http: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut s = s;
                let _ = s
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
            continue;
        };
        let srv = srv.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, srv.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(s), svc);
            if let Err(e) = conn.await {
                tracing::debug!("mi_http: connection: {e}");
            }
            drop(permit);
        });
    }
}
