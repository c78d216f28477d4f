//! Durable state: a run killed at any point resumes without redoing finished
//! stages (proved by the requests a model server counted, which a plugin
//! cannot fake), ends with the same outputs as an uninterrupted run, and the
//! state directory stays readable by other processes meanwhile.

mod common;

use common::model_server::{ModelServer, Reply, last_user_message};
use common::runs::*;
use common::*;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

/// The greeting of the stage that sent a request: the hello plugin puts its
/// own greeting right after "Text:\n".
fn stage_of(request: &serde_json::Value) -> String {
    let text = last_user_message(request);
    let own = text.split("Text:\n").nth(1).unwrap_or_default();
    own.split(',').next().unwrap_or_default().to_string()
}

/// A deterministic server; the middle stage (Beta) answers slowly so a test
/// can kill the host while it waits.
fn server(beta_delay: Duration) -> ModelServer {
    ModelServer::start(move |req| {
        let stage = stage_of(req);
        let reply = Reply::text(&format!("{{\"mood\": \"{}\"}}", stage.to_lowercase()));
        if stage == "Beta" {
            reply.after(beta_delay)
        } else {
            reply
        }
    })
}

fn pipeline(scratch: &Scratch, model_url: &str) -> std::path::PathBuf {
    let hello = plugin("hello");
    scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "resumable"
task = "resume me"

[models.m]
provider = "openai"
base_url = "{model_url}"
model = "scripted"
max_retries = 0

[plugins.hello]
wasm = "{}"

[[stage]]
id = "alpha"
plugin = "hello"
models = ["m"]
config = {{ greeting = "Alpha", model = "m" }}

[[stage]]
id = "beta"
plugin = "hello"
after = ["alpha"]
models = ["m"]
config = {{ greeting = "Beta", model = "m" }}

[[stage]]
id = "gamma"
plugin = "hello"
after = ["beta"]
models = ["m"]
config = {{ greeting = "Gamma", model = "m" }}
"#,
            hello.display()
        ),
    )
}

