//! Hostile plugins against the host's bounds: each escape the outside suite
//! found, done by a real component in a real run. Each must fail its stage
//! with a typed reason naming the bound (and the key that raises it), keep
//! the host's memory and the database small, and leave the next run as if
//! nothing happened.

mod common;

use common::measure::{database_bytes, host_measured};
use common::model_server::{ModelServer, Reply};
use common::runs::{events, host_with};
use common::*;

/// What the host may use for a run of a few small stages, whatever its
/// plugins try: well above a quiet run (some 30-60 MB), far below what the
/// escapes cost (1-2 GB).
const PEAK_RSS: u64 = 400 << 20;
/// What the database of such a run may grow to.
const DATABASE: u64 = 16 << 20;

fn failure<'a>(summary: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    &stage(summary, id)["failure"]
}

/// The stage failed on `bound`, once (no retry), naming what raises it.
fn assert_bound(summary: &serde_json::Value, id: &str, bound: &str) {
    let f = failure(summary, id);
    assert_eq!(f["kind"], "limit", "{id}: {f}");
    assert_eq!(f["bound"], bound, "{id}: {f}");
    assert_eq!(stage(summary, id)["attempts"], 1, "{id} is not retried");
}

fn pipeline(scratch: &Scratch, body: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[pipeline]
name = "hostile"
task = "misbehave"
max_parallel = 4
max_spawned = 10

[plugins.faulty]
wasm = "{}"
{body}
[[stage]]
id = "bystander"
plugin = "faulty"
config = {{ behaviour = "succeed" }}
"#,
        plugin("faulty").display()
    );
    scratch.write("pipeline.toml", &text)
}

