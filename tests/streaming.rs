//! Model answers streamed: the host asks providers (OpenAI and Anthropic
//! wire formats) for a stream, shows the text as it comes (the attempt's
//! live log, the terminal), records the whole answer; a stream broken mid-
//! answer is marked superseded and the retry's answer stands; a replay of
//! the recorded run streams the same text without a request.

mod common;

use common::model_server::{ModelServer, Reply, Streamed};
use common::*;
use std::time::Duration;

fn pipeline(
    scratch: &Scratch,
    server: &ModelServer,
    provider: &str,
    extra: &str,
) -> std::path::PathBuf {
    pipeline_with(scratch, server, provider, extra, "call-model")
}

/// A stage whose `faulty` behaviour `behaviour` calls model `m`.
fn pipeline_with(
    scratch: &Scratch,
    server: &ModelServer,
    provider: &str,
    extra: &str,
    behaviour: &str,
) -> std::path::PathBuf {
    scratch.write(
        "pipeline.toml",
        &format!(
            "[pipeline]\nname = \"streamed\"\ntask = \"t\"\n\n[plugins.faulty]\nwasm = \"{}\"\n\n\
             [models.m]\nprovider = \"{provider}\"\nbase_url = \"{}\"\nmodel = \"scripted\"\n{extra}\n\
             [[stage]]\nid = \"ask\"\nplugin = \"faulty\"\nmodels = [\"m\"]\n\
             config = {{ behaviour = {{ {behaviour} = {{ alias = \"m\" }} }} }}\n",
            plugin("faulty").display(),
            server.url
        ),
    )
}

fn pieces(texts: &[&str]) -> Streamed {
    Streamed {
        pieces: texts.iter().map(|t| t.to_string()).collect(),
        gap: Duration::from_millis(5),
        ..Streamed::default()
    }
}

/// A server whose first stream breaks after "Wrong start " and whose
/// second answers "Right answer".
fn broken_then_right() -> ModelServer {
    let n = std::sync::atomic::AtomicUsize::new(0);
    ModelServer::start(move |_| {
        if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::stream(Streamed {
                cut_after: Some(2),
                ..pieces(&["Wrong ", "start ", "never"])
            })
        } else {
            Reply::stream(pieces(&["Right ", "answer"]))
        }
    })
}

