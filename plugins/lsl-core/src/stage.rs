//! The three stages' bodies: the plugins are one call each into here.

use crate::candidate::Candidate;
use crate::dataset::{self, Example};
use crate::evaluate::{Batches, Outcome, evaluate_resumable, wilson};
use crate::optimizer::{Optimizer, Settings, State, winner};
use plugin_sdk::gates::workspace;
use plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The kv key of the optimizer's checkpoint.
const STATE_KEY: &str = "optimizer-state";

/// The evaluation's finished batches, one kv checkpoint each, so a killed
/// evaluate stage repays only the batch in flight when it resumes.
struct SavedBatches<'a> {
    prompt_stage: &'a str,
    model: &'a str,
}

#[derive(Serialize, Deserialize)]
struct SavedBatch {
    fingerprint: u64,
    outcomes: Vec<Outcome>,
}

impl SavedBatches<'_> {
    fn key(&self, index: usize) -> String {
        format!("evaluate/{}/{}/{index}", self.prompt_stage, self.model)
    }
}

impl Batches for SavedBatches<'_> {
    fn load(&mut self, index: usize, fingerprint: u64) -> Option<Vec<Outcome>> {
        // An unreadable checkpoint is answered again, never trusted.
        let saved: SavedBatch = plugin_sdk::kv::load(&self.key(index)).ok()??;
        (saved.fingerprint == fingerprint).then_some(saved.outcomes)
    }

    fn save(&mut self, index: usize, fingerprint: u64, outcomes: &[Outcome]) {
        let saved = SavedBatch {
            fingerprint,
            outcomes: outcomes.to_vec(),
        };
        if let Err(e) = plugin_sdk::kv::save(&self.key(index), &saved) {
            // Losing a checkpoint costs a repeat after a kill, not a result.
            plugin_sdk::log::warn(&format!("cannot checkpoint an evaluated batch: {e}"));
        }
    }
}

