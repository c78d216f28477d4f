//! Valid manifests pinned as the plans they resolve to: every default and
//! every resolved value visible in `plans/*.json`, so a change of a default
//! or of resolution shows in review. `BLESS=1 cargo test -p host-manifest`
//! rewrites the snapshots.

use std::path::Path;

fn check(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans");
    let path = dir.join(format!("{name}.toml"));
    let pipeline = host_manifest::load(&path).unwrap_or_else(|d| panic!("{name} is invalid:\n{d}"));
    let json = serde_json::to_string_pretty(&pipeline).unwrap();
    // Paths are resolved against the manifest's directory: made relative to
    // it, the snapshot is the same on every machine.
    let json = json
        .replace(&format!("{}/", dir.display()), "<dir>/")
        .replace(&dir.display().to_string(), "<dir>");
    let snapshot = dir.join(format!("{name}.json"));
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&snapshot, format!("{json}\n")).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(&snapshot).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with BLESS=1 to create it)",
            snapshot.display()
        )
    });
    assert_eq!(
        pinned.trim_end(),
        json,
        "the plan of {name}.toml changed; if that is intended, run with BLESS=1"
    );
}

#[test]
fn minimal() {
    check("minimal");
}

#[test]
fn maximal() {
    check("maximal");
}
