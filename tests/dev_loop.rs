//! `host dev` in a real process: swapping a plugin's component re-runs only
//! that stage and its dependants; a broken component or an invalid manifest
//! keeps the last good version serving; a manifest edit re-runs what it
//! touched.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Dev {
    scratch: Scratch,
    child: Child,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn manifest(c_extra: &str) -> String {
    format!(
        r#"[pipeline]
name = "dev"
task = "develop"

[plugins.pa]
wasm = "a.wasm"

[plugins.pb]
wasm = "b.wasm"

[plugins.pc]
wasm = "c.wasm"

[[stage]]
id = "a"
plugin = "pa"

[[stage]]
id = "b"
plugin = "pb"
after = ["a"]
config = {{ behaviour = "succeed" }}

[[stage]]
id = "c"
plugin = "pc"
after = ["b"]
config = {{ note = "first"{c_extra} }}
"#
    )
}

impl Dev {
    fn start(label: &str) -> Dev {
        let scratch = Scratch::new(label);
        for f in ["a.wasm", "b.wasm", "c.wasm"] {
            std::fs::copy(plugin("noop"), scratch.path(f)).unwrap();
        }
        scratch.write("p.toml", &manifest(""));
        let child = Command::new(env!("CARGO_BIN_EXE_host"))
            .args(["--cache-dir", cache_dir().to_str().unwrap()])
            .args(["--state-dir", scratch.path("state").to_str().unwrap()])
            .args(["dev", "--json", "--debounce", "150ms"])
            .arg(scratch.path("p.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap();
        let dev = Dev { scratch, child };
        dev.wait_runs(1);
        dev
    }

    fn host(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_host"))
            .args(["--state-dir", self.scratch.path("state").to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs so far, oldest first, once `n` of them have finished.
    fn wait_runs(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = stdout(&self.host(&["runs", "--json"]));
            let mut runs: Vec<serde_json::Value> = out
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            // Run ids order by the second only: order by start time.
            runs.sort_by_key(|r| r["started_ms"].as_u64());
            if runs.len() >= n && runs.iter().all(|r| r["status"] != "running") {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "only {} run(s) after 90 s",
                runs.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn events(&self, run: &str) -> Vec<serde_json::Value> {
        stdout(&self.host(&["events", run, "--json"]))
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Which stages ran (started) and which came from the cache in `run`.
    fn ran_and_reused(&self, run: &str) -> (Vec<String>, Vec<String>) {
        let ev = self.events(run);
        let pick = |kind: &str| {
            let mut v: Vec<String> = ev
                .iter()
                .filter(|e| e["event"] == kind)
                .map(|e| e["stage"].as_str().unwrap().to_string())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        (pick("stage-started"), pick("stage-reused"))
    }

    fn replace(&self, name: &str, with: &Path) {
        // Write a temporary file and rename it over: what build tools do.
        let tmp = self.scratch.path(&format!("{name}.new"));
        std::fs::copy(with, &tmp).unwrap();
        std::fs::rename(&tmp, self.scratch.path(name)).unwrap();
    }

    fn summary_of(&self, run: &str, stage: &str) -> String {
        let out = self.host(&["show", run, stage, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["output"]["summary"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn id(run: &serde_json::Value) -> String {
    run["id"].as_str().unwrap().to_string()
}

#[test]
fn swapping_a_component_reruns_only_that_stage_and_its_dependants() {
    let dev = Dev::start("dev-swap");
    dev.replace("b.wasm", &plugin("faulty"));
    let runs = dev.wait_runs(2);
    let second = id(&runs[1]);
    let (ran, reused) = dev.ran_and_reused(&second);
    assert_eq!(ran, vec!["b", "c"], "only b and its dependant ran");
    assert_eq!(reused, vec!["a"], "a came from the first run");
    assert_eq!(
        dev.summary_of(&second, "b"),
        "succeeded",
        "the new component's output is used"
    );
    assert_eq!(runs[1]["status"], "succeeded");
}

#[test]
fn broken_changes_keep_the_last_good_version_serving() {
    let mut dev = Dev::start("dev-broken");
    // A component that is not wasm: reported, the old one keeps serving.
    let garbage = dev.scratch.write("garbage.wasm", "this is not a component");
    dev.replace("b.wasm", &garbage);
    // An invalid manifest: reported, the last good one is kept.
    std::thread::sleep(Duration::from_millis(600));
    dev.scratch.write("p.toml", "[pipeline]\nname = \"dev\"\n");
    std::thread::sleep(Duration::from_millis(600));
    // A valid edit of c's config: a new run with the old b, only c re-running.
    dev.scratch.write("p.toml", &manifest(", more = 1"));
    let runs = dev.wait_runs(2);
    let last = id(runs.last().unwrap());
    let (ran, reused) = dev.ran_and_reused(&last);
    assert_eq!(ran, vec!["c"], "only the stage whose config changed ran");
    assert_eq!(reused, vec!["a", "b"]);
    assert_eq!(
        dev.summary_of(&last, "b"),
        "b done",
        "the old b (noop) still serves"
    );
    let _ = dev.child.kill();
    let out = std::mem::replace(&mut dev.child, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("keeping the previous version of plugin 'pb'"),
        "{err}"
    );
    assert!(err.contains("keeping the last good version"), "{err}");
}
