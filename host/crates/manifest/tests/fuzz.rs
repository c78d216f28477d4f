//! The checker under mutated input: the repository's own manifests with
//! lines deleted, duplicated and swapped, bytes replaced, snippets that
//! are known to be hard (deep conditions, lists for tables, odd numbers,
//! broken strings) inserted; and `when` conditions built from the
//! grammar's own words in any order. Whatever comes in, the checker
//! returns (no panic, no stack overflow: either would end this test
//! binary), in bounded time, and every problem it reports has a line and
//! a column inside the file, in words a user knows. The command line's
//! `--set` and `--model` values are tried the same way.
//!
//! `FUZZ_CASES=N` runs N cases of each property (3N of the overrides);
//! by default 5,000 manifests, 10,000 conditions and 15,000 `--set` and
//! `--model` values: a few seconds. Each run draws new cases; a failure
//! prints the smallest input that still fails.

use host_manifest::when::{Expr, Facts, Field, Value};
use host_manifest::{Diagnostics, parse};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Far more than any case needs (they take microseconds to milliseconds):
/// a case over it is a hang or a blow-up, reported with its input.
const SLOW: Duration = Duration::from_secs(5);

fn cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// The manifests mutated: the examples and the pinned plans.
fn seeds() -> Vec<(PathBuf, String)> {
    let root = repo();
    let mut out = Vec::new();
    for rel in [
        "examples/hello/pipeline.toml",
        "examples/ai-coding/pipeline.toml",
        "examples/lsl/pipeline.toml",
        "examples/polyglot/pipeline.toml",
        "host/crates/manifest/tests/plans/maximal.toml",
        "host/crates/manifest/tests/plans/minimal.toml",
    ] {
        let path = root.join(rel);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((path, text));
    }
    out
}

/// Snippets that have broken checkers before, or could.
const SNIPPETS: &[&str] = &[
    "[[stage]]\nid = \"x\"\nplugin = \"hello\"\n",
    "[[template]]\nid = \"t\"\nplugin = \"hello\"\n",
    "after = [\"greet\"]\n",
    "after = [[\"a\", \"failure\"]]\n",
    "after = [{ stage = \"greet\", on = \"failure\" }]\n",
    "when = \"greet.decision == 'x'\"\n",
    "when = \"greet.metrics.score > 'high'\"\n",
    "when = \"((((((((((((((((((((((((((((((((((a.decision == 'x'))))))))))))))))))))))))))))))))))\"\n",
    "when = \"not not not not not not not not not not not not not not not not a.summary\"\n",
    "loop = { to = \"nope\", max = 3, when = \"a.decision == 'revise'\" }\n",
    "loop = [1, 2]\n",
    "budget = { cost_usd = -1 }\n",
    "budget = { cost_usd = nan, tokens = inf }\n",
    "budget = [1]\n",
    "retries = { max = 2 }\n",
    "retries = -1\n",
    "timeout = \"0s\"\n",
    "timeout = \"99999999999999999999h\"\n",
    "memory = \"1TiB\"\n",
    "max_parallel = 0\n",
    "max_parallel = 1e400\n",
    "[plugins.z]\nwasm = \"z.wasm\"\n",
    "[plugins]\nq = [1]\n",
    "[groups]\ndb = [1]\n",
    "[gates.g]\ncommand = [\"true\"]\nenv = [\"A=B\", \"\", \"\\u0000\"]\n",
    "[models.m]\nprovider = \"openai\"\nmodel = \"x\"\nbase_url = \"http://[::1\"\n",
    "[models.m]\nprovider = \"nope\"\n",
    "retention = { keep = 0 }\n",
    "task = \"\"\"\nmulti\nline\n\"\"\"\n",
    "x = '''\n",
    "\"unterminated\n",
    "= 1\n",
    "[pipeline]\nname = \"again\"\n",
    "config = { a = { b = { c = { d = { e = [1, [2, [3, [4]]]] } } } } }\n",
    "id = \"\u{202e}evil\u{7}\"\n",
    "\u{feff}",
    "\t\r\n",
];