/// Runs `args` in `state`; returns the summary.
fn run(state: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--state-dir", state.to_str().unwrap(), "run", "--json"];
    all.extend_from_slice(args);
    let out = host(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    summary(&out)
}

fn log_of(state: &std::path::Path, run: &str) -> String {
    let out = host(&[
        "--state-dir",
        state.to_str().unwrap(),
        "show",
        run,
        "ask",
        "--log",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn answers_stream_in_both_wire_formats_and_are_recorded_whole() {
    for provider in ["openai", "anthropic"] {
        let scratch = Scratch::new(&format!("stream-{provider}"));
        let server = ModelServer::start(|_| Reply::stream(pieces(&["Hel", "lo ", "world"])));
        let manifest = pipeline(&scratch, &server, provider, "");
        let state = scratch.path("state");
        let out_dir = scratch.path("out");
        let summary = run(
            &state,
            &[
                manifest.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
            ],
        );
        let answer = std::fs::read_to_string(out_dir.join("ask/answer.txt")).unwrap();
        assert_eq!(answer, "Hello world", "{provider}");
        let call = &stage(&summary, "ask")["model_calls"][0];
        assert_eq!(
            call["output_tokens"], 7,
            "{provider}: usage from the stream: {call}"
        );
        let request = &server.requests()[0];
        assert_eq!(request["stream"], true, "{provider}: {request}");
        if provider == "openai" {
            assert_eq!(request["stream_options"]["include_usage"], true);
        }
        let log = log_of(&state, summary["run_id"].as_str().unwrap());
        assert!(log.contains("[model m] Hello world"), "{provider}: {log}");
    }
}

#[test]
fn a_broken_stream_is_superseded_and_the_retried_answer_stands() {
    let scratch = Scratch::new("stream-broken");
    let server = broken_then_right();
    let manifest = pipeline(&scratch, &server, "openai", "");
    let state = scratch.path("state");
    let out_dir = scratch.path("out");
    let summary = run(
        &state,
        &[
            manifest.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(server.requests().len(), 2);
    let answer = std::fs::read_to_string(out_dir.join("ask/answer.txt")).unwrap();
    assert_eq!(answer, "Right answer");
    assert_eq!(stage(&summary, "ask")["model_calls"][0]["retries"], 1);
    let log = log_of(&state, summary["run_id"].as_str().unwrap());
    let superseded = log.find("superseded").expect(&log);
    let right = log.find("[model m] Right answer").expect(&log);
    assert!(superseded < right, "the broken stream first, marked: {log}");
    assert!(log.contains("Wrong start"), "{log}");
}

#[test]
fn a_replay_streams_the_recorded_text_and_stream_false_asks_for_none() {
    let scratch = Scratch::new("stream-replay");
    let server = ModelServer::start(|_| Reply::stream(pieces(&["Said ", "once"])));
    let manifest = pipeline(&scratch, &server, "openai", "");
    let state = scratch.path("state");
    let recorded = run(&state, &[manifest.to_str().unwrap(), "--record"]);
    let recorded_id = recorded["run_id"].as_str().unwrap();
    let replayed = run(
        &state,
        &[manifest.to_str().unwrap(), "--replay", recorded_id, "--new"],
    );
    assert_eq!(server.requests().len(), 1, "the replay sent nothing");
    let replayed_id = replayed["run_id"].as_str().unwrap();
    assert_ne!(replayed_id, recorded_id);
    let log = log_of(&state, replayed_id);
    assert!(log.contains("[model m] Said once"), "{log}");

    // A model that says it cannot stream is asked for a whole answer.
    let scratch = Scratch::new("stream-off");
    let server = ModelServer::start(|_| Reply::stream(pieces(&["Whole ", "one"])));
    let manifest = pipeline(&scratch, &server, "openai", "stream = false\n");
    let out_dir = scratch.path("out");
    run(
        &scratch.path("state"),
        &[
            manifest.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(server.requests()[0].get("stream").is_none());
    let answer = std::fs::read_to_string(out_dir.join("ask/answer.txt")).unwrap();
    assert_eq!(answer, "Whole one");
}

#[test]
fn a_plugin_reads_an_answer_as_it_streams_restarts_included() {
    let scratch = Scratch::new("stream-plugin");
    let server = broken_then_right();
    let manifest = pipeline_with(&scratch, &server, "anthropic", "", "stream-model");
    let out_dir = scratch.path("out");
    let summary = run(
        &scratch.path("state"),
        &[
            manifest.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    let events: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("ask/events.json")).unwrap()).unwrap();
    let events = events.as_array().unwrap();
    let texts: Vec<&str> = events.iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(
        texts,
        ["Wrong ", "start ", "Right ", "answer"],
        "{events:?}"
    );
    assert!(
        events[2]["restart"].is_string(),
        "the restart came between: {events:?}"
    );
    let answer = std::fs::read_to_string(out_dir.join("ask/answer.txt")).unwrap();
    assert_eq!(answer, "Right answer");
    let calls = stage(&summary, "ask")["model_calls"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(calls.len(), 1, "one call, recorded once: {calls:?}");
    assert_eq!(calls[0]["retries"], 1);
}

#[test]
fn a_server_that_refuses_a_streamed_request_is_asked_again_whole() {
    let scratch = Scratch::new("stream-refused");
    let server = ModelServer::start(|request| {
        if request.get("stream_options").is_some() {
            Reply::raw(400, r#"{"error": "unknown field stream_options"}"#)
        } else {
            Reply::text("Whole after all")
        }
    });
    let manifest = pipeline(&scratch, &server, "openai", "");
    let out_dir = scratch.path("out");
    run(
        &scratch.path("state"),
        &[
            manifest.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(server.requests().len(), 2);
    let answer = std::fs::read_to_string(out_dir.join("ask/answer.txt")).unwrap();
    assert_eq!(answer, "Whole after all");
}

#[test]
fn a_stream_dropped_or_left_open_is_still_recorded_and_paid() {
    for leave in ["drop", "forget"] {
        let scratch = Scratch::new(&format!("stream-{leave}"));
        let server = ModelServer::start(|_| Reply::stream(pieces(&["Unread ", "words"])));
        let manifest = scratch.write(
            "pipeline.toml",
            &format!(
                "[pipeline]\nname = \"left\"\ntask = \"t\"\n\n[plugins.faulty]\nwasm = \"{}\"\n\n\
                 [models.m]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"scripted\"\n\n\
                 [[stage]]\nid = \"ask\"\nplugin = \"faulty\"\nmodels = [\"m\"]\n\
                 config = {{ behaviour = {{ stream-model = {{ alias = \"m\", leave = \"{leave}\" }} }} }}\n",
                plugin("faulty").display(),
                server.url
            ),
        );
        let summary = run(&scratch.path("state"), &[manifest.to_str().unwrap()]);
        let calls = stage(&summary, "ask")["model_calls"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(calls.len(), 1, "{leave}: {calls:?}");
        assert_eq!(calls[0]["output_tokens"], 7, "{leave}: {calls:?}");
        assert!(calls[0]["error"].is_null(), "{leave}: {calls:?}");
    }
}
