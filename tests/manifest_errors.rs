//! One invalid manifest per mistake in tests/ui/, each next to the exact
//! error text `host validate` must print for it (`NAME.toml` -> `NAME.stderr`).
//! Run with `BLESS=1` to rewrite the expected files after a deliberate change.

mod common;

use common::*;

#[test]
fn every_invalid_manifest_gets_its_exact_error() {
    let ui = workspace_root().join("tests/ui");
    let mut cases: Vec<_> = std::fs::read_dir(&ui)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the UI cases in {}",
        ui.display()
    );
    let bless = std::env::var_os("BLESS").is_some();
    let mut mismatches = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_str().unwrap();
        let o = host_in(&ui, &["validate", "--no-build", name]);
        assert_eq!(
            o.status.code(),
            Some(10),
            "{name} must be rejected with exit code 10:\n{}",
            stderr(&o)
        );
        assert!(o.stdout.is_empty(), "{name}: nothing on stdout");
        let expected_path = case.with_extension("stderr");
        let actual = stderr(&o);
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}: run with BLESS=1", expected_path.display()));
        if actual != expected {
            mismatches.push(format!(
                "--- {name}\nexpected:\n{expected}\nactual:\n{actual}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn a_missing_file_is_reported_with_its_path() {
    let o = host(&["validate", "no/such/pipeline.toml"]);
    assert_eq!(o.status.code(), Some(10));
    assert!(
        stderr(&o).starts_with("error: no/such/pipeline.toml: cannot read pipeline file:"),
        "{}",
        stderr(&o)
    );
}
