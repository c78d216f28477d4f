//! Test doubles for every host interface, so `cargo test` of a plugin runs
//! its `run()` end to end natively: scripted model answers, captured log
//! lines, an in-memory kv store, scripted gates, captured streamed
//! artifacts and the attempt's kind.
//!
//! Outside a component (any target but wasm32) the SDK's host calls go to
//! the [`TestHost`] installed on the calling thread; each test installs its
//! own (cargo runs tests on threads of their own), and calling the host
//! with none installed panics with a message saying so.
//!
//! ```
//! use plugin_sdk::models::{self, Params};
//! use plugin_sdk::testing::TestHost;
//!
//! let host = TestHost::new().answer("small", "four").install();
//! let text = models::ask("small", None, "two plus two?", &Params::default()).unwrap();
//! plugin_sdk::log::info(&format!("the model said {text}"));
//! assert_eq!(text, "four");
//! assert_eq!(host.calls()[0].prompt(), "two plus two?");
//! assert_eq!(host.logs()[0].1, "the model said four");
//! ```

use crate::bindings::orchestrator::stage::attempt::AttemptKind;
use crate::bindings::orchestrator::stage::gates::GateResult;
use crate::bindings::orchestrator::stage::log::Level;
use crate::bindings::orchestrator::stage::models::{
    BudgetLeft, Completion, Message, ModelError, Params, StreamEvent,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

type Responder = Box<dyn FnMut(&[Message]) -> Result<String, ModelError>>;

/// One model call the plugin made.
#[derive(Debug, Clone)]
pub struct Call {
    pub alias: String,
    /// The session it was made in (`converse`), if any.
    pub session: Option<String>,
    pub messages: Vec<Message>,
    pub params: Params,
}

impl Call {
    /// The last message's content: what was asked.
    pub fn prompt(&self) -> &str {
        self.messages.last().map_or("", |m| m.content.as_str())
    }
}

#[derive(Default)]
struct State {
    answers: HashMap<String, VecDeque<Result<String, ModelError>>>,
    responders: HashMap<String, Responder>,
    calls: Vec<Call>,
    logs: Vec<(Level, String)>,
    progress: Vec<(u64, u64, String)>,
    kv: BTreeMap<String, Vec<u8>>,
    gates: HashMap<String, (bool, String)>,
    gate_runs: Vec<String>,
    streamed: BTreeMap<String, (String, Vec<u8>)>,
    attempt: Option<AttemptKind>,
    budget: Option<BudgetLeft>,
}

thread_local! {
    static INSTALLED: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// The host as a test scripts it. Build it, then [`install`](Self::install).
#[derive(Default)]
pub struct TestHost {
    state: State,
}

impl TestHost {
    pub fn new() -> Self {
        TestHost::default()
    }

    /// What `models::remaining()` answers (else: no budget).
    pub fn budget(mut self, left: BudgetLeft) -> Self {
        self.state.budget = Some(left);
        self
    }

    /// The next call to `alias` answers `text` (answers queue up in order).
    pub fn answer(mut self, alias: &str, text: &str) -> Self {
        self.state
            .answers
            .entry(alias.to_string())
            .or_default()
            .push_back(Ok(text.to_string()));
        self
    }

    /// The next call to `alias` fails with `error`.
    pub fn fail(mut self, alias: &str, error: ModelError) -> Self {
        self.state
            .answers
            .entry(alias.to_string())
            .or_default()
            .push_back(Err(error));
        self
    }

    /// Every call to `alias` (once its queued answers are used) is answered
    /// by `respond`, from the messages sent.
    pub fn respond(
        mut self,
        alias: &str,
        respond: impl FnMut(&[Message]) -> Result<String, ModelError> + 'static,
    ) -> Self {
        self.state
            .responders
            .insert(alias.to_string(), Box::new(respond));
        self
    }

    /// A checkpoint already saved (as by an earlier attempt).
    pub fn kv(mut self, key: &str, value: &[u8]) -> Self {
        self.state.kv.insert(key.to_string(), value.to_vec());
        self
    }

    /// The gate `name` is granted and passes (or fails) with `output`.
    pub fn gate(mut self, name: &str, passed: bool, output: &str) -> Self {
        self.state
            .gates
            .insert(name.to_string(), (passed, output.to_string()));
        self
    }

    /// What `attempt::kind()` says (default: the first attempt).
    pub fn attempt(mut self, kind: AttemptKind) -> Self {
        self.state.attempt = Some(kind);
        self
    }

    /// Makes this the host of the calling thread until the returned handle
    /// is dropped; read what the plugin did through the handle.
    pub fn install(self) -> Installed {
        let state = Rc::new(RefCell::new(self.state));
        INSTALLED.with(|i| *i.borrow_mut() = Some(state.clone()));
        Installed { state }
    }
}

/// The installed host: what the plugin did, so far.
pub struct Installed {
    state: Rc<RefCell<State>>,
}

impl Installed {
    /// Every model call, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.borrow().calls.clone()
    }

    /// Every log line: level and message.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// Every progress report: done, total, message.
    pub fn progress(&self) -> Vec<(u64, u64, String)> {
        self.state.borrow().progress.clone()
    }

    /// A checkpoint's bytes, as the plugin left them.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.state.borrow().kv.get(key).cloned()
    }

    /// The gates run, by name, in order.
    pub fn gate_runs(&self) -> Vec<String> {
        self.state.borrow().gate_runs.clone()
    }

    /// A streamed artifact: its media type and every byte appended.
    pub fn streamed(&self, name: &str) -> Option<(String, Vec<u8>)> {
        self.state.borrow().streamed.get(name).cloned()
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        INSTALLED.with(|i| {
            let mut slot = i.borrow_mut();
            if slot.as_ref().is_some_and(|s| Rc::ptr_eq(s, &self.state)) {
                *slot = None;
            }
        });
    }
}

fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let state = INSTALLED.with(|i| i.borrow().clone()).unwrap_or_else(|| {
        panic!(
            "plugin_sdk: a host call outside a component with no test host on this thread: \
             install one first (plugin_sdk::testing::TestHost::new()...install())"
        )
    });
    let mut state = state.borrow_mut();
    f(&mut state)
}

/// Calls of the `log` interface.
pub(crate) mod log {
    use super::*;

    pub fn log(level: Level, message: &str) {
        with(|s| s.logs.push((level, message.to_string())));
    }

    pub fn progress(done: u64, total: u64, message: &str) {
        with(|s| s.progress.push((done, total, message.to_string())));
    }
}

/// Calls of the `kv` interface.
pub(crate) mod kv {
    use super::*;

    pub fn get(key: &str) -> Option<Vec<u8>> {
        with(|s| s.kv.get(key).cloned())
    }

    pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
        with(|s| s.kv.insert(key.to_string(), value.to_vec()));
        Ok(())
    }

    pub fn delete(key: &str) {
        with(|s| s.kv.remove(key));
    }

    pub fn keys(prefix: &str) -> Vec<String> {
        with(|s| {
            s.kv.keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect()
        })
    }
}

/// Calls of the `models` interface.
pub(crate) mod models {
    use super::*;
    use crate::bindings::orchestrator::stage::models::Request;

