//! The Large-Small-Large experiment's plugins in the real host: the
//! reflective loop's logic against a scripted provider (improvement
//! accepted, regression rejected, budget respected to the call, frontier
//! kept, resume after SIGKILL without redoing spent calls), results and the
//! comparison, and one end-to-end run on the real local model.

mod common;

use common::model_server::{ModelServer, Reply, last_user_message};
use common::*;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const REFLECTOR: &str = "You improve instructions";

fn system_of(req: &serde_json::Value) -> String {
    req["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn sum_in(question: &str) -> i64 {
    question
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<i64>().ok())
        .sum()
}

/// Task model: a GOOD instruction gets the right answer, a BAD one a wrong
/// one, anything else rambles without a final answer. The reflector
/// proposes what `proposals` says, in order (the last repeats).
fn scripted(proposals: Vec<&'static str>) -> ModelServer {
    scripted_with(proposals, |_, _| {})
}

/// `scripted`, calling `on_task(n, request)` with the number of task-model
/// requests seen so far (including this one).
fn scripted_with(
    proposals: Vec<&'static str>,
    on_task: impl Fn(usize, &serde_json::Value) + Send + Sync + 'static,
) -> ModelServer {
    let proposals = Arc::new(Mutex::new(proposals));
    let tasks = AtomicUsize::new(0);
    ModelServer::start(move |req| {
        let system = system_of(req);
        if !system.starts_with(REFLECTOR) {
            on_task(tasks.fetch_add(1, Ordering::SeqCst) + 1, req);
        }
        if system.starts_with(REFLECTOR) {
            let mut p = proposals.lock().unwrap();
            let next = if p.len() > 1 { p.remove(0) } else { p[0] };
            return Reply::text(&format!("Here it is:\n<instruction>{next}</instruction>"));
        }
        let q = last_user_message(req);
        if system.contains("GOOD") {
            Reply::text(&format!("Adding up.\nFinal Answer: {}", sum_in(&q)))
        } else if system.contains("BAD") {
            Reply::text("Final Answer: 0")
        } else {
            Reply::text(
                "I would guess it is probably some number around there, hard to say for sure",
            )
        }
    })
}

fn task_calls(server: &ModelServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| !system_of(r).starts_with(REFLECTOR))
        .count()
}

struct Setup {
    scratch: Scratch,
}

impl Setup {
    fn new(label: &str) -> Setup {
        Setup {
            scratch: Scratch::new(label),
        }
    }

    fn manifest(&self, url: &str, baseline_budget: u32, stages: &str) -> PathBuf {
        let wasm = |name: &str| plugin(name).display().to_string();
        self.scratch.write(
            "pipeline.toml",
            &format!(
                r#"[pipeline]
name = "lsl-test"
task = "add"
workspace = {ws:?}

[models.large]
provider = "openai"
base_url = "{url}"
model = "scripted-large"

[models.small]
provider = "openai"
base_url = "{url}"
model = "scripted-small"

[plugins.baseline]
wasm = {b:?}

[plugins.harden]
wasm = {h:?}

[plugins.evaluate]
wasm = {e:?}

[[stage]]
id = "baseline"
plugin = "baseline"
models = ["large"]
workspace = "read-only"
config = {{ seed_instruction = "Answer the question.", task_model = "large", reflection_model = "large", budget = {baseline_budget}, minibatch = 2 }}
{stages}"#,
                ws = workspace_root().join("tests/fixtures/lsl-tiny").display().to_string(),
                b = wasm("lsl_baseline"),
                h = wasm("lsl_harden"),
                e = wasm("lsl_evaluate"),
            ),
        )
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_host"));
        c.args(["--cache-dir", cache_dir().to_str().unwrap()])
            .args(["--state-dir", self.scratch.path("state").to_str().unwrap()])
            .env_remove("RUST_LOG");
        c
    }

