//! Stages that fail, each in its own way, inside one real run: each failure
//! is reported with its exact reason, dependants are skipped, and stages that
//! do not depend on a failure still succeed.

mod common;

use common::*;

fn failure_kind(summary: &serde_json::Value, id: &str) -> String {
    stage(summary, id)["failure"]["kind"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

fn failure_text(summary: &serde_json::Value, id: &str) -> String {
    stage(summary, id)["failure"].to_string()
}

#[test]
fn each_failure_has_its_reason_and_spares_independent_stages() {
    let faulty = plugin("faulty");
    let scratch = Scratch::new("failures");
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "failures"
task = "misbehave"
max_parallel = 3

[models.large]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "never-called"

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "fatal"
plugin = "faulty"
config = {{ behaviour = "fatal" }}

[[stage]]
id = "after-fatal"
plugin = "faulty"
after = ["fatal"]
config = {{ behaviour = "succeed" }}

[[stage]]
id = "after-after-fatal"
plugin = "faulty"
after = ["after-fatal"]
config = {{ behaviour = "succeed" }}

[[stage]]
id = "panic"
plugin = "faulty"
config = {{ behaviour = "panic" }}

[[stage]]
id = "loop"
plugin = "faulty"
timeout = "500ms"
config = {{ behaviour = "loop" }}

[[stage]]
id = "memory-bomb"
plugin = "faulty"
memory = "64MiB"
config = {{ behaviour = "memory-bomb" }}

[[stage]]
id = "recurse"
plugin = "faulty"
config = {{ behaviour = "recurse" }}

[[stage]]
id = "recurse-big"
plugin = "faulty"
config = {{ behaviour = "recurse-big" }}

[[stage]]
id = "ungranted-model"
plugin = "faulty"
config = {{ behaviour = {{ call-model = {{ alias = "large" }} }} }}

[[stage]]
id = "huge-output"
plugin = "faulty"
memory = "512MiB"
config = {{ behaviour = {{ big-output = {{ bytes = 70000000 }} }} }}

[[stage]]
id = "log-flood"
plugin = "faulty"
config = {{ behaviour = {{ log-flood = {{ count = 20000 }} }} }}

[[stage]]
id = "bad-config"
plugin = "faulty"
config = {{ behaviour = "explode" }}

[[stage]]
id = "bystander"
plugin = "faulty"
config = {{ behaviour = "succeed" }}
"#,
            faulty.display()
        ),
    );
    let o = host(&["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed stage exits 1:\n{}",
        stderr(&o)
    );
    let s = summary(&o);

    assert_eq!(failure_kind(&s, "fatal"), "plugin");
    assert_eq!(stage(&s, "fatal")["failure"]["retryable"], false);
    assert!(failure_text(&s, "fatal").contains("asked to fail"));

    assert_eq!(stage(&s, "after-fatal")["status"], "skipped");
    assert_eq!(
        stage(&s, "after-fatal")["skip_reason"],
        "dependency 'fatal' failed"
    );
    assert_eq!(
        stage(&s, "after-after-fatal")["skip_reason"],
        "dependency 'after-fatal' was skipped"
    );

    assert_eq!(failure_kind(&s, "panic"), "trap");
    assert!(
        failure_text(&s, "panic").contains("asked to panic"),
        "{}",
        failure_text(&s, "panic")
    );
    assert!(
        failure_text(&s, "panic").contains("wasm backtrace"),
        "{}",
        failure_text(&s, "panic")
    );

    assert_eq!(failure_kind(&s, "loop"), "timeout");
    assert_eq!(failure_kind(&s, "memory-bomb"), "out-of-memory");
    assert_eq!(stage(&s, "memory-bomb")["failure"]["limit"], 64 << 20);

    for id in ["recurse", "recurse-big"] {
        assert_eq!(failure_kind(&s, id), "trap");
        assert!(
            failure_text(&s, id).contains("stack overflow"),
            "{id}: {}",
            failure_text(&s, id)
        );
    }

    assert_eq!(failure_kind(&s, "ungranted-model"), "plugin");
    assert!(
        failure_text(&s, "ungranted-model").contains("is not granted model alias 'large'"),
        "{}",
        failure_text(&s, "ungranted-model")
    );
    // The refusal is recorded as a model call that never reached a provider.
    let calls = stage(&s, "ungranted-model")["model_calls"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("not-granted: ")
    );

    assert_eq!(failure_kind(&s, "huge-output"), "output-too-large");

    assert_eq!(stage(&s, "log-flood")["status"], "succeeded");

    assert_eq!(failure_kind(&s, "bad-config"), "plugin");
    assert!(failure_text(&s, "bad-config").contains("invalid config for stage 'bad-config'"));

    assert_eq!(stage(&s, "bystander")["status"], "succeeded");
}

#[test]
fn retryable_failures_are_retried_with_the_previous_error() {
    let faulty = plugin("faulty");
    let scratch = Scratch::new("retries");
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "retries"
task = "try again"

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "flaky"
plugin = "faulty"
retries = 2
config = {{ behaviour = "retryable" }}

[[stage]]
id = "fatal-is-not-retried"
plugin = "faulty"
retries = 3
config = {{ behaviour = "fatal" }}
"#,
            faulty.display()
        ),
    );
    let o = host(&["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let s = summary(&o);
    assert_eq!(stage(&s, "flaky")["attempts"], 3, "{s}");
    assert_eq!(stage(&s, "flaky")["failure"]["retryable"], true);
    assert_eq!(stage(&s, "fatal-is-not-retried")["attempts"], 1, "{s}");
    let events = stdout(&o);
    assert_eq!(
        events.matches("\"event\":\"stage-retrying\"").count(),
        2,
        "{events}"
    );
}

#[test]
fn kv_checkpoints_survive_from_one_attempt_to_the_next() {
    let faulty = plugin("faulty");
    let scratch = Scratch::new("kv");
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "kv"
task = "count"

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "counter"
plugin = "faulty"
retries = 2
config = {{ behaviour = {{ checkpoint = {{ succeed_at = 2 }} }} }}

[[stage]]
id = "other-counter"
plugin = "faulty"
config = {{ behaviour = {{ checkpoint = {{ succeed_at = 1 }} }} }}
"#,
            faulty.display()
        ),
    );
    let o = host(&["run", "--json", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let s = summary(&o);
    assert_eq!(stage(&s, "counter")["attempts"], 2, "{s}");
    assert_eq!(
        stage(&s, "counter")["summary"],
        "succeeded after 2 attempts"
    );
    // Checkpoints are private to a stage: the other stage starts from zero.
    assert_eq!(
        stage(&s, "other-counter")["summary"],
        "succeeded after 1 attempts"
    );
}

#[test]
fn hostile_plugins_cannot_see_keys_or_the_environment_or_call_without_limit() {
    use common::model_server::{ModelServer, Reply};
    let server = ModelServer::start(|_| Reply::text("fine"));
    let faulty = plugin("faulty");
    let scratch = Scratch::new("hostile");
    let state = scratch.path("state");
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "hostile"
task = "snoop"

[models.m]
provider = "openai"
base_url = "{}"
model = "test"
api_key_env = "HOSTILE_TEST_API_KEY"

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "model-flood"
plugin = "faulty"
models = ["m"]
budget = {{ calls = 5 }}
config = {{ behaviour = {{ call-models = {{ alias = "m", times = 50 }} }} }}

[[stage]]
id = "snoop"
plugin = "faulty"
models = ["m"]
config = {{ behaviour = "env" }}

[[stage]]
id = "call-cap"
plugin = "faulty"
models = ["m"]
max_model_calls = 3
config = {{ behaviour = {{ call-models = {{ alias = "m", times = 10 }} }} }}

[[stage]]
id = "small-output"
plugin = "faulty"
max_output = "1KiB"
config = {{ behaviour = {{ big-output = {{ bytes = 4096 }} }} }}

[[stage]]
id = "bystander"
plugin = "faulty"
config = {{ behaviour = "succeed" }}
"#,
            server.url,
            faulty.display()
        ),
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["run", "--json", manifest.to_str().unwrap()])
        .env("HOSTILE_TEST_API_KEY", "sk-hostile-secret-42")
        .env("HOSTILE_OTHER_SECRET", "hunter2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);

    // The flood stops at the budget: five requests sent, the sixth refused.
    let f = failure_text(&s, "model-flood");
    assert!(
        f.contains("model budget exceeded") && f.contains("6 calls > limit 5"),
        "{f}"
    );
    // Per-stage limits: model calls per attempt, output size.
    assert_eq!(failure_kind(&s, "call-cap"), "limit");
    assert_eq!(stage(&s, "call-cap")["failure"]["bound"], "model-calls");
    assert_eq!(stage(&s, "call-cap")["failure"]["limit"], 3);
    assert_eq!(server.requests().len(), 5 + 3);
    assert_eq!(failure_kind(&s, "small-output"), "output-too-large");
    assert_eq!(stage(&s, "small-output")["failure"]["limit"], 1024);

    // No variables, no arguments, no /proc: nothing of the host's.
    assert_eq!(stage(&s, "snoop")["status"], "succeeded");
    let run = s["run_id"].as_str().unwrap();
    let env = std::process::Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["show", run, "snoop", "--artifact", "env.json"])
        .output()
        .unwrap();
    let env: serde_json::Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(env["vars"], serde_json::json!([]), "{env}");
    assert!(
        env["proc_environ"].as_str().unwrap().starts_with("Err"),
        "{env}"
    );
    let everything = format!("{}{}{env}", stdout(&o), stderr(&o));
    assert!(!everything.contains("sk-hostile-secret-42") && !everything.contains("hunter2"));

    assert_eq!(stage(&s, "bystander")["status"], "succeeded");
}

