//! Preflight gates run as real processes (real ruff and pytest on a small
//! real Python project) and the workspace grant, each through the real host
//! with a real component asking.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small Python project: a module, its test, and a file outside the
/// workspace that no stage may reach.
struct Project {
    scratch: Scratch,
    workspace: PathBuf,
    state: PathBuf,
}

impl Project {
    fn new(label: &str) -> Self {
        let scratch = Scratch::new(label);
        let workspace = scratch.path("ws");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::write(
            workspace.join("calc.py"),
            "def add(a, b):\n    return a + b\n",
        )
        .unwrap();
        std::fs::write(
            workspace.join("test_calc.py"),
            "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
        )
        .unwrap();
        std::fs::write(scratch.path("secret.txt"), "outside the workspace").unwrap();
        let state = scratch.path("state");
        Project {
            scratch,
            workspace,
            state,
        }
    }

    /// Writes pipeline.toml: the gates below, then `stages`.
    fn manifest(&self, gates: &str, stages: &str) -> PathBuf {
        self.scratch.write(
            "pipeline.toml",
            &format!(
                "[pipeline]\nname = \"gates\"\ntask = \"check\"\nworkspace = \"ws\"\n\n\
                 [plugins.faulty]\nwasm = {:?}\n\n{gates}\n{stages}",
                plugin("faulty").display().to_string()
            ),
        )
    }