    /// `host run MANIFEST`, its pid published in `pid` for a scripted
    /// server to SIGKILL it; returns once it was killed.
    fn run_until_the_server_kills_it(&self, manifest: &std::path::Path, pid: &AtomicUsize) {
        let child = self
            .cmd()
            .args(["run", "--json", manifest.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        pid.store(child.id() as usize, Ordering::SeqCst);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            None,
            "killed by a signal: {}",
            stderr(&out)
        );
    }

    fn host(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn artifact(&self, run: &str, stage: &str, name: &str) -> serde_json::Value {
        let out = self.host(&["show", run, stage, "--artifact", name]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn the_loop_accepts_improvements_rejects_regressions_and_spends_exactly_its_budget() {
    let server = scripted(vec![
        "BAD: answer zero",
        "GOOD: add the numbers, end with Final Answer: N",
    ]);
    let s = Setup::new("lsl-loop");
    // Seed on val (3) + iteration 1: parent 2 + child 2 (BAD, rejected)
    // + iteration 2: parent 2 + child 2 (GOOD, accepted) + val 3 = 14,
    // then 2 left: not enough for another iteration (needs 4).
    let manifest = s.manifest(&server.url, 16, "");
    let out = s.host(&["run", "--json", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sum = summary(&out);
    let run = sum["run_id"].as_str().unwrap();
    let best = s.artifact(run, "baseline", "candidate.json");
    assert!(
        best["instruction"].as_str().unwrap().starts_with("GOOD"),
        "{best}"
    );
    assert_eq!(best["val_scores"], serde_json::json!([1.0, 1.0, 1.0]));
    assert_eq!(best["parent"], "baseline-seed");
    let all = s.artifact(run, "baseline", "candidates.json");
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["baseline-seed", "baseline-2"],
        "the seed stays on the record"
    );
    let metrics = |name: &str| {
        stage(&sum, "baseline")["summary"]
            .as_str()
            .unwrap()
            .to_string()
            + name
    };
    assert!(
        metrics("").contains("1 accepted, 1 rejected, 14 metric calls"),
        "{}",
        metrics("")
    );
    assert_eq!(
        task_calls(&server),
        14,
        "every metric call is a real request, no more"
    );
}

#[test]
fn the_budget_is_never_exceeded_by_a_single_call() {
    let server = scripted(vec!["GOOD: end with Final Answer: N"]);
    let s = Setup::new("lsl-budget");
    // 3 (seed) + 2 + 2 = 7, then the child cannot pay for validation (3 > 2 left).
    let manifest = s.manifest(&server.url, 9, "");
    let out = s.host(&["run", "--json", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(task_calls(&server), 7);
    let sum = summary(&out);
    assert!(
        stage(&sum, "baseline")["summary"]
            .as_str()
            .unwrap()
            .contains("7 metric calls")
    );
}

#[test]
fn hardening_evaluation_and_the_comparison_table() {
    let server = scripted(vec!["GOOD: end with Final Answer: N"]);
    let s = Setup::new("lsl-three");
    let stages = r#"
[[stage]]
id = "harden"
plugin = "harden"
after = ["baseline"]
models = ["large", "small"]
workspace = "read-only"
config = { task_model = "small", reflection_model = "large", budget = 10, minibatch = 2 }

[[stage]]
id = "evaluate"
plugin = "evaluate"
after = ["baseline", "harden"]
models = ["large", "small"]
workspace = "read-only"
config = { models = ["large", "small"] }
"#;
    let manifest = s.manifest(&server.url, 16, stages);
    let out = s.host(&["run", "--json", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sum = summary(&out);
    let run = sum["run_id"].as_str().unwrap();
    let rows = s.artifact(run, "evaluate", "evaluation.json");
    assert_eq!(rows.as_array().unwrap().len(), 4, "2 prompts x 2 models");
    for r in rows.as_array().unwrap() {
        assert_eq!(r["accuracy"], 1.0, "{r}");
        assert_eq!(r["n"], 4);
    }
    let records = s.host(&["show", run, "evaluate", "--artifact", "records.jsonl"]);
    assert_eq!(
        stdout(&records).lines().count(),
        16,
        "one record per example, prompt and model"
    );
    let compare = stdout(&s.host(&["results", "compare", run, "--format", "markdown"]));
    assert!(
        compare.contains("| large | 1.000 [0.51, 1.00] | 1.000 [0.51, 1.00] | +0.000 |"),
        "{compare}"
    );
    let listed = stdout(&s.host(&["results"]));
    assert_eq!(
        listed.lines().filter(|l| l.contains(run)).count(),
        4,
        "{listed}"
    );
}

#[test]
fn a_killed_stage_resumes_mid_loop_without_redoing_spent_calls() {
    // The server kills the host (SIGKILL) in the middle of iteration 2:
    // the seed (3 calls) and iteration 1 (4 calls) are checkpointed.
    let pid = Arc::new(AtomicUsize::new(0));
    let pid2 = pid.clone();
    let server = scripted_with(
        vec!["BAD: zero", "GOOD: end with Final Answer: N"],
        move |n, _| {
            let p = pid2.load(Ordering::SeqCst);
            if n == 9 && p > 0 {
                let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
            }
        },
    );
    let s = Setup::new("lsl-kill");
    let manifest = s.manifest(&server.url, 16, "");
    s.run_until_the_server_kills_it(&manifest, &pid);
    let before = task_calls(&server);
    // Resume: the same run, picked up by `host run`.
    pid.store(0, Ordering::SeqCst);
    let out = s.host(&["run", "--json", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming unfinished run"),
        "{}",
        stderr(&out)
    );
    let sum = summary(&out);
    let text = stage(&sum, "baseline")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("14 metric calls"),
        "the budget spent before the kill is remembered: {text}"
    );
    // Calls after the last checkpoint (at most one iteration's) were lost
    // with the kill and made again; everything checkpointed was not.
    let total = task_calls(&server);
    assert!(
        total - before <= 14 - 7 + 2,
        "resumed run redid checkpointed work: {before} then {total}"
    );
    assert!(
        stderr(&out).contains("resuming at iteration"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_killed_evaluation_repays_only_the_batch_in_flight() {
    // Evaluate asks `large` (one batch), then `small`: the server kills the
    // host when the first request for `small` arrives.
    let pid = Arc::new(AtomicUsize::new(0));
    let pid2 = pid.clone();
    let server = scripted_with(vec!["GOOD: end with Final Answer: N"], move |_, req| {
        let p = pid2.load(Ordering::SeqCst);
        if req["model"] == "scripted-small" && p > 0 {
            let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
        }
    });
    let by_model = |model: &str| {
        server
            .requests()
            .iter()
            .filter(|r| r["model"] == model && !system_of(r).starts_with(REFLECTOR))
            .count()
    };
    let s = Setup::new("lsl-evaluate-kill");
    let stages = r#"
[[stage]]
id = "evaluate"
plugin = "evaluate"
after = ["baseline"]
models = ["large", "small"]
workspace = "read-only"
config = { models = ["large", "small"] }
"#;
    let manifest = s.manifest(&server.url, 6, stages);
    s.run_until_the_server_kills_it(&manifest, &pid);
    let large_before = by_model("scripted-large");
    pid.store(0, Ordering::SeqCst);
    let out = s.host(&["run", "--json", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The `large` batch was checkpointed before the kill: not asked again.
    assert_eq!(by_model("scripted-large"), large_before);
    // The `small` batch was in flight (4 examples): asked again, once.
    let small = by_model("scripted-small");
    assert!((5..=8).contains(&small), "{small} requests for small");
    let run = summary(&out)["run_id"].as_str().unwrap().to_string();
    let rows = s.artifact(&run, "evaluate", "evaluation.json");
    assert_eq!(rows.as_array().unwrap().len(), 2);
    for r in rows.as_array().unwrap() {
        assert_eq!(r["n"], 4, "{r}");
    }
    let records = s.host(&["show", &run, "evaluate", "--artifact", "records.jsonl"]);
    assert_eq!(stdout(&records).lines().count(), 8, "every record, once");
}

#[test]
fn the_experiment_runs_end_to_end_on_a_real_small_model() {
    let url = local_llm();
    let s = Setup::new("lsl-llm");
    let stages = r#"
[[stage]]
id = "harden"
plugin = "harden"
after = ["baseline"]
models = ["large", "small"]
workspace = "read-only"
config = { task_model = "small", reflection_model = "large", budget = 5, minibatch = 1, max_tokens = 48 }

[[stage]]
id = "evaluate"
plugin = "evaluate"
after = ["baseline", "harden"]
models = ["large", "small"]
workspace = "read-only"
config = { models = ["large"], max_tokens = 48 }
"#;
    let manifest = s.manifest(&url, 5, stages);
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        // The local llama.cpp server takes one request at a time.
        .replace("scripted-large\"", "smollm2\"\nmax_concurrent = 1")
        .replace("scripted-small\"", "smollm2\"\nmax_concurrent = 1")
        .replace("minibatch = 2 }", "minibatch = 1, max_tokens = 48 }");
    std::fs::write(&manifest, text).unwrap();
    let out = s.host(&["run", "--json", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sum = summary(&out);
    let run = sum["run_id"].as_str().unwrap();
    let rows = s.artifact(run, "evaluate", "evaluation.json");
    assert_eq!(rows.as_array().unwrap().len(), 2);
    for r in rows.as_array().unwrap() {
        let acc = r["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        assert!(r["ci_low"].as_f64().unwrap() <= acc && acc <= r["ci_high"].as_f64().unwrap());
    }
}
