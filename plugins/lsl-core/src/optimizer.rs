//! The reflective optimizer (GEPA-style): pick a parent from the Pareto
//! frontier, run it on a minibatch of training examples, show its failures
//! with the metric's feedback to a reflection model, keep the proposed child
//! only if it beats the parent on that minibatch, then score it on the
//! validation set. The budget counts metric calls (task-model evaluations)
//! and is never exceeded; the state is checkpointed after every iteration so
//! a killed stage resumes mid-loop with its spent budget remembered.

use crate::candidate::{Candidate, best, frontier};
use crate::dataset::Example;
use crate::evaluate::{Outcome, accuracy, evaluate};
use plugin_sdk::models::{self, Message, Params};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The model the instruction is for.
    pub task_model: String,
    /// The model that proposes better instructions.
    pub reflection_model: String,
    /// Most metric calls (task-model evaluations) this stage may make.
    pub budget: u32,
    pub minibatch: usize,
    pub max_tokens: u32,
    pub reflection_max_tokens: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            task_model: String::new(),
            reflection_model: String::new(),
            budget: 60,
            minibatch: 4,
            max_tokens: 200,
            reflection_max_tokens: 400,
        }
    }
}

/// Everything the loop needs to go on after a crash.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub candidates: Vec<Candidate>,
    pub metric_calls: u32,
    pub iteration: u32,
    pub accepted: u32,
    pub rejected: u32,
    /// Iterations whose reflection produced no usable instruction.
    pub unusable: u32,
}

/// What one iteration did, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Accepted {
        id: String,
        val_mean: f64,
    },
    Rejected {
        parent_score: f64,
        child_score: f64,
    },
    /// Better on the minibatch, but the budget cannot pay for validating it.
    Unaffordable {
        child_score: f64,
    },
    NoFailures,
    Unusable,
    OutOfBudget,
}

/// Pulls the proposed instruction out of a reflection answer.
pub fn proposed_instruction(answer: &str) -> Option<String> {
    let inner = match (answer.find("<instruction>"), answer.rfind("</instruction>")) {
        (Some(a), Some(b)) if b > a => &answer[a + "<instruction>".len()..b],
        _ => match (answer.find("```"), answer.rfind("```")) {
            (Some(a), Some(b)) if b > a + 3 => {
                let block = &answer[a + 3..b];
                block.split_once('\n').map_or(block, |(_, rest)| rest)
            }
            _ => answer,
        },
    };
    let text = inner.trim();
    (text.len() >= 10 && text.len() <= 4000).then(|| text.to_string())
}

fn reflection_prompt(instruction: &str, failures: &[&Outcome]) -> String {
    let mut cases = String::new();
    for f in failures.iter().take(6) {
        cases.push_str(&format!(
            "Question: {}\nModel's answer: {}\nFeedback: {}\n\n",
            f.question,
            plugin_helpers::text::excerpt(&f.output, 300),
            f.graded.feedback
        ));
    }
    format!(
        "An assistant follows this instruction:\n<instruction>\n{instruction}\n</instruction>\n\n\
         It failed on these examples:\n\n{cases}\
         Write an improved instruction that fixes these failures and still works in general. \
         Reply with only the new instruction between <instruction> and </instruction>."
    )
}

pub struct Optimizer<'a> {
    pub settings: &'a Settings,
    pub stage: &'a str,
    pub train: &'a [Example],
    pub val: &'a [Example],
}

