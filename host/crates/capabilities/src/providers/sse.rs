//! Server-sent events, as providers stream completions (the WHATWG
//! `text/event-stream` format): lines of `field: value`, an event ended by
//! a blank line, `data` lines joined with newlines, `:` lines comments.
//! Bytes arrive in arbitrary pieces; an event is yielded only once whole.

/// One event: its `event` field (if any) and its data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Splits a byte stream into events.
#[derive(Default)]
pub struct SseDecoder {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The event being read.
    current: SseEvent,
    /// Whether `current` has a field yet (a blank line alone is no event).
    started: bool,
    /// `data` lines in `current` so far.
    data_lines: usize,
    /// A `\r` ended the last piece: a `\n` opening the next belongs to it.
    after_cr: bool,
}

impl SseDecoder {
    /// Feeds `bytes`, returning the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.end_line(&line) {
                        events.push(event);
                    }
                }
                _ => self.line.push(b),
            }
        }
        events
    }

    /// The last event of a stream that ended without its blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.end_line(&line);
        }
        self.started
            .then(|| std::mem::take(&mut self.current))
            .inspect(|_| self.started = false)
    }

    fn end_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            if !self.started {
                return None;
            }
            self.started = false;
            self.data_lines = 0;
            return Some(std::mem::take(&mut self.current));
        }
        if line[0] == b':' {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.data_lines > 0 {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.data_lines += 1;
            }
            "event" => self.current.event = Some(value.to_string()),
            // `id` and `retry` steer reconnection, which a completion
            // never does: a broken stream is retried whole.
            _ => return None,
        }
        self.started = true;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out: Vec<SseEvent> = pieces.iter().flat_map(|p| d.feed(p)).collect();
        out.extend(d.finish());
        out
    }

    fn data(text: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: text.into(),
        }
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = b"data: {\"a\":1}\n\n: keep-alive\n\nevent: ping\ndata: x\n\ndata: [DONE]\n\n";
        let whole = all(&[stream]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0], data("{\"a\":1}"));
        assert_eq!(whole[1].event.as_deref(), Some("ping"));
        assert_eq!(whole[2], data("[DONE]"));
        // Byte by byte, the same events.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(all(&bytes), whole);
    }

    #[test]
    fn crlf_multiline_data_and_an_unended_last_event() {
        let got = all(&[b"data: one\r", b"\ndata:two\r\n\r\n", b"data: tail"]);
        assert_eq!(got, vec![data("one\ntwo"), data("tail")]);
        assert!(all(&[b"\n\n\n"]).is_empty());
    }
}