/// blake3 of every artifact of every stage, from `host show --json`.
fn artifact_hashes(state: &std::path::Path, run: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for stage in ["alpha", "beta", "gamma"] {
        let o = host_with(state, &["show", "--json", run, stage]);
        assert!(o.status.success(), "{}", stderr(&o));
        let record: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        for a in record["output"]["artifacts"].as_array().unwrap() {
            out.push((
                stage.to_string(),
                a["name"].as_str().unwrap().to_string(),
                a["hash"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

fn uninterrupted_hashes() -> Vec<(String, String, String)> {
    let scratch = Scratch::new("uninterrupted");
    let srv = server(Duration::ZERO);
    let manifest = pipeline(&scratch, &srv.url);
    let state = scratch.path("state");
    let o = host_with(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    artifact_hashes(&state, &run_id_of(&stdout(&o)))
}

type Artifacts = Vec<(String, String, String)>;

/// `host run --json MANIFEST` with `HOST_FAILPOINT=failpoint`.
fn run_with_failpoint(
    state: &std::path::Path,
    manifest: &std::path::Path,
    failpoint: &str,
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["run", "--json", manifest.to_str().unwrap()])
        .env("HOST_FAILPOINT", failpoint)
        .output()
        .unwrap()
}

/// Crashes the host at an exact point with a failpoint, then resumes.
fn crash_at_failpoint_then_resume(
    failpoint: &str,
    resume_with_run: bool,
) -> (HashMap<String, usize>, Vec<serde_json::Value>, Artifacts) {
    let scratch = Scratch::new("failpoint");
    let srv = server(Duration::ZERO);
    let manifest = pipeline(&scratch, &srv.url);
    let state = scratch.path("state");
    let crashed = run_with_failpoint(&state, &manifest, failpoint);
    assert!(
        !crashed.status.success(),
        "the failpoint {failpoint} must abort the host"
    );
    assert!(
        stderr(&crashed).contains(&format!("failpoint {failpoint}")),
        "{}",
        stderr(&crashed)
    );
    let run = run_id_of(&stdout(&crashed));
    let o = if resume_with_run {
        host_with(&state, &["run", "--json", manifest.to_str().unwrap()])
    } else {
        host_with(&state, &["resume", "--json", &run])
    };
    assert!(
        o.status.success(),
        "resume failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
    let ev = events(&state, &run);
    (srv.count_by(stage_of), ev, artifact_hashes(&state, &run))
}

fn assert_each_stage_succeeded_once(ev: &[serde_json::Value]) {
    for stage in ["alpha", "beta", "gamma"] {
        assert_eq!(
            count(ev, "stage-succeeded", stage),
            1,
            "{stage} succeeded exactly once: {ev:?}"
        );
    }
    assert_eq!(ev.iter().filter(|e| e["event"] == "run-resumed").count(), 1);
    assert_eq!(ev.last().unwrap()["event"], "run-finished");
    assert_eq!(ev.last().unwrap()["status"], "succeeded");
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the host built with --features failpoints"
)]
fn killed_before_the_first_stage_commits_reruns_only_that_stage() {
    // Commits: 1 create run, 2 alpha started, 3 its model call sent, 4 the
    // call answered, 5 alpha succeeded.
    let (counts, ev, hashes) = crash_at_failpoint_then_resume("before-commit@5", false);
    assert_eq!(
        counts["Alpha"], 2,
        "alpha's result never committed: it runs again"
    );
    assert_eq!(counts["Beta"], 1);
    assert_eq!(counts["Gamma"], 1);
    assert_eq!(count(&ev, "stage-interrupted", "alpha"), 1);
    assert_each_stage_succeeded_once(&ev);
    assert_eq!(hashes, uninterrupted_hashes());
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the host built with --features failpoints"
)]
fn killed_right_after_the_first_stage_commits_never_reruns_it() {
    let (counts, ev, hashes) = crash_at_failpoint_then_resume("after-commit@5", true);
    assert_eq!(
        counts["Alpha"], 1,
        "alpha finished before the crash: never again"
    );
    assert_eq!(counts["Beta"], 1);
    assert_eq!(counts["Gamma"], 1);
    assert_eq!(count(&ev, "stage-started", "alpha"), 1);
    assert_each_stage_succeeded_once(&ev);
    assert_eq!(hashes, uninterrupted_hashes());
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the host built with --features failpoints"
)]
fn a_crash_at_any_commit_loses_no_call_and_reruns_no_finished_stage() {
    let expected = uninterrupted_hashes();
    let mut points = 0;
    for n in 2.. {
        let mut fired = false;
        for at in ["before-commit", "after-commit"] {
            let scratch = Scratch::new("every-commit");
            let srv = server(Duration::ZERO);
            let manifest = pipeline(&scratch, &srv.url);
            let state = scratch.path("state");
            let failpoint = format!("{at}@{n}");
            let crashed = run_with_failpoint(&state, &manifest, &failpoint);
            if crashed.status.success() {
                continue;
            }
            fired = true;
            points += 1;
            let run = run_id_of(&stdout(&crashed));
            // What the crashed process sent is on record: every request
            // the server saw, plus at most the one recorded as sent that
            // the crash stopped before it left.
            let (seen, on_record) = (srv.requests().len(), paid(&recorded_calls(&state, &run)));
            assert!(
                seen <= on_record && on_record <= seen + 1,
                "{failpoint}: server saw {seen}, record says {on_record}"
            );
            let o = host_with(&state, &["resume", "--json", &run]);
            assert!(o.status.success(), "{failpoint}: {}", stderr(&o));
            let ev = events(&state, &run);
            for stage in ["alpha", "beta", "gamma"] {
                assert_eq!(
                    count(&ev, "stage-succeeded", stage),
                    1,
                    "{failpoint}: {ev:?}"
                );
            }
            assert_eq!(artifact_hashes(&state, &run), expected, "{failpoint}");
            let (seen, on_record) = (srv.requests().len(), paid(&recorded_calls(&state, &run)));
            assert!(
                seen <= on_record && on_record <= seen + 1,
                "{failpoint}, resumed: server saw {seen}, record says {on_record}"
            );
        }
        if !fired {
            break;
        }
    }
    // 3 stages of 4 commits each, the run's creation and its end.
    assert!(points >= 2 * 12, "only {points} crash points were tried");
}

#[test]
fn sigkill_during_the_middle_stage_resumes_it_cleanly() {
    let scratch = Scratch::new("sigkill");
    let srv = server(Duration::from_secs(3));
    let manifest = pipeline(&scratch, &srv.url);
    let state = scratch.path("state");
    let (mut child, mut lines) = spawn_run(&state, &manifest, &[]);
    let run = run_id_of(&lines.next().unwrap().unwrap());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("\"stage-started\"") && line.contains("\"beta\"") {
            break;
        }
    }
    // Beta's model request is in flight (the server holds it for 3 s).
    while !srv.count_by(stage_of).contains_key("Beta") {
        std::thread::sleep(Duration::from_millis(20));
    }

    // Meanwhile, other processes can read the same state directory.
    let o = host_with(&state, &["status", "--json", &run]);
    assert!(o.status.success(), "status during a run: {}", stderr(&o));
    let status: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(status["run"]["status"], "running");
    assert_eq!(status["stages"][0]["status"], "succeeded");
    assert_eq!(status["stages"][1]["status"], "running");
    let o = host_with(&state, &["resume", &run]);
    assert_eq!(o.status.code(), Some(10), "a live run cannot be taken over");
    assert!(
        stderr(&o).contains("is being executed by process"),
        "{}",
        stderr(&o)
    );

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let o = host_with(&state, &["resume", "--json", &run]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let counts = srv.count_by(stage_of);
    assert_eq!(counts["Alpha"], 1, "alpha was done: not asked again");
    assert_eq!(counts["Beta"], 2, "beta was interrupted: asked again");
    assert_eq!(counts["Gamma"], 1);
    let ev = events(&state, &run);
    assert_eq!(count(&ev, "stage-interrupted", "beta"), 1);
    assert_each_stage_succeeded_once(&ev);
    assert_eq!(artifact_hashes(&state, &run), uninterrupted_hashes());
    // The resumed attempt is numbered after the killed one: its own number,
    // its own log, and `host status` counts both.
    let beta_attempts: Vec<u64> = ev
        .iter()
        .filter(|e| e["event"] == "stage-started" && e["stage"] == "beta")
        .map(|e| e["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(beta_attempts, [1, 2], "{ev:?}");
    let o = host_with(&state, &["status", "--json", &run]);
    let status: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(status["stages"][1]["attempts"], 2);
    assert_eq!(status["stages"][0]["attempts"], 1);

    // The listings agree.
    let o = host_with(&state, &["runs", "--json"]);
    let runs: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "succeeded");
    // Every request the server saw is recorded: three answered calls of
    // 18 tokens, and the one in flight when the host was killed, counted at
    // the worst case reserved before it was sent.
    let o = host_with(&state, &["status", "--json", &run]);
    let status: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let beta_calls = status["stages"][1]["model_calls"].as_array().unwrap();
    assert_eq!(beta_calls.len(), 2, "{beta_calls:?}");
    assert_eq!(beta_calls[0]["unsettled"], true, "{beta_calls:?}");
    assert!(beta_calls[1].get("unsettled").is_none());
    let seen: usize = srv.count_by(stage_of).values().sum();
    assert_eq!(seen, 4);
    let reserved = beta_calls[0]["input_tokens"].as_u64().unwrap()
        + beta_calls[0]["output_tokens"].as_u64().unwrap();
    assert!(reserved > 0);
    assert_eq!(runs[0]["tokens"], 18 * 3 + reserved);
}

#[test]
fn a_fresh_run_stays_fresh_when_resumed() {
    let scratch = Scratch::new("fresh-resume");
    let srv = server(Duration::from_secs(3));
    let manifest = pipeline(&scratch, &srv.url);
    let state = scratch.path("state");
    // A finished run: every stage is in the result cache.
    let first = host_with(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(srv.requests().len(), 3);
    // A --fresh run, killed while beta waits for its answer.
    let (mut child, mut lines) = spawn_run(&state, &manifest, &["--fresh"]);
    let run = run_id_of(&lines.next().unwrap().unwrap());
    while srv.count_by(stage_of).get("Beta").copied().unwrap_or(0) < 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Resumed without --fresh: the run keeps the choice it was started with.
    let o = host_with(&state, &["resume", "--json", &run]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let counts = srv.count_by(stage_of);
    assert_eq!(counts["Alpha"], 2, "alpha ran fresh before the kill");
    assert_eq!(
        counts["Beta"], 3,
        "beta: the first run, the killed attempt, the resumed one"
    );
    assert_eq!(
        counts["Gamma"], 2,
        "gamma ran fresh, not from the first run's cache"
    );
    let ev = events(&state, &run);
    assert_eq!(count(&ev, "stage-reused", "gamma"), 0, "{ev:?}");
}

#[test]
fn identical_stages_are_reused_across_runs_unless_fresh() {
    let scratch = Scratch::new("reuse");
    let srv = server(Duration::ZERO);
    let manifest = pipeline(&scratch, &srv.url);
    let state = scratch.path("state");
    let first = host_with(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert!(first.status.success());
    let second = host_with(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert!(second.status.success());
    assert_eq!(srv.requests().len(), 3, "the second run reused every stage");
    let s = summary(&second);
    assert!(
        stage(&s, "gamma")["reused"]
            .as_str()
            .unwrap()
            .starts_with("cache of run "),
        "{s}"
    );
    let ev = events(&state, &run_id_of(&stdout(&second)));
    assert_eq!(count(&ev, "stage-reused", "alpha"), 1);

    let fresh = host_with(
        &state,
        &["run", "--fresh", "--json", manifest.to_str().unwrap()],
    );
    assert!(fresh.status.success());
    assert_eq!(srv.requests().len(), 6, "--fresh runs everything again");
}

#[test]
fn a_damaged_state_file_is_a_clear_error() {
    let scratch = Scratch::new("damaged");
    let state = scratch.path("state");
    // A real database first, then damage it in two ways.
    let srv = server(Duration::ZERO);
    let manifest = pipeline(&scratch, &srv.url);
    assert!(
        host_with(&state, &["run", manifest.to_str().unwrap()])
            .status
            .success()
    );
    let db = state.join("state.redb");
    let bytes = std::fs::read(&db).unwrap();

    std::fs::write(&db, &bytes[..bytes.len() / 3]).unwrap();
    let o = host_with(&state, &["runs"]);
    assert_eq!(o.status.code(), Some(11), "truncated: {}", stderr(&o));
    assert!(stderr(&o).contains("is damaged"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    std::fs::write(
        &db,
        b"this is not a database, just some text that is long enough to look like a header",
    )
    .unwrap();
    let o = host_with(&state, &["runs"]);
    assert_eq!(o.status.code(), Some(11), "garbage: {}", stderr(&o));
    assert!(stderr(&o).contains("is damaged"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn unknown_runs_and_stages_are_named() {
    let scratch = Scratch::new("unknown");
    let state = scratch.path("state");
    // A state directory that is not there is named, and not made.
    let o = host_with(&state, &["status", "no-such-run"]);
    assert_eq!(o.status.code(), Some(10));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!state.exists());
    let noop = scratch.write(
        "noop.toml",
        &format!(
            "[pipeline]\nname = \"n\"\ntask = \"t\"\n\n[plugins.noop]\nwasm = \"{}\"\n\n[[stage]]\nid = \"a\"\nplugin = \"noop\"\n",
            plugin("noop").display()
        ),
    );
    let o = host_with(&state, &["run", noop.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = host_with(&state, &["status", "no-such-run"]);
    assert_eq!(o.status.code(), Some(10));
    assert!(
        stderr(&o).contains("no run 'no-such-run'"),
        "{}",
        stderr(&o)
    );
}

/// An interrupted run (its host aborted before alpha's success committed)
/// in `state`, and its id.
fn interrupted_run(state: &std::path::Path, manifest: &std::path::Path) -> String {
    let crashed = run_with_failpoint(state, manifest, "before-commit@5");
    assert!(!crashed.status.success());
    run_id_of(&stdout(&crashed))
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the host built with --features failpoints"
)]
fn of_two_resumes_started_together_exactly_one_runs() {
    let scratch = Scratch::new("two-resumes");
    // Beta answers slowly, so the winner still holds the run when the
    // loser tries to take it.
    let srv = server(Duration::from_millis(700));
    let manifest = pipeline(&scratch, &srv.url);
    let template = scratch.path("template");
    let run = interrupted_run(&template, &manifest);
    // A dead owner's run reads as interrupted everywhere, before anyone
    // resumes it.
    let o = host_with(&template, &["runs", "--json"]);
    assert!(stdout(&o).contains("\"interrupted\""), "{}", stdout(&o));
    let o = host_with(&template, &["status", "--json", &run]);
    let status: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(status["run"]["status"], "interrupted");
    assert_eq!(status["stages"][0]["status"], "interrupted");

    for round in 0..20 {
        let state = scratch.path(&format!("state-{round}"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::copy(template.join("state.redb"), state.join("state.redb")).unwrap();
        let start = || {
            Command::new(env!("CARGO_BIN_EXE_host"))
                .args(["--cache-dir", cache_dir().to_str().unwrap()])
                .args(["--state-dir", state.to_str().unwrap()])
                .args(["resume", &run])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start(), start());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        // The loser is refused while the winner runs, or (on a machine slow
        // enough that it claims only after the winner finished) finds
        // nothing to do; it never runs anything.
        let ran = |o: &std::process::Output| stderr(o).contains("resuming run");
        assert!(
            ran(&a) != ran(&b),
            "round {round}: exactly one resumes:\n{}\n{}",
            stderr(&a),
            stderr(&b)
        );
        let (winner, loser) = if ran(&a) { (&a, &b) } else { (&b, &a) };
        assert!(winner.status.success(), "{}", stderr(winner));
        let refused = loser.status.code() == Some(10)
            && stderr(loser).contains("is being executed by process");
        let nothing_to_do = loser.status.success() && stderr(loser).contains("already succeeded");
        assert!(refused || nothing_to_do, "round {round}: {}", stderr(loser));
        let ev = events(&state, &run);
        for stage in ["beta", "gamma"] {
            assert_eq!(
                count(&ev, "stage-started", stage),
                1,
                "round {round}: {ev:?}"
            );
        }
        assert_eq!(count(&ev, "stage-succeeded", "alpha"), 1);
        assert_eq!(ev.iter().filter(|e| e["event"] == "run-resumed").count(), 1);
    }
}

#[test]
fn a_killed_host_not_yet_reaped_is_dead_to_resume() {
    let scratch = Scratch::new("zombie");
    let srv = server(Duration::from_secs(2));
    let manifest = pipeline(&scratch, &srv.url);
    let state = scratch.path("state");
    let (mut child, mut lines) = spawn_run(&state, &manifest, &[]);
    let run = run_id_of(&lines.next().unwrap().unwrap());
    while !srv.count_by(stage_of).contains_key("Beta") {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed but not waited for: a zombie that still has the run's pid.
    let pid = child.id();
    kill_9(pid);
    std::thread::sleep(Duration::from_millis(200));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(stat.contains(") Z "), "{stat}");
    let o = host_with(&state, &["status", "--json", &run]);
    let status: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(status["run"]["status"], "interrupted");
    let o = host_with(&state, &["resume", "--json", &run]);
    assert!(o.status.success(), "{}", stderr(&o));
    child.wait().unwrap();
}

fn kill_9(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_read_only_state_directory_can_be_read() {
    let scratch = Scratch::new("read-only");
    let srv = server(Duration::ZERO);
    let manifest = pipeline(&scratch, &srv.url);
    let state = scratch.path("state");
    let o = host_with(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = run_id_of(&stdout(&o));
    // A read-only view of it: a read-only bind mount, which holds even for
    // root (file modes do not). Without the privilege to mount, a read-only
    // file is the closest an unprivileged user can get.
    let view = scratch.path("view");
    std::fs::create_dir_all(&view).unwrap();
    let mounted = Command::new("mount")
        .args(["--bind", state.to_str().unwrap(), view.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("mount")
            .args(["-o", "remount,bind,ro", view.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
    let dir = if mounted {
        view.clone()
    } else {
        let mut perms = std::fs::metadata(state.join("state.redb"))
            .unwrap()
            .permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(state.join("state.redb"), perms).unwrap();
        state.clone()
    };
    let checks = (|| {
        for args in [
            vec!["runs"],
            vec!["status", &run],
            vec!["show", &run, "beta"],
            vec!["events", &run],
        ] {
            let o = host_with(&dir, &args);
            if !o.status.success() {
                return Err(format!("{args:?}: {}", stderr(&o)));
            }
        }
        let o = host_with(&dir, &["run", manifest.to_str().unwrap()]);
        if mounted && !(o.status.code() == Some(11) && stderr(&o).contains("read-only")) {
            return Err(format!("a run on a read-only state: {}", stderr(&o)));
        }
        Ok(())
    })();
    if mounted {
        let _ = Command::new("umount").arg(&view).status();
    }
    checks.unwrap();
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the host built with --features failpoints"
)]
fn a_kill_while_the_database_is_created_leaves_a_usable_directory() {
    let scratch = Scratch::new("birth");
    let srv = server(Duration::ZERO);
    let manifest = pipeline(&scratch, &srv.url);
    let state = scratch.path("state");
    let crashed = run_with_failpoint(&state, &manifest, "database-built");
    assert!(
        stderr(&crashed).contains("failpoint database-built"),
        "{}",
        stderr(&crashed)
    );
    assert!(!state.join("state.redb").exists());
    let o = host_with(&state, &["runs"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = host_with(&state, &["run", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".state.redb"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_empty_state_file_is_damage_and_is_never_written_over() {
    let scratch = Scratch::new("empty-state");
    let srv = server(Duration::ZERO);
    let manifest = pipeline(&scratch, &srv.url);
    let state = scratch.path("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("state.redb"), b"").unwrap();
    for args in [
        vec!["runs"],
        vec!["run", "--new", manifest.to_str().unwrap()],
    ] {
        let o = host_with(&state, &args);
        assert_eq!(o.status.code(), Some(11), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("is damaged (the file is empty)"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(
        std::fs::metadata(state.join("state.redb")).unwrap().len(),
        0
    );
}

#[test]
fn a_flipped_byte_in_a_record_is_damage_that_every_command_and_host_verify_report() {
    let scratch = Scratch::new("bitflip");
    let state = scratch.path("state");
    let srv = server(Duration::ZERO);
    let manifest = pipeline(&scratch, &srv.url);
    let first = host_with(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert!(first.status.success(), "{}", stderr(&first));
    let run = summary(&first)["run_id"].as_str().unwrap().to_string();
    let clean = host_with(&state, &["verify"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(
        stdout(&clean).contains("no damage found"),
        "{}",
        stdout(&clean)
    );

    // Flip one bit in every copy of the recorded task, the text `host
    // resume` would follow: the JSON stays valid, the record does not.
    let db = state.join("state.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    let needle = b"resume me";
    let mut flipped = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        bytes[at + pos + 2] ^= 0x01; // "resume" -> "rdsume"
        flipped += 1;
        at += pos + needle.len();
    }
    assert!(flipped > 0);
    std::fs::write(&db, &bytes).unwrap();

    for args in [vec!["status", run.as_str()], vec!["resume", run.as_str()]] {
        let o = host_with(&state, &args);
        assert_eq!(o.status.code(), Some(11), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("damaged"), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    let o = host_with(&state, &["verify"]);
    assert_eq!(o.status.code(), Some(11), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("damaged: unreadable runs record {run}")),
        "{}",
        stdout(&o)
    );
}
