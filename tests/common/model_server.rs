//! A scripted model server speaking the OpenAI chat-completions and the
//! Anthropic Messages wire formats (by path) over real HTTP on loopback. It
//! counts the requests it sees (a counter a plugin cannot fake) and answers
//! through a function of the request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server sends back for one request.
pub struct Reply {
    pub status: u16,
    pub body: Body,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

pub enum Body {
    /// A completion with this text, in the wire format of the path asked.
    Completion(String),
    /// These bytes, verbatim.
    Raw(String),
    /// A completion of these pieces, streamed (server-sent events in the
    /// path's wire format) when the request asks for a stream, else whole.
    Stream(Streamed),
}

/// How a streamed reply goes.
#[derive(Clone, Default)]
pub struct Streamed {
    pub pieces: Vec<String>,
    /// Between two pieces.
    pub gap: Duration,
    /// After this many pieces, wait until the flag is set (at most a
    /// minute) before the rest: a test sees the call still open.
    pub hold: Option<(usize, Arc<std::sync::atomic::AtomicBool>)>,
    /// After this many pieces, drop the connection: a broken stream.
    pub cut_after: Option<usize>,
}

impl Reply {
    /// A normal completion whose text is `text` (11 tokens in, 7 out).
    pub fn text(text: &str) -> Reply {
        Reply {
            status: 200,
            body: Body::Completion(text.to_string()),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    /// Any status and body.
    pub fn raw(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: Body::Raw(body.to_string()),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    /// A completion streamed in these pieces (7 tokens out, 11 in).
    pub fn stream(streamed: Streamed) -> Reply {
        Reply {
            status: 200,
            body: Body::Stream(streamed),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

fn render(body: &Body, path: &str) -> String {
    match body {
        Body::Raw(raw) => raw.clone(),
        Body::Stream(s) => render(&Body::Completion(s.pieces.concat()), path),
        Body::Completion(text) if path.ends_with("/messages") => serde_json::json!({
            "id": "msg_test", "type": "message", "role": "assistant",
            "model": "scripted-claude",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 11, "output_tokens": 7},
        })
        .to_string(),
        Body::Completion(text) => serde_json::json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": "scripted-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        })
        .to_string(),
    }
}

/// The path and headers of one request (header names lower-cased).
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HashMap<String, String>,
}

type Script = dyn Fn(&serde_json::Value) -> Reply + Send + Sync;

pub struct ModelServer {
    pub url: String,
    seen: Arc<Mutex<Vec<(Seen, serde_json::Value)>>>,
}

impl ModelServer {
    /// Starts a server on 127.0.0.1 with an ephemeral port; it lives as long
    /// as the test process.
    pub fn start(
        script: impl Fn(&serde_json::Value) -> Reply + Send + Sync + 'static,
    ) -> ModelServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, script) = (seen2.clone(), script.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &seen, &*script);
                });
            }
        });
        ModelServer { url, seen }
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The path and headers of every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// How many requests were seen per key, the key computed from each request.
    pub fn count_by(&self, key: impl Fn(&serde_json::Value) -> String) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.requests() {
            *counts.entry(key(&r)).or_insert(0) += 1;
        }
        counts
    }
}

/// The text of the last user message of a request.
pub fn last_user_message(request: &serde_json::Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<(Seen, serde_json::Value)>>,
    script: &Script,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut headers = HashMap::new();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                if name == "content-length" {
                    length = value.trim().parse().unwrap_or(0);
                }
                headers.insert(name, value.trim().to_string());
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        seen.lock().unwrap().push((
            Seen {
                path: path.clone(),
                headers,
            },
            request.clone(),
        ));
        let reply = script(&request);
        if let (Body::Stream(streamed), true) = (&reply.body, request["stream"] == true) {
            std::thread::sleep(reply.delay);
            return send_stream(&stream, streamed, &path);
        }
        let body = render(&reply.body, &path);
        std::thread::sleep(reply.delay);
        let reason = match reply.status {
            200 => "OK",
            429 => "Too Many Requests",
            401 => "Unauthorized",
            500 => "Internal Server Error",
            _ => "Status",
        };
        let mut response = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            reply.status,
            body.len()
        );
        for (k, v) in &reply.headers {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        let mut stream = &stream;
        stream.write_all(response.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        stream.flush()?;
    }
}

/// One server-sent event of a streamed completion, in the wire format of
/// `path`: a piece of text, or (`None`) the end, with usage.
fn stream_events(piece: Option<&str>, path: &str) -> String {
    let anthropic = path.ends_with("/messages");
    match (piece, anthropic) {
        (Some(text), false) => format!(
            "data: {}\n\n",
            serde_json::json!({"model": "scripted-model", "choices": [{"index": 0, "delta": {"content": text}}]})
        ),
        (None, false) => format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            serde_json::json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}})
        ),
        (Some(text), true) => format!(
            "event: content_block_delta\ndata: {}\n\n",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})
        ),
        (None, true) => format!(
            "event: message_delta\ndata: {}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n",
            serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}})
        ),
    }
}

/// Streams a completion piece by piece, then closes the connection.
fn send_stream(stream: &TcpStream, s: &Streamed, path: &str) -> std::io::Result<()> {
    let mut out = stream;
    out.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
    )?;
    if path.ends_with("/messages") {
        let start = serde_json::json!({"type": "message_start", "message": {"model": "scripted-claude", "usage": {"input_tokens": 11, "output_tokens": 1}}});
        out.write_all(format!("event: message_start\ndata: {start}\n\n").as_bytes())?;
    }
    for (i, piece) in s.pieces.iter().enumerate() {
        if s.cut_after == Some(i) {
            // Gone mid-answer: no end event, the connection dropped.
            return stream.shutdown(std::net::Shutdown::Both);
        }
        if let Some((at, flag)) = &s.hold
            && *at == i
        {
            let until = std::time::Instant::now() + Duration::from_secs(60);
            while !flag.load(std::sync::atomic::Ordering::SeqCst)
                && std::time::Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        out.write_all(stream_events(Some(piece), path).as_bytes())?;
        out.flush()?;
        std::thread::sleep(s.gap);
    }
    out.write_all(stream_events(None, path).as_bytes())?;
    out.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}
