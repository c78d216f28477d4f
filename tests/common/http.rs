//! A minimal HTTP/1.1 client over a TCP socket for testing `host serve`:
//! plain GETs, and Server-Sent Events read as they arrive.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// `http://127.0.0.1:PORT/` -> `127.0.0.1:PORT`.
fn host_port(base: &str) -> &str {
    base.trim_start_matches("http://").trim_end_matches('/')
}

fn send(base: &str, method: &str, path: &str) -> BufReader<TcpStream> {
    let addr = host_port(base);
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    BufReader::new(stream)
}

fn head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (status, headers)
}

/// Reads a chunked body to its end.
fn dechunk(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            return body;
        }
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk).unwrap();
        body.extend_from_slice(&chunk[..n]);
    }
}

pub fn request(base: &str, method: &str, path: &str) -> Reply {
    let mut reader = send(base, method, path);
    let (status, headers) = head(&mut reader);
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(&mut reader)
    } else {
        let mut b = Vec::new();
        reader.read_to_end(&mut b).unwrap();
        b
    };
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(base: &str, path: &str) -> Reply {
    request(base, "GET", path)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct Sse {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

/// An open event stream.
pub struct SseStream {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pending: String,
    chunked: bool,
}

impl SseStream {
    pub fn open(base: &str, path: &str) -> Self {
        let mut reader = send(base, "GET", path);
        let (status, headers) = head(&mut reader);
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        SseStream {
            reader,
            status,
            headers,
            pending: String::new(),
            chunked,
        }
    }

    /// More of the body, or `None` at its end.
    fn more(&mut self) -> Option<()> {
        if self.chunked {
            let mut size = String::new();
            if self.reader.read_line(&mut size).ok()? == 0 {
                return None;
            }
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                return None;
            }
            let mut chunk = vec![0; n + 2];
            self.reader.read_exact(&mut chunk).ok()?;
            self.pending.push_str(&String::from_utf8_lossy(&chunk[..n]));
        } else {
            let mut buf = [0u8; 4096];
            let n = self.reader.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            self.pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        Some(())
    }

    /// The next event (comments skipped), or `None` when the stream ends.
    pub fn next_event(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut ev = Sse::default();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("data: ") {
                        if any && !ev.data.is_empty() {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(v);
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = Some(v.to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.to_string());
                    }
                }
                if any {
                    return Some(ev);
                }
                continue;
            }
            self.more()?;
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
