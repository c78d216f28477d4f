//! The model capability against in-process servers speaking each provider's
//! real wire format: usage and cost, retries, timeouts, garbage, auth,
//! budgets, sessions, the response cache, `--model`, record and replay.

mod common;

use common::model_server::{ModelServer, Reply, last_user_message};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const PROVIDERS: [&str; 2] = ["openai", "anthropic"];

struct Setup {
    scratch: Scratch,
    state: PathBuf,
}

impl Setup {
    fn new(label: &str) -> Self {
        let scratch = Scratch::new(label);
        let state = scratch.path("state");
        Setup { scratch, state }
    }

    /// A pipeline with model `m` at `url` and the given stages.
    fn manifest(&self, name: &str, model: &str, extra: &str, stages: &str) -> PathBuf {
        self.scratch.write(
            name,
            &format!(
                "[pipeline]\nname = \"models\"\ntask = \"talk\"\n{extra}\n\n{model}\n\n\
                 [plugins.faulty]\nwasm = {:?}\n\n{stages}",
                plugin("faulty").display().to_string()
            ),
        )
    }

    fn host_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_host"));
        cmd.args(["--cache-dir", cache_dir().to_str().unwrap()])
            .args(["--state-dir", self.state.to_str().unwrap()])
            .args(args)
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn host(&self, args: &[&str]) -> Output {
        self.host_env(args, &[])
    }