    fn answer(
        alias: &str,
        session: Option<&str>,
        messages: &[Message],
        params: &Params,
    ) -> Result<Completion, ModelError> {
        // The responder runs outside the borrow: it may do anything.
        let (queued, mut responder) = with(|s| {
            s.calls.push(Call {
                alias: alias.to_string(),
                session: session.map(str::to_string),
                messages: messages.to_vec(),
                params: params.clone(),
            });
            let queued = s.answers.get_mut(alias).and_then(VecDeque::pop_front);
            let responder = match queued {
                Some(_) => None,
                None => s.responders.remove(alias),
            };
            (queued, responder)
        });
        let text = match (queued, responder.as_mut()) {
            (Some(answer), _) => answer,
            (None, Some(respond)) => respond(messages),
            (None, None) => Err(ModelError::NotGranted(format!(
                "the test host has no answer for alias '{alias}' (TestHost::answer or respond)"
            ))),
        };
        if let Some(responder) = responder {
            with(|s| s.responders.insert(alias.to_string(), responder));
        }
        let text = text?;
        let input_tokens = messages
            .iter()
            .map(|m| m.content.split_whitespace().count())
            .sum::<usize>();
        Ok(Completion {
            output_tokens: text.split_whitespace().count() as u32,
            input_tokens: input_tokens as u32,
            text,
            model: format!("test:{alias}"),
            finish_reason: "stop".into(),
        })
    }

    pub fn complete(
        alias: &str,
        messages: &[Message],
        params: &Params,
    ) -> Result<Completion, ModelError> {
        answer(alias, None, messages, params)
    }

    pub fn converse(
        alias: &str,
        session: &str,
        messages: &[Message],
        params: &Params,
    ) -> Result<Completion, ModelError> {
        answer(alias, Some(session), messages, params)
    }

    pub fn complete_all(requests: &[Request]) -> Vec<Result<Completion, ModelError>> {
        requests
            .iter()
            .map(|r| answer(&r.alias, None, &r.messages, &r.params))
            .collect()
    }

    /// A stream of the scripted answer, a word at a time.
    pub struct CompletionStream {
        pieces: RefCell<VecDeque<StreamEvent>>,
        result: Result<Completion, ModelError>,
    }

    impl CompletionStream {
        pub fn next(&self) -> Option<StreamEvent> {
            self.pieces.borrow_mut().pop_front()
        }

        pub fn finish(self) -> Result<Completion, ModelError> {
            self.result
        }
    }

    pub fn complete_streamed(
        alias: &str,
        messages: &[Message],
        params: &Params,
    ) -> Result<CompletionStream, ModelError> {
        let completion = answer(alias, None, messages, params)?;
        let pieces = completion
            .text
            .split_inclusive(' ')
            .map(|w| StreamEvent::Text(w.to_string()))
            .collect();
        Ok(CompletionStream {
            pieces: RefCell::new(pieces),
            result: Ok(completion),
        })
    }

    /// No budget in a test host unless one is set ([`TestHost::budget`]).
    pub fn remaining() -> BudgetLeft {
        with(|s| {
            s.budget.unwrap_or(BudgetLeft {
                tokens: None,
                cost_usd: None,
                calls: None,
                attempt_calls: 1_000,
            })
        })
    }
}

/// Calls of the `inputs` interface: a test's upstream artifacts carry their
/// content ([`crate::Upstream::with_artifact`]), so none reaches here.
pub(crate) mod inputs {
    pub fn read(stage: &str, name: &str, _offset: u64, _length: u32) -> Result<Vec<u8>, String> {
        Err(format!(
            "the test host has no content for artifact '{name}' of stage '{stage}' \
             (give it with Upstream::with_artifact)"
        ))
    }
}

/// Calls of the `gates` interface.
pub(crate) mod gates {
    use super::*;
    use crate::bindings::orchestrator::stage::gates::GateError;

    pub fn run(name: &str) -> Result<GateResult, GateError> {
        with(|s| {
            let Some((passed, output)) = s.gates.get(name).cloned() else {
                return Err(GateError::NotGranted(format!(
                    "the test host has no gate '{name}' (TestHost::gate)"
                )));
            };
            s.gate_runs.push(name.to_string());
            Ok(GateResult {
                name: name.to_string(),
                passed,
                exit_code: Some(if passed { 0 } else { 1 }),
                reason: if passed { "passed" } else { "exited with 1" }.into(),
                duration_ms: 0,
                output,
            })
        })
    }
}