fn split(name: &str) -> Result<Vec<Example>, StageError> {
    let root = workspace().ok_or_else(|| {
        StageError::fatal("this stage reads its dataset from the workspace: grant it read-only")
    })?;
    let examples = dataset::load(&root.join(name)).map_err(StageError::fatal)?;
    if examples.is_empty() {
        return Err(StageError::fatal(format!("{name} has no examples")));
    }
    Ok(examples)
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct OptimizeConfig {
    /// Where the loop starts; without it, the upstream stage's candidate.json.
    seed_instruction: Option<String>,
    train: String,
    val: String,
    #[serde(flatten)]
    settings: Settings,
}

impl Default for OptimizeConfig {
    fn default() -> Self {
        OptimizeConfig {
            seed_instruction: None,
            train: "train.jsonl".into(),
            val: "val.jsonl".into(),
            settings: Settings::default(),
        }
    }
}

/// Stage 1 (`lsl-baseline`) and Stage 2 (`lsl-harden`): the reflective loop,
/// seeded from config or from the upstream candidate.
pub fn optimize(input: &Input, stage: &str) -> Result<Output, StageError> {
    let config: OptimizeConfig = input.config()?;
    if config.settings.task_model.is_empty() || config.settings.reflection_model.is_empty() {
        return Err(StageError::fatal(
            "config needs `task_model` and `reflection_model` aliases",
        ));
    }
    let seed = match (&config.seed_instruction, input.artifact("candidate.json")) {
        (Some(text), _) => Candidate {
            id: format!("{stage}-seed"),
            parent: None,
            stage: "seed".into(),
            instruction: text.clone(),
            val_scores: Vec::new(),
        },
        (None, Some(artifact)) => {
            let mut c: Candidate = artifact
                .as_json()
                .map_err(|e| StageError::fatal(format!("upstream candidate.json: {e}")))?;
            // Scored again below with this stage's task model.
            c.val_scores.clear();
            c
        }
        (None, None) => {
            return Err(StageError::fatal(
                "no seed: set config.seed_instruction or run after a stage that outputs candidate.json",
            ));
        }
    };
    let (train, val) = (split(&config.train)?, split(&config.val)?);
    let mut state: State = plugin_sdk::kv::load(STATE_KEY)?.unwrap_or_default();
    if state.metric_calls > 0 {
        plugin_sdk::log::info(&format!(
            "resuming at iteration {} with {} of {} metric calls already spent",
            state.iteration, state.metric_calls, config.settings.budget
        ));
    }
    let optimizer = Optimizer {
        settings: &config.settings,
        stage,
        train: &train,
        val: &val,
    };
    if !optimizer.start(&mut state, seed) {
        return Err(StageError::fatal(format!(
            "a budget of {} metric calls cannot even score the seed on {} validation examples",
            config.settings.budget,
            val.len()
        )));
    }
    plugin_sdk::kv::save(STATE_KEY, &state)?;
    let mut save_error = None;
    optimizer.run(&mut state, |s| {
        if let Err(e) = plugin_sdk::kv::save(STATE_KEY, s) {
            save_error.get_or_insert(e);
        }
    });
    if let Some(e) = save_error {
        return Err(e.into());
    }
    let best = winner(&state)
        .cloned()
        .ok_or_else(|| StageError::fatal("no candidate"))?;
    Output::new(format!(
        "{stage}: best {} scores {:.3} on validation ({} candidates, {} accepted, {} rejected, {} metric calls)",
        best.id,
        best.mean(),
        state.candidates.len(),
        state.accepted,
        state.rejected,
        state.metric_calls
    ))
    .metric("val_accuracy", best.mean())
    .metric("metric_calls", f64::from(state.metric_calls))
    .metric("accepted", f64::from(state.accepted))
    .metric("rejected", f64::from(state.rejected))
    .metric("iterations", f64::from(state.iteration))
    .json("candidate.json", &best)?
    .json("candidates.json", &state.candidates)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EvaluateConfig {
    /// Model aliases each prompt is evaluated on.
    models: Vec<String>,
    split: String,
    max_tokens: u32,
}

impl Default for EvaluateConfig {
    fn default() -> Self {
        EvaluateConfig {
            models: Vec::new(),
            split: "test.jsonl".into(),
            max_tokens: 200,
        }
    }
}

/// One row of the evaluation result.
#[derive(Debug, Serialize, Deserialize)]
pub struct EvalRow {
    /// The stage whose candidate this is ("baseline", "harden"...).
    pub prompt_stage: String,
    pub prompt_id: String,
    pub model: String,
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub tokens: u64,
    pub duration_ms: u64,
    pub failed: Vec<String>,
}

#[derive(Serialize)]
struct Record<'a> {
    example_id: &'a str,
    prompt_id: &'a str,
    prompt_stage: &'a str,
    model: &'a str,
    output: &'a str,
    extracted: &'a str,
    score: f64,
    tokens: u32,
    latency_ms: u64,
    error: Option<&'a str>,
}

/// Stage 3 (`lsl-evaluate`): every upstream candidate on every model.
pub fn evaluate_stage(input: &Input) -> Result<Output, StageError> {
    let config: EvaluateConfig = input.config()?;
    if config.models.is_empty() {
        return Err(StageError::fatal("config.models names no model alias"));
    }
    let test = split(&config.split)?;
    let prompts: Vec<(String, Candidate)> = input
        .upstream()
        .iter()
        .filter_map(|u| {
            let c: Candidate = u.artifact("candidate.json")?.as_json().ok()?;
            Some((u.stage_id.clone(), c))
        })
        .collect();
    if prompts.is_empty() {
        return Err(StageError::fatal(
            "no upstream stage produced a candidate.json",
        ));
    }
    let params = Params::default()
        .max_tokens(config.max_tokens)
        .temperature(0.0);
    // One record per example, streamed to the host as it is graded: the
    // records never sit in this plugin's memory all at once.
    let mut records = plugin_sdk::artifacts::JsonlWriter::new("records.jsonl");
    let mut write_error = None;
    let mut rows = Vec::new();
    for (stage, candidate) in &prompts {
        for model in &config.models {
            let started = std::time::Instant::now();
            let mut tokens = 0u64;
            let mut saved = SavedBatches {
                prompt_stage: stage,
                model,
            };
            let outcomes: Vec<Outcome> = evaluate_resumable(
                &candidate.instruction,
                &test,
                model,
                &params,
                &mut saved,
                |o| {
                    tokens += u64::from(o.tokens);
                    let record = Record {
                        example_id: &o.example_id,
                        prompt_id: &candidate.id,
                        prompt_stage: stage,
                        model,
                        output: &o.output,
                        extracted: &o.graded.extracted,
                        score: o.graded.score,
                        tokens: o.tokens,
                        latency_ms: o.latency_ms,
                        error: o.error.as_deref(),
                    };
                    if let Err(e) = records.write(&record) {
                        write_error.get_or_insert(e);
                    }
                },
            );
            if let Some(e) = write_error.take() {
                return Err(e);
            }
            let correct = outcomes.iter().filter(|o| o.graded.score >= 1.0).count();
            let (ci_low, ci_high) = wilson(correct, outcomes.len());
            rows.push(EvalRow {
                prompt_stage: stage.clone(),
                prompt_id: candidate.id.clone(),
                model: model.clone(),
                n: outcomes.len(),
                correct,
                accuracy: correct as f64 / outcomes.len().max(1) as f64,
                ci_low,
                ci_high,
                tokens,
                duration_ms: started.elapsed().as_millis() as u64,
                failed: outcomes
                    .iter()
                    .filter(|o| o.graded.score < 1.0)
                    .map(|o| o.example_id.clone())
                    .collect(),
            });
        }
    }
    let mut out = Output::new(
        rows.iter()
            .map(|r| format!("{}@{}: {:.3}", r.prompt_stage, r.model, r.accuracy))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for r in &rows {
        out = out.metric(&format!("{}@{}", r.prompt_stage, r.model), r.accuracy);
    }
    out.metric("records", records.records() as f64)
        .json("evaluation.json", &rows)
}