    fn run(&self, manifest: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
        let mut args = vec!["run", "--json", manifest.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = self.host(&args);
        let summary = summary(&out);
        (out, summary)
    }

    fn answers(&self, summary: &serde_json::Value, stage: &str) -> Vec<String> {
        let run = summary["run_id"].as_str().unwrap();
        let out = self.host(&["show", run, stage, "--artifact", "answers.json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn model(provider: &str, url: &str, extra: &str) -> String {
    format!(
        "[models.m]\nprovider = \"{provider}\"\nbase_url = \"{url}\"\nmodel = \"test-model\"\n\
         timeout = \"2s\"\nmax_retries = 2\n{extra}"
    )
}

fn caller(id: &str, times: u32, extra: &str) -> String {
    format!(
        "[[stage]]\nid = \"{id}\"\nplugin = \"faulty\"\nmodels = [\"m\"]\n{extra}\n\
         config = {{ behaviour = {{ call-models = {{ alias = \"m\", times = {times} }} }} }}\n"
    )
}

fn failure(summary: &serde_json::Value, id: &str) -> String {
    stage(summary, id)["failure"].to_string()
}

#[test]
fn success_counts_tokens_and_cost_for_each_provider() {
    for provider in PROVIDERS {
        let server =
            ModelServer::start(|req| Reply::text(&format!("echo {}", last_user_message(req))));
        let s = Setup::new(&format!("usage-{provider}"));
        let m = model(
            provider,
            &server.url,
            "price_in_per_1k = 1.0\nprice_out_per_1k = 2.0\napi_key_env = \"TEST_MODEL_KEY\"",
        );
        let manifest = s.manifest("p.toml", &m, "", &caller("talk", 2, ""));
        let out = s.host_env(
            &["run", "--json", manifest.to_str().unwrap()],
            &[("TEST_MODEL_KEY", "sk-test-secret-123")],
        );
        assert!(out.status.success(), "{provider}: {}", stderr(&out));
        let summary = summary(&out);
        let calls = stage(&summary, "talk")["model_calls"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(calls.len(), 2);
        for c in &calls {
            assert_eq!(
                (c["input_tokens"].as_u64(), c["output_tokens"].as_u64()),
                (Some(11), Some(7))
            );
            let cost = c["cost_usd"].as_f64().unwrap();
            assert!((cost - 0.025).abs() < 1e-9, "{provider}: cost {cost}");
            assert_eq!(c["source"], "provider");
        }
        assert_eq!(
            s.answers(&summary, "talk"),
            vec![
                "echo Question 0: say a word.",
                "echo Question 1: say a word."
            ]
        );
        // The wire: the right path and auth header for each provider.
        let seen = server.seen();
        match provider {
            "openai" => {
                assert_eq!(seen[0].path, "/v1/chat/completions");
                assert_eq!(
                    seen[0].headers["authorization"],
                    "Bearer sk-test-secret-123"
                );
            }
            _ => {
                assert_eq!(seen[0].path, "/v1/messages");
                assert_eq!(seen[0].headers["x-api-key"], "sk-test-secret-123");
                assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");
                assert!(server.requests()[0]["max_tokens"].as_u64().is_some());
            }
        }
        // Totals per stage and per model in `host status`.
        let run = summary["run_id"].as_str().unwrap();
        let status = stdout(&s.host(&["status", run]));
        assert!(
            status.contains("test-model") || status.contains("scripted"),
            "{status}"
        );
        // The key is never stored or printed.
        let export = stdout(&s.host(&["export", run, "--format", "jsonl"]));
        assert!(
            !export.contains("sk-test-secret"),
            "the API key leaked into the store"
        );
        assert!(!stderr(&out).contains("sk-test-secret"));
    }
}

#[test]
fn rate_limits_and_server_errors_are_retried() {
    for provider in PROVIDERS {
        for first in [
            Reply::raw(429, r#"{"error":"slow down"}"#).header("retry-after", "0"),
            Reply::raw(500, r#"{"error":"oops"}"#),
            Reply::raw(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error"}}"#,
            ),
        ] {
            let status = first.status;
            let first = std::sync::Mutex::new(Some(first));
            let server = ModelServer::start(move |_| {
                first
                    .lock()
                    .unwrap()
                    .take()
                    .unwrap_or_else(|| Reply::text("fine"))
            });
            let s = Setup::new(&format!("retry-{provider}-{status}"));
            let manifest = s.manifest(
                "p.toml",
                &model(provider, &server.url, ""),
                "",
                &caller("talk", 1, ""),
            );
            let (out, summary) = s.run(&manifest, &[]);
            assert!(
                out.status.success(),
                "{provider} {status}: {}",
                stderr(&out)
            );
            assert_eq!(server.requests().len(), 2);
            assert_eq!(
                stage(&summary, "talk")["model_calls"][0]["retries"],
                1,
                "{provider} {status}"
            );
        }
    }
}

#[test]
fn a_rate_limit_is_waited_out_while_the_stage_has_time_and_named_when_it_has_not() {
    let once = |reply: Reply| {
        let reply = std::sync::Mutex::new(Some(reply));
        ModelServer::start(move |_| {
            reply
                .lock()
                .unwrap()
                .take()
                .unwrap_or_else(|| Reply::text("fine"))
        })
    };
    // Two seconds fit in the stage's 30: waited out, then answered.
    let server = once(Reply::raw(429, r#"{"error":"slow down"}"#).header("retry-after", "2"));
    let s = Setup::new("rate-limit-waited");
    let m = model("openai", &server.url, "");
    let manifest = s.manifest("p.toml", &m, "", &caller("talk", 1, "timeout = \"30s\""));
    let (out, summary) = s.run(&manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 2);
    let talk = stage(&summary, "talk");
    assert_eq!(talk["model_calls"][0]["retries"], 1);
    assert!(
        talk["elapsed"].as_u64().unwrap() >= 2000,
        "the server's wait was honoured: {talk}"
    );

    // Twenty seconds do not fit in the stage's 5: the call fails at once as
    // a rate limit (before, the stage ran into its timeout, which said
    // nothing of the 429).
    let server = once(Reply::raw(429, r#"{"error":"slow down"}"#).header("retry-after", "20"));
    let s = Setup::new("rate-limit-outlasts");
    let m = model("anthropic", &server.url, "");
    let manifest = s.manifest("p.toml", &m, "", &caller("talk", 1, "timeout = \"5s\""));
    let (out, summary) = s.run(&manifest, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let f = failure(&summary, "talk");
    assert!(
        f.contains("rate limited (HTTP 429): the server asks to wait 20s, longer than the")
            && f.contains("s left of the stage's timeout"),
        "{f}"
    );
    assert!(!f.contains("timed out"), "{f}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn timeouts_garbage_and_auth_failures_are_typed_errors() {
    for provider in PROVIDERS {
        let cases: Vec<(&str, Reply, &str)> = vec![
            (
                "slow",
                Reply::text("late").after(Duration::from_secs(4)),
                "no answer within",
            ),
            (
                "html",
                Reply::raw(200, "<html>502 Bad Gateway</html>"),
                "malformed response",
            ),
            (
                "empty",
                Reply::raw(200, r#"{"choices":[],"content":[]}"#),
                "malformed response",
            ),
            (
                "auth",
                Reply::raw(401, r#"{"error":"bad key"}"#),
                "authentication failed",
            ),
            (
                "rate-limited-for-an-hour",
                Reply::raw(429, r#"{"error":"come back later"}"#).header("retry-after", "3600"),
                "the server asks to wait 3600s, longer than the 59",
            ),
            (
                "huge",
                Reply::raw(200, &"x".repeat(20 << 20)),
                "the response is larger than 16 MiB",
            ),
        ];
        for (label, reply, expected) in cases {
            let reply = std::sync::Mutex::new(Some(reply));
            let server = ModelServer::start(move |_| {
                reply
                    .lock()
                    .unwrap()
                    .take()
                    .unwrap_or_else(|| Reply::raw(500, "{}"))
            });
            let s = Setup::new(&format!("errors-{provider}-{label}"));
            let m = model(provider, &server.url, "").replace("max_retries = 2", "max_retries = 0");
            let manifest = s.manifest("p.toml", &m, "", &caller("talk", 1, ""));
            let (out, summary) = s.run(&manifest, &[]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{provider} {label}: {}",
                stderr(&out)
            );
            let f = failure(&summary, "talk");
            assert!(f.contains(expected), "{provider} {label}: {f}");
            assert_eq!(server.requests().len(), 1, "{provider} {label}");
        }
    }
}

#[test]
fn budgets_refuse_the_call_that_would_exceed_them() {
    let server = ModelServer::start(|_| Reply::text("ok"));
    let s = Setup::new("budget");
    let manifest = s.manifest(
        "p.toml",
        &model("openai", &server.url, ""),
        "budget = { calls = 3 }",
        &format!(
            "{}\n{}",
            caller("first", 2, ""),
            caller("second", 2, "after = [\"first\"]")
        ),
    );
    let (out, summary) = s.run(&manifest, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stage(&summary, "first")["status"], "succeeded");
    let f = failure(&summary, "second");
    assert!(
        f.contains("budget") && f.contains("4 calls > limit 3"),
        "{f}"
    );
    assert_eq!(
        server.requests().len(),
        3,
        "the refused call must not be sent"
    );
    let calls = stage(&summary, "second")["model_calls"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(calls.last().unwrap()["source"], "refused");

    // A stage budget on tokens: the answer may be only as long as what the
    // budget has left after the prompt, so max_tokens = 100 is lowered.
    let s = Setup::new("budget-stage");
    let stages = |tokens: u32| {
        format!(
            "[[stage]]\nid = \"big\"\nplugin = \"faulty\"\nmodels = [\"m\"]\nbudget = {{ tokens = {tokens} }}\n\
             config = {{ behaviour = {{ call-models = {{ alias = \"m\", times = 1, max_tokens = 100 }} }} }}\n"
        )
    };
    let manifest = s.manifest("p.toml", &model("openai", &server.url, ""), "", &stages(50));
    let before = server.requests().len();
    let (out, summary) = s.run(&manifest, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stage(&summary, "big")["status"], "succeeded");
    let sent = server.requests();
    assert_eq!(sent.len(), before + 1);
    let capped = sent.last().unwrap()["max_tokens"].as_u64().unwrap();
    assert!(capped < 50, "max_tokens {capped}");

    // A budget the prompt alone uses up: refused, nothing sent.
    let s = Setup::new("budget-spent");
    let manifest = s.manifest("p.toml", &model("openai", &server.url, ""), "", &stages(5));
    let before = server.requests().len();
    let (out, summary) = s.run(&manifest, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        failure(&summary, "big").contains("stage 'big' model budget")
            || failure(&summary, "big").contains("no tokens are left"),
        "{}",
        failure(&summary, "big")
    );
    assert_eq!(server.requests().len(), before);
}

#[test]
fn sessions_carry_a_conversation_across_the_stages_that_share_them() {
    let server = ModelServer::start(|req| {
        let n = req["messages"].as_array().map_or(0, Vec::len);
        Reply::text(&format!("seen {n} messages"))
    });
    let s = Setup::new("sessions");
    let session = |id: &str, times: u32, grant: &str, ask: &str, after: &str| {
        format!(
            "[[stage]]\nid = \"{id}\"\nplugin = \"faulty\"\nmodels = [\"m\"]\nsessions = [{grant}]\n{after}\n\
             config = {{ behaviour = {{ call-models = {{ alias = \"m\", times = {times}, session = \"{ask}\" }} }} }}\n"
        )
    };
    let stages = [
        session("discover", 2, "\"plan\"", "plan", ""),
        session("planning", 1, "\"plan\"", "plan", "after = [\"discover\"]"),
        session(
            "verify",
            1,
            "\"verify\"",
            "verify",
            "after = [\"planning\"]",
        ),
        session("sneaky", 1, "\"verify\"", "plan", "after = [\"planning\"]"),
    ];
    let manifest = s.manifest(
        "p.toml",
        &model("openai", &server.url, ""),
        "",
        &stages.join("\n"),
    );
    let (out, summary) = s.run(&manifest, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        s.answers(&summary, "discover"),
        vec!["seen 1 messages", "seen 3 messages"]
    );
    // planning continues discovery's conversation: 4 earlier messages + 1.
    assert_eq!(s.answers(&summary, "planning"), vec!["seen 5 messages"]);
    // verification starts its own.
    assert_eq!(s.answers(&summary, "verify"), vec!["seen 1 messages"]);
    assert!(
        failure(&summary, "sneaky").contains("not granted session 'plan'"),
        "{}",
        failure(&summary, "sneaky")
    );
}

#[test]
fn the_response_cache_answers_identical_requests_for_free() {
    let server = ModelServer::start(|req| Reply::text(&format!("A: {}", last_user_message(req))));
    let s = Setup::new("cache");
    let manifest = s.manifest(
        "p.toml",
        &model("openai", &server.url, "cache = true\nprice_in_per_1k = 1.0"),
        "",
        &caller("talk", 2, ""),
    );
    let (out, first) = s.run(&manifest, &["--fresh"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 2);
    let (out, second) = s.run(&manifest, &["--fresh"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        server.requests().len(),
        2,
        "cached requests were sent again"
    );
    assert_eq!(s.answers(&first, "talk"), s.answers(&second, "talk"));
    let calls = stage(&second, "talk")["model_calls"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        calls
            .iter()
            .all(|c| c["source"] == "cache" && c["cost_usd"] == 0.0),
        "{calls:?}"
    );
}

#[test]
fn model_overrides_point_an_alias_elsewhere() {
    let server = ModelServer::start(|_| Reply::text("from the override"));
    let s = Setup::new("override");
    let manifest = s.manifest(
        "p.toml",
        &model("openai", "http://127.0.0.1:9/v1", ""),
        "",
        &caller("talk", 1, ""),
    );
    let target = format!("m=anthropic:claude-test@{}", server.url);
    let (out, summary) = s.run(&manifest, &["--model", &target]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.answers(&summary, "talk"), vec!["from the override"]);
    assert_eq!(server.seen()[0].path, "/v1/messages");
    assert_eq!(server.requests()[0]["model"], "claude-test");

    let out = s.host(&[
        "run",
        manifest.to_str().unwrap(),
        "--model",
        "nope=openai:x",
    ]);
    assert_eq!(out.status.code(), Some(10));
    assert!(
        stderr(&out).contains("no model alias 'nope' (declared: m)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_recorded_run_replays_offline_and_names_what_was_not_recorded() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let server = ModelServer::start(move |req| {
        // Different every time: only a replay can give the same answers.
        let n = c.fetch_add(1, Ordering::SeqCst);
        Reply::text(&format!("answer {n} to {}", last_user_message(req)))
    });
    let s = Setup::new("replay");
    let manifest = s.manifest(
        "p.toml",
        &model("openai", &server.url, ""),
        "",
        &format!(
            "{}\n{}",
            caller("a", 2, ""),
            caller("b", 1, "after = [\"a\"]")
        ),
    );
    let (out, recorded) = s.run(&manifest, &["--record"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = recorded["run_id"].as_str().unwrap().to_string();
    let sent = server.requests().len();

    // The provider is unreachable during the replay.
    let dead = "m=openai:test-model@http://127.0.0.1:9/v1";
    let (out, replayed) = s.run(&manifest, &["--replay", &run, "--model", dead]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.requests().len(), sent);
    for id in ["a", "b"] {
        assert_eq!(s.answers(&recorded, id), s.answers(&replayed, id));
    }
    let calls = stage(&replayed, "a")["model_calls"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        calls
            .iter()
            .all(|c| c["source"] == "replay" && c["cost_usd"] == 0.0)
    );

    // A stage that asks something the recording does not have fails with
    // the stage named; nothing is sent.
    let changed = s.manifest(
        "changed.toml",
        &model("openai", &server.url, ""),
        "",
        &format!(
            "{}\n{}",
            caller("a", 3, ""),
            caller("b", 1, "after = [\"a\"]")
        ),
    );
    let (out, summary) = s.run(&changed, &["--replay", &run]);
    assert_eq!(out.status.code(), Some(1));
    let f = failure(&summary, "a");
    assert!(
        f.contains("stage 'a' sent a request that run") && f.contains("did not record"),
        "{f}"
    );
    assert_eq!(server.requests().len(), sent);

    let out = s.host(&["run", manifest.to_str().unwrap(), "--replay", "no-such-run"]);
    assert_eq!(out.status.code(), Some(10));
}

#[test]
fn a_real_local_model_run_replays_identically_with_the_server_unreachable() {
    let url = local_llm();
    let s = Setup::new("replay-llm");
    let manifest = s.manifest(
        "p.toml",
        &format!("[models.m]\nprovider = \"openai\"\nbase_url = \"{url}\"\nmodel = \"smollm2\"\ntimeout = \"60s\""),
        "",
        "[[stage]]\nid = \"talk\"\nplugin = \"faulty\"\nmodels = [\"m\"]\n\
         config = { behaviour = { call-models = { alias = \"m\", times = 2, max_tokens = 12 } } }\n",
    );
    let (out, recorded) = s.run(&manifest, &["--record"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = recorded["run_id"].as_str().unwrap().to_string();
    let dead = "m=openai:smollm2@http://127.0.0.1:9/v1";
    let (out, replayed) = s.run(&manifest, &["--replay", &run, "--model", dead]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answers = s.answers(&recorded, "talk");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers, s.answers(&replayed, "talk"));
}

/// Stages calling models on one server at once: with `max_concurrent = 1`
/// on either alias, the server never sees two requests in flight; without
/// it, it does.
#[test]
fn max_concurrent_limits_requests_in_flight_per_server() {
    for limit in [None, Some(1)] {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (now, peak) = (in_flight.clone(), most.clone());
        let server = ModelServer::start(move |_| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            now.fetch_sub(1, Ordering::SeqCst);
            Reply::text("ok")
        });
        let s = Setup::new(&format!("concurrency-{limit:?}"));
        // Two aliases on the same server; only one of them sets the limit.
        let mut models = model("openai", &server.url, "");
        if let Some(n) = limit {
            models.push_str(&format!("max_concurrent = {n}\n"));
        }
        models.push_str(&format!(
            "\n[models.n]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"other\"\n",
            server.url
        ));
        let stages = [
            caller("a", 2, ""),
            caller("b", 2, ""),
            "[[stage]]\nid = \"c\"\nplugin = \"faulty\"\nmodels = [\"n\"]\n\
             config = { behaviour = { call-models = { alias = \"n\", times = 2 } } }\n"
                .to_string(),
        ]
        .join("\n");
        let manifest = s.manifest("p.toml", &models, "max_parallel = 3", &stages);
        let (out, _) = s.run(&manifest, &[]);
        assert!(out.status.success(), "{limit:?}: {}", stderr(&out));
        assert_eq!(server.requests().len(), 6);
        let peak = most.load(Ordering::SeqCst);
        match limit {
            Some(n) => assert_eq!(peak, n, "limit {n}, peak {peak}"),
            None => assert!(peak > 1, "three stages at once never overlapped"),
        }
    }
}