#[test]
fn outputs_past_their_bounds_fail_once_with_the_bound_named() {
    let scratch = Scratch::new("bounds");
    let state = scratch.path("state");
    let body = r#"
[[stage]]
id = "many-artifacts"
plugin = "faulty"
retries = 2
config = { behaviour = { overflow = { artifacts = 5000 } } }

[[stage]]
id = "long-summary"
plugin = "faulty"
config = { behaviour = { overflow = { summary_bytes = 300000 } } }

[[stage]]
id = "many-metrics"
plugin = "faulty"
config = { behaviour = { overflow = { metrics = 1001 } } }

[[stage]]
id = "streamed-names"
plugin = "faulty"
config = { behaviour = { stream-names = { names = 20000 } } }

[[stage]]
id = "too-many-jobs"
plugin = "faulty"
spawns = ["job"]
config = { behaviour = { spawn-many = { template = "job", count = 20000 } } }

[[stage]]
id = "job"
plugin = "faulty"
template = true
config = { behaviour = "succeed" }

[[stage]]
id = "control-name"
plugin = "faulty"
config = { behaviour = { overflow = { artifacts = 1, name = "red\u001b[31m.txt" } } }

[[stage]]
id = "hosts-name"
plugin = "faulty"
config = { behaviour = { overflow = { artifacts = 1, name = "workspace-changes.json" } } }

[[stage]]
id = "long-name"
plugin = "faulty"
config = { behaviour = { overflow = { artifacts = 1, name = "LONG_NAME" } } }
"#;
    // The longest name a file may have: 255 bytes.
    let long_name = format!("{}.txt", "n".repeat(251));
    let manifest = pipeline(&scratch, &body.replace("LONG_NAME", &long_name));
    let out = scratch.path("out");
    let (o, peak) = host_measured(
        &state,
        &[
            "run",
            "--json",
            "--out",
            out.to_str().unwrap(),
            manifest.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);

    assert_bound(&s, "many-artifacts", "artifacts");
    assert!(
        failure(&s, "many-artifacts")["detail"]
            .as_str()
            .unwrap()
            .contains("5000 artifacts")
    );
    assert_bound(&s, "long-summary", "summary");
    assert_bound(&s, "many-metrics", "metrics");
    // Streaming stops at the 4,097th name: the host holds no file per name.
    assert_bound(&s, "streamed-names", "artifacts");
    // One output may ask for at most max_spawned jobs: none is spawned,
    // and no refusal is written per request.
    assert_bound(&s, "too-many-jobs", "spawn-requests");
    let run = s["run_id"].as_str().unwrap();
    let evs = events(&state, run);
    let spawn_events = evs
        .iter()
        .filter(|e| e["event"].as_str().is_some_and(|k| k.contains("spawn")))
        .count();
    assert_eq!(spawn_events, 0, "no event per refused request");
    assert!(
        !s["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|st| st["id"].as_str().unwrap().starts_with("too-many-jobs."))
    );

    for id in ["control-name", "hosts-name"] {
        assert_eq!(failure(&s, id)["kind"], "plugin", "{id}");
        assert_eq!(failure(&s, id)["retryable"], false, "{id}");
    }
    assert!(failure(&s, "control-name").to_string().contains("U+001B"));
    assert!(
        failure(&s, "hosts-name")
            .to_string()
            .contains("is the host's")
    );

    // A 255-byte name is a file name: --out writes it and goes on.
    let long = stage(&s, "long-name");
    assert_eq!(long["status"], "succeeded", "{long}");
    assert!(out.join("long-name").join(&long_name).is_file());
    assert!(out.join("bystander/echo.txt").is_file(), "--out went on");

    assert_eq!(stage(&s, "bystander")["status"], "succeeded");
    eprintln!(
        "bounds: host peak RSS {} MB, database {} KB",
        peak >> 20,
        database_bytes(&state) >> 10
    );
    assert!(peak < PEAK_RSS, "host peak RSS {} MB", peak >> 20);
    assert!(
        database_bytes(&state) < DATABASE,
        "database {} MB",
        database_bytes(&state) >> 20
    );
    // Every reader still reads the directory.
    for args in [vec!["runs"], vec!["status", run], vec!["verify"]] {
        let o = host_with(&state, &args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn model_calls_of_every_kind_stop_at_the_bound_and_no_answer_overshoots_the_budget() {
    let server = ModelServer::start(|_| Reply::text("word"));
    let scratch = Scratch::new("calls");
    let state = scratch.path("state");
    let manifest = pipeline(
        &scratch,
        &format!(
            r#"
[models.m]
provider = "openai"
base_url = "{}"
model = "scripted"

[[stage]]
id = "big-batch"
plugin = "faulty"
models = ["m"]
max_model_calls = 5
config = {{ behaviour = {{ call-batch = {{ alias = "m", count = 200 }} }} }}

[[stage]]
id = "refused-loop"
plugin = "faulty"
max_model_calls = 1000
config = {{ behaviour = {{ call-models = {{ alias = "m", times = 1000000, keep_going = true }} }} }}

[[stage]]
id = "no-max-tokens"
plugin = "faulty"
models = ["m"]
budget = {{ tokens = 1000 }}
config = {{ behaviour = {{ call-models = {{ alias = "m", times = 1 }} }} }}
"#,
            server.url
        ),
    );
    let (o, peak) = host_measured(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);

    // A batch past max_model_calls is refused whole: nothing reaches the server.
    assert_bound(&s, "big-batch", "model-calls");
    // Refused calls count: a loop asking for an alias it lacks stops at the
    // bound, its refusals one record with a count.
    assert_bound(&s, "refused-loop", "model-calls");
    let calls = stage(&s, "refused-loop")["model_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["count"], 1000);

    // Without a max_tokens of its own, the call may generate only what the
    // stage's token budget has left after its prompt.
    assert_eq!(stage(&s, "no-max-tokens")["status"], "succeeded");
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        1,
        "only the budgeted stage reached the server"
    );
    let max_tokens = requests[0]["max_tokens"].as_u64().expect("capped");
    assert!((900..1000).contains(&max_tokens), "max_tokens {max_tokens}");

    eprintln!(
        "calls: host peak RSS {} MB, database {} KB",
        peak >> 20,
        database_bytes(&state) >> 10
    );
    assert!(peak < PEAK_RSS, "host peak RSS {} MB", peak >> 20);
    assert!(database_bytes(&state) < DATABASE);
}

#[test]
fn planted_links_never_lead_a_gate_or_a_commit_outside_the_workspace() {
    let scratch = Scratch::new("links");
    let state = scratch.path("state");
    std::fs::write(
        scratch.path("secret.txt"),
        "TOP SECRET outside the workspace",
    )
    .unwrap();
    let ws = scratch.path("ws");
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    std::fs::write(ws.join("notes.txt"), "notes inside").unwrap();
    std::fs::write(ws.join("sub/inner.txt"), "inner").unwrap();
    let body = |extra: &str| {
        format!(
            r#"
[pipeline]
name = "links"
task = "plant links"
workspace = "{}"
max_parallel = 4

[plugins.faulty]
wasm = "{}"

[gates.cat]
command = ["cat", "notes.txt"]

[gates.ls]
command = ["ls"]
dir = "sub"
{extra}"#,
            ws.display(),
            plugin("faulty").display()
        )
    };
    let manifest = scratch.write(
        "pipeline.toml",
        &body(
            r#"
[[stage]]
id = "leak-file"
plugin = "faulty"
workspace = "read-write"
gates = ["cat"]
config = { behaviour = { symlink = { links = { "/workspace/notes.txt" = "../secret.txt" }, gates = ["cat"] } } }

[[stage]]
id = "leak-dir"
plugin = "faulty"
workspace = "read-write"
gates = ["ls"]
config = { behaviour = { symlink = { links = { "/workspace/sub" = "../../../../../../../.." }, gates = ["ls"] } } }

[[stage]]
id = "leak-on-commit"
plugin = "faulty"
workspace = "read-write"
config = { behaviour = { symlink = { links = { "/workspace/up" = "../.." } } } }

[[stage]]
id = "link-within"
plugin = "faulty"
workspace = "read-write"
gates = ["ls"]
config = { behaviour = { symlink = { links = { "/workspace/sub/alias.txt" = "../notes.txt" }, gates = ["ls"] } } }
"#,
        ),
    );
    let o = host_with(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    for id in ["leak-file", "leak-dir", "leak-on-commit"] {
        let f = failure(&s, id);
        assert_eq!(f["kind"], "escape", "{id}: {f}");
        assert_eq!(stage(&s, id)["attempts"], 1, "{id}: not retried");
        assert!(
            stage(&s, id)["gate_runs"]
                .as_array()
                .is_none_or(|g| g.is_empty()),
            "{id}: no gate ran"
        );
    }
    assert!(failure(&s, "leak-file").to_string().contains("notes.txt"));
    assert!(failure(&s, "leak-dir").to_string().contains("'sub'"));
    // A link that stays inside is fine, gates and all.
    let within = stage(&s, "link-within");
    assert_eq!(within["status"], "succeeded", "{within}");
    // Nothing from outside reached the record.
    let run = s["run_id"].as_str().unwrap();
    let export = host_with(&state, &["export", run]);
    assert!(!stdout(&export).contains("TOP SECRET"));
    assert!(!stdout(&o).contains("TOP SECRET"));
    // The user's files are as they were: the run failed, nothing applied.
    assert!(!ws.join("up").exists());
    assert!(ws.join("sub").is_dir() && !ws.join("sub").is_symlink());

    // The next run works on the same files as if nothing had happened.
    let next = scratch.write(
        "next.toml",
        &body(
            r#"
[[stage]]
id = "gate"
plugin = "faulty"
workspace = "read-write"
gates = ["cat", "ls"]
config = { behaviour = { run-gates = { names = ["cat", "ls"] } } }
"#,
        ),
    );
    let o = host_with(&state, &["run", "--json", next.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(stage(&s, "gate")["status"], "succeeded");
}

#[test]
fn workspace_changes_are_bounded_in_files_and_bytes() {
    let scratch = Scratch::new("changes");
    let state = scratch.path("state");
    let ws = scratch.path("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("keep.txt"), "kept").unwrap();
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "changes"
task = "write a lot"
workspace = "{}"

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "many-files"
plugin = "faulty"
workspace = "read-write"
max_changed_files = 100
config = {{ behaviour = {{ many-files = {{ dir = "/workspace/gen", files = 5000, bytes = 1 }} }} }}

[[stage]]
id = "big-files"
plugin = "faulty"
workspace = "read-write"
max_changed_bytes = "64KiB"
config = {{ behaviour = {{ many-files = {{ dir = "/workspace/big", files = 3, bytes = 30000 }} }} }}

[[stage]]
id = "sparse"
plugin = "faulty"
workspace = "read-write"
config = {{ behaviour = {{ many-files = {{ dir = "/workspace/disk", files = 1, bytes = 16, sparse = 50000000000 }} }} }}

[[stage]]
id = "within"
plugin = "faulty"
workspace = "read-write"
max_changed_files = 100
config = {{ behaviour = {{ many-files = {{ dir = "/workspace/small", files = 100, bytes = 10 }} }} }}
"#,
            ws.display(),
            plugin("faulty").display()
        ),
    );
    let (o, peak) = host_measured(
        &state,
        &[
            "run",
            "--json",
            "--apply",
            "never",
            manifest.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert_bound(&s, "many-files", "changed-files");
    assert_bound(&s, "big-files", "changed-bytes");
    // 50 GB that cost the plugin nothing cost the host nothing either: it
    // is refused from its size, never read or hashed.
    assert_bound(&s, "sparse", "changed-bytes");
    assert_eq!(stage(&s, "within")["status"], "succeeded");
    assert!(peak < PEAK_RSS);
    assert!(database_bytes(&state) < DATABASE);
    // In words, each bound names the key that raises it.
    let status = stdout(&host_with(
        &state,
        &["status", s["run_id"].as_str().unwrap()],
    ));
    assert!(
        status.contains("raise it with max_changed_files"),
        "{status}"
    );
    assert!(
        status.contains("raise it with max_changed_bytes"),
        "{status}"
    );
}

#[test]
fn plugin_text_is_shown_on_the_terminal_never_obeyed() {
    let scratch = Scratch::new("escapes");
    let state = scratch.path("state");
    let manifest = pipeline(
        &scratch,
        r#"
[[stage]]
id = "sly"
plugin = "faulty"
config = { behaviour = { overflow = { summary = "done\u001b[2J\u001b[31m", log = "one\n2026-01-01T00:00:00Z  INFO host: run finished, all good\u001b]0;owned\u0007" } } }
"#,
    );
    let o = host_with(&state, &["run", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (what, text) in [("stdout", stdout(&o)), ("stderr", stderr(&o))] {
        assert!(
            !text.contains('\u{1b}'),
            "{what} holds a raw escape:\n{text}"
        );
        assert!(!text.contains('\u{7}'), "{what} holds a raw bell");
        assert!(
            !text.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
            "{what}: a plugin's log line faked one of the host's:\n{text}"
        );
    }
    assert!(
        stderr(&o).contains("one\\n2026-01-01T00:00:00Z"),
        "{}",
        stderr(&o)
    );
    let out = stdout(&o);
    let run = out
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split_whitespace().next())
        .map(|id| id.trim_end_matches(':'))
        .expect("the run's closing line");
    let status = host_with(&state, &["status", run]);
    assert!(!stdout(&status).contains('\u{1b}'));
    assert!(
        stdout(&status).contains("done\\x1b[2J"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn checkpoints_stop_at_their_quota_and_a_plugin_that_writes_on_is_stopped() {
    let scratch = Scratch::new("kv");
    let state = scratch.path("state");
    // 1 MiB values under distinct keys: the stage's 64 MiB quota is reached
    // at the 64th. One stage heeds the refusal, one writes on regardless.
    let manifest = pipeline(
        &scratch,
        r#"
[[stage]]
id = "flood"
plugin = "faulty"
retries = 2
config = { behaviour = { kv-flood = { keys = 100000, bytes = 1048576 } } }

[[stage]]
id = "heed"
plugin = "faulty"
config = { behaviour = { kv-flood = { keys = 100000, bytes = 1048576, heed = true } } }
"#,
    );
    let (o, peak) = host_measured(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert_bound(&s, "flood", "checkpoint-bytes");
    let heed = stage(&s, "heed");
    assert_eq!(heed["status"], "succeeded", "{heed}");
    let said = heed["summary"].as_str().unwrap();
    assert!(
        said.starts_with("wrote 63, then:")
            && said.contains("at most 67108864 bytes of checkpoints"),
        "{said}"
    );
    assert_eq!(stage(&s, "bystander")["status"], "succeeded");
    assert!(peak < PEAK_RSS, "peak {peak}");
    // Two stages at their quota, nothing beyond: 128 MiB kept, which the
    // file holds in up to about twice that until it is compacted (redb
    // frees a transaction's old pages only after the next one).
    let db = database_bytes(&state);
    assert!(db < 3 * 2 * (64 << 20), "state.redb is {db} bytes");
}

#[test]
fn every_memory_of_a_component_counts_against_its_limit() {
    let scratch = Scratch::new("memories");
    let state = scratch.path("state");
    // The real faulty plugin with three more memories of 16 MiB each in its
    // core modules (48 MiB that no single-memory limit would look at), then
    // 20 MB of output in its own: some 70 MB in all.
    let built = std::fs::read(plugin("faulty")).unwrap();
    let hostile = common::wasm_edit::with_extra_memories(&built, 3, 256);
    let wasm = scratch.path("many-memories.wasm");
    std::fs::write(&wasm, hostile).unwrap();
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "memories"
task = "take more than granted"

[plugins.many]
wasm = "{}"

[[stage]]
id = "at-64mib"
plugin = "many"
memory = "64MiB"
config = {{ behaviour = {{ big-output = {{ bytes = 20000000 }} }} }}

[[stage]]
id = "granted"
plugin = "many"
memory = "256MiB"
config = {{ behaviour = {{ big-output = {{ bytes = 20000000 }} }} }}
"#,
            wasm.display()
        ),
    );
    let (o, peak) = host_measured(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    let f = failure(&s, "at-64mib");
    assert_eq!(f["kind"], "out-of-memory", "{f}");
    assert_eq!(f["limit"], 64 << 20, "{f}");
    // With the memory granted, the same component runs: the limit counts
    // memories, it does not refuse them.
    assert_eq!(
        stage(&s, "granted")["status"],
        "succeeded",
        "{}",
        stage(&s, "granted")
    );
    assert!(peak < PEAK_RSS, "peak {peak}");
}