/// Bytes that matter to TOML, and some that should never appear.
const BYTES: &[u8] = b"[]{}\"'=,.#\n\\ 0123456789-+eE_atfnxz\x00\x07\x7f";

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceByte(usize, u8),
    Insert(usize, &'static str),
    TruncateAt(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), proptest::sample::select(BYTES))
            .prop_map(|(at, b)| Mutation::ReplaceByte(at, b)),
        (any::<usize>(), proptest::sample::select(SNIPPETS))
            .prop_map(|(at, s)| Mutation::Insert(at, s)),
        any::<usize>().prop_map(Mutation::TruncateAt),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match *m {
        Mutation::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) if !lines.is_empty() => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
        Mutation::Insert(i, snippet) => lines.insert(i % (lines.len() + 1), snippet.to_string()),
        Mutation::ReplaceByte(at, b) => {
            // Bytes, then back to text: a replaced byte may split a
            // character, which the checker must report, not trip on. The
            // file reader rejects non-UTF-8 before parse; here the lossy
            // text goes on to parse.
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        Mutation::TruncateAt(at) => {
            let mut cut = at % (text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return text[..cut].to_string();
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

/// Rust's words that a user never wrote and would not know.
const RUST_WORDS: &[&str] = &[
    "struct ", "enum ", "usize", "u32", "u64", "i64", "f64", "Option<", "Vec<", "::", "untagged",
    "sequence", "Spanned",
];

/// The message without what it quotes ('...', `...`): the user's own
/// words may be anything.
fn outside_quotes(message: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut previous = ' ';
    for c in message.chars() {
        // An apostrophe inside a word ("stage's") opens no quote.
        let opens = !previous.is_alphanumeric();
        previous = c;
        match (quote, c) {
            (None, '\'' | '`') if opens => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) => out.push(c),
            _ => {}
        }
    }
    out
}

/// What every reported problem must have: a place inside the file and a
/// message in the manifest's words.
fn check_diagnostics(text: &str, d: &Diagnostics) -> Result<(), TestCaseError> {
    prop_assert!(!d.0.is_empty(), "an error with no problem in it");
    let lines = text.lines().count().max(1) + 1;
    for problem in &d.0 {
        let Some((line, col)) = problem.location else {
            return Err(TestCaseError::fail(format!(
                "not located: {}",
                problem.message
            )));
        };
        prop_assert!(
            line >= 1 && line <= lines && col >= 1,
            "{line}:{col} outside the file ({lines} lines): {}",
            problem.message
        );
        prop_assert!(!problem.message.trim().is_empty(), "an empty message");
        let own = outside_quotes(&problem.message);
        for word in RUST_WORDS {
            prop_assert!(
                !own.contains(word),
                "Rust's word {word:?} in: {}",
                problem.message
            );
        }
    }
    // Shown on a terminal: never a control character of the file's.
    let shown = d.to_string();
    prop_assert!(
        !shown
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "control characters shown: {shown:?}"
    );
    Ok(())
}

#[test]
fn mutated_manifests_are_checked_without_panic_and_every_problem_is_located() {
    let seeds = seeds();
    let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config {
        cases: cases(5_000),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..seeds.len(), proptest::collection::vec(mutation(), 1..6));
    let result = runner.run(&strategy, |(seed, mutations)| {
        let (path, text) = &seeds[seed];
        let mutated = mutations.iter().fold(text.clone(), |t, m| apply(&t, m));
        let started = Instant::now();
        let outcome = parse(path, mutated.clone());
        prop_assert!(started.elapsed() < SLOW, "took {:?}", started.elapsed());
        match outcome {
            Ok(_) => {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(d) => {
                refused.fetch_add(1, Ordering::Relaxed);
                check_diagnostics(&mutated, &d)?;
            }
        }
        Ok(())
    });
    println!(
        "manifests: {} accepted, {} refused, every problem located",
        accepted.into_inner(),
        refused.into_inner()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The words of the `when` grammar and some that are not.
const WORDS: &[&str] = &[
    "a",
    "b",
    "a.summary",
    "b.decision",
    "a.metrics.score",
    "a.changed",
    "a.status",
    "b.summary",
    "a.nope",
    ".",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "contains",
    "and",
    "or",
    "not",
    "(",
    ")",
    "[",
    "]",
    ",",
    "'x'",
    "\"y\"",
    "'",
    "\"",
    "'\\''",
    "1",
    "-2.5",
    "1e309",
    "nan",
    "true",
    "false",
    "&&",
    "||",
    "!",
    "\u{0}",
    "é",
    " ",
];

/// A condition of the grammar: comparisons of paths and literals joined by
/// and, or, not and parentheses, to any depth the strategy reaches.
fn condition() -> impl Strategy<Value = String> {
    let text_path = proptest::sample::select(&["a.summary", "b.decision", "b.status"][..]);
    let list_path = proptest::sample::select(&["a.changed", "b.artifacts"][..]);
    let word = "[a-z ]{0,8}".prop_map(|s| format!("'{s}'"));
    let number = (-1000i64..1000).prop_map(|n| n.to_string());
    let leaf = prop_oneof![
        (
            proptest::sample::select(&["<", "<=", ">", ">=", "==", "!="][..]),
            number
        )
            .prop_map(|(op, n)| format!("a.metrics.score {op} {n}")),
        (
            text_path.clone(),
            proptest::sample::select(&["==", "!="][..]),
            word.clone()
        )
            .prop_map(|(p, op, w)| format!("{p} {op} {w}")),
        (text_path, proptest::collection::vec(word.clone(), 1..4))
            .prop_map(|(p, ws)| format!("{p} in [{}]", ws.join(", "))),
        (list_path, word).prop_map(|(p, w)| format!("{p} contains {w}")),
        Just("true".to_string()),
    ];
    leaf.prop_recursive(8, 64, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| format!("( {e} )")),
            inner.clone().prop_map(|e| format!("not {e}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} or {b}")),
        ]
    })
}

struct Anything;

impl Facts for Anything {
    fn get(&self, stage: &str, field: &Field) -> Value {
        match (stage, field) {
            ("a", _) => Value::Num(0.5),
            (_, Field::Decision) => Value::Str("x".into()),
            _ => Value::Null,
        }
    }
}

#[test]
fn conditions_of_any_words_parse_or_are_refused_at_a_place_inside_them() {
    let (parsed, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config {
        cases: cases(10_000),
        failure_persistence: None,
        ..Config::default()
    });
    // Short phrases, long runs of one word (deep nesting, long chains), and
    // conditions of the grammar with a word or two changed.
    let phrase =
        proptest::collection::vec(proptest::sample::select(WORDS), 0..40).prop_map(|w| w.join(" "));
    let run =
        (proptest::sample::select(WORDS), 0usize..3_000).prop_map(|(w, n)| vec![w; n].join(" "));
    let edits = proptest::collection::vec(
        (
            any::<usize>(),
            proptest::option::of(proptest::sample::select(WORDS)),
        ),
        0..3,
    );
    let edited = (condition(), edits).prop_map(|(text, edits)| {
        let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
        for (at, word) in edits {
            let at = at % (words.len() + 1);
            match word {
                Some(w) => words.insert(at, w.to_string()),
                None if at < words.len() => {
                    words.remove(at);
                }
                None => {}
            }
        }
        words.join(" ")
    });
    let strategy = prop_oneof![2 => phrase, 1 => run, 4 => edited];
    let result = runner.run(&strategy, |text| {
        let started = Instant::now();
        match Expr::parse(&text) {
            Ok(e) => {
                parsed.fetch_add(1, Ordering::Relaxed);
                let _ = e.holds(&Anything);
                let _ = e.stages();
            }
            Err(e) => {
                refused.fetch_add(1, Ordering::Relaxed);
                prop_assert!(
                    e.offset <= text.len(),
                    "offset {} past the end ({}): {}",
                    e.offset,
                    text.len(),
                    e.message
                );
                prop_assert!(!e.message.is_empty());
            }
        }
        prop_assert!(started.elapsed() < SLOW, "took {:?}", started.elapsed());
        Ok(())
    });
    println!(
        "conditions: {} parsed, {} refused",
        parsed.into_inner(),
        refused.into_inner()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn command_line_overrides_of_any_text_apply_or_are_refused_naming_the_flag() {
    let (path, text) = &seeds()[0];
    let pipeline = parse(path, text.clone()).unwrap_or_else(|d| panic!("{d}"));
    let (applied, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config {
        cases: cases(5_000) * 3,
        failure_persistence: None,
        ..Config::default()
    });
    let part = proptest::sample::select(
        &[
            "small",
            "ask",
            "greet",
            "=",
            ":",
            "@",
            ".",
            "openai",
            "anthropic",
            "gpt",
            "http://",
            "https://",
            "127.0.0.1",
            "[::1",
            "]",
            ":8088",
            "/v1",
            "x",
            "",
            " ",
            "\u{0}",
            "é",
            "{\"a\": [1",
            "true",
            "1e999",
            "-0",
        ][..],
    );
    let words = proptest::collection::vec(part.clone(), 0..3).prop_map(|p| p.concat());
    // Shaped like the flags, with any words in their places.
    let or_words = |known: &'static [&'static str]| {
        prop_oneof![
            proptest::sample::select(known).prop_map(str::to_string),
            words.clone()
        ]
    };
    let model_spec = (
        or_words(&["small"]),
        or_words(&["openai", "anthropic"]),
        or_words(&["gpt-4.1", "smollm2"]),
        proptest::option::of(or_words(&["http://127.0.0.1:8088/v1", "https://x.example"])),
    )
        .prop_map(|(a, p, m, u)| match u {
            Some(u) => format!("{a}={p}:{m}@{u}"),
            None => format!("{a}={p}:{m}"),
        });
    let set_spec = (
        or_words(&["ask", "greet"]),
        or_words(&["model", "greeting"]),
        words,
    )
        .prop_map(|(stage, key, value)| format!("{stage}.{key}={value}"));
    let spec = prop_oneof![
        proptest::collection::vec(part, 0..10).prop_map(|p| p.concat()),
        model_spec,
        set_spec,
    ];
    let result = runner.run(&(spec, any::<bool>()), |(spec, model)| {
        let mut p = pipeline.clone();
        let outcome = if model {
            host_manifest::apply_model_override(&mut p, &spec).map_err(|e| e.to_string())
        } else {
            host_manifest::apply_config_override(&mut p, &spec).map_err(|e| e.to_string())
        };
        match outcome {
            Ok(()) => {
                applied.fetch_add(1, Ordering::Relaxed);
                if model {
                    for m in p.models.values() {
                        prop_assert!(
                            url::Url::parse(&m.base_url).is_ok(),
                            "{spec:?} left base_url {:?}",
                            m.base_url
                        );
                    }
                }
            }
            Err(message) => {
                refused.fetch_add(1, Ordering::Relaxed);
                let flag = if model { "--model" } else { "--set" };
                prop_assert!(message.starts_with(flag), "{spec:?}: {message}");
            }
        }
        Ok(())
    });
    println!(
        "overrides: {} applied, {} refused",
        applied.into_inner(),
        refused.into_inner()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
