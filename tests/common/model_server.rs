//! A scripted model server speaking the OpenAI chat-completions wire format
//! over real HTTP on loopback. It counts the requests it sees (a counter a
//! plugin cannot fake) and answers through a function of the request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server sends back for one request.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A normal completion whose text is `text`.
    pub fn text(text: &str) -> Reply {
        let body = serde_json::json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": "scripted-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        });
        Reply {
            status: 200,
            body: body.to_string(),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(&serde_json::Value) -> Reply + Send + Sync;

pub struct ModelServer {
    pub url: String,
    seen: Arc<Mutex<Vec<serde_json::Value>>>,
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
        self.seen.lock().unwrap().clone()
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
    seen: &Mutex<Vec<serde_json::Value>>,
    script: &Script,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        seen.lock().unwrap().push(request.clone());
        let reply = script(&request);
        std::thread::sleep(reply.delay);
        let reason = match reply.status {
            200 => "OK",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            _ => "Status",
        };
        let mut response = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        let mut stream = &stream;
        stream.write_all(response.as_bytes())?;
        stream.write_all(reply.body.as_bytes())?;
        stream.flush()?;
    }
}
