//! `host plugin run`: one plugin outside any pipeline, its inputs and
//! grants from flags, recorded like any run; bad flags are refused before
//! anything is written.

mod common;

use common::*;

#[test]
fn one_plugin_runs_alone_with_given_inputs_and_its_run_is_recorded() {
    let scratch = Scratch::new("plugin-run");
    let state = scratch.path("state");
    let state = state.to_str().unwrap();
    let inputs = scratch.path("upstream");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::write(inputs.join("a.json"), r#"{"n": 1}"#).unwrap();
    std::fs::write(inputs.join("b.txt"), "bee").unwrap();
    let faulty = plugin("faulty");
    let out_dir = scratch.path("out");
    let out = host(&[
        "--state-dir",
        state,
        "plugin",
        "run",
        faulty.to_str().unwrap(),
        "--stage",
        "probe",
        "--task",
        "print things",
        "--input",
        &format!("given={}", inputs.display()),
        "--config",
        r#"{"behaviour": {"print": {"stdout": 2, "stderr": 1}}}"#,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("summary: printed 2 + 1 lines"),
        "{printed}"
    );
    assert!(printed.contains("given by --input given="), "{printed}");
    assert!(stderr(&out).contains("out 2"), "{}", stderr(&out));

    // The run is in the state directory like any other: its stages, its
    // given input's artifacts (a directory: one per file), its log.
    let runs = host(&["--state-dir", state, "runs", "--json"]);
    let runs: Vec<serde_json::Value> = stdout(&runs)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["pipeline"], "plugin-run", "{runs:?}");
    let shown = stdout(&host(&["--state-dir", state, "show", &run, "given"]));
    assert!(
        shown.contains("--- a.json (application/json") && shown.contains("--- b.txt (text/plain"),
        "{shown}"
    );
    let log = stdout(&host(&[
        "--state-dir",
        state,
        "show",
        &run,
        "probe",
        "--log",
    ]));
    assert!(
        log.contains("info [stdout] out 1") && log.contains("warn [stderr] err 1"),
        "{log}"
    );
    // The run's task is the one given.
    let status = host(&["--state-dir", state, "status", &run, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["run"]["options"]["task"], "print things", "{status}");
}

#[test]
fn bad_flags_are_refused_before_anything_is_written() {
    let scratch = Scratch::new("plugin-run-bad");
    let state = scratch.path("state");
    let faulty = plugin("faulty");
    let faulty = faulty.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["/no/such.wasm"], "no such component"),
        (&[faulty, "--input", "x"], "expected NAME=PATH"),
        (
            &[faulty, "--input", "x=/no/such/file"],
            "cannot read /no/such/file",
        ),
        (
            &[faulty, "--stage", "a.b"],
            "--stage \"a.b\": a stage name is",
        ),
        (
            &[faulty, "--input", "stage=/etc/hostname"],
            "the name is taken",
        ),
        (
            &[faulty, "--timeout", "5 parsecs"],
            "--timeout \"5 parsecs\"",
        ),
        (
            &[faulty, "--config", "[1]"],
            "--config must be a JSON object",
        ),
        (&[faulty, "--model", "small=nope"], "--model 'small=nope'"),
    ];
    for (args, expected) in cases {
        let mut full = vec!["--state-dir", state.to_str().unwrap(), "plugin", "run"];
        full.extend_from_slice(args);
        let out = host(&full);
        assert_eq!(out.status.code(), Some(10), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("error: error:"), "{}", stderr(&out));
        assert!(!state.exists(), "{args:?} wrote {}", state.display());
    }
}

#[test]
fn gates_and_sessions_are_granted_from_flags() {
    let scratch = Scratch::new("plugin-run-gates");
    let state = scratch.path("state");
    let ws = scratch.path("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("marker.txt"), "here").unwrap();
    let faulty = plugin("faulty");
    let out = host(&[
        "--state-dir",
        state.to_str().unwrap(),
        "plugin",
        "run",
        faulty.to_str().unwrap(),
        "--workspace",
        ws.to_str().unwrap(),
        "--gate",
        "ok=cat marker.txt",
        "--gate",
        r#"bad=["sh", "-c", "echo broken; exit 3"]"#,
        "--session",
        "plan",
        "--config",
        r#"{"behaviour": {"run-gates": {"names": ["ok", "bad"]}}}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("summary: 1/2 gates passed"), "{printed}");
    // The gates ran in the workspace: the file is there, the exit code kept.
    assert!(printed.contains(r#""output": "here""#), "{printed}");
    assert!(printed.contains(r#""exit_code": 3"#), "{printed}");
    assert!(printed.contains("gate bad FAILED"), "{printed}");

    // A gate needs a workspace to run in, and a command.
    let out = host(&[
        "plugin",
        "run",
        faulty.to_str().unwrap(),
        "--gate",
        "ok=true",
    ]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains("--workspace"), "{}", stderr(&out));
    let out = host(&[
        "plugin",
        "run",
        faulty.to_str().unwrap(),
        "--workspace",
        ws.to_str().unwrap(),
        "--gate",
        "empty=",
    ]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains("--gate empty: the command is empty"));
}

#[test]
fn a_plugin_lists_its_checkpoint_keys() {
    let scratch = Scratch::new("plugin-run-kv");
    let state = scratch.path("state");
    let out = host(&[
        "--state-dir",
        state.to_str().unwrap(),
        "plugin",
        "run",
        plugin("faulty").to_str().unwrap(),
        "--config",
        r#"{"behaviour": {"kv-keys": {"set": ["page-2", "page-1", "other"], "prefix": "page-"}}}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("summary: 2 keys"), "{printed}");
    assert!(printed.contains("\"page-1\",\n  \"page-2\""), "{printed}");
}

/// The same run from a spec file beside the plugin: its paths relative to
/// the file, flags over its values; a bad key is named with its line.
#[test]
fn a_spec_file_holds_the_flags_and_flags_override_it() {
    let scratch = Scratch::new("plugin-run-spec");
    let state = scratch.path("state");
    let state = state.to_str().unwrap();
    std::fs::create_dir_all(scratch.path("notes")).unwrap();
    scratch.write("notes/n.txt", "some notes");
    let spec = scratch.write(
        "run.toml",
        r#"stage = "probe"
task = "from the file"
config = { behaviour = "succeed" }
inputs = ["given=notes"]
timeout = "1m"
"#,
    );
    let faulty = plugin("faulty");
    let out_dir = scratch.path("out");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--state-dir",
            state,
            "plugin",
            "run",
            faulty.to_str().unwrap(),
            "--spec",
            spec.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        host(&args)
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("probe/echo.txt")).unwrap(),
        "from the file"
    );
    assert!(
        stdout(&out).contains("given by --input given="),
        "{}",
        stdout(&out)
    );
    // A flag wins over the file.
    let out = run(&["--task", "from the flag"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("probe/echo.txt")).unwrap(),
        "from the flag"
    );
    // A key the file may not have, at its line.
    std::fs::write(&spec, "stage = \"probe\"\ntaks = \"typo\"\n").unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("run.toml:2:1") && err.contains("taks"),
        "{err}"
    );
    // A gate without a workspace, wherever it came from, is refused.
    std::fs::write(&spec, "gates = [\"t=true\"]\n").unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(10));
    assert!(
        stderr(&out).contains("give --workspace"),
        "{}",
        stderr(&out)
    );
}
