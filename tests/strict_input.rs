//! Refused commands write nothing: no state directory, no database, no run
//! record. Read-only commands never create a state directory, so a
//! mistyped `--state-dir` is an error instead of an empty listing.

mod common;

use common::runs::host_with;
use common::*;
use std::path::Path;

fn assert_refused_leaving_nothing(state: &Path, args: &[&str], says: &str) {
    let o = host_with(state, args);
    assert_eq!(o.status.code(), Some(10), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    assert!(!state.exists(), "{args:?} created {}", state.display());
}

#[test]
fn reading_commands_never_create_a_state_directory() {
    let scratch = Scratch::new("no-state");
    let state = scratch.path("no/such/dir");
    for args in [
        vec!["runs"],
        vec!["status", "20260101-000000-abcdef"],
        vec!["show", "20260101-000000-abcdef", "a"],
        vec!["events", "20260101-000000-abcdef"],
        vec!["resume", "20260101-000000-abcdef"],
        vec!["verify"],
        vec!["gc", "--keep", "1"],
    ] {
        assert_refused_leaving_nothing(&state, &args, "does not exist: no run is recorded there");
    }
}

#[test]
fn a_run_refused_before_it_starts_leaves_no_state() {
    let scratch = Scratch::new("refused-run");
    let state = scratch.path("state");
    scratch.write("not.wasm", "this is not a component");
    let pipeline = |plugin: &str, build: &str| {
        scratch.write(
            "pipeline.toml",
            &format!(
                "[pipeline]\nname = \"p\"\ntask = \"t\"\n\n[plugins.x]\nwasm = \"{plugin}\"\n{build}\n[[stage]]\nid = \"a\"\nplugin = \"x\"\n"
            ),
        )
    };
    let bad = pipeline("not.wasm", "");
    assert_refused_leaving_nothing(&state, &["run", bad.to_str().unwrap()], "not a WebAssembly");
    let missing = pipeline("missing.wasm", "build = [\"false\"]\n");
    assert_refused_leaving_nothing(
        &state,
        &["run", "--no-build", missing.to_str().unwrap()],
        "missing.wasm does not exist, and --no-build forbids running its build command (`false`)",
    );
    let good = pipeline(plugin("noop").to_str().unwrap(), "");
    assert_refused_leaving_nothing(
        &state,
        &["run", "--replay", "nope", good.to_str().unwrap()],
        "no run is recorded there",
    );
    // The same pipeline, not refused, makes the state directory.
    let o = host_with(&state, &["run", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(state.join("state.redb").is_file());
    // Now it exists, a replay of an unknown run is refused by name.
    let o = host_with(&state, &["run", "--replay", "nope", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
}

#[test]
fn a_manifest_named_from_its_own_directory_builds() {
    let scratch = Scratch::new("own-dir");
    let noop = plugin("noop");
    scratch.write(
        "build.sh",
        &format!("#!/bin/sh\ncp '{}' built.wasm\n", noop.display()),
    );
    std::fs::set_permissions(
        scratch.path("build.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    scratch.write(
        "pipeline.toml",
        "[pipeline]\nname = \"p\"\ntask = \"t\"\n\n[plugins.x]\nwasm = \"built.wasm\"\nbuild = [\"./build.sh\"]\n\n[[stage]]\nid = \"a\"\nplugin = \"x\"\n",
    );
    let o = host_in(&scratch.dir, &["build", "pipeline.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(scratch.path("built.wasm").is_file());
}

#[test]
fn a_failed_stage_shows_why_and_conflicting_flags_are_refused() {
    let scratch = Scratch::new("show-failed");
    let state = scratch.path("state");
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            "[pipeline]\nname = \"p\"\ntask = \"t\"\n\n[plugins.faulty]\nwasm = \"{}\"\n\n[[stage]]\nid = \"a\"\nplugin = \"faulty\"\nconfig = {{ behaviour = \"fatal\" }}\n",
            plugin("faulty").display()
        ),
    );
    let o = host_with(
        &state,
        &["run", "--json", "--quiet", manifest.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(10));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = host_with(&state, &["run", "--json", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let run = summary(&o)["run_id"].as_str().unwrap().to_string();
    let o = host_with(&state, &["show", &run, "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("stage 'a' has no output: failed: ")
            && stdout(&o).contains("asked to fail"),
        "{}",
        stdout(&o)
    );
    let o = host_with(&state, &["show", &run, "a", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let o = host_with(&state, &["show", &run, "a", "--artifact", "x.txt"]);
    assert_eq!(o.status.code(), Some(10));
    assert!(stderr(&o).contains("asked to fail"), "{}", stderr(&o));
}

#[test]
fn a_plugin_that_does_not_load_or_build_is_reported_at_its_manifest_line() {
    let scratch = Scratch::new("located-load");
    let state = scratch.path("state");
    scratch.write("not.wasm", "this is not a component");
    let declared = scratch.write(
        "declared.toml",
        "[pipeline]\nname = \"p\"\ntask = \"t\"\n\n[plugins.x]\nwasm = \"not.wasm\"\n\n[[stage]]\nid = \"a\"\nplugin = \"x\"\n",
    );
    for command in ["validate", "run"] {
        let o = host_with(&state, &[command, declared.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("declared.toml:6:8: plugin 'x': ")
                && err.contains("is not a WebAssembly file")
                && err.contains("6 | wasm = \"not.wasm\""),
            "{command}: {err}"
        );
    }
    // Named by its path in a stage: the stage's `plugin` line.
    let by_path = scratch.write(
        "by-path.toml",
        "[pipeline]\nname = \"p\"\ntask = \"t\"\n\n[[stage]]\nid = \"a\"\nplugin = \"not.wasm\"\n",
    );
    let o = host_with(&state, &["validate", by_path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(10));
    assert!(
        stderr(&o).contains("by-path.toml:7:10: plugin 'not.wasm': "),
        "{}",
        stderr(&o)
    );
    // A failed build: its `build` line.
    let failing = scratch.write(
        "failing.toml",
        "[pipeline]\nname = \"p\"\ntask = \"t\"\n\n[plugins.x]\nwasm = \"out.wasm\"\nbuild = [\"false\"]\n\n[[stage]]\nid = \"a\"\nplugin = \"x\"\n",
    );
    let o = host_with(&state, &["build", failing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(10));
    assert!(
        stderr(&o).contains("failing.toml:7:9: plugin 'x': build command `false` failed"),
        "{}",
        stderr(&o)
    );
    assert!(!state.exists(), "refused commands wrote state");
}

#[test]
fn host_dev_of_a_file_that_does_not_exist_exits_at_once() {
    let scratch = Scratch::new("dev-missing");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["--state-dir", scratch.path("state").to_str().unwrap()])
        .args([
            "dev",
            scratch.path("nope.toml").to_str().unwrap(),
            "--runs",
            "1",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A minute is far more than it needs; before, it waited forever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("host dev kept waiting for a file that does not exist");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let o = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(10));
    assert!(
        stderr(&o).contains("nope.toml: cannot read pipeline file: No such file"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("waiting for a valid"),
        "{}",
        stderr(&o)
    );
}
