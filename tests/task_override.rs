//! `host run PIPELINE --task TEXT` and `--task-file F`: the seed's everyday
//! use ("pipeline_runner.py 'Add health endpoint'"). The run's task
//! replaces the manifest's, is recorded with the run (the text, not the
//! path), and a refused task writes nothing.

mod common;

use common::runs::host_with;
use common::*;

fn echo_pipeline(scratch: &Scratch) -> std::path::PathBuf {
    scratch.write(
        "pipeline.toml",
        &format!(
            "[pipeline]\nname = \"echo\"\ntask = \"the manifest's task\"\n\n[plugins.faulty]\nwasm = \"{}\"\n\n[[stage]]\nid = \"a\"\nplugin = \"faulty\"\nconfig = {{ behaviour = \"succeed\" }}\n",
            plugin("faulty").display()
        ),
    )
}

fn echoed(state: &std::path::Path, run: &str) -> String {
    let o = host_with(state, &["show", run, "a", "--artifact", "echo.txt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn the_task_given_on_the_command_line_is_the_runs_task_and_is_recorded() {
    let scratch = Scratch::new("task-flag");
    let state = scratch.path("state");
    let m = echo_pipeline(&scratch);
    let m = m.to_str().unwrap();

    let o = host_with(
        &state,
        &["run", "--json", m, "--task", "Add a health endpoint"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run = summary(&o)["run_id"].as_str().unwrap().to_string();
    assert_eq!(echoed(&state, &run), "Add a health endpoint");
    let export = host_with(&state, &["export", &run]);
    let record: serde_json::Value =
        serde_json::from_str(stdout(&export).lines().next().unwrap()).unwrap();
    assert_eq!(record["run"]["options"]["task"], "Add a health endpoint");

    // From a file: its text, recorded as text (the file may change later).
    let file = scratch.write("task.md", "Fix the login bug\n\nSteps: ...\n");
    let o = host_with(
        &state,
        &["run", "--json", m, "--task-file", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run = summary(&o)["run_id"].as_str().unwrap().to_string();
    std::fs::write(&file, "changed afterwards").unwrap();
    assert_eq!(echoed(&state, &run), "Fix the login bug\n\nSteps: ...\n");

    // Without the flag: the manifest's task, in a run of its own (a
    // different task is different work: nothing is reused across them).
    let o = host_with(&state, &["run", "--json", m]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = summary(&o)["run_id"].as_str().unwrap().to_string();
    assert_eq!(echoed(&state, &run), "the manifest's task");
}

#[test]
fn a_refused_task_is_named_and_writes_nothing() {
    let scratch = Scratch::new("task-refused");
    let state = scratch.path("state");
    let m = echo_pipeline(&scratch);
    let m = m.to_str().unwrap();
    let missing = scratch.path("missing.md");
    let bad_utf8 = scratch.path("bad.md");
    std::fs::write(&bad_utf8, b"ok \xff then").unwrap();
    let big = scratch.path("big.md");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((4 << 20) + 1)
        .unwrap();
    for (args, says) in [
        (vec!["--task", "  "], "--task: the task is empty"),
        (
            vec!["--task-file", missing.to_str().unwrap()],
            "missing.md: cannot read it",
        ),
        (
            vec!["--task-file", bad_utf8.to_str().unwrap()],
            "bad.md: not UTF-8 text: byte 3",
        ),
        (
            vec!["--task-file", big.to_str().unwrap()],
            "big.md: larger than 4 MiB",
        ),
        (
            vec!["--task", "a", "--task-file", big.to_str().unwrap()],
            "cannot be used with",
        ),
    ] {
        let mut full = vec!["run", m];
        full.extend_from_slice(&args);
        let o = host_with(&state, &full);
        assert_eq!(o.status.code(), Some(10), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(!state.exists(), "{args:?} wrote {}", state.display());
    }
}

#[test]
fn a_printed_run_id_works_from_any_directory() {
    // A project keeping its runs beside its manifest, as `host plugin new`
    // makes it; the commands run from elsewhere, with the user's default
    // state directory (where the index of state directories lives).
    let scratch = Scratch::new("run-lookup");
    let home_state = scratch.path("home-state");
    let project = scratch.path("project");
    std::fs::create_dir_all(&project).unwrap();
    let manifest = scratch.write(
        "project/pipeline.toml",
        &format!(
            "[pipeline]\nname = \"echo\"\ntask = \"t\"\nstate_dir = \".host-state\"\n\n[plugins.faulty]\nwasm = \"{}\"\n\n[[stage]]\nid = \"a\"\nplugin = \"faulty\"\nconfig = {{ behaviour = \"succeed\" }}\n",
            plugin("faulty").display()
        ),
    );
    let elsewhere = scratch.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let host_at = |cwd: &std::path::Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_host"))
            .arg("--cache-dir")
            .arg(cache_dir())
            .args(args)
            .current_dir(cwd)
            .env("HOST_STATE_DIR", &home_state)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let o = host_at(&project, &["run", "--json", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = summary(&o)["run_id"].as_str().unwrap().to_string();
    assert!(project.join(".host-state/state.redb").is_file());

    for args in [
        vec!["status", run.as_str()],
        vec!["show", run.as_str(), "a"],
        vec!["events", run.as_str()],
        vec!["export", run.as_str()],
    ] {
        let o = host_at(&elsewhere, &args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("note: run {run} is recorded in "))
                && stderr(&o).contains(".host-state"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let o = host_at(&elsewhere, &["show", &run, "a", "--artifact", "echo.txt"]);
    assert_eq!(stdout(&o), "t");

    // An id that is nowhere: says where it looked.
    let o = host_at(&elsewhere, &["status", "20260101-000000-abcdef"]);
    assert_eq!(o.status.code(), Some(10));
    assert!(
        stderr(&o).contains("no run '20260101-000000-abcdef' in state directory")
            && stderr(&o).contains("nor in the 1 other state directory runs were made in"),
        "{}",
        stderr(&o)
    );
    // --state-dir names the one place to look.
    let o = host_at(
        &elsewhere,
        &["--state-dir", home_state.to_str().unwrap(), "status", &run],
    );
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
}