impl Optimizer<'_> {
    fn params(&self) -> Params {
        Params::default()
            .max_tokens(self.settings.max_tokens)
            .temperature(0.0)
    }

    fn remaining(&self, state: &State) -> u32 {
        self.settings.budget.saturating_sub(state.metric_calls)
    }

    /// Scores `instruction` on the validation split (spending its calls).
    fn validate(&self, state: &mut State, instruction: &str) -> Vec<f64> {
        let outcomes = evaluate(
            instruction,
            self.val,
            &self.settings.task_model,
            &self.params(),
            |_| {},
        );
        state.metric_calls += self.val.len() as u32;
        outcomes.iter().map(|o| o.graded.score).collect()
    }

    /// Makes sure the seed is scored; false if the budget cannot afford it.
    pub fn start(&self, state: &mut State, seed: Candidate) -> bool {
        if !state.candidates.is_empty() {
            return true;
        }
        if self.remaining(state) < self.val.len() as u32 {
            return false;
        }
        let mut seed = seed;
        seed.val_scores = self.validate(state, &seed.instruction);
        state.candidates.push(seed);
        true
    }

    /// One iteration; `None` when the budget cannot pay for another.
    pub fn step(&self, state: &mut State) -> Step {
        let k = self.settings.minibatch.max(1).min(self.train.len().max(1));
        if self.train.is_empty() || self.remaining(state) < 2 * k as u32 {
            return Step::OutOfBudget;
        }
        let front = frontier(&state.candidates);
        let parent = state.candidates[front[state.iteration as usize % front.len()]].clone();
        let batch: Vec<Example> = (0..k)
            .map(|j| self.train[(state.iteration as usize * k + j) % self.train.len()].clone())
            .collect();
        state.iteration += 1;
        let params = self.params();
        let parent_out = evaluate(
            &parent.instruction,
            &batch,
            &self.settings.task_model,
            &params,
            |_| {},
        );
        state.metric_calls += k as u32;
        let failures: Vec<&Outcome> = parent_out.iter().filter(|o| o.graded.score < 1.0).collect();
        if failures.is_empty() {
            return Step::NoFailures;
        }
        let reflection = models::complete(
            &self.settings.reflection_model,
            &[
                Message::system("You improve instructions for language models."),
                Message::user(reflection_prompt(&parent.instruction, &failures)),
            ],
            &Params::default()
                .max_tokens(self.settings.reflection_max_tokens)
                .temperature(0.7),
        );
        let Some(child_instruction) = reflection
            .ok()
            .and_then(|c| proposed_instruction(&c.text))
            .filter(|i| i != &parent.instruction)
        else {
            state.unusable += 1;
            return Step::Unusable;
        };
        let child_out = evaluate(
            &child_instruction,
            &batch,
            &self.settings.task_model,
            &params,
            |_| {},
        );
        state.metric_calls += k as u32;
        let (parent_score, child_score) = (accuracy(&parent_out), accuracy(&child_out));
        if child_score <= parent_score {
            state.rejected += 1;
            return Step::Rejected {
                parent_score,
                child_score,
            };
        }
        if self.remaining(state) < self.val.len() as u32 {
            return Step::Unaffordable { child_score };
        }
        let val_scores = self.validate(state, &child_instruction);
        let child = Candidate {
            id: format!("{}-{}", self.stage, state.iteration),
            parent: Some(parent.id.clone()),
            stage: self.stage.to_string(),
            instruction: child_instruction,
            val_scores,
        };
        let val_mean = child.mean();
        let id = child.id.clone();
        state.candidates.push(child);
        state.accepted += 1;
        Step::Accepted { id, val_mean }
    }

    /// The loop: steps until the budget runs out, checkpointing after each.
    pub fn run(&self, state: &mut State, mut checkpoint: impl FnMut(&State)) {
        // A loop that makes no progress still spends budget on every step
        // (each step evaluates its parent), so this ends; the cap is a guard.
        for _ in 0..10_000 {
            let step = self.step(state);
            checkpoint(state);
            plugin_sdk::log::info(&format!(
                "iteration {}: {step:?} ({} of {} metric calls)",
                state.iteration, state.metric_calls, self.settings.budget
            ));
            if matches!(step, Step::OutOfBudget | Step::Unaffordable { .. }) {
                break;
            }
        }
    }
}

/// The best candidate so far.
pub fn winner(state: &State) -> Option<&Candidate> {
    best(&state.candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proposals_in_tags_fences_or_plain() {
        assert_eq!(
            proposed_instruction(
                "Sure:\n<instruction>\nSolve it. End with 'Final Answer: N'.\n</instruction>"
            )
            .as_deref(),
            Some("Solve it. End with 'Final Answer: N'.")
        );
        assert_eq!(
            proposed_instruction("```text\nThink step by step, then answer.\n```").as_deref(),
            Some("Think step by step, then answer.")
        );
        assert_eq!(proposed_instruction("ok"), None);
    }
}
