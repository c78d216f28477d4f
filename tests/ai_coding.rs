//! The AI-coding example pipeline (examples/ai-coding), whole, in the real
//! host: a scripted provider that answers each stage by its role covers the
//! risk routes, plan review (first time, second time, never), the
//! verification loop with real gates (Python's compileall and unittest) and
//! the ship stage run and skipped. One run uses the real local model.

mod common;

use common::model_server::{ModelServer, Reply};
use common::*;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const GOOD_CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n    return a * b\n\n\ndef subtract(a, b):\n    return a - b\n";
const BAD_CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n    return a * b\n\n\ndef subtract(a, b):\n    return a + b\n";
const TESTS: &str = "import unittest\n\nfrom calc import add, multiply, subtract\n\n\nclass CalcTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n    def test_multiply(self):\n        self.assertEqual(multiply(4, 5), 20)\n\n    def test_subtract(self):\n        self.assertEqual(subtract(5, 3), 2)\n";
const README: &str = "# calc\n\nA tiny calculator: `add`, `multiply` and `subtract`.\n\n## Changes\n\n<!-- ship:changes -->\nNothing yet.\n<!-- /ship:changes -->\n";

/// How the scripted models behave in one scenario.
#[derive(Clone)]
struct Scenario {
    /// Reviewer answers, in order (the last repeats).
    reviews: Vec<&'static str>,
    /// Whether execution's first answer is buggy (fixed once it has feedback).
    buggy_first: bool,
    /// Whether execution stays buggy whatever it is told.
    always_buggy: bool,
    /// Whether the change includes README.md (ship runs) or not.
    touches_readme: bool,
}

const APPROVE: &str = r#"{"approved": true, "issues": []}"#;
const REJECT: &str = r#"{"approved": false, "issues": ["no test for negative numbers"]}"#;

fn blocks(calc: &str, readme: bool) -> String {
    let mut out = format!(
        "Here is the change.\n=== FILE: calc.py ===\n{calc}=== END FILE ===\n=== FILE: test_calc.py ===\n{TESTS}=== END FILE ===\n"
    );
    if readme {
        out.push_str(&format!(
            "=== FILE: README.md ===\n{README}=== END FILE ===\n"
        ));
    }
    out
}

