//! The few HTTP pieces the server needs: a body that is either complete or
//! a stream of chunks, replies, query strings, percent-decoding.

use bytes::Bytes;
use hyper::Response;
use hyper::body::Frame;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A response body: all at once, or chunks as a task sends them (SSE).
pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }
}

/// A complete reply: status, content type, bytes.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
    /// For a download: the file name to suggest.
    pub filename: Option<String>,
}

impl Reply {
    pub fn json(value: &serde_json::Value) -> Self {
        Reply {
            status: 200,
            content_type: "application/json".into(),
            body: Bytes::from(value.to_string()),
            filename: None,
        }
    }

    pub fn html(text: &'static str) -> Self {
        Reply {
            status: 200,
            content_type: "text/html; charset=utf-8".into(),
            body: Bytes::from_static(text.as_bytes()),
            filename: None,
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Reply {
            status,
            ..Reply::json(&serde_json::json!({ "error": message.into() }))
        }
    }

    pub fn into_response(self) -> Response<Body> {
        // A media type is whatever a plugin said: one that is not a valid
        // header value is served as plain bytes.
        let content_type = hyper::header::HeaderValue::from_str(&self.content_type).unwrap_or(
            hyper::header::HeaderValue::from_static("application/octet-stream"),
        );
        let mut builder = Response::builder()
            .status(self.status)
            .header("content-type", content_type)
            .header("cache-control", "no-store")
            .header("x-content-type-options", "nosniff");
        if let Some(name) = &self.filename {
            // A download is plugin output: an HTML artifact must not run
            // scripts with the dashboard's origin (and so its API).
            builder = builder.header("content-security-policy", "sandbox");
            let safe: String = name
                .chars()
                .map(|c| if c == '"' || c.is_control() { '_' } else { c })
                .collect();
            builder = builder.header(
                "content-disposition",
                format!("inline; filename=\"{safe}\""),
            );
        }
        builder
            .body(Body::Full(Some(self.body)))
            .unwrap_or_else(|_| Response::new(Body::Full(Some(Bytes::from_static(b"{}")))))
    }
}

/// Query parameters, decoded; the last of a repeated name wins.
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(text: &str) -> Self {
        Query(
            text.split('&')
                .filter(|p| !p.is_empty())
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let plus = |s: &str| s.replace('+', " ");
                    Some((percent_decode(&plus(k))?, percent_decode(&plus(v))?))
                })
                .collect(),
        )
    }

    /// A numeric parameter: `Ok(None)` if absent, `Err` naming it if not a number.
    pub fn number(&self, name: &str) -> Result<Option<u64>, String> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("query parameter '{name}' must be a whole number, not '{v}'")),
        }
    }
}

/// `%XX` decoding of a path segment or query part; `None` if malformed or
/// not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(percent_decode("a%20b.txt").as_deref(), Some("a b.txt"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        let q = Query::parse("attempt=2&x=a+b&bad=%");
        assert_eq!(q.number("attempt"), Ok(Some(2)));
        assert_eq!(q.number("none"), Ok(None));
        assert!(q.number("x").unwrap_err().contains("'x'"));
    }
}
