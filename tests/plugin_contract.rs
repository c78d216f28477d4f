//! The plugin contract as a public API: `plugin check` reports a plugin's
//! WIT version and declared capabilities, `validate` compares them with
//! each stage's grants, plugins built against 0.1.x keep running, and
//! `plugin new` refuses what it cannot create.

mod common;

use common::model_server::{ModelServer, Reply, last_user_message};
use common::*;

/// Both 0.1 fixtures: built from `noop` against orchestrator:stage 0.1.0
/// (before `gates`) and 0.1.1 (the last 0.1), before 0.2.0 changed
/// `plugin-info`.
const OLD_FIXTURES: &[(&str, &str)] = &[
    ("0.1.0", "tests/fixtures/noop-wit-0.1.0.wasm"),
    ("0.1.1", "tests/fixtures/noop-wit-0.1.1.wasm"),
];

#[test]
fn plugins_built_against_0_1_and_0_2_still_load_and_run_beside_0_3_ones() {
    let scratch = Scratch::new("old-wit-lines");
    let mut text = String::from("[pipeline]\nname = \"lines\"\ntask = \"mixed\"\n");
    for (i, (_, path)) in OLD_FIXTURES.iter().enumerate() {
        text.push_str(&format!(
            "\n[plugins.old{i}]\nwasm = \"{}\"\n",
            workspace_root().join(path).display()
        ));
    }
    // hello built against 0.1.1 calls a model and logs: 0.1 imports work.
    let server = ModelServer::start(|_| Reply::text("{\"mood\": \"calm\"}"));
    text.push_str(&format!(
        "\n[plugins.oldhello]\nwasm = \"{}\"\n\n[plugins.hello02]\nwasm = \"{}\"\n\n[plugins.new]\nwasm = \"{}\"\n\
         \n[models.m]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"scripted\"\n",
        workspace_root()
            .join("tests/fixtures/hello-wit-0.1.1.wasm")
            .display(),
        workspace_root()
            .join("tests/fixtures/hello-wit-0.2.2.wasm")
            .display(),
        plugin("hello").display(),
        server.url,
    ));
    // Each hello greets in its own word and puts its upstream text into its
    // prompt: the 0.2 one is handed c's bytes, the 0.3 one reads e's.
    text.push_str(
        "\n[[stage]]\nid = \"a\"\nplugin = \"old0\"\n\n[[stage]]\nid = \"b\"\nplugin = \"old1\"\nafter = [\"a\"]\n\
         \n[[stage]]\nid = \"c\"\nplugin = \"oldhello\"\nafter = [\"b\"]\nmodels = [\"m\"]\nconfig = { model = \"m\", greeting = \"Ahoy\" }\n\
         \n[[stage]]\nid = \"e\"\nplugin = \"hello02\"\nafter = [\"c\"]\nmodels = [\"m\"]\nconfig = { model = \"m\", greeting = \"Howdy\" }\n\
         \n[[stage]]\nid = \"d\"\nplugin = \"new\"\nafter = [\"e\"]\nmodels = [\"m\"]\nconfig = { model = \"m\" }\n",
    );
    let manifest = scratch.write("pipeline.toml", &text);
    let out_dir = scratch.path("out");
    let out = host(&[
        "run",
        "--json",
        manifest.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = summary(&out);
    assert_eq!(stage(&summary, "a")["summary"], "a done");
    assert_eq!(stage(&summary, "b")["summary"], "b done");
    assert_eq!(stage(&summary, "c")["status"], "succeeded");
    assert_eq!(stage(&summary, "e")["status"], "succeeded");
    assert_eq!(stage(&summary, "d")["status"], "succeeded");
    let prompts: Vec<String> = server.requests().iter().map(last_user_message).collect();
    assert_eq!(prompts.len(), 3, "every line's model call went through");
    assert!(
        prompts[1].contains("Ahoy, mixed!"),
        "0.2 got c's text: {}",
        prompts[1]
    );
    assert!(
        prompts[2].contains("Howdy, mixed!"),
        "0.3 read e's text: {}",
        prompts[2]
    );
    // The 0.3 plugin lists its input by reference, with the size.
    let listing = std::fs::read_to_string(out_dir.join("d/inputs.json")).unwrap();
    assert!(listing.contains("greeting.txt"), "{listing}");
    let verdict = std::fs::read_to_string(out_dir.join("c/verdict.json")).unwrap();
    assert!(verdict.contains("calm"), "{verdict}");

    for (version, path) in OLD_FIXTURES {
        let path = workspace_root().join(path);
        let out = host(&["plugin", "check", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("built against: orchestrator:stage@{version}")),
            "{text}"
        );
        assert!(text.contains("capabilities: undeclared"), "{text}");
        assert!(text.contains("runs 0.1.0 - 0.3.x"), "{text}");
        assert!(text.contains("compatible: yes"), "{text}");
    }
}

#[test]
fn plugins_built_against_earlier_0_2_patches_run_on_this_host() {
    // hello as built before `attempt` (0.2.1) and `kv.keys` (0.2.2) were
    // added: a patch adds, so its imports and its runner still match.
    for version in ["0.2.0", "0.2.1", "0.2.2"] {
        let old = workspace_root().join(format!("tests/fixtures/hello-wit-{version}.wasm"));
        let check = host(&["plugin", "check", old.to_str().unwrap()]);
        assert!(check.status.success(), "{}", stdout(&check));
        assert!(
            stdout(&check).contains(&format!("built against: orchestrator:stage@{version}")),
            "{}",
            stdout(&check)
        );
        let scratch = Scratch::new(&format!("wit-{version}"));
        let server = ModelServer::start(|_| Reply::text("{\"mood\": \"calm\"}"));
        let manifest = scratch.write(
            "pipeline.toml",
            &format!(
                "[pipeline]\nname = \"patch\"\ntask = \"t\"\n\n[plugins.old]\nwasm = \"{}\"\n\n\
                 [models.m]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"scripted\"\n\n\
                 [[stage]]\nid = \"a\"\nplugin = \"old\"\nmodels = [\"m\"]\nconfig = {{ model = \"m\" }}\n",
                old.display(),
                server.url
            ),
        );
        let out = host(&["run", "--json", manifest.to_str().unwrap()]);
        assert!(out.status.success(), "{version}: {}", stderr(&out));
        assert_eq!(stage(&summary(&out), "a")["status"], "succeeded");
        assert_eq!(server.requests().len(), 1);
    }
}

#[test]
fn plugin_check_prints_declared_capabilities() {
    let out = host(&["plugin", "check", plugin("execution").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("built against: orchestrator:stage@0.3.0"),
        "{text}"
    );
    assert!(text.contains("models: config `model`"), "{text}");
    assert!(
        text.contains("sessions: config `session` optional"),
        "{text}"
    );
    assert!(text.contains("workspace: read-write"), "{text}");

    let out = host(&[
        "plugin",
        "check",
        "--json",
        plugin("planning").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let caps = &v["report"]["info"]["Ok"]["capabilities"];
    assert_eq!(caps["models"][0]["from"], "config", "{v}");
    assert_eq!(caps["models"][0]["key"], "planner", "{v}");
    assert_eq!(caps["models"][1]["required"], false, "{v}");
    assert_eq!(caps["sessions"][0]["fallback"][0], "plan", "{v}");
    assert_eq!(v["host_accepts"], "0.1.0 - 0.3.x");
}

#[test]
fn validate_reports_per_stage_what_is_missing_and_what_is_unused() {
    let scratch = Scratch::new("validate-caps");
    let old = workspace_root().join("tests/fixtures/noop-wit-0.1.1.wasm");
    let text = format!(
        r#"[pipeline]
name = "caps"
task = "t"
workspace = "."

[models.small]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"

[models.large]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"

[plugins.hello]
wasm = "{hello}"

[plugins.execution]
wasm = "{execution}"

[plugins.old]
wasm = "{old}"

[[stage]]
id = "fine"
plugin = "hello"
models = ["small"]
config = {{ model = "small" }}

[[stage]]
id = "short"
plugin = "hello"
models = ["small"]
workspace = "read-only"
config = {{ model = "large" }}

[[stage]]
id = "writer"
plugin = "execution"
models = ["small"]
workspace = "read-only"

[[stage]]
id = "legacy"
plugin = "old"
models = ["large"]
"#,
        hello = plugin("hello").display(),
        execution = plugin("execution").display(),
        old = old.display(),
    );
    let manifest = scratch.write("pipeline.toml", &text);
    let out = host(&["validate", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let report = stdout(&out);
    let file = manifest.display().to_string();
    let line_of = |needle: &str, after: &str| {
        let start = text.find(after).unwrap();
        text[..start + text[start..].find(needle).unwrap()]
            .lines()
            .count()
            + 1
    };
    assert!(
        report.contains("stage 'fine' (plugin 'hello'): grants match what the plugin declares"),
        "{report}"
    );
    // `short` asks for `large` in its config but is granted `small` only.
    let models_line = line_of("models", "id = \"short\"");
    assert!(
        report.contains(&format!(
            "error: {file}:{models_line}:1: stage 'short' (plugin 'hello'): the plugin needs model alias 'large' (from config `model`), which the stage is not granted: add it to `models`"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "warning: {file}:{models_line}:1: stage 'short' (plugin 'hello'): the stage is granted model alias 'small', which the plugin does not declare it uses"
        )),
        "{report}"
    );
    let ws_line = line_of("workspace", "id = \"short\"");
    assert!(
        report.contains(&format!(
            "warning: {file}:{ws_line}:1: stage 'short' (plugin 'hello'): the stage is granted the workspace read-only, but the plugin does not declare it uses the workspace"
        )),
        "{report}"
    );
    // execution needs config `model` (unset) and the workspace read-write.
    let writer_id = line_of("id = \"writer\"", "id = \"writer\"");
    assert!(
        report.contains(&format!(
            "error: {file}:{writer_id}:1: stage 'writer' (plugin 'execution'): the plugin needs a model alias named by config `model`, which is not set"
        )),
        "{report}"
    );
    let writer_ws = line_of("workspace", "id = \"writer\"");
    assert!(
        report.contains(&format!(
            "error: {file}:{writer_ws}:1: stage 'writer' (plugin 'execution'): the plugin needs the workspace read-write, but the stage's grant is `workspace = \"read-only\"`"
        )),
        "{report}"
    );
    // A 0.1 plugin cannot declare anything: never an error, never a warning.
    assert!(
        report.contains("stage 'legacy' (plugin 'old'): capabilities undeclared (built against orchestrator:stage@0.1.1"),
        "{report}"
    );
    assert!(
        !report.contains("stage 'legacy' (plugin 'old'): the"),
        "{report}"
    );
    assert!(
        stderr(&out).contains("3 problems with stage grants"),
        "{}",
        stderr(&out)
    );

    // Fixed, the same pipeline validates, warnings and all.
    let fixed = text
        .replace(
            "workspace = \"read-only\"\nconfig = { model = \"large\" }",
            "config = { model = \"small\" }",
        )
        .replace(
            "id = \"writer\"\nplugin = \"execution\"\nmodels = [\"small\"]\nworkspace = \"read-only\"",
            "id = \"writer\"\nplugin = \"execution\"\nmodels = [\"small\"]\nworkspace = \"read-write\"\nconfig = { model = \"small\" }",
        );
    let manifest = scratch.write("pipeline.toml", &fixed);
    let out = host(&["validate", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("valid (4 stages)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn plugin_new_refuses_bad_names_existing_projects_and_a_missing_sdk() {
    let scratch = Scratch::new("plugin-new-errors");
    for bad in ["2fast", "Upper", "has.dot", "fn"] {
        let dir = scratch.path(bad);
        let out = host(&[
            "plugin",
            "new",
            bad,
            "--lang",
            "python",
            "--dir",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(10), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("invalid plugin name '{bad}'")),
            "{}",
            stderr(&out)
        );
        assert!(!dir.exists(), "{bad}: created something");
    }

    let taken = scratch.path("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("mine.txt"), "keep me").unwrap();
    let out = host(&[
        "plugin",
        "new",
        "ok",
        "--lang",
        "js",
        "--dir",
        taken.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exists and is not empty"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(taken.join("mine.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 1);

    let out = host(&[
        "plugin",
        "new",
        "ok",
        "--lang",
        "rust",
        "--dir",
        scratch.path("rs").to_str().unwrap(),
        "--sdk",
        scratch.path("nowhere").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no plugin-sdk at"),
        "{}",
        stderr(&out)
    );

    let out = host(&["plugin", "new", "ok", "--lang", "cobol"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));

    // An empty directory is fine; the project has what its README promises.
    let empty = scratch.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = host(&[
        "plugin",
        "new",
        "fresh",
        "--lang",
        "python",
        "--dir",
        empty.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for f in [
        "app.py",
        "prompt.py",
        "test_prompt.py",
        "test_app.py",
        "testing_host.py",
        "build.sh",
        "README.md",
        "pipeline.toml",
        "run.toml",
        "notes.md",
        "wit/stage.wit",
    ] {
        assert!(empty.join(f).is_file(), "{f} missing");
    }
    let wit = std::fs::read_to_string(empty.join("wit/stage.wit")).unwrap();
    assert_eq!(
        wit,
        std::fs::read_to_string(workspace_root().join("wit/stage.wit")).unwrap(),
        "the project carries the host's exact WIT"
    );
    let pipeline = std::fs::read_to_string(empty.join("pipeline.toml")).unwrap();
    assert!(
        pipeline.contains("[plugins.fresh]\nwasm = \"fresh.wasm\""),
        "{pipeline}"
    );
}