fn text_of(req: &serde_json::Value) -> String {
    req["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn scripted(scenario: Scenario) -> ModelServer {
    let reviews = Arc::new(Mutex::new(VecDeque::from(scenario.reviews.clone())));
    ModelServer::start(move |req| {
        let all = text_of(req);
        let last = common::model_server::last_user_message(req);
        let answer = if all.contains("senior software analyst") {
            "Goal: add subtract(a, b). Files: calc.py, test_calc.py. Acceptance: subtract(5, 3) == 2.".to_string()
        } else if last.contains("Merge these specifications") {
            "Merged: add subtract(a, b) to calc.py, test it in test_calc.py, mention it in README.md.".to_string()
        } else if all.contains("strict reviewer") {
            let mut q = reviews.lock().unwrap();
            let r = if q.len() > 1 {
                q.pop_front().unwrap()
            } else {
                q[0]
            };
            r.to_string()
        } else if all.contains("test engineer") {
            "- negative numbers\n- floats".to_string()
        } else if last.contains("The reviewer rejected the plan")
            || last.contains("implementation plan")
        {
            "1. Add subtract to calc.py\n2. Test it in test_calc.py\n3. Mention it in README.md"
                .to_string()
        } else if all.contains("precise software engineer") {
            let fixed = all.contains("needs these fixes") && !scenario.always_buggy;
            let calc = if (scenario.buggy_first || scenario.always_buggy) && !fixed {
                BAD_CALC
            } else {
                GOOD_CALC
            };
            blocks(calc, scenario.touches_readme)
        } else if all.contains("independent code auditor") {
            r#"{"ready": true, "issues": []}"#.to_string()
        } else if last.contains("CHANGELOG") {
            "Add subtract(a, b) to the calculator".to_string()
        } else {
            format!("unexpected request: {}", &all[..all.len().min(200)])
        };
        Reply::text(&answer)
    })
}

struct Setup {
    scratch: Scratch,
    workspace: PathBuf,
}

impl Setup {
    fn new(label: &str) -> Setup {
        let scratch = Scratch::new(label);
        let workspace = scratch.path("ws");
        copy_dir(
            &workspace_root().join("examples/ai-coding/project"),
            &workspace,
        );
        Setup { scratch, workspace }
    }

    fn run(&self, url: Option<&str>, extra: &[&str]) -> (Output, serde_json::Value) {
        let manifest = workspace_root().join("examples/ai-coding/pipeline.toml");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_host"));
        cmd.args(["--cache-dir", cache_dir().to_str().unwrap()])
            .args(["--state-dir", self.scratch.path("state").to_str().unwrap()])
            .args(["run", "--json", "--no-build", manifest.to_str().unwrap()])
            .args(["--workspace", self.workspace.to_str().unwrap()])
            .args(extra)
            .env_remove("RUST_LOG");
        if let Some(url) = url {
            cmd.args(["--model", &format!("large=openai:scripted-large@{url}")])
                .args(["--model", &format!("small=openai:scripted-small@{url}")]);
        }
        let out = cmd.output().unwrap();
        let s = summary(&out);
        (out, s)
    }

    /// `host ARGS` on this setup's state directory.
    fn host(&self, args: &[&str]) -> Output {
        common::runs::host_with(&self.scratch.path("state"), args)
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.workspace.join(name)).unwrap_or_default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn status(s: &serde_json::Value, id: &str) -> String {
    stage(s, id)["status"].as_str().unwrap().to_string()
}

fn built() {
    // Builds the six stage plugins (with the test plugins), once.
    plugin("triage");
}

#[test]
fn low_risk_goes_straight_to_execution_and_ships_a_readme_change() {
    built();
    let server = scripted(Scenario {
        reviews: vec![APPROVE],
        buggy_first: false,
        always_buggy: false,
        touches_readme: true,
    });
    let s = Setup::new("ai-low");
    let (out, sum) = s.run(Some(&server.url), &["--set", "triage.risk=LOW"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stage(&sum, "triage")["summary"]
            .as_str()
            .unwrap()
            .split(' ')
            .nth(1),
        Some("LOW")
    );
    for skipped in ["discovery", "planning"] {
        assert_eq!(status(&sum, skipped), "skipped");
    }
    for ran in ["execution", "verification", "ship"] {
        assert_eq!(
            status(&sum, ran),
            "succeeded",
            "{ran}: {}",
            stage(&sum, ran)
        );
    }
    assert!(s.file("calc.py").contains("def subtract"));
    assert!(
        s.file("CHANGELOG.md")
            .contains("- Add subtract(a, b) to the calculator")
    );
    assert!(
        s.file("README.md").contains("- calc.py"),
        "{}",
        s.file("README.md")
    );
}

#[test]
fn medium_risk_plans_and_a_plan_approved_on_second_review_ships_nothing() {
    built();
    let server = scripted(Scenario {
        reviews: vec![REJECT, APPROVE],
        buggy_first: false,
        always_buggy: false,
        touches_readme: false,
    });
    let s = Setup::new("ai-medium");
    let (out, sum) = s.run(Some(&server.url), &["--set", "triage.risk=MEDIUM"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(status(&sum, "discovery"), "skipped");
    assert_eq!(
        stage(&sum, "planning")["summary"],
        "plan approved in review 2"
    );
    assert_eq!(status(&sum, "ship"), "skipped");
    assert!(
        stage(&sum, "ship")["skip_reason"]
            .as_str()
            .unwrap()
            .starts_with("condition not met")
    );
    assert_eq!(s.file("CHANGELOG.md"), "# Changelog\n\n## Unreleased\n");
}

#[test]
fn high_risk_discovers_plans_and_loops_until_the_gates_pass() {
    built();
    let server = scripted(Scenario {
        reviews: vec![APPROVE],
        buggy_first: true,
        always_buggy: false,
        touches_readme: false,
    });
    let s = Setup::new("ai-high");
    let (out, sum) = s.run(Some(&server.url), &["--set", "triage.risk=HIGH"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(status(&sum, "discovery"), "succeeded");
    assert_eq!(
        stage(&sum, "planning")["summary"],
        "plan approved in review 1"
    );
    assert_eq!(stage(&sum, "verification")["iteration"], 1, "one loop back");
    assert_eq!(stage(&sum, "execution")["iteration"], 1);
    // The retry of execution saw the failing test's output as feedback.
    let second = server
        .requests()
        .iter()
        .map(text_of)
        .filter(|t| t.contains("precise software engineer"))
        .nth(1)
        .expect("execution ran twice");
    assert!(
        second.contains("needs these fixes") && second.contains("FAIL"),
        "{second}"
    );
    assert!(s.file("calc.py").contains("return a - b"));
    // Both discovery models were asked, and planning continued its session.
    let plans = server
        .requests()
        .iter()
        .filter(|r| text_of(r).contains("implementation plan"))
        .count();
    assert!(plans >= 1);
}

#[test]
fn a_plan_rejected_twice_escalates() {
    built();
    let server = scripted(Scenario {
        reviews: vec![REJECT],
        buggy_first: false,
        always_buggy: false,
        touches_readme: false,
    });
    let s = Setup::new("ai-reject");
    let (out, sum) = s.run(Some(&server.url), &["--set", "triage.risk=MEDIUM"]);
    assert_eq!(out.status.code(), Some(2), "escalated: {}", stderr(&out));
    assert_eq!(sum["outcome"], "escalated");
    assert!(
        stage(&sum, "planning")["summary"]
            .as_str()
            .unwrap()
            .contains("no test for negative numbers")
    );
    assert_eq!(status(&sum, "execution"), "skipped");
    assert!(
        !s.file("calc.py").contains("subtract"),
        "nothing was changed"
    );
}

#[test]
fn gates_that_keep_failing_escalate_with_their_own_exit_code() {
    built();
    let server = scripted(Scenario {
        reviews: vec![APPROVE],
        buggy_first: true,
        always_buggy: true,
        touches_readme: false,
    });
    let s = Setup::new("ai-gates");
    let (out, sum) = s.run(Some(&server.url), &["--set", "triage.risk=LOW"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(sum["outcome"], "escalated");
    assert_eq!(
        stage(&sum, "verification")["iteration"],
        2,
        "two loops, then escalation"
    );
    assert!(
        stage(&sum, "verification")["summary"]
            .as_str()
            .unwrap()
            .contains("gates failed: tests")
    );
    assert_eq!(status(&sum, "ship"), "skipped");
    // The bad model's edits never reached the project; they are on record.
    assert!(
        !s.file("calc.py").contains("subtract"),
        "{}",
        s.file("calc.py")
    );
    let run = sum["run_id"].as_str().unwrap();
    let diff = s.host(&["diff", run, "execution"]);
    assert!(
        stdout(&diff).contains("+    return a + b"),
        "{}",
        stdout(&diff)
    );
}

#[test]
fn host_diff_and_host_apply_on_the_ai_coding_example_with_a_conflict() {
    built();
    let server = scripted(Scenario {
        reviews: vec![APPROVE],
        buggy_first: false,
        always_buggy: false,
        touches_readme: true,
    });
    let s = Setup::new("ai-apply");
    let original_calc = s.file("calc.py");
    let (out, sum) = s.run(
        Some(&server.url),
        &["--set", "triage.risk=LOW", "--apply", "never"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s.file("calc.py"), original_calc, "--apply never");
    let run = sum["run_id"].as_str().unwrap();

    let diff = stdout(&s.host(&["diff", run]));
    assert!(diff.contains("diff --git a/calc.py b/calc.py\n"), "{diff}");
    assert!(
        diff.contains("+def subtract(a, b):\n+    return a - b\n"),
        "{diff}"
    );
    assert!(
        diff.contains("+- Add subtract(a, b) to the calculator"),
        "ship's changelog: {diff}"
    );
    let ship = stdout(&s.host(&["diff", run, "ship", "--stat"]));
    assert_eq!(ship, "modified  CHANGELOG.md\nmodified  README.md\n");

    // The user edits README.md, which the run changed: nothing is applied.
    std::fs::write(s.workspace.join("README.md"), "# my own edit\n").unwrap();
    let refused = s.host(&["apply", run]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("README.md was changed since the run began"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(s.file("calc.py"), original_calc);

    // With --force the run's version wins everywhere.
    let applied = s.host(&["apply", run, "--force"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert!(s.file("calc.py").contains("def subtract"));
    assert!(
        s.file("CHANGELOG.md")
            .contains("- Add subtract(a, b) to the calculator")
    );
    assert!(
        s.file("README.md").contains("- calc.py"),
        "{}",
        s.file("README.md")
    );
}

#[test]
fn a_tiny_real_model_ends_the_pipeline_in_a_defined_state() {
    built();
    let url = local_llm();
    let s = Setup::new("ai-llm");
    let large = format!("large=openai:smollm2@{url}");
    let small = format!("small=openai:smollm2@{url}");
    // The example's calls are sized for a machine doing nothing else; this
    // one shares two cores with the rest of the suite, where the model
    // server generates some 20-40 tokens a second, so the long calls are
    // kept short enough for the example's 120 s per-call timeout.
    let (out, sum) = s.run(
        None,
        &[
            "--set",
            "triage.risk=LOW",
            "--set",
            "execution.max_tokens=400",
            "--set",
            "execution.max_context_bytes=8192",
            "--set",
            "verification.max_tokens=300",
            "--model",
            &large,
            "--model",
            &small,
        ],
    );
    // Success, escalation (with or without failing gates): never a crash.
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 2 | 3)),
        "exit {code:?}: {}",
        stderr(&out)
    );
    assert!(
        ["finished", "escalated"].contains(&sum["outcome"].as_str().unwrap()),
        "{sum}"
    );
    assert_eq!(status(&sum, "execution"), "succeeded");
}

/// The `[gates.*]` blocks examples/ai-coding/README.md offers per language,
/// each put in place of the example's own gates: the manifest they make must
/// validate with every plugin loaded and every grant matching its plugin's
/// needs (no warning either), so the guide cannot drift from the pipeline.
#[test]
fn the_guides_gates_for_python_rust_and_javascript_make_valid_pipelines() {
    let root = workspace_root();
    let guide = std::fs::read_to_string(root.join("examples/ai-coding/README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/ai-coding/pipeline.toml")).unwrap();
    let (before, rest) = example
        .split_once("[gates.compile]")
        .expect("the example declares [gates.compile]");
    let after = &rest[rest.find("[plugins.").expect("plugins follow the gates")..];
    // The example's own paths, relative to examples/ai-coding, made absolute.
    let here = root.join("examples/ai-coding");
    let absolute = |text: &str| {
        text.replace("\"../../", &format!("\"{}/", root.display()))
            .replace("\"../..\"", &format!("\"{}\"", root.display()))
            .replace("\"task.md\"", &format!("\"{}/task.md\"", here.display()))
            .replace("\"project\"", &format!("\"{}/project\"", here.display()))
    };
    let mut blocks = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```toml" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push(block.join("\n"));
        }
    }
    assert_eq!(blocks.len(), 3, "one gates block per language in the guide");
    let dir = tempfile::tempdir().unwrap();
    for (n, block) in blocks.iter().enumerate() {
        assert!(
            block.contains("[gates.compile]") && block.contains("[gates.tests]"),
            "block {n} must declare the two gates verification runs:\n{block}"
        );
        let manifest = dir.path().join(format!("app-{n}.toml"));
        std::fs::write(&manifest, absolute(&format!("{before}{block}\n\n{after}"))).unwrap();
        let out = host(&["validate", manifest.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "block {n} does not validate:\n{block}\n{}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("warning"),
            "block {n} validates with warnings:\n{}",
            stderr(&out)
        );
    }
}
