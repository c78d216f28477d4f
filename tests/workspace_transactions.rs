//! The transactional workspace, from the user's side: stages work on the
//! run's copy of the workspace, a failed or killed attempt's edits are
//! discarded (its retry sees the committed state), the user's directory
//! changes only when the run succeeds (or by `host apply`), and a file the
//! user changed in the meantime is a conflict that stops the apply.

mod common;

use common::runs::*;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A workspace of three files, and a pipeline of two editing stages.
struct Project {
    scratch: Scratch,
    ws: PathBuf,
    state: PathBuf,
}

impl Project {
    fn new(label: &str) -> Project {
        let scratch = Scratch::new(label);
        let ws = scratch.path("ws");
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::write(ws.join("src/a.txt"), "original\n").unwrap();
        std::fs::write(ws.join("keep.txt"), "kept\n").unwrap();
        std::fs::write(ws.join("gone.txt"), "to delete\n").unwrap();
        std::fs::create_dir_all(ws.join(".git")).unwrap();
        std::fs::write(ws.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        let state = scratch.path("state");
        Project { scratch, ws, state }
    }

    /// `first` edits src/a.txt and deletes gone.txt; `second` (after it)
    /// adds two.txt and edits src/a.txt again, with `second_extra` added to
    /// its edit behaviour.
    fn manifest(&self, second_extra: &str, pipeline_extra: &str) -> PathBuf {
        let text = format!(
            r#"
[pipeline]
name = "edits"
task = "edit files"
workspace = "ws"
{pipeline_extra}

[plugins.faulty]
wasm = "{wasm}"

[[stage]]
id = "first"
plugin = "faulty"
workspace = "read-write"
config = {{ behaviour = {{ edit = {{ read = ["/workspace/src/a.txt"], write = {{ "/workspace/src/a.txt" = "first\n", "/workspace/one.txt" = "one\n" }}, delete = ["/workspace/gone.txt"] }} }} }}

[[stage]]
id = "second"
plugin = "faulty"
after = ["first"]
workspace = "read-write"
retries = 2
config = {{ behaviour = {{ edit = {{ read = ["/workspace/src/a.txt", "/workspace/two.txt"], write = {{ "/workspace/src/a.txt" = "second\n", "/workspace/two.txt" = "two\n" }}{second_extra} }} }} }}

[[stage]]
id = "reader"
plugin = "faulty"
after = ["second"]
workspace = "read-only"
config = {{ behaviour = {{ probe = {{ read = ["/workspace/src/a.txt", "/workspace/two.txt"], list = ["/workspace"] }} }} }}
"#,
            wasm = plugin("faulty").display()
        );
        self.scratch.write("pipeline.toml", &text)
    }

    fn host(&self, args: &[&str]) -> std::process::Output {
        host_with(&self.state, args)
    }
}

/// Every file under `root` (the VCS directory left out) and its content.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".git" {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                out.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    out
}