/// Instance slots are reused from attempt to attempt, their memory reset in
/// place: no attempt may see what an earlier one wrote, whether it succeeded
/// or trapped, in the part reset by scanning or the part given back.
#[test]
fn no_attempt_sees_the_memory_of_an_earlier_one() {
    let faulty = plugin("faulty");
    let scratch = Scratch::new("residue");
    let mut stages = String::new();
    for i in 0..6 {
        let after = if i == 0 {
            String::new()
        } else {
            format!("after = [{{ stage = \"r{}\", on = \"always\" }}]\n", i - 1)
        };
        // A panicking attempt in between leaves its memory dirty too.
        let behaviour = if i == 3 { "\"panic\"" } else { "\"residue\"" };
        stages.push_str(&format!(
            "\n[[stage]]\nid = \"r{i}\"\nplugin = \"faulty\"\n{after}config = {{ behaviour = {behaviour} }}\n"
        ));
    }
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            "[pipeline]\nname = \"residue\"\ntask = \"look\"\n\n[plugins.faulty]\nwasm = \"{}\"\n{stages}",
            faulty.display()
        ),
    );
    let o = host(&["run", "--json", manifest.to_str().unwrap()]);
    let s = summary(&o);
    for id in ["r0", "r1", "r2", "r4", "r5"] {
        assert_eq!(
            stage(&s, id)["status"],
            "succeeded",
            "{id}: {}",
            failure_text(&s, id)
        );
    }
    assert_eq!(failure_kind(&s, "r3"), "trap");
}

