//! A model call's answer as it streams in, to the attempt's live view: the
//! provider's pieces as they come; an answer from a recording or the
//! response cache (or a server that answered whole) in pieces of a word, so
//! a replayed run shows the same text coming; and how each stream ended,
//! so a piece of a retried or failed call is never taken for the answer.

use crate::providers::TokenSink;
use host_runtime::bindings::orchestrator::stage::models::StreamEvent;
use host_runtime::live::AttemptLive;
use host_vocab::{StreamEnd, StreamPiece};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a plugin reading a stream (`models.complete-streamed`) gets its
/// pieces.
pub(super) type Forward = tokio::sync::mpsc::UnboundedSender<StreamEvent>;

pub(super) struct LiveSink {
    /// `None`: nobody watches (only a plugin reads it).
    live: Option<Arc<AttemptLive>>,
    forward: Option<Forward>,
    call: u32,
    alias: String,
    /// Pieces of the current stream went out.
    shown: AtomicBool,
}

impl LiveSink {
    pub fn new(live: Option<Arc<AttemptLive>>, call: u32, alias: &str) -> Self {
        LiveSink {
            live,
            forward: None,
            call,
            alias: alias.to_string(),
            shown: AtomicBool::new(false),
        }
    }

    /// Also hands the provider's pieces (and restarts) to a plugin.
    pub fn forwarding(mut self, forward: Option<Forward>) -> Self {
        self.forward = forward;
        self
    }

    /// Whether anyone takes the pieces.
    pub fn wanted(&self) -> bool {
        self.live.is_some() || self.forward.is_some()
    }

    fn piece(&self, text: &str, end: Option<StreamEnd>) {
        if let Some(live) = &self.live {
            live.model_piece(StreamPiece {
                call: self.call,
                alias: self.alias.clone(),
                text: text.to_string(),
                end,
            });
        }
    }

    fn forward(&self, event: StreamEvent) {
        if let Some(f) = &self.forward {
            // A plugin that stopped reading drops its end: nothing to do.
            let _ = f.send(event);
        }
    }

    /// The call is answered with `text`: what streamed is the answer (or,
    /// if nothing streamed, `text` goes out now, a word at a time).
    pub fn answered(&self, text: &str) {
        if !self.shown.swap(false, Ordering::SeqCst) {
            for word in words(text) {
                self.piece(word, None);
                self.forward(StreamEvent::Text(word.to_string()));
            }
        }
        self.piece("", Some(StreamEnd::Answer));
    }

    /// The call failed: what streamed of it is not an answer.
    pub fn failed(&self, why: &str) {
        if self.shown.swap(false, Ordering::SeqCst) {
            self.piece("", Some(StreamEnd::Superseded(why.to_string())));
        }
    }
}

impl TokenSink for LiveSink {
    fn text(&self, piece: &str) {
        self.shown.store(true, Ordering::SeqCst);
        self.piece(piece, None);
        self.forward(StreamEvent::Text(piece.to_string()));
    }

    fn restart(&self, why: &str) {
        if self.shown.load(Ordering::SeqCst) {
            self.forward(StreamEvent::Restart(why.to_string()));
        }
        self.failed(why);
    }
}

/// `text` cut after each run of whitespace: pieces that join back to it.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let end = rest[word_end..]
            .find(|c: char| !c.is_whitespace())
            .map_or(rest.len(), |n| word_end + n);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_vocab::{RunEvent, RunObserver};
    use std::sync::Mutex;

    #[test]
    fn words_join_back_to_the_text() {
        let text = "Hello,  wide\nworld ";
        let pieces: Vec<&str> = words(text).collect();
        assert_eq!(pieces, ["Hello,  ", "wide\n", "world "]);
        assert_eq!(words("").count(), 0);
        assert_eq!(words("  lead").collect::<Vec<_>>(), ["  ", "lead"]);
    }

    struct Pieces(Mutex<Vec<StreamPiece>>);
    impl RunObserver for Pieces {
        fn on_event(&self, e: &RunEvent) {
            if let RunEvent::ModelStream { piece, .. } = e {
                self.0.lock().unwrap().push(piece.clone());
            }
        }
    }

    #[test]
    fn a_broken_stream_is_superseded_and_the_answer_ends_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Pieces(Mutex::new(Vec::new())));
        let id = host_runtime::live::AttemptId {
            run: "r",
            stage: "s",
            iteration: 0,
            attempt: 1,
        };
        let live = Arc::new(AttemptLive::new(dir.path(), id, seen.clone()));
        let sink = LiveSink::new(Some(live), 0, "large");
        sink.text("Hel");
        sink.restart("the stream broke");
        sink.text("Hello");
        sink.answered("Hello");
        let pieces = seen.0.lock().unwrap();
        let ends: Vec<Option<StreamEnd>> = pieces.iter().map(|p| p.end.clone()).collect();
        assert_eq!(
            ends,
            [
                None,
                Some(StreamEnd::Superseded("the stream broke".into())),
                None,
                Some(StreamEnd::Answer)
            ]
        );
        assert_eq!(pieces[2].text, "Hello");
        drop(pieces);
        // A call answered whole (a recording) still shows its text come; a
        // failure with nothing shown says nothing.
        let seen = Arc::new(Pieces(Mutex::new(Vec::new())));
        let live = Arc::new(AttemptLive::new(dir.path(), id, seen.clone()));
        LiveSink::new(Some(live.clone()), 1, "large").answered("a b");
        LiveSink::new(Some(live), 2, "large").failed("refused");
        let pieces = seen.0.lock().unwrap();
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["a ", "b", ""]);
        assert_eq!(pieces[2].end, Some(StreamEnd::Answer));
    }
}