/// A JSON artifact of a stage, by `host show --artifact`.
fn artifact(
    p: &Project,
    summary: &serde_json::Value,
    stage_id: &str,
    name: &str,
) -> serde_json::Value {
    let run = summary["run_id"].as_str().unwrap();
    let out = p.host(&["show", run, stage_id, "--artifact", name]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn expected_final_tree() -> BTreeMap<String, String> {
    [
        ("keep.txt", "kept\n"),
        ("one.txt", "one\n"),
        ("src/a.txt", "second\n"),
        ("two.txt", "two\n"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn a_failed_attempts_edits_are_discarded_and_its_retry_sees_the_committed_state() {
    let p = Project::new("ws-retry");
    let manifest = p.manifest(", fail_until = 3", "");
    let out = p.host(&["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sum = summary(&out);
    assert_eq!(stage(&sum, "second")["attempts"], 3);
    // Attempt 3 saw what `first` committed, not what attempts 1 and 2 wrote.
    let saw = artifact(&p, &sum, "second", "seen.json");
    assert_eq!(saw["/workspace/src/a.txt"], "first\n", "{saw}");
    assert_eq!(saw["/workspace/two.txt"], serde_json::Value::Null, "{saw}");
    assert_eq!(saw["attempt-kind"], "retry", "the plugin is told");
    let first = artifact(&p, &sum, "first", "seen.json");
    assert_eq!(first["attempt-kind"], "first");
    // A later read-only stage sees the run's committed changes.
    let probed = artifact(&p, &sum, "reader", "probe.json");
    assert_eq!(
        probed["read /workspace/src/a.txt"], "ok: second\n",
        "{probed}"
    );
    assert!(
        probed["list /workspace"]
            .as_str()
            .unwrap()
            .contains("two.txt"),
        "{probed}"
    );
    // The run succeeded: its changes are in the user's directory, the VCS
    // directory untouched, the run's copy gone.
    assert_eq!(tree(&p.ws), expected_final_tree());
    assert_eq!(
        std::fs::read_to_string(p.ws.join(".git/HEAD")).unwrap(),
        "ref: refs/heads/main\n"
    );
    assert!(stderr(&out).contains("applied run"), "{}", stderr(&out));
    let run = sum["run_id"].as_str().unwrap();
    let leftovers = p.state.join("workspaces");
    assert!(
        !leftovers.exists() || std::fs::read_dir(&leftovers).unwrap().next().is_none(),
        "the run's copy of the workspace was removed"
    );
    let evs = events(&p.state, run);
    assert_eq!(
        count(&evs, "workspace-changed", "second"),
        1,
        "one changeset: the success's"
    );
    assert!(evs.iter().any(|e| e["event"] == "workspace-applied"));
}

#[test]
fn a_failed_run_leaves_the_users_files_as_they_were() {
    let p = Project::new("ws-failed");
    let manifest = p.manifest(", fail_until = 99", "");
    let before = tree(&p.ws);
    let out = p.host(&["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        tree(&p.ws),
        before,
        "nothing of the run reached the workspace"
    );
    let run = summary(&out)["run_id"].as_str().unwrap().to_string();
    // What did succeed is on record: `first`'s changes can be seen.
    let diff = p.host(&["diff", &run, "first"]);
    assert!(diff.status.success(), "{}", stderr(&diff));
    let text = stdout(&diff);
    assert!(
        text.contains("--- a/src/a.txt\n+++ b/src/a.txt\n@@ -1 +1 @@\n-original\n+first\n"),
        "{text}"
    );
    assert!(text.contains("deleted file mode"), "{text}");
    let none = p.host(&["diff", &run, "second"]);
    assert!(stdout(&none).is_empty(), "{}", stdout(&none));
    let unknown = p.host(&["diff", &run, "nope"]);
    assert_eq!(unknown.status.code(), Some(10), "{}", stderr(&unknown));
}

#[test]
fn a_stage_killed_mid_write_leaves_the_workspace_unchanged_and_the_resumed_run_ends_the_same() {
    let p = Project::new("ws-kill");
    let manifest = p.manifest(", sleep_ms = 60000", "");
    let before = tree(&p.ws);
    let (mut child, _lines) = spawn_run(&p.state, &manifest, &[]);
    // `second` has written its files in its private copy and sleeps.
    let attempts = p.state.join("workspaces");
    common::http::wait_for(
        "second's edits in its copy",
        Duration::from_secs(60),
        || {
            let runs = std::fs::read_dir(&attempts).ok()?;
            runs.flatten()
                .filter_map(|r| std::fs::read_dir(r.path().join("attempts")).ok())
                .flatten()
                .flatten()
                .any(|a| a.path().join("two.txt").is_file())
                .then_some(())
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        tree(&p.ws),
        before,
        "the workspace is unchanged until the run ends"
    );

    let runs = p.host(&["runs", "--json"]);
    let run: serde_json::Value =
        serde_json::from_str(stdout(&runs).lines().next().unwrap()).unwrap();
    let run = run["id"].as_str().unwrap().to_string();
    let resumed = p.host(&["resume", "--json", &run]);
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let sum = summary(&resumed);
    // The resumed attempt saw the committed state, not the killed one's files.
    let saw = artifact(&p, &sum, "second", "seen.json");
    assert_eq!(saw["/workspace/src/a.txt"], "first\n", "{saw}");
    assert_eq!(saw["/workspace/two.txt"], serde_json::Value::Null, "{saw}");
    assert_eq!(saw["attempt-kind"], "resume", "the plugin is told: {saw}");
    assert_eq!(tree(&p.ws), expected_final_tree());

    // The same pipeline, never interrupted, ends with the same tree.
    let q = Project::new("ws-nokill");
    let out = q.host(&["run", "--json", q.manifest("", "").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(tree(&q.ws), tree(&p.ws));
}

#[test]
fn apply_never_keeps_the_changes_for_host_apply_which_refuses_a_conflict() {
    let p = Project::new("ws-apply");
    let manifest = p.manifest("", "apply = \"never\"");
    let before = tree(&p.ws);
    let out = p.host(&["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(tree(&p.ws), before, "apply = never");
    assert!(stderr(&out).contains("host apply"), "{}", stderr(&out));
    let run = summary(&out)["run_id"].as_str().unwrap().to_string();

    let stat = p.host(&["diff", "--stat", &run]);
    assert_eq!(
        stdout(&stat),
        "deleted   gone.txt\nadded     one.txt\nmodified  src/a.txt\nadded     two.txt\n"
    );
    let diff = stdout(&p.host(&["diff", &run]));
    assert!(
        diff.contains("@@ -1 +1 @@\n-original\n+second\n"),
        "folded over both stages: {diff}"
    );
    api_shows_the_diffs(&p.state, &run);

    // The user edits a file the run changed: applying is refused, whole.
    std::fs::write(p.ws.join("src/a.txt"), "mine\n").unwrap();
    let refused = p.host(&["apply", &run]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("src/a.txt was changed since the run began"),
        "{}",
        stderr(&refused)
    );
    assert!(!p.ws.join("two.txt").exists(), "nothing written");
    assert!(p.ws.join("gone.txt").exists(), "nothing deleted");

    // Put back, it applies; again, it changes nothing.
    std::fs::write(p.ws.join("src/a.txt"), "original\n").unwrap();
    let applied = p.host(&["apply", &run]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert_eq!(tree(&p.ws), expected_final_tree());
    let again = p.host(&["apply", &run]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("0 file(s) written"),
        "{}",
        stderr(&again)
    );

    // --force writes over the user's edit.
    std::fs::write(p.ws.join("two.txt"), "theirs\n").unwrap();
    assert_eq!(p.host(&["apply", &run]).status.code(), Some(4));
    let forced = p.host(&["apply", "--force", &run]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert_eq!(tree(&p.ws), expected_final_tree());
}

#[test]
fn a_run_whose_files_the_user_changed_meanwhile_succeeds_but_is_not_applied() {
    let p = Project::new("ws-meanwhile");
    let manifest = p.manifest(", sleep_ms = 1500", "");
    let (mut child, lines) = spawn_run(&p.state, &manifest, &[]);
    // While `second` runs, the user edits a file the run changes.
    for line in lines {
        let line = line.unwrap();
        if line.contains("stage-started") && line.contains("\"second\"") {
            std::fs::write(p.ws.join("src/a.txt"), "edited meanwhile\n").unwrap();
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(4));
    assert_eq!(
        std::fs::read_to_string(p.ws.join("src/a.txt")).unwrap(),
        "edited meanwhile\n"
    );
    assert!(!p.ws.join("two.txt").exists(), "nothing written");
}

/// The dashboard's API: each stage's changes and the run's, with their
/// unified diffs, and whether they were applied.
fn api_shows_the_diffs(state: &Path, run: &str) {
    let serve = common::serve::Serve::start(state);
    let base = serve.url.as_str();
    let stage = common::http::get(base, &format!("/api/runs/{run}/stages/second/diff")).json();
    let a = stage
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "src/a.txt")
        .unwrap();
    assert_eq!(a["change"], "modified");
    assert!(
        a["patch"].as_str().unwrap().contains("-first\n+second\n"),
        "{a}"
    );
    let whole = common::http::get(base, &format!("/api/runs/{run}/diff")).json();
    let paths: Vec<&str> = whole["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["gone.txt", "one.txt", "src/a.txt", "two.txt"]);
    assert_eq!(whole["applied"], serde_json::Value::Null, "apply = never");
    let detail = common::http::get(base, &format!("/api/runs/{run}")).json();
    assert_eq!(detail["workspace"]["changed"], 5, "{}", detail["workspace"]);
}
