//! `host bench` runs its scenarios in the real binary and prints figures a
//! script can read. Small sizes: this checks the harness, not the machine.

mod common;

use common::{Scratch, host, plugin};
use std::process::Output;

/// A successful `host bench --json`'s output and its rows, one per line.
fn json_rows(out: &Output) -> (String, Vec<serde_json::Value>) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON row per line"))
        .collect();
    (stdout, rows)
}

#[test]
fn bench_prints_a_finite_figure_for_every_scenario() {
    let noop = plugin("noop");
    let scratch = Scratch::new("bench");
    let out = host(&[
        "bench",
        "commit",
        "instantiate",
        "cached-load",
        "resume",
        "dag",
        "model-call",
        "dev-reload",
        "ai-coding",
        "log-line",
        "workspace-copy",
        "retention",
        "--json",
        "--noop",
        noop.to_str().unwrap(),
        "--dir",
        scratch.dir.to_str().unwrap(),
        "--commit-stages",
        "20",
        "--resume-stages",
        "30",
        "--dag-stages",
        "60",
        "--workspace-files",
        "200",
        "--retention-runs",
        "25",
        "--repeats",
        "1",
        "--model-url",
        &common::local_llm(),
    ]);
    let (stdout, rows) = json_rows(&out);
    let scenario = |needle: &str| {
        rows.iter()
            .find(|r| r["scenario"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no row for {needle}: {stdout}"))
    };
    for needle in [
        "durable commit",
        "durable stage transition",
        "instantiate + call",
        "load no-op component",
        "resume a run with 30 finished stages",
        "60-stage DAG, max_parallel 2",
        "60-stage DAG, max_parallel 8",
        "60-stage DAG throughput, max_parallel 2",
        "60-stage DAG throughput, max_parallel 8",
        "60-stage DAG, max_parallel 32",
        "60-stage DAG throughput, max_parallel 32",
        "model call through the host",
        "host dev: changed component to stage started",
        "AI-coding example, host peak memory",
        "plugin log line",
        "workspace: cp -r (baseline)",
        "state.redb after 25 runs, no retention",
        "state.redb after 25 runs, retention keep 20",
        "state.redb after `host gc --keep 20` of 25 runs",
        "workspace: the run's copy",
        "workspace: an attempt's private copy",
        "workspace: what an attempt changed",
        "workspace: commit a changeset",
    ] {
        let value = scenario(needle)["value"].as_f64().unwrap();
        assert!(value.is_finite() && value > 0.0, "{needle}: {value}");
    }
}

#[test]
fn bench_without_its_component_says_how_to_build_it() {
    let scratch = Scratch::new("bench-missing");
    let missing = scratch.dir.join("nope.wasm");
    let out = host(&["bench", "commit", "--noop", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cargo build --release --target wasm32-wasip2 -p noop"),
        "{stderr}"
    );
}

#[test]
fn bench_polyglot_times_each_labelled_plugin() {
    // hello asks the alias in `config.model`, as the templates' stages do.
    let scratch = Scratch::new("bench-polyglot");
    let hello = plugin("hello");
    let out = host(&[
        "bench",
        "polyglot",
        "--json",
        "--noop",
        plugin("noop").to_str().unwrap(),
        "--plugin",
        &format!("rust={}", hello.display()),
        "--dir",
        scratch.dir.to_str().unwrap(),
        "--repeats",
        "1",
    ]);
    let (stdout, rows) = json_rows(&out);
    for needle in [
        "rust plugin: first load (compile)",
        "rust plugin: cached load",
        "rust plugin: instantiate + call",
    ] {
        let row = rows
            .iter()
            .find(|r| r["scenario"] == needle)
            .unwrap_or_else(|| panic!("no row {needle}: {stdout}"));
        let value = row["value"].as_f64().unwrap();
        assert!(value.is_finite() && value > 0.0, "{row}");
    }
}
