//! Discovery: asks two (or more) models for a spec at the same time, keeps
//! each answer under its model's alias (so the result does not depend on
//! which answered first), and has the lead model merge them, in the session
//! planning continues. A merge that comes back empty falls back to the specs
//! side by side.

use plugin_sdk::models::{self, Message, Request};
use plugin_sdk::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// The aliases asked for a spec.
    models: Vec<String>,
    /// The alias that merges the specs (default: the first of `models`).
    lead: Option<String>,
    /// The session shared with planning.
    session: String,
    max_tokens: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            models: Vec::new(),
            lead: None,
            session: "plan".into(),
            max_tokens: 700,
        }
    }
}

const ANALYST: &str = "You are a senior software analyst. Given a coding task and the project's files, \
write a short specification: the goal, the files to change, the acceptance criteria, and the risks. \
Be concrete and brief.";

struct Discovery;

impl Stage for Discovery {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "discovery",
            env!("CARGO_PKG_VERSION"),
            "Asks several models for a spec in parallel and merges them",
        )
        .model(Need::config("models"))
        .model(Need::config("lead").optional())
        .session(Need::config("session").or("plan"))
        .optional_workspace(WorkspaceAccess::ReadOnly)
    }

    fn run(input: Input) -> Result<Output, StageError> {
        let config: Config = input.config()?;
        if config.models.is_empty() {
            return Err(StageError::fatal("config.models names no model alias"));
        }
        let params = Params::default()
            .max_tokens(config.max_tokens)
            .temperature(0.2);
        let prompt = format!(
            "Task:\n{}\n\nProject files:\n{}",
            input.task(),
            plugin_sdk::gates::workspace()
                .map(|w| plugin_helpers::project::files(w).join("\n"))
                .unwrap_or_else(|| "(not visible to this stage)".into())
        );
        let requests: Vec<Request> = config
            .models
            .iter()
            .map(|alias| {
                Request::new(
                    alias,
                    vec![Message::system(ANALYST), Message::user(prompt.clone())],
                    params.clone(),
                )
            })
            .collect();
        let answers = models::complete_all(&requests);
        let mut specs = BTreeMap::new();
        let mut failures = Vec::new();
        for (alias, answer) in config.models.iter().zip(answers) {
            match answer {
                Ok(c) if !c.text.trim().is_empty() => {
                    specs.insert(alias.clone(), c.text.trim().to_string());
                }
                Ok(_) => failures.push(format!("{alias}: empty answer")),
                Err(e) => failures.push(format!("{alias}: {}", models::describe(&e))),
            }
        }
        if specs.is_empty() {
            return Err(StageError::retryable(format!(
                "no model produced a spec: {}",
                failures.join("; ")
            )));
        }
        let side_by_side: String = specs
            .iter()
            .map(|(alias, spec)| format!("## Spec from {alias}\n\n{spec}\n"))
            .collect::<Vec<_>>()
            .join("\n");
        let lead = config
            .lead
            .clone()
            .unwrap_or_else(|| config.models[0].clone());
        let merged = if specs.len() == 1 {
            side_by_side.clone()
        } else {
            let ask = format!(
                "Task:\n{}\n\nMerge these specifications into one, keeping every acceptance criterion and risk:\n\n{side_by_side}",
                input.task()
            );
            match models::ask_in(&lead, &config.session, &ask, &params) {
                Ok(text) if text.trim().len() >= 20 => text.trim().to_string(),
                Ok(_) | Err(_) => side_by_side.clone(),
            }
        };
        let mut out = Output::new(format!(
            "spec from {} model(s){}",
            specs.len(),
            if failures.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", failures.join("; "))
            }
        ))
        .text("spec.md", format!("# Specification\n\n{merged}\n"))
        .json("specs.json", &specs)?;
        out = out.metric("models_answered", specs.len() as f64);
        Ok(out)
    }
}

plugin_sdk::export_stage!(Discovery);