/// Calls of the `artifacts` interface.
pub(crate) mod artifacts {
    use super::*;

    pub fn append(name: &str, media_type: &str, bytes: &[u8]) -> Result<(), String> {
        with(|s| {
            let entry = s
                .streamed
                .entry(name.to_string())
                .or_insert_with(|| (media_type.to_string(), Vec::new()));
            entry.1.extend_from_slice(bytes);
        });
        Ok(())
    }
}

/// Calls of the `attempt` interface.
pub(crate) mod attempt {
    use super::*;

    pub fn kind() -> AttemptKind {
        with(|s| s.attempt.unwrap_or(AttemptKind::First))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Params;

    #[test]
    fn a_scripted_answer_streams_a_word_at_a_time() {
        let host = TestHost::new()
            .answer("small", "Once upon a time")
            .install();
        let stream = crate::models::complete_streamed(
            "small",
            &[Message::user("Tell a story.")],
            &Params::default(),
        )
        .unwrap();
        let mut seen = Vec::new();
        let completion = stream.follow(|text| seen.push(text.to_string())).unwrap();
        assert_eq!(
            seen,
            ["Once ", "Once upon ", "Once upon a ", "Once upon a time"]
        );
        assert_eq!(completion.text, "Once upon a time");
        assert_eq!(host.calls().len(), 1);
    }

    #[test]
    fn answers_queue_then_the_responder_answers_then_the_alias_is_refused() {
        let host = TestHost::new()
            .answer("small", "first")
            .respond("large", |m| Ok(format!("echo {}", m.len())))
            .install();
        let p = Params::default();
        assert_eq!(crate::models::ask("small", None, "a", &p).unwrap(), "first");
        assert!(matches!(
            crate::models::ask("small", None, "b", &p),
            Err(ModelError::NotGranted(_))
        ));
        assert_eq!(
            crate::models::ask("large", Some("sys"), "q", &p).unwrap(),
            "echo 2"
        );
        assert_eq!(
            crate::models::ask_in("large", "plan", "q", &p).unwrap(),
            "echo 1"
        );
        let calls = host.calls();
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[3].session.as_deref(), Some("plan"));
    }

    #[test]
    fn kv_gates_logs_streams_and_attempt_are_kept() {
        let host = TestHost::new()
            .kv("seen", b"1")
            .gate("tests", false, "1 failed")
            .attempt(AttemptKind::Resume)
            .install();
        assert_eq!(crate::kv::get("seen").as_deref(), Some(&b"1"[..]));
        crate::kv::save("n", &3).unwrap();
        assert_eq!(host.kv_get("n").as_deref(), Some(&b"3"[..]));
        crate::kv::set("page-2", b"b").unwrap();
        crate::kv::set("page-1", b"a").unwrap();
        assert_eq!(crate::kv::keys("page-"), ["page-1", "page-2"]);
        assert_eq!(crate::kv::keys("").len(), 4);
        let result = crate::gates::run("tests").unwrap();
        assert!(!result.passed);
        assert!(crate::gates::run("lint").is_err());
        crate::log::warn("careful");
        crate::log::progress(1, 2, "half");
        crate::artifacts::append("out.jsonl", "application/jsonl", b"{}\n").unwrap();
        crate::artifacts::append("out.jsonl", "application/jsonl", b"{}\n").unwrap();
        assert_eq!(crate::attempt::kind(), AttemptKind::Resume);
        assert_eq!(host.logs(), vec![(Level::Warn, "careful".to_string())]);
        assert_eq!(host.progress(), vec![(1, 2, "half".to_string())]);
        assert_eq!(host.gate_runs(), vec!["tests".to_string()]);
        assert_eq!(host.streamed("out.jsonl").unwrap().1, b"{}\n{}\n");
    }

    #[test]
    #[should_panic(expected = "no test host on this thread")]
    fn a_host_call_without_a_test_host_says_what_to_do() {
        crate::log::info("nobody listens");
    }
}
