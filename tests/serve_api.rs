//! `host serve`: every API endpoint over a real state directory, during a
//! real `host run` in another process (its stage logs and reports progress
//! while the API is asked), and after it; unknown ids, bad paths and bad
//! parameters as JSON errors; the loopback-only rule.

mod common;

use common::http::{SseStream, get, request, wait_for};
use common::model_server::{ModelServer, Reply as ModelReply};
use common::serve::Serve;
use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn manifest(scratch: &Scratch, model_url: &str) -> PathBuf {
    let faulty = plugin("faulty").display().to_string();
    scratch.write(
        "watch.toml",
        &format!(
            r#"[pipeline]
name = "watched"
task = "watch me"
max_parallel = 4

[plugins.faulty]
wasm = {faulty:?}

[models.m]
provider = "openai"
base_url = "{model_url}"
model = "scripted"
timeout = "60s"
price_in_per_1k = 1.0
price_out_per_1k = 2.0

[[stage]]
id = "first"
plugin = "faulty"
config = {{ behaviour = "succeed" }}

[[stage]]
id = "slow"
plugin = "faulty"
after = ["first"]
config = {{ behaviour = {{ chatter = {{ steps = 30, every_ms = 200 }} }} }}

[[stage]]
id = "flaky"
plugin = "faulty"
after = ["first"]
retries = 2
config = {{ behaviour = {{ checkpoint = {{ succeed_at = 2 }} }} }}

[[stage]]
id = "ask"
plugin = "faulty"
after = ["first"]
models = ["m"]
config = {{ behaviour = {{ call-models = {{ alias = "m", times = 1, max_tokens = 8 }} }} }}

[[stage]]
id = "draft"
plugin = "faulty"
after = ["first"]
config = {{ behaviour = "echo-feedback" }}

[[stage]]
id = "review"
plugin = "faulty"
after = ["draft"]
loop = {{ to = "draft", max = 2, on = "revise" }}
config = {{ behaviour = {{ revise-until = {{ until = 1 }} }} }}

[[stage]]
id = "tests"
plugin = "faulty"
after = ["first"]
spawns = ["fixer"]
config = {{ behaviour = {{ spawn = {{ jobs = [{{ template = "fixer", id = "fix" }}] }} }} }}

[[stage]]
id = "fixer"
plugin = "faulty"
template = true
config = {{ behaviour = "succeed" }}

[[stage]]
id = "last"
plugin = "faulty"
after = ["slow", "flaky", "ask", "review"]
config = {{ behaviour = "succeed" }}
"#
        ),
    )
}

fn stage<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no stage {id} in {run}"))
}

fn assert_json_error(reply: &common::http::Reply, status: u16, mentions: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        reply.headers
    );
    let body = reply.json();
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"));
    assert!(
        error.contains(mentions),
        "{error:?} should mention {mentions:?}"
    );
}

