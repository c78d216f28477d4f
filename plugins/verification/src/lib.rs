//! Verification: the preflight gates first, fail-closed; when they pass, an
//! auditor model in a session of its own answers {"ready": bool, "issues":
//! [...]}. Anything short of ready decides "revise" with the findings as
//! feedback for execution (the pipeline's loop caps how often).

use plugin_helpers::{project, text, verdict};
use plugin_sdk::gates;
use plugin_sdk::models::{self, Message};
use plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// Gates to run, in order (all of them, even after a failure).
    gates: Vec<String>,
    auditor: String,
    session: String,
    max_tokens: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            gates: Vec::new(),
            auditor: String::new(),
            session: "verify".into(),
            max_tokens: 600,
        }
    }
}

#[derive(Serialize)]
struct Findings<'a> {
    gates_passed: bool,
    ready: bool,
    issues: &'a [String],
}

const AUDITOR: &str = "You are an independent code auditor. You check that a change does what the task \
asks, and nothing unsafe.";

struct Verification;

impl Stage for Verification {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "verification",
            env!("CARGO_PKG_VERSION"),
            "Runs the preflight gates, then asks an independent auditor model",
        )
        .gate(Need::config("gates").optional())
        .model(Need::config("auditor"))
        .session(Need::config("session").or("verify"))
        .optional_workspace(WorkspaceAccess::ReadOnly)
    }

    fn run(input: Input) -> Result<Output, StageError> {
        let config: Config = input.config()?;
        let results = gates::run_all(config.gates.iter().map(String::as_str))?;
        let gates_passed = results.iter().all(|r| r.passed);
        let gate_json: Vec<serde_json::Value> = results
            .iter()
            .map(|r| serde_json::json!({"gate": r.name, "passed": r.passed, "reason": r.reason}))
            .collect();
        if !gates_passed {
            let report = gates::report(&results);
            let failed: Vec<&str> = results
                .iter()
                .filter(|r| !r.passed)
                .map(|r| r.name.as_str())
                .collect();
            return Output::new(format!("gates failed: {}", failed.join(", ")))
                .decision("revise")
                .text("feedback.md", report)
                .json("gates.json", &gate_json)?
                .json(
                    "findings.json",
                    &Findings {
                        gates_passed,
                        ready: false,
                        issues: &[format!("gates failed: {}", failed.join(", "))],
                    },
                );
        }
        if config.auditor.is_empty() {
            return Output::new("gates passed; no auditor configured")
                .decision("pass")
                .json("gates.json", &gate_json);
        }
        let changed = project::changed_files(&input);
        let shown = plugin_sdk::gates::workspace()
            .map(|root| project::show(root, &changed, 32 << 10))
            .unwrap_or_default();
        let messages = [
            Message::system(AUDITOR),
            Message::user(format!(
                "Task:\n{}\n\nChanged files:\n{}\n\nGates: {}\n\nIs the change ready to ship? {}",
                input.task(),
                if shown.is_empty() {
                    "(none)".to_string()
                } else {
                    shown
                },
                text::excerpt(&gates::report(&results), 400),
                verdict::instructions("ready")
            )),
        ];
        let params = Params::default()
            .max_tokens(config.max_tokens)
            .temperature(0.0);
        let answer = models::converse(&config.auditor, &config.session, &messages, &params)?;
        let v = verdict::parse(&answer.text, "ready");
        let findings = Findings {
            gates_passed,
            ready: v.ok,
            issues: &v.issues,
        };
        if v.ok {
            Output::new("gates passed; the auditor says ready")
                .decision("pass")
                .json("gates.json", &gate_json)?
                .json("findings.json", &findings)
        } else {
            Output::new(format!(
                "the auditor says not ready: {}",
                text::excerpt(&v.issues.join("; "), 300)
            ))
            .decision("revise")
            .text(
                "feedback.md",
                format!("The auditor found:\n{}", text::bullets(&v.issues)),
            )
            .json("gates.json", &gate_json)?
            .json("findings.json", &findings)
        }
    }
}

plugin_sdk::export_stage!(Verification);