#[test]
fn a_nan_metric_fails_its_stage_and_leaves_the_state_directory_readable() {
    let faulty = plugin("faulty");
    let scratch = Scratch::new("nan-metric");
    let state = scratch.path("state");
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "nan"
task = "divide"

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "divide"
plugin = "faulty"
config = {{ behaviour = "zero-by-zero" }}

[[stage]]
id = "after"
plugin = "faulty"
after = ["divide"]
when = "divide.metrics.ratio > 0"
config = {{ behaviour = "succeed" }}
"#,
            faulty.display()
        ),
    );
    let with_state = |args: &[&str]| common::runs::host_with(&state, args);
    let o = with_state(&["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    let why = failure_text(&s, "divide");
    assert!(
        why.contains("metric 'ratio' is NaN: a metric must be a finite number"),
        "{why}"
    );
    let run = s["run_id"].as_str().unwrap();
    for args in [
        vec!["runs"],
        vec!["status", run],
        vec!["export", run, "--format", "jsonl"],
        vec!["verify"],
    ] {
        let o = with_state(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
}

/// What a plugin prints is its attempt's log: stdout at info, stderr at
/// warn, each stream within the stage's max_log_lines, the last line kept
/// even without its newline, and a trapped plugin's stderr kept too.
#[test]
fn printed_lines_are_the_attempts_log_within_its_cap() {
    let scratch = Scratch::new("printed");
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "printed"
task = "print"

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "chatty"
plugin = "faulty"
max_log_lines = 5
config = {{ behaviour = {{ print = {{ stdout = 8, stderr = 2 }} }} }}

[[stage]]
id = "dies"
plugin = "faulty"
config = {{ behaviour = {{ print = {{ stdout = 1, stderr = 1, panic = true }} }} }}
"#,
            plugin("faulty").display()
        ),
    );
    let state = scratch.path("state");
    let state = state.to_str().unwrap();
    let out = host(&[
        "--state-dir",
        state,
        "run",
        "--json",
        manifest.to_str().unwrap(),
    ]);
    let summary = summary(&out);
    assert_eq!(
        stage(&summary, "chatty")["status"],
        "succeeded",
        "{summary}"
    );
    assert_eq!(stage(&summary, "dies")["status"], "failed", "{summary}");
    // On the terminal as they happen (stdout info, stderr warn).
    let said = stderr(&out);
    assert!(said.contains("INFO") && said.contains("out 5"), "{said}");
    assert!(said.contains("WARN") && said.contains("err 2"), "{said}");
    assert!(!said.contains("out 6"), "past the cap: {said}");

    let run = summary["run_id"].as_str().unwrap();
    let log = host(&["--state-dir", state, "show", run, "chatty", "--log"]);
    assert!(log.status.success(), "{}", stderr(&log));
    let log = stdout(&log);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        [
            "--- attempt 1",
            " warn [stderr] err 1",
            " warn [stderr] err 2",
            " info [stdout] out 1",
            " info [stdout] out 2",
            " info [stdout] out 3",
            " info [stdout] out 4",
            " info [stdout] out 5",
            " info [stdout] [3 more stdout lines dropped: the stage's max_log_lines is 5]",
        ],
        "{log}"
    );

    // A plugin that prints and then traps: its lines are in its log, and its
    // stderr (the panic message) in its failure.
    let log = stdout(&host(&["--state-dir", state, "show", run, "dies", "--log"]));
    assert!(log.contains(" info [stdout] out 1"), "{log}");
    assert!(log.contains(" warn [stderr] err 1"), "{log}");
    assert!(log.contains("asked to panic after printing"), "{log}");
    assert!(
        failure_text(&summary, "dies").contains("asked to panic after printing"),
        "{summary}"
    );
}
