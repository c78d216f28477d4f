//! `host plugin new` for real: a Rust, a Python (componentize-py) and a
//! JavaScript (componentize-js) plugin created from the templates, built
//! with their own build scripts, unit-tested with their own test commands,
//! and run in one pipeline beside a repository plugin, with model calls
//! over real HTTP and artifacts crossing from language to language.
//!
//! The toolchains come from the package registries (PyPI, npm) on first
//! use; tests/setup-plugin-tools.sh installs them ahead of time in CI.

mod common;

use common::model_server::{ModelServer, Reply, last_user_message};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the template builds share their toolchains and build products,
/// across test runs.
fn tool_env(cmd: &mut Command) -> &mut Command {
    let target = target_dir();
    cmd.env("COMPONENTIZE_PY_VENV", target.join("componentize-py-venv"))
        .env("COMPONENTIZE_JS_DIR", target.join("componentize-js"))
        .env("CARGO_TARGET_DIR", target.join("template-rust-target"))
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = tool_env(&mut Command::new(program))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "`{program} {}` in {} failed:\n{text}",
        args.join(" "),
        dir.display()
    );
    text
}

/// Creates, builds and unit-tests a project; returns its component.
fn new_plugin(scratch: &Scratch, name: &str, lang: &str, test: &[&str]) -> PathBuf {
    let dir = scratch.path(name);
    let out = host(&[
        "plugin",
        "new",
        name,
        "--lang",
        lang,
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    run_in(&dir, "./build.sh", &[]);
    run_in(&dir, test[0], &test[1..]);
    let wasm = dir.join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "{} was not built", wasm.display());

    let out = host(&["plugin", "check", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains("built against: orchestrator:stage@0.3.0"),
        "{report}"
    );
    assert!(report.contains(&format!("info: {name} 0.1.0")), "{report}");
    assert!(
        report.contains("models: config `model` (default 'small')"),
        "{report}"
    );
    assert!(report.contains("workspace: none"), "{report}");
    assert!(!report.contains("wasi:http"), "{report}");
    dir
}

/// A model that echoes what it is asked, so what each stage saw upstream
/// shows in its answer.
fn echo_model() -> ModelServer {
    ModelServer::start(|request| Reply::text(&format!("ECHO<{}>", last_user_message(request))))
}

#[test]
fn template_plugins_in_three_languages_run_in_one_pipeline() {
    let scratch = Scratch::new("polyglot-templates");
    let rs = new_plugin(&scratch, "tpl-rs", "rust", &["cargo", "test", "--quiet"]);
    let py = new_plugin(
        &scratch,
        "tpl-py",
        "python",
        &["python3", "-m", "unittest", "-q"],
    );
    let js = new_plugin(&scratch, "tpl-js", "js", &["npm", "test", "--silent"]);

    let model = echo_model();
    // Each generated pipeline.toml validates and runs as it is (its model
    // pointed at the echo server).
    for dir in [&rs, &py, &js] {
        let manifest = dir.join("pipeline.toml");
        let out = host(&["validate", manifest.to_str().unwrap()]);
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("grants match what the plugin declares"),
            "{}",
            stdout(&out)
        );
        let out = host(&[
            "run",
            "--json",
            manifest.to_str().unwrap(),
            "--model",
            &format!("small=openai:echo@{}", model.url),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let summary = summary(&out);
        assert_eq!(
            stage(&summary, "review")["status"],
            "succeeded",
            "{summary}"
        );
    }

    // Each template alone, as its README shows: its run.toml (the task, its
    // notes.md as the upstream artifact), the alias pointed at the echo
    // model by a flag over the file's; the output is printed.
    for (dir, name) in [(&rs, "tpl-rs"), (&py, "tpl-py"), (&js, "tpl-js")] {
        std::fs::write(dir.join("notes.md"), "NOTES-b41c about the garden").unwrap();
        let wasm = dir.join(format!("{name}.wasm"));
        let state = scratch.path(&format!("alone-{name}"));
        let out = host(&[
            "--state-dir",
            state.to_str().unwrap(),
            "plugin",
            "run",
            wasm.to_str().unwrap(),
            "--spec",
            dir.join("run.toml").to_str().unwrap(),
            "--model",
            &format!("small=openai:echo@{}", model.url),
        ]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let printed = stdout(&out);
        // The echo of what the plugin asked: the task and the file's text,
        // under the input's name, in the artifact the output shows.
        assert!(
            printed.contains(&format!("--- {name}.md (text/markdown"))
                && printed.contains("ECHO<")
                && printed.contains("NOTES-b41c about the garden")
                && printed.contains("Summarise the notes"),
            "{name}:\n{printed}"
        );
        assert!(
            printed.contains("--- draft/notes.md ---"),
            "{name}:\n{printed}"
        );
        assert!(
            stderr(&out).contains("asking small about 1 inputs"),
            "{name}: {}",
            stderr(&out)
        );
    }

    // One pipeline: hello (a repository plugin, Rust) -> the Rust template
    // -> the Python template -> the JavaScript template.
    let marker = "MARKER-7f3a";
    let text = format!(
        r#"[pipeline]
name = "polyglot-templates"
task = "Carry {marker} through every language."

[models.small]
provider = "openai"
base_url = "{url}"
model = "echo"

[plugins.hello]
wasm = "{hello}"

[plugins.tpl-rs]
wasm = "{rs}"

[plugins.tpl-py]
wasm = "{py}"

[plugins.tpl-js]
wasm = "{js}"

[[stage]]
id = "greet"
plugin = "hello"
config = {{ greeting = "Hello" }}

[[stage]]
id = "rust"
plugin = "tpl-rs"
after = ["greet"]
models = ["small"]
config = {{ model = "small" }}

[[stage]]
id = "python"
plugin = "tpl-py"
after = ["rust"]
models = ["small"]
config = {{ model = "small", max_tokens = 300 }}

[[stage]]
id = "js"
plugin = "tpl-js"
after = ["python"]
models = ["small"]
config = {{ model = "small", instruction = "Pass it on." }}
"#,
        url = model.url,
        hello = plugin("hello").display(),
        rs = rs.join("tpl-rs.wasm").display(),
        py = py.join("tpl-py.wasm").display(),
        js = js.join("tpl-js.wasm").display(),
    );
    let manifest = scratch.write("pipeline.toml", &text);
    let out = host(&["validate", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    let calls_before = model.requests().len();
    let out_dir = scratch.path("out");
    let state = scratch.path("state");
    let out = host(&[
        "run",
        "--json",
        "--fresh",
        "--state-dir",
        state.to_str().unwrap(),
        manifest.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // What each language printed (println!, print(), console.log) is on the
    // terminal as it happens and in its attempt's log afterwards.
    assert_eq!(
        stderr(&out).matches("asking small about").count(),
        3,
        "each template's printed line reaches the terminal:\n{}",
        stderr(&out)
    );
    let run_id = summary(&out)["run_id"].as_str().unwrap().to_string();
    for id in ["rust", "python", "js"] {
        let log = host(&[
            "--state-dir",
            state.to_str().unwrap(),
            "show",
            &run_id,
            id,
            "--log",
        ]);
        assert!(log.status.success(), "{}", stderr(&log));
        let log = stdout(&log);
        assert!(
            log.contains("info [stdout] asking small about") && log.contains(" inputs"),
            "{id}:\n{log}"
        );
    }
    let summary = summary(&out);
    for id in ["greet", "rust", "python", "js"] {
        assert_eq!(
            stage(&summary, id)["status"],
            "succeeded",
            "{id}: {summary}"
        );
    }
    assert_eq!(
        model.requests().len() - calls_before,
        3,
        "one model call per template stage"
    );

    let read = |stage: &str, name: &str| {
        std::fs::read_to_string(out_dir.join(stage).join(name))
            .unwrap_or_else(|e| panic!("{stage}/{name}: {e}"))
    };
    let account = |stage: &str, name: &str| -> serde_json::Value {
        serde_json::from_str(&read(stage, name)).unwrap()
    };
    // Each stage saw its upstream's artifacts, by name, and their content.
    let inputs_of = |v: &serde_json::Value| -> Vec<String> {
        v["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}/{}",
                    i["stage"].as_str().unwrap(),
                    i["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let rust = account("rust", "tpl-rs.json");
    assert!(
        inputs_of(&rust).contains(&"greet/greeting.txt".to_string()),
        "{rust}"
    );
    let python = account("python", "tpl-py.json");
    assert_eq!(python["alias"], "small");
    assert!(
        inputs_of(&python).contains(&"rust/tpl-rs.md".to_string()),
        "{python}"
    );
    let js_account = account("js", "tpl-js.json");
    assert!(
        inputs_of(&js_account).contains(&"python/tpl-py.md".to_string()),
        "{js_account}"
    );
    assert!(
        inputs_of(&js_account).contains(&"python/tpl-py.json".to_string()),
        "{js_account}"
    );

    // The answers nest: the JS stage's answer holds the Python stage's,
    // which holds the Rust stage's, which holds the task.
    let rust_md = read("rust", "tpl-rs.md");
    let python_md = read("python", "tpl-py.md");
    let js_md = read("js", "tpl-js.md");
    assert!(rust_md.contains(marker), "{rust_md}");
    assert!(
        python_md.contains("--- rust/tpl-rs.md ---") && python_md.contains(marker),
        "{python_md}"
    );
    assert!(js_md.contains("--- python/tpl-py.md ---"), "{js_md}");
    assert!(js_md.matches("ECHO<").count() >= 3, "{js_md}");
    assert!(js_md.contains(marker), "{js_md}");
    // What each language sent over the wire: its system instruction and the
    // upstream content.
    let last = model.requests().last().cloned().unwrap();
    assert_eq!(last["messages"][0]["content"], "Pass it on.", "{last}");
}