    fn host(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_host"))
            .args(["--cache-dir", cache_dir().to_str().unwrap()])
            .args(["--state-dir", self.state.to_str().unwrap()])
            .args(args)
            .env("PATH", path_with(&gate_tools()))
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn run(&self, manifest: &Path) -> (Output, serde_json::Value) {
        let out = self.host(&["run", "--json", manifest.to_str().unwrap()]);
        let summary = summary(&out);
        (out, summary)
    }

    fn artifact(&self, summary: &serde_json::Value, stage: &str, name: &str) -> serde_json::Value {
        let run = summary["run_id"].as_str().unwrap();
        let out = self.host(&["show", run, stage, "--artifact", name]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn record(&self, summary: &serde_json::Value, stage: &str) -> serde_json::Value {
        let run = summary["run_id"].as_str().unwrap();
        let out = self.host(&["show", run, stage, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn gate_stage(id: &str, granted: &[&str], asks: &[&str]) -> String {
    format!(
        "[[stage]]\nid = \"{id}\"\nplugin = \"faulty\"\ngates = {granted:?}\n\
         config = {{ behaviour = {{ run-gates = {{ names = {asks:?} }} }} }}\n"
    )
}

const PYTHON_GATES: &str = r#"
[gates.ruff]
command = ["ruff", "check", "--no-cache", "."]
timeout = "60s"

[gates.pytest]
command = ["pytest", "-x", "-q", "-p", "no:cacheprovider"]
timeout = "120s"
"#;

#[test]
fn real_ruff_and_pytest_pass_on_a_clean_project_and_fail_on_a_broken_one() {
    let p = Project::new("gates-real");
    let manifest = p.manifest(
        PYTHON_GATES,
        &gate_stage("verify", &["ruff", "pytest"], &["ruff", "pytest"]),
    );
    let (out, summary) = p.run(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let gates = p.artifact(&summary, "verify", "gates.json");
    assert_eq!(gates[0]["name"], "ruff");
    assert_eq!(gates[0]["passed"], true, "{gates}");
    assert_eq!(gates[1]["name"], "pytest");
    assert_eq!(gates[1]["passed"], true, "{gates}");
    assert!(
        gates[1]["output"].as_str().unwrap().contains("1 passed"),
        "{gates}"
    );

    // An unused import (ruff F401) and a wrong result (pytest).
    std::fs::write(
        p.workspace.join("calc.py"),
        "import os\n\n\ndef add(a, b):\n    return a - b\n",
    )
    .unwrap();
    let (out, summary) = p.run(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let gates = p.artifact(&summary, "verify", "gates.json");
    assert_eq!(gates[0]["passed"], false);
    assert_eq!(gates[0]["exit_code"], 1);
    assert!(
        gates[0]["output"].as_str().unwrap().contains("F401"),
        "{gates}"
    );
    assert_eq!(gates[1]["passed"], false);
    assert!(
        gates[1]["output"].as_str().unwrap().contains("1 failed"),
        "{gates}"
    );

    // Stored with the run, and in the event log.
    let record = p.record(&summary, "verify");
    assert_eq!(record["gate_runs"].as_array().unwrap().len(), 2);
    let run = summary["run_id"].as_str().unwrap();
    let events = stdout(&p.host(&["events", run, "--json"]));
    assert_eq!(events.matches("\"gate-ran\"").count(), 2, "{events}");
}

#[test]
fn a_missing_tool_is_a_failed_gate_not_a_skipped_one() {
    let p = Project::new("gates-missing");
    let manifest = p.manifest(
        "[gates.lint]\ncommand = [\"no-such-linter-xyz\", \".\"]\n",
        &gate_stage("verify", &["lint"], &["lint"]),
    );
    let (out, summary) = p.run(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let gates = p.artifact(&summary, "verify", "gates.json");
    assert_eq!(gates[0]["passed"], false);
    assert!(gates[0]["exit_code"].is_null());
    assert!(
        gates[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not installed"),
        "{gates}"
    );
}

#[test]
fn a_hanging_gate_is_killed_with_its_children() {
    let p = Project::new("gates-hang");
    // Outside the workspace: a gate runs in the attempt's private copy,
    // which is gone when the attempt ends.
    let pid_file = p.workspace.parent().unwrap().join("bg.pid");
    let manifest = p.manifest(
        &format!(
            "[gates.hang]\ncommand = [\"sh\", \"-c\", \"sleep 300 & echo $! > {}; wait\"]\ntimeout = \"1s\"\n",
            pid_file.display()
        ),
        &gate_stage("verify", &["hang"], &["hang"]),
    );
    let (out, summary) = p.run(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let gates = p.artifact(&summary, "verify", "gates.json");
    assert_eq!(gates[0]["passed"], false);
    assert!(
        gates[0]["reason"].as_str().unwrap().contains("timed out"),
        "{gates}"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
    // Killed means gone or a zombie waiting for init to reap it.
    let alive = std::fs::read_to_string(proc.join("stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false);
    assert!(
        !alive,
        "the gate's background child {} survived",
        pid.trim()
    );
}

#[test]
fn a_flood_of_output_is_capped_head_and_tail() {
    let p = Project::new("gates-flood");
    let manifest = p.manifest(
        "[gates.flood]\ncommand = [\"sh\", \"-c\", \"echo FIRST; head -c 20000000 /dev/zero | tr '\\\\0' x; echo; echo LAST\"]\nmax_output = \"8KiB\"\n",
        &gate_stage("verify", &["flood"], &["flood"]),
    );
    let (out, summary) = p.run(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let gates = p.artifact(&summary, "verify", "gates.json");
    let output = gates[0]["output"].as_str().unwrap();
    assert_eq!(
        gates[0]["passed"],
        true,
        "{}",
        &output[..200.min(output.len())]
    );
    assert!(output.len() < 9 << 10, "{} bytes kept", output.len());
    assert!(output.starts_with("FIRST"));
    assert!(output.trim_end().ends_with("LAST"));
    assert!(output.contains("bytes omitted"));
    let record = p.record(&summary, "verify");
    assert!(record["gate_runs"][0]["output_bytes"].as_u64().unwrap() > 20_000_000);
}

#[test]
fn a_stage_cannot_run_a_gate_it_is_not_granted() {
    let p = Project::new("gates-denied");
    let manifest = p.manifest(
        PYTHON_GATES,
        &gate_stage("verify", &["ruff"], &["ruff", "pytest"]),
    );
    let (out, summary) = p.run(&manifest);
    assert_eq!(out.status.code(), Some(1));
    let failure = stage(&summary, "verify")["failure"].to_string();
    assert!(failure.contains("not granted gate 'pytest'"), "{failure}");
}

#[test]
fn host_gates_checks_the_setup_before_a_run() {
    let p = Project::new("gates-cmd");
    let manifest = p.manifest(
        &format!("{PYTHON_GATES}\n[gates.missing]\ncommand = [\"no-such-tool-xyz\"]\n"),
        &gate_stage("verify", &["ruff"], &["ruff"]),
    );
    let out = p.host(&["gates", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let table = stdout(&out);
    let line = |gate: &str| {
        table
            .lines()
            .find(|l| l.starts_with(gate))
            .unwrap_or_else(|| panic!("no {gate} row:\n{table}"))
            .to_string()
    };
    assert!(line("ruff").contains("pass"), "{table}");
    assert!(line("pytest").contains("pass"), "{table}");
    assert!(line("missing").contains("FAIL"), "{table}");
    assert!(table.contains("1 of 3 gate(s) failed"), "{table}");
}

fn probe_stage(id: &str, access: &str, read: &[&str], write: &[&str], list: &[&str]) -> String {
    format!(
        "[[stage]]\nid = \"{id}\"\nplugin = \"faulty\"\nworkspace = \"{access}\"\n\
         config = {{ behaviour = {{ probe = {{ read = {read:?}, write = {write:?}, list = {list:?} }} }} }}\n"
    )
}

fn ok(report: &serde_json::Value, key: &str) -> bool {
    report[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .starts_with("ok")
}

#[test]
fn workspace_grants_none_read_only_and_read_write() {
    let p = Project::new("workspace");
    let stages = [
        probe_stage(
            "none",
            "none",
            &["/workspace/calc.py"],
            &["/workspace/x.txt"],
            &["/"],
        ),
        probe_stage(
            "readonly",
            "read-only",
            &["/workspace/calc.py"],
            &["/workspace/x.txt", "/workspace/calc.py"],
            &["/workspace"],
        ),
        probe_stage(
            "readwrite",
            "read-write",
            &["/workspace/calc.py"],
            &["/workspace/new.txt", "/workspace/calc.py"],
            &[],
        ),
    ];
    let manifest = p.manifest("", &stages.join("\n"));
    let (out, summary) = p.run(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));

    let none = p.artifact(&summary, "none", "probe.json");
    assert!(!ok(&none, "read /workspace/calc.py"), "{none}");
    assert!(!ok(&none, "write /workspace/x.txt"), "{none}");
    assert!(!ok(&none, "list /"), "{none}");

    let ro = p.artifact(&summary, "readonly", "probe.json");
    assert!(ok(&ro, "read /workspace/calc.py"), "{ro}");
    assert!(ok(&ro, "list /workspace"), "{ro}");
    assert!(!ok(&ro, "write /workspace/x.txt"), "{ro}");
    assert!(!ok(&ro, "write /workspace/calc.py"), "{ro}");

    let rw = p.artifact(&summary, "readwrite", "probe.json");
    assert!(ok(&rw, "write /workspace/new.txt"), "{rw}");
    assert_eq!(
        std::fs::read_to_string(p.workspace.join("new.txt")).unwrap(),
        "written by probe"
    );
    assert!(!p.workspace.join("x.txt").exists());

    // The host recorded what the read-write stage changed, as an artifact
    // later stages see and in the stage record.
    let changes = p.artifact(&summary, "readwrite", "workspace-changes.json");
    let paths: Vec<(&str, bool)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["before"].is_null()))
        .collect();
    assert_eq!(paths, vec![("calc.py", false), ("new.txt", true)]);
    let run = summary["run_id"].as_str().unwrap();
    let shown = stdout(&p.host(&["show", run, "readwrite"]));
    assert!(shown.contains("A new.txt"), "{shown}");
    assert!(shown.contains("M calc.py"), "{shown}");
}

#[test]
fn no_path_leads_out_of_the_workspace() {
    let p = Project::new("escape");
    std::os::unix::fs::symlink(
        p.scratch.path("secret.txt"),
        p.workspace.join("link-out.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../secret.txt", p.workspace.join("rel-link.txt")).unwrap();
    let secret = p.scratch.path("secret.txt");
    let manifest = p.manifest(
        "",
        &probe_stage(
            "escape",
            "read-write",
            &[
                "/workspace/../secret.txt",
                "/workspace/link-out.txt",
                "/workspace/rel-link.txt",
                secret.to_str().unwrap(),
                "/etc/passwd",
            ],
            &[
                "/workspace/../secret.txt",
                "/workspace/rel-link.txt",
                "/tmp/escaped.txt",
            ],
            &["/workspace/..", "/"],
        ),
    );
    let (out, summary) = p.run(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = p.artifact(&summary, "escape", "probe.json");
    for (key, value) in report.as_object().unwrap() {
        let v = value.as_str().unwrap();
        // Listing "/" may succeed inside the sandbox: it shows the
        // workspace mount and nothing of the host.
        if key == "list /" {
            assert!(!v.contains("etc"), "{key}: {v}");
            continue;
        }
        assert!(v.starts_with("error"), "{key} escaped: {v}");
    }
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "outside the workspace"
    );
    assert!(!Path::new("/tmp/escaped.txt").exists());
}

#[test]
fn manifest_mistakes_about_gates_and_workspace_are_located() {
    let p = Project::new("gates-manifest");
    let manifest = p.scratch.write(
        "pipeline.toml",
        &format!(
            r#"[pipeline]
name = "bad"
task = "t"
workspace = "ws"

[plugins.faulty]
wasm = {:?}

[gates.up]
command = ["ruff"]
dir = "../elsewhere"

[gates.empty]
command = []

[[stage]]
id = "s"
plugin = "faulty"
gates = ["up", "nope"]
workspace = "write-only"
"#,
            plugin("faulty").display().to_string()
        ),
    );
    let out = p.host(&["validate", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(10));
    let err = stderr(&out);
    assert!(
        err.contains("pipeline.toml:11:7: [gates.up] dir '../elsewhere'"),
        "{err}"
    );
    assert!(
        err.contains("pipeline.toml:14:11: [gates.empty] command is empty"),
        "{err}"
    );
    assert!(err.contains("unknown gate 'nope'"), "{err}");
    assert!(
        err.contains("workspace 'write-only' must be one of"),
        "{err}"
    );
}