#[test]
fn the_api_serves_a_run_while_another_process_runs_it_and_after() {
    let scratch = Scratch::new("serve-api");
    let state = scratch.path("state");
    // A scripted OpenAI-compatible server: 11 tokens in, 7 out per call.
    let model = ModelServer::start(|_| ModelReply::text("hello"));
    let manifest = manifest(&scratch, &model.url);
    let server = Serve::start(&state);
    let base = server.url.as_str();

    // Before any run: an empty list, not an error; unknown ids are 404s.
    let runs = get(base, "/api/runs");
    assert_eq!(runs.status, 200);
    assert_eq!(runs.json(), serde_json::json!([]));
    assert_json_error(&get(base, "/api/runs/nope"), 404, "nope");

    let mut run = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["run", "--json"])
        .arg(&manifest)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The run appears, and its slow stage runs.
    let run_id = wait_for("the run to appear", Duration::from_secs(120), || {
        let r = get(base, "/api/runs");
        (r.status == 200).then_some(())?;
        r.json()[0]["id"].as_str().map(str::to_string)
    });
    let live = wait_for("stage slow to run", Duration::from_secs(120), || {
        let r = get(base, &format!("/api/runs/{run_id}"));
        (r.status == 200).then_some(())?;
        let v = r.json();
        (stage(&v, "slow")["status"] == "running").then_some(v)
    });
    assert_eq!(live["run"]["status"], "running");
    assert_eq!(live["run"]["pipeline"], "watched");
    assert_eq!(stage(&live, "first")["status"], "succeeded");
    assert_eq!(stage(&live, "slow")["depth"], 1);
    assert_eq!(stage(&live, "last")["depth"], 3);
    let edges = live["edges"].as_array().unwrap();
    assert!(
        edges
            .iter()
            .any(|e| e["from"] == "first" && e["to"] == "slow" && e["kind"] == "after"),
        "{edges:?}"
    );

    // The live log, from the other process's log file: as JSON, and as a
    // stream that delivers lines while the run is still going.
    let log = wait_for("a log line", Duration::from_secs(30), || {
        let r = get(base, &format!("/api/runs/{run_id}/stages/slow/log"));
        let v = r.json();
        (r.status == 200 && !v["lines"].as_array()?.is_empty()).then_some(v)
    });
    assert_eq!(log["running"], true, "{log}");
    assert!(
        log["lines"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("chatter step"),
        "{log}"
    );
    let mut stream = SseStream::open(base, &format!("/api/runs/{run_id}/stages/slow/log/stream"));
    assert_eq!(stream.status, 200);
    assert!(
        stream
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v == "text/event-stream")
    );
    let hello = stream.next_event().unwrap();
    assert_eq!(hello.event.as_deref(), Some("attempt"));
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = stream.next_event().expect("the stream ended early");
        assert_eq!(ev.event, None, "{ev:?}");
        let line: Value = serde_json::from_str(&ev.data).unwrap();
        seen.push(line);
    }
    assert!(
        run.try_wait().unwrap().is_none(),
        "log lines were streamed while the run was still going"
    );
    assert!(
        seen.iter().any(|l| l["progress"].is_array()),
        "progress reports are in the log: {seen:?}"
    );
    // The stream follows to the end of the attempt, then says so.
    let mut last_step = 0;
    let end = loop {
        let ev = stream
            .next_event()
            .expect("the stream ends with an end event");
        if ev.event.as_deref() == Some("end") {
            break ev;
        }
        let line: Value = serde_json::from_str(&ev.data).unwrap();
        if let Some(rest) = line["message"]
            .as_str()
            .and_then(|m| m.strip_prefix("chatter step "))
        {
            last_step = rest.split(' ').next().unwrap().parse().unwrap();
        }
    };
    assert_eq!(last_step, 30, "every line arrives before the end: {end:?}");

    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `--json` output gains progress and model-call events; nothing else changes.
    let kinds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["event"].as_str().map(str::to_string))
        .collect();
    assert!(kinds.iter().any(|k| k == "stage-progress"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "model-called"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "stage-finished"), "{kinds:?}");

    // After the run: the list, the run with its retry, the timeline.
    let runs = get(base, "/api/runs").json();
    assert_eq!(runs[0]["id"], run_id.as_str());
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["stage_counts"]["succeeded"], 9);
    assert_eq!(runs[0]["tokens"], 18, "{runs}");
    let done = get(base, &format!("/api/runs/{run_id}")).json();
    assert_eq!(done["run"]["status"], "succeeded");
    assert_eq!(stage(&done, "flaky")["attempts"], 2);
    assert_eq!(done["retries"], 1, "{done}");
    let timeline = done["timeline"].as_array().unwrap();
    let flaky: Vec<&Value> = timeline.iter().filter(|a| a["stage"] == "flaky").collect();
    assert_eq!(flaky.len(), 2, "{timeline:?}");
    assert_eq!(flaky[0]["outcome"], "failed");
    assert_eq!(flaky[0]["will_retry"], true);
    assert_eq!(flaky[1]["outcome"], "succeeded");
    // Every attempt that ran has a log, empty if it never wrote a line (its
    // file is only created by the first one); an attempt that never ran
    // has none.
    for a in timeline.iter().filter(|a| a["outcome"] != "reused") {
        let url = a["log_url"]
            .as_str()
            .expect("an attempt that ran has a log");
        let log = get(base, url);
        assert_eq!(log.status, 200, "{url}: {}", log.text());
        assert!(log.json()["lines"].is_array(), "{url}");
    }
    let never = get(
        base,
        &format!("/api/runs/{run_id}/stages/flaky/log?attempt=3"),
    );
    assert_eq!(never.status, 404, "{}", never.text());
    assert!(
        timeline.iter().all(|a| a["finished_ms"].is_u64()),
        "{timeline:?}"
    );

    // The loop: one pass back from review to draft, drawn as a loop edge;
    // the second pass of draft has its own attempt and log.
    assert_eq!(done["loops"].as_array().unwrap().len(), 1, "{done}");
    assert_eq!(done["loops"][0]["from"], "review");
    assert_eq!(done["loops"][0]["to"], "draft");
    assert_eq!(done["loops"][0]["iteration"], 1);
    assert_eq!(stage(&done, "draft")["iteration"], 1);
    let edges = done["edges"].as_array().unwrap();
    assert!(
        edges
            .iter()
            .any(|e| e["kind"] == "loop" && e["from"] == "review" && e["to"] == "draft"),
        "{edges:?}"
    );
    let passes: Vec<u64> = timeline
        .iter()
        .filter(|a| a["stage"] == "draft")
        .map(|a| a["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(passes, [0, 1]);
    let second = get(
        base,
        &format!("/api/runs/{run_id}/stages/draft/log?iteration=1&attempt=1"),
    );
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.json()["iteration"], 1);
    // The spawned job: a child of its parent, one layer below it.
    let job = stage(&done, "tests.fix");
    assert_eq!(job["parent"], "tests");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["depth"], 2);
    assert!(
        edges
            .iter()
            .any(|e| e["kind"] == "spawn" && e["from"] == "tests" && e["to"] == "tests.fix"),
        "{edges:?}"
    );

    // A stage: inputs, outputs, model calls, attempts, diff.
    let last = get(base, &format!("/api/runs/{run_id}/stages/last")).json();
    let inputs: Vec<&str> = last["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["stage"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, ["slow", "flaky", "ask", "review"]);
    assert_eq!(last["spec"]["plugin"], "faulty");
    let chatter = &last["inputs"][0]["artifacts"][0];
    assert_eq!(chatter["name"], "chatter.txt");
    let raw = get(base, chatter["url"].as_str().unwrap());
    assert_eq!(raw.status, 200);
    assert_eq!(raw.text(), "30 steps");
    assert!(
        raw.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    // Plugin output never runs scripts with the dashboard's origin.
    assert_eq!(raw.header("content-security-policy"), Some("sandbox"));
    let ask = get(base, &format!("/api/runs/{run_id}/stages/ask")).json();
    let call = &ask["model_calls"][0];
    assert_eq!(call["alias"], "m");
    assert_eq!(call["input_tokens"], 11, "{call}");
    assert_eq!(call["output_tokens"], 7, "{call}");
    assert!(call["latency_ms"].is_u64(), "{call}");
    assert!(
        (call["cost_usd"].as_f64().unwrap() - 0.025).abs() < 1e-9,
        "{call}"
    );
    assert_eq!(ask["tokens"], 18);
    let attempts = get(base, &format!("/api/runs/{run_id}/stages/flaky/attempts")).json();
    assert_eq!(attempts.as_array().unwrap().len(), 2);
    assert!(
        attempts[0]["failure"].as_str().unwrap().contains("retry"),
        "{attempts}"
    );
    let diff = get(base, &format!("/api/runs/{run_id}/stages/first/diff"));
    assert_eq!(diff.status, 200);
    assert_eq!(diff.json(), serde_json::json!([]));
    // A finished attempt's log: every line, and an older attempt by number.
    let log = get(base, &format!("/api/runs/{run_id}/stages/slow/log")).json();
    assert_eq!(log["running"], false);
    assert_eq!(
        log["lines"].as_array().unwrap().len(),
        60,
        "30 lines, 30 progress reports"
    );
    let next = log["next_offset"].as_u64().unwrap();
    let tail = get(
        base,
        &format!("/api/runs/{run_id}/stages/slow/log?offset={next}"),
    )
    .json();
    assert_eq!(tail["lines"], serde_json::json!([]));
    let stream_after = get(base, &format!("/api/runs/{run_id}/stages/slow/log/stream"));
    assert_eq!(stream_after.status, 200);
    assert!(stream_after.text().contains("chatter step 30 of 30"));
    let last_event = stream_after.text();
    let last_event = last_event.trim_end().rsplit("\n\n").next().unwrap();
    assert!(
        last_event.starts_with("event: end"),
        "the stream of a finished attempt ends at once: {last_event}"
    );

    // Events: all of them, or those after a sequence number.
    let events = get(base, &format!("/api/runs/{run_id}/events")).json();
    let events = events.as_array().unwrap();
    assert_eq!(events[0]["event"], "run-started");
    assert_eq!(events.last().unwrap()["event"], "run-finished");
    let seq = events[2]["seq"].as_u64().unwrap();
    let later = get(base, &format!("/api/runs/{run_id}/events?after={seq}")).json();
    assert_eq!(later.as_array().unwrap().len(), events.len() - 3);

    // Unknown ids, bad paths, bad parameters: JSON errors.
    assert_json_error(
        &get(base, &format!("/api/runs/{run_id}/stages/nope")),
        404,
        "nope",
    );
    assert_json_error(&get(base, "/api/runs/nope/stages/slow"), 404, "nope");
    assert_json_error(
        &get(
            base,
            &format!("/api/runs/{run_id}/stages/slow/artifacts/nope.txt"),
        ),
        404,
        "nope.txt",
    );
    assert_json_error(
        &get(
            base,
            &format!("/api/runs/{run_id}/stages/slow/log?attempt=9"),
        ),
        404,
        "attempt 9",
    );
    assert_json_error(
        &get(base, "/api/runs/nope/stages/slow/log/stream"),
        404,
        "nope",
    );
    assert_json_error(
        &get(base, &format!("/api/runs/{run_id}/events?after=x")),
        400,
        "after",
    );
    assert_json_error(&get(base, "/api/nothing/here"), 404, "/api/nothing/here");
    assert_json_error(&get(base, "/nothing"), 404, "/nothing");
    assert_json_error(&get(base, "/api/runs/%zz"), 400, "bad path");
    assert_json_error(&request(base, "POST", "/api/runs"), 405, "read-only");

    // The dashboard page itself.
    let page = get(base, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().contains("/api/runs"));
}

#[test]
fn serve_refuses_a_non_loopback_address_unless_told() {
    let out = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["serve", "--addr", "0.0.0.0:0", "--state-dir"])
        .arg(private_state_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("0.0.0.0:0") && err.contains("--public"),
        "{err}"
    );
}

