//! The host's layers, as the workspace's dependency graph: every layer crate
//! may use only the layers below it, and the manifest and the store build
//! without wasmtime. Cargo already refuses a cycle; this refuses an edge
//! that points up or skips into the wasm side from below.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Bottom up; each may depend on the ones listed for it and nothing else of
/// the host's own.
const LAYERS: &[(&str, &[&str])] = &[
    ("host-vocab", &[]),
    ("host-manifest", &["host-vocab"]),
    ("host-store", &["host-vocab"]),
    ("host-runtime", &["host-vocab", "host-manifest"]),
    // Files only: copying, changesets, diffs; no store, no wasm.
    ("host-workspace", &["host-vocab"]),
    (
        "host-capabilities",
        &["host-vocab", "host-manifest", "host-store", "host-runtime"],
    ),
    (
        "host",
        &[
            "host-vocab",
            "host-manifest",
            "host-store",
            "host-runtime",
            "host-capabilities",
            "host-workspace",
        ],
    ),
];

fn metadata() -> Value {
    // --no-deps: the workspace's own packages and what each declares, which
    // is where a layer edge lives (and needs nothing downloaded).
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Workspace package name -> names of its normal (non-dev, non-build)
/// dependencies.
fn normal_deps(meta: &Value) -> BTreeMap<String, BTreeSet<String>> {
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// Everything `root` reaches through the workspace's own packages.
fn transitive(deps: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_string()];
    while let Some(p) = stack.pop() {
        for d in deps.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn no_layer_uses_a_layer_above_it() {
    let deps = normal_deps(&metadata());
    for (layer, allowed) in LAYERS {
        let own: BTreeSet<&str> = deps[*layer]
            .iter()
            .map(String::as_str)
            .filter(|d| LAYERS.iter().any(|(l, _)| l == d))
            .collect();
        let extra: Vec<&&str> = own.iter().filter(|d| !allowed.contains(d)).collect();
        assert!(
            extra.is_empty(),
            "{layer} depends on {extra:?}, which is not below it (allowed: {allowed:?})"
        );
    }
}

#[test]
fn manifest_and_store_build_without_wasmtime() {
    let deps = normal_deps(&metadata());
    for layer in ["host-vocab", "host-manifest", "host-store"] {
        let all = transitive(&deps, layer);
        let wasm: Vec<&String> = all.iter().filter(|d| d.starts_with("wasmtime")).collect();
        assert!(wasm.is_empty(), "{layer} pulls in {wasm:?}");
    }
    // The vocabulary is plain data: serde and thiserror, nothing else.
    let vocab: BTreeSet<&str> = deps["host-vocab"].iter().map(String::as_str).collect();
    assert_eq!(vocab, BTreeSet::from(["serde", "thiserror"]));
}
