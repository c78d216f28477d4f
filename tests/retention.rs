//! Old runs let go, on demand (`host gc`) and by a pipeline's retention:
//! what goes is only what nothing kept still needs, a dry run removes
//! nothing, and the runs that stay read, export and verify as before.

mod common;

use common::measure::database_bytes;
use common::runs::host_with;
use common::*;
use std::path::{Path, PathBuf};

/// A pipeline of a stage that echoes the task (an artifact each run of its
/// own), one that keeps a checkpoint, and one that logs.
fn manifest(scratch: &Scratch, file: &str, name: &str, task: &str, extra: &str) -> PathBuf {
    scratch.write(
        file,
        &format!(
            r#"
[pipeline]
name = "{name}"
task = "{task}"
{extra}

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "echo"
plugin = "faulty"
config = {{ behaviour = "succeed" }}

[[stage]]
id = "checkpoint"
plugin = "faulty"
config = {{ behaviour = {{ checkpoint = {{ succeed_at = 1 }} }} }}

[[stage]]
id = "chatty"
plugin = "faulty"
after = ["echo"]
config = {{ behaviour = {{ log-flood = {{ count = 50 }} }} }}
"#,
            plugin("faulty").display()
        ),
    )
}

fn run(state: &Path, manifest: &Path) -> (String, String) {
    let o = host_with(state, &["run", "--json", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    (
        summary(&o)["run_id"].as_str().unwrap().to_string(),
        stderr(&o),
    )
}

/// The ids `host runs` lists, oldest first.
fn listed(state: &Path) -> Vec<String> {
    let o = host_with(state, &["runs", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn gc(state: &Path, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["gc", "--json"];
    full.extend_from_slice(args);
    let o = host_with(state, &full);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

#[test]
fn gc_removes_old_runs_and_only_what_nothing_kept_names() {
    let scratch = Scratch::new("gc");
    let state = scratch.path("state");
    let mut ids = Vec::new();
    for task in ["one", "two", "one"] {
        // The third run's echo is the first's, from the result cache.
        let m = manifest(&scratch, "pipeline.toml", "kept", task, "");
        ids.push(run(&state, &m).0);
    }
    let logs = |id: &str| state.join("logs").join(id);
    assert!(logs(&ids[0]).is_dir(), "attempt logs are kept per run");

    let o = host_with(&state, &["gc"]);
    assert_eq!(o.status.code(), Some(10));
    assert!(stderr(&o).contains("--keep N"), "{}", stderr(&o));

    // Dry: says what would go, removes nothing.
    let before = database_bytes(&state);
    let dry = gc(&state, &["--keep", "1", "--dry-run"]);
    let mut expired = vec![ids[0].clone(), ids[1].clone()];
    expired.sort();
    assert_eq!(dry["runs"], serde_json::json!(expired));
    assert!(dry["records"].as_u64().unwrap() > 0, "{dry}");
    assert!(dry["log_bytes"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(listed(&state), ids);
    assert!(logs(&ids[0]).is_dir());

    let done = gc(&state, &["--keep", "1"]);
    assert_eq!(done["runs"], dry["runs"]);
    assert_eq!(done["blobs"], dry["blobs"]);
    assert_eq!(listed(&state), [ids[2].clone()]);
    assert!(!logs(&ids[0]).exists() && !logs(&ids[1]).exists());
    assert!(database_bytes(&state) <= before, "compacted");
    // "two"'s echo went with it; "one"'s stays, the kept run names it.
    assert!(done["blobs"].as_u64().unwrap() >= 1, "{done}");
    let o = host_with(&state, &["show", &ids[0]]);
    assert_eq!(o.status.code(), Some(10), "{}", stdout(&o));
    let o = host_with(&state, &["export", &ids[2]]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("stage-reused"), "{}", stdout(&o));
    let o = host_with(&state, &["verify"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));

    // The kept run was served from the removed run's results: they stay,
    // and serve the next run too.
    let m = manifest(&scratch, "pipeline.toml", "kept", "one", "");
    let o = host_with(&state, &["run", "--json", m.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&o);
    let echo = stage(&s, "echo");
    assert_eq!(echo["reused"], format!("cache of run {}", ids[0]), "{echo}");

    // Nothing more to remove is said, not an error.
    let none = gc(&state, &["--keep", "5"]);
    assert_eq!(none["runs"], serde_json::json!([]));
}

#[test]
fn retention_keeps_the_newest_runs_of_its_own_pipeline() {
    let scratch = Scratch::new("retention");
    let state = scratch.path("state");
    let other = manifest(&scratch, "other.toml", "other", "theirs", "");
    let (theirs, _) = run(&state, &other);
    let mut mine = Vec::new();
    for i in 0..4 {
        let m = manifest(
            &scratch,
            "pipeline.toml",
            "mine",
            &format!("task {i}"),
            "retention = { keep = 2 }",
        );
        let (id, err) = run(&state, &m);
        if i >= 2 {
            assert!(
                err.contains("retention: removed 1 older run(s) of 'mine'"),
                "{err}"
            );
        }
        mine.push(id);
    }
    // Another pipeline's runs are not this one's to let go.
    assert_eq!(listed(&state), [theirs, mine[2].clone(), mine[3].clone()]);
    assert!(!state.join("logs").join(&mine[0]).exists());
    let o = host_with(&state, &["verify"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}
