//! Bounded capture of a gate's output: the first and the last bytes are
//! kept, the middle is counted and dropped, so a tool that prints gigabytes
//! costs a few kilobytes of memory and of database.

use std::collections::VecDeque;

pub struct HeadTail {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    half: usize,
    total: u64,
}

impl HeadTail {
    /// Keeps at most `cap` bytes: half from the start, half from the end.
    pub fn new(cap: usize) -> Self {
        let half = (cap / 2).max(1);
        HeadTail {
            head: Vec::new(),
            tail: VecDeque::new(),
            half,
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.head.len() < self.half {
            let take = (self.half - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.len() >= self.half {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.half..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.half);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// Every byte seen, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept text, with a marker where bytes were dropped.
    pub fn text(&self) -> String {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.total > kept {
            out.push_str(&format!(
                "\n[... {} bytes omitted ...]\n",
                self.total - kept
            ));
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        out.push_str(&String::from_utf8_lossy(&tail));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut c = HeadTail::new(100);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.text(), "hello world");
        assert_eq!(c.total(), 11);
    }

    #[test]
    fn long_output_keeps_head_and_tail() {
        let mut c = HeadTail::new(10);
        for chunk in [b"AAAA".as_slice(), b"BBBBBBBB", b"CCCC", b"DDDDD"] {
            c.push(chunk);
        }
        assert_eq!(c.total(), 21);
        let text = c.text();
        assert!(
            text.starts_with("AAAAB\n[... 11 bytes omitted ...]\n"),
            "{text}"
        );
        assert!(text.ends_with("CDDDDD".get(1..).unwrap()), "{text}");
    }

    #[test]
    fn one_huge_chunk() {
        let mut c = HeadTail::new(8);
        let big = vec![b'x'; 1 << 20];
        c.push(&big);
        c.push(b"end");
        assert_eq!(c.total(), (1 << 20) + 3);
        assert!(c.text().ends_with("xend"));
        assert!(c.text().len() < 64);
    }
}
