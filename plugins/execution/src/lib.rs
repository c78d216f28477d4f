//! Execution: turns the plan (or, for a LOW-risk task, the task itself) into
//! whole-file changes in the workspace. The model answers in a strict block
//! format; a malformed answer gets one chance to fix its format, then the
//! stage reports that it changed nothing and verification decides. On a
//! verification loop it receives the findings as feedback.

use plugin_helpers::files::{self, FORMAT_INSTRUCTIONS};
use plugin_helpers::project;
use plugin_sdk::models::{self, Message};
use plugin_sdk::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    model: String,
    /// A session to carry across attempts and loop iterations. Off by
    /// default: each iteration's prompt already restates the project, the
    /// plan and the findings, and carrying every earlier prompt too soon
    /// outgrows a small model's context window.
    session: Option<String>,
    max_tokens: u32,
    /// Largest file, and total, shown to the model from the project.
    max_file_bytes: usize,
    max_context_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: String::new(),
            session: None,
            max_tokens: 2000,
            max_file_bytes: 8 << 10,
            max_context_bytes: 48 << 10,
        }
    }
}

const ENGINEER: &str = "You are a precise software engineer. You change the project to complete the task. \
Keep changes minimal and make the tests pass.";

struct Execution;

impl Stage for Execution {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "execution",
            env!("CARGO_PKG_VERSION"),
            "Writes the plan's file changes into the workspace, strictly parsed",
        )
        .model(Need::config("model"))
        .session(Need::config("session").optional())
        .workspace(WorkspaceAccess::ReadWrite)
    }

    fn run(input: Input) -> Result<Output, StageError> {
        let config: Config = input.config()?;
        if config.model.is_empty() {
            return Err(StageError::fatal("config needs a `model` alias"));
        }
        let root = plugin_sdk::gates::workspace()
            .ok_or_else(|| StageError::fatal("this stage needs the workspace, read-write"))?;
        let params = Params::default()
            .max_tokens(config.max_tokens)
            .temperature(0.1);
        let plan = input
            .text("plan.md")
            .map(|p| format!("Plan:\n{p}"))
            .unwrap_or_else(|| "No plan: the task is small enough to do directly.".into());
        let feedback = input
            .feedback()
            .map(|f| {
                format!(
                    "\n\nThe previous attempt was checked and needs these fixes (iteration {}):\n{f}",
                    input.iteration()
                )
            })
            .unwrap_or_default();
        let prompt = format!(
            "Task:\n{}\n\n{plan}{feedback}\n\nProject:\n{}\n\n{FORMAT_INSTRUCTIONS}",
            input.task(),
            project::context(root, config.max_file_bytes, config.max_context_bytes),
        );
        let mut messages = vec![Message::system(ENGINEER), Message::user(prompt)];
        let ask = |messages: &[Message]| match &config.session {
            Some(session) => models::converse(&config.model, session, messages, &params),
            None => models::complete(&config.model, messages, &params),
        };
        let first = ask(&messages)?;
        let edits = match files::parse(&first.text) {
            Ok(edits) => Ok(edits),
            Err(e) => {
                let fix = format!(
                    "Your answer could not be used: {e}. Answer again with only the file blocks.\n\n{FORMAT_INSTRUCTIONS}"
                );
                // In a session the host keeps the exchange; without one, it
                // is sent again here.
                if config.session.is_some() {
                    messages.clear();
                } else {
                    messages.push(Message::assistant(first.text.clone()));
                }
                messages.push(Message::user(fix));
                let second = ask(&messages)?;
                files::parse(&second.text).map_err(|e2| format!("{e}; then {e2}"))
            }
        };
        match edits {
            Ok(edits) => {
                let written = files::apply(root, &edits).map_err(StageError::fatal)?;
                Output::new(format!(
                    "changed {} file(s): {}",
                    written.len(),
                    written.join(", ")
                ))
                .decision("changed")
                .metric("files_changed", written.len() as f64)
                .json("changes.json", &written)
            }
            Err(why) => Ok(Output::new(format!(
                "the model produced no usable file changes: {why}"
            ))
            .decision("no-changes")
            .metric("files_changed", 0.0)),
        }
    }
}

plugin_sdk::export_stage!(Execution);
