//! Planning with review: the planner writes a plan (in the session discovery
//! started), a second model adds the edge cases it misses, a reviewer answers
//! {"approved": bool, "issues": [...]}; rejected plans are revised with the
//! issues and reviewed again, at most `max_reviews` times, then the run is
//! escalated with the last issues.

use plugin_helpers::{text, verdict};
use plugin_sdk::models::{self, Message};
use plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    planner: String,
    /// A second model that lists missed edge cases (optional).
    edge_cases: Option<String>,
    reviewer: String,
    session: String,
    max_reviews: u32,
    max_tokens: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            planner: String::new(),
            edge_cases: None,
            reviewer: String::new(),
            session: "plan".into(),
            max_reviews: 2,
            max_tokens: 900,
        }
    }
}

#[derive(Serialize)]
struct Review {
    round: u32,
    approved: bool,
    well_formed: bool,
    issues: Vec<String>,
}

const PLANNER: &str = "You are a careful senior engineer. Write a numbered, step-by-step implementation plan \
for the task: which files change and how, and which tests prove it works. Be brief and concrete.";
const EDGES: &str = "You are a test engineer. List, as short bullet points, the edge cases and failure \
modes this plan does not handle yet. Nothing else.";
const REVIEWER: &str = "You are a strict reviewer of implementation plans.";

struct Planning;

impl Stage for Planning {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "planning",
            env!("CARGO_PKG_VERSION"),
            "Plans with a model, adds edge cases, and revises until a reviewer approves",
        )
        .model(Need::config("planner"))
        .model(Need::config("edge_cases").optional())
        .model(Need::config("reviewer"))
        .session(Need::config("session").or("plan"))
    }

    fn run(input: Input) -> Result<Output, StageError> {
        let config: Config = input.config()?;
        if config.planner.is_empty() || config.reviewer.is_empty() {
            return Err(StageError::fatal(
                "config needs `planner` and `reviewer` model aliases",
            ));
        }
        let params = Params::default()
            .max_tokens(config.max_tokens)
            .temperature(0.2);
        let spec = input
            .text("spec.md")
            .map(|s| format!("\n\nSpecification:\n{s}"))
            .unwrap_or_default();
        let ask = format!("{PLANNER}\n\nTask:\n{}{spec}", input.task());
        let mut plan = models::ask_in(&config.planner, &config.session, &ask, &params)?;
        if let Some(alias) = &config.edge_cases {
            let messages = [
                Message::system(EDGES),
                Message::user(format!("Task:\n{}\n\nPlan:\n{plan}", input.task())),
            ];
            // Edge cases help; their absence does not stop the plan.
            match models::complete(alias, &messages, &params) {
                Ok(c) if !c.text.trim().is_empty() => {
                    plan = format!("{plan}\n\n## Edge cases\n\n{}", c.text.trim());
                }
                _ => plugin_sdk::log::warn("the edge-case model gave nothing; going on without"),
            }
        }
        let mut reviews = Vec::new();
        let rounds = config.max_reviews.max(1);
        for round in 1..=rounds {
            let messages = [
                Message::system(REVIEWER),
                Message::user(format!(
                    "Task:\n{}\n\nPlan:\n{plan}\n\nIs this plan correct and complete enough to implement? {}",
                    input.task(),
                    verdict::instructions("approved")
                )),
            ];
            let answer = models::complete(&config.reviewer, &messages, &params)?;
            let v = verdict::parse(&answer.text, "approved");
            reviews.push(Review {
                round,
                approved: v.ok,
                well_formed: v.well_formed,
                issues: v.issues.clone(),
            });
            if v.ok {
                return Output::new(format!("plan approved in review {round}"))
                    .decision("approved")
                    .metric("reviews", f64::from(round))
                    .text("plan.md", format!("# Plan\n\n{plan}\n"))
                    .json("reviews.json", &reviews);
            }
            if round == rounds {
                return Output::new(format!(
                    "plan not approved after {rounds} review(s): {}",
                    text::excerpt(&v.issues.join("; "), 300)
                ))
                .decision("escalate")
                .metric("reviews", f64::from(round))
                .text("plan.md", format!("# Plan (not approved)\n\n{plan}\n"))
                .json("reviews.json", &reviews);
            }
            let revise = format!(
                "The reviewer rejected the plan. Revise it to address every issue:\n{}\n\nWrite the whole revised plan.",
                text::bullets(&v.issues)
            );
            plan = models::ask_in(&config.planner, &config.session, &revise, &params)?;
        }
        Err(StageError::fatal(
            "unreachable: the review loop always returns",
        ))
    }
}

plugin_sdk::export_stage!(Planning);
