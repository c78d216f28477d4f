//! `host serve`: a JSON API under `/api` and a dashboard page over one
//! state directory, on plain hyper (HTTP/1.1).
//!
//! The server holds no state of its own: every request opens the database
//! read-only, so it works beside a `host run` in another process and always
//! shows what that process last committed. Live logs come from the
//! per-attempt log files (see `crate::live`), followed as Server-Sent Events.

mod api;
mod follow;
mod http;

use http::{Body, Reply};
use hyper::{Method, Request, Response};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The dashboard: one static page, no build step.
const DASHBOARD: &str = include_str!("dashboard.html");

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0}: it is not a loopback address, and the API shows every run, its prompts and artifacts to whoever can reach it (pass --public to allow it)"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds `addr` (loopback only, unless `public`).
pub async fn bind(addr: SocketAddr, public: bool) -> Result<TcpListener, ServeError> {
    if !public && !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves connections on `listener` until the process ends.
pub async fn serve(listener: TcpListener, state_dir: PathBuf) {
    let state_dir = Arc::new(state_dir);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // E.g. out of file descriptors: wait rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let dir = state_dir.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let dir = dir.clone();
                async move { Ok::<_, std::convert::Infallible>(route(req, dir).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

async fn route(req: Request<hyper::body::Incoming>, state_dir: Arc<PathBuf>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Reply::error(
            405,
            format!("{} is not supported: the API is read-only", req.method()),
        )
        .into_response();
    }
    let path = req.uri().path().to_string();
    let query = http::Query::parse(req.uri().query().unwrap_or(""));
    let segments: Vec<String> = match path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(http::percent_decode)
        .collect::<Option<Vec<_>>>()
    {
        Some(s) => s,
        None => return Reply::error(400, format!("bad path {path}")).into_response(),
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [] | ["index.html"] => Reply::html(DASHBOARD).into_response(),
        ["api", "runs", run, "stages", stage, "log", "stream"] => {
            let last = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            follow::stream(state_dir, run, stage, &query, last).await
        }
        ["api", ..] => {
            let (segments, query) = (segments.clone(), query.clone());
            let dir = state_dir.clone();
            let reply = tokio::task::spawn_blocking(move || {
                let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
                api::handle(&dir, &segs[1..], &query)
            })
            .await
            .unwrap_or_else(|e| Reply::error(500, format!("request failed: {e}")));
            reply.into_response()
        }
        _ => Reply::error(404, format!("no such page: {path}")).into_response(),
    }
}
