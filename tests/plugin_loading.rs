//! Loading components: bad files are named clearly, every bad plugin is
//! reported at once, and compiled components come from the cache.

mod common;

use common::*;
use std::path::Path;

fn pipeline_with_plugins(scratch: &Scratch, plugins: &[(&str, &Path)]) -> std::path::PathBuf {
    let mut text = String::from("[pipeline]\nname = \"loading\"\ntask = \"load\"\n");
    for (name, path) in plugins {
        text.push_str(&format!(
            "\n[plugins.{name}]\nwasm = \"{}\"\n",
            path.display()
        ));
    }
    for (name, _) in plugins {
        text.push_str(&format!(
            "\n[[stage]]\nid = \"{name}\"\nplugin = \"{name}\"\n"
        ));
    }
    scratch.write("pipeline.toml", &text)
}

#[test]
fn every_broken_plugin_is_named_with_what_is_wrong() {
    let scratch = Scratch::new("broken-plugins");
    let hello = std::fs::read(plugin("hello")).unwrap();
    let text = scratch.write("text.wasm", "this is not wasm");
    let empty = scratch.write("empty.wasm", "");
    let core = scratch.path("core.wasm");
    // The smallest core module: magic and version 1, no sections.
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let truncated = scratch.path("truncated.wasm");
    std::fs::write(&truncated, &hello[..hello.len() / 2]).unwrap();
    let manifest = pipeline_with_plugins(
        &scratch,
        &[
            ("text", &text),
            ("empty", &empty),
            ("core", &core),
            ("truncated", &truncated),
        ],
    );
    for command in ["validate", "run"] {
        let o = host(&[command, manifest.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(10), "{command}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("plugin 'text':")
                && err.contains("is not a WebAssembly file (no \\0asm header)"),
            "{err}"
        );
        assert!(
            err.contains("plugin 'empty':") && err.contains("(the file is empty)"),
            "{err}"
        );
        assert!(
            err.contains("plugin 'core':")
                && err.contains("is a core WebAssembly module, not a component"),
            "{err}"
        );
        assert!(
            err.contains("plugin 'truncated':") && err.contains("is not a valid component"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn validate_loads_plugins_and_says_what_they_are() {
    let scratch = Scratch::new("validate-ok");
    let manifest = pipeline_with_plugins(
        &scratch,
        &[("hello", &plugin("hello")), ("faulty", &plugin("faulty"))],
    );
    let o = host(&["validate", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("plugin 'hello': hello 0.1.0"), "{out}");
    assert!(out.contains("plugin 'faulty': faulty 0.1.0"), "{out}");
    assert!(out.contains("valid (2 stages)"), "{out}");
}

#[test]
fn a_second_load_comes_from_the_compiled_component_cache() {
    let scratch = Scratch::new("cache");
    let manifest = pipeline_with_plugins(&scratch, &[("hello", &plugin("hello"))]);
    let cache = scratch.path("cache");
    let run = || {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_host"))
            .args([
                "--cache-dir",
                cache.to_str().unwrap(),
                "validate",
                manifest.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        (stdout(&o), stderr(&o))
    };
    let (report, said) = run();
    assert!(report.contains(", compiled in "), "first load compiles");
    // The wait is said while it happens, in words.
    assert!(
        said.contains("compiling hello.wasm (plugin 'hello', ")
            && said.contains(" MiB) for this machine; later loads take milliseconds"),
        "{said}"
    );
    let (report, said) = run();
    assert!(
        report.contains("loaded from the compile cache in"),
        "second load is a cache hit"
    );
    assert!(
        !said.contains("compiling"),
        "a cache hit says nothing: {said}"
    );
    let run = || run().0;
    // A damaged cache entry is replaced, never trusted.
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    assert!(
        run().contains(", compiled in "),
        "a corrupt entry is recompiled"
    );
    assert!(run().contains("loaded from the compile cache in"));
}

#[test]
fn a_failing_build_command_is_reported() {
    let scratch = Scratch::new("build-fails");
    let manifest = scratch.write(
        "pipeline.toml",
        r#"
[pipeline]
name = "p"
task = "t"

[plugins.p]
wasm = "never.wasm"
build = ["sh", "-c", "echo compiling >&2; exit 3"]

[[stage]]
id = "a"
plugin = "p"
"#,
    );
    let o = host(&["run", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(10));
    let err = stderr(&o);
    assert!(err.contains("building plugin 'p': sh -c"), "{err}");
    assert!(
        err.contains(
            "plugin 'p': build command `sh -c echo compiling >&2; exit 3` failed (exit status: 3)"
        ),
        "{err}"
    );

    let o = host(&["run", "--no-build", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(10));
    assert!(
        stderr(&o).contains("and --no-build forbids running its build command (`sh -c"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_plugin_built_against_an_older_compatible_wit_keeps_working() {
    // tests/fixtures/noop-wit-0.1.0.wasm was built against
    // orchestrator:stage@0.1.0, before the 0.1.1 patch added `gates`.
    let old = workspace_root().join("tests/fixtures/noop-wit-0.1.0.wasm");
    let scratch = Scratch::new("old-wit");
    let manifest = pipeline_with_plugins(&scratch, &[("old", &old)]);
    let out = host(&["run", "--json", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = summary(&out);
    assert_eq!(stage(&summary, "old")["summary"], "old done");
}

#[test]
fn a_component_that_imports_wasi_http_is_refused_by_name() {
    let netgrab = plugin("netgrab");
    let scratch = Scratch::new("netgrab");
    let manifest = pipeline_with_plugins(&scratch, &[("netgrab", &netgrab)]);
    let out = host(&["run", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(10));
    let err = stderr(&out);
    assert!(
        err.contains(
            "imports wasi:http/outgoing-handler@0.3.0: network access (wasi:http) is not available"
        ),
        "{err}"
    );
}

#[test]
fn plugin_check_says_what_a_component_is_and_whether_it_runs() {
    let out = host(&["plugin", "check", plugin("hello").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("built against: orchestrator:stage@0.3.0"),
        "{text}"
    );
    assert!(
        text.contains("orchestrator:stage/models@0.3.0") && text.contains("`models`"),
        "{text}"
    );
    assert!(text.contains("info: hello 0.1.0"), "{text}");
    assert!(text.contains("compatible: yes"), "{text}");

    let old = workspace_root().join("tests/fixtures/noop-wit-0.1.0.wasm");
    let out = host(&["plugin", "check", "--json", old.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["report"]["wit_version"], "0.1.0");
    assert_eq!(v["compatible"], true);

    let out = host(&["plugin", "check", plugin("netgrab").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(10));
    let text = stdout(&out);
    assert!(
        text.contains("wasi:http/outgoing-handler@0.3.0") && text.contains("REFUSED"),
        "{text}"
    );
    assert!(text.contains("compatible: no"), "{text}");
}

/// Components built against a changed orchestrator:stage@0.2.1
/// (tests/fixtures/skewed/build.sh): each difference is named in WIT terms,
/// with what to rebuild against, never called a trap, by `plugin check` and
/// by a run, which refuses the plugin at its line before anything runs.
#[test]
fn a_contract_mismatch_names_the_record_or_function_and_what_to_build_against() {
    let cases = [
        (
            "skewed-info.wasm",
            "`runner.info`: result `plugin-info` has field(s) `homepage` this host's does not",
        ),
        (
            "skewed-input.wasm",
            "`runner.run`: parameter `input` `stage-input` has field(s) `deadline-ms` this host's does not",
        ),
        (
            "skewed-import.wasm",
            "`models.remaining-budget`: imported, but this host's orchestrator:stage@0.2.2 has no such function",
        ),
    ];
    let scratch = Scratch::new("skewed");
    for (file, expected) in cases {
        let wasm = workspace_root().join("tests/fixtures").join(file);
        let out = host(&["plugin", "check", wasm.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(10), "{file}: {}", stdout(&out));
        let text = stdout(&out);
        assert!(text.contains("compatible: no"), "{file}: {text}");
        assert!(text.contains(expected), "{file}: {text}");
        assert!(
            text.contains(
                "rebuild it against orchestrator:stage@0.2.2 (its line's newest) or @0.3.0"
            ),
            "{file}: {text}"
        );
        assert!(!text.contains("trapped"), "{file}: {text}");
        assert!(!text.contains("(checked)"), "{file}: {text}");

        let manifest = pipeline_with_plugins(&scratch, &[("skewed", &wasm)]);
        let state = scratch.path(&format!("state-{file}"));
        let out = host(&[
            "--state-dir",
            state.to_str().unwrap(),
            "run",
            manifest.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(10), "{file}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("plugin 'skewed'") && err.contains(expected),
            "{file}: {err}"
        );
        assert!(
            err.contains("pipeline.toml:"),
            "located in the manifest: {err}"
        );
        assert!(
            !state.join("state.redb").exists(),
            "nothing written: {file}"
        );
    }
}