#[test]
fn a_run_killed_mid_stage_shows_as_interrupted() {
    let scratch = Scratch::new("serve-killed");
    let state = scratch.path("state");
    let manifest = scratch.write(
        "killed.toml",
        &format!(
            "[pipeline]\nname = \"killed\"\ntask = \"t\"\n\n[plugins.faulty]\nwasm = {:?}\n\n\
             [[stage]]\nid = \"slow\"\nplugin = \"faulty\"\n\
             config = {{ behaviour = {{ chatter = {{ steps = 300, every_ms = 100 }} }} }}\n",
            plugin("faulty").display().to_string()
        ),
    );
    let mut run = quiet_run_in_background(&state, &manifest);
    let log = wait_for("the stage to log", Duration::from_secs(120), || {
        let dir = std::fs::read_dir(state.join("logs")).ok()?.next()?.ok()?;
        let file = dir.path().join("slow-1.jsonl");
        (std::fs::metadata(&file).ok()?.len() > 0).then_some(file)
    });
    // SIGKILL: the database is left unclean, the stage recorded as running.
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(log.is_file());

    let server = Serve::start(&state);
    let runs = get(&server.url, "/api/runs");
    assert_eq!(runs.status, 200, "{}", runs.text());
    let runs = runs.json();
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    let id = runs[0]["id"].as_str().unwrap();
    let attempts = get(&server.url, &format!("/api/runs/{id}/stages/slow/attempts")).json();
    assert_eq!(attempts[0]["outcome"], "interrupted", "{attempts}");
    // Its log is complete up to the kill, and its stream ends at once.
    let log = get(&server.url, &format!("/api/runs/{id}/stages/slow/log")).json();
    assert_eq!(log["running"], false, "its process is gone: {log}");
    assert!(!log["lines"].as_array().unwrap().is_empty());
    let stream = get(
        &server.url,
        &format!("/api/runs/{id}/stages/slow/log/stream"),
    );
    assert!(stream.text().contains("event: end"), "{}", stream.text());
}
