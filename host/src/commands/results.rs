//! `host results`: evaluation results across runs (every stage output with
//! an `evaluation.json`, as `lsl-evaluate` writes), and `host results compare
//! RUN_ID`: the baseline against the hardened prompt on each model.
//!
//! This is the Large-Small-Large experiment's reader, kept at the command
//! line's edge: the host's library (scheduler, store, runtime) knows nothing
//! of evaluations, it only stores the artifact the plugin wrote.

use super::{Exit, Failure, Globals, Outcome};
use host::store::{RunRecord, Store};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
struct Row {
    prompt_stage: String,
    prompt_id: String,
    model: String,
    n: usize,
    correct: usize,
    accuracy: f64,
    ci_low: f64,
    ci_high: f64,
    tokens: u64,
    duration_ms: u64,
}

/// The evaluation rows of one run, with the stage that wrote them.
fn rows_of(store: &Store, run: &RunRecord) -> Result<Vec<(String, Row)>, Failure> {
    let stages = store.stages(run)?;
    let mut out = Vec::new();
    for s in stages {
        let Some(artifact) = s
            .output
            .as_ref()
            .and_then(|o| o.artifacts.iter().find(|a| a.name == "evaluation.json"))
        else {
            continue;
        };
        let bytes = store.blob(&artifact.hash)?.unwrap_or_default();
        match serde_json::from_slice::<Vec<Row>>(&bytes) {
            Ok(rows) => out.extend(rows.into_iter().map(|r| (s.stage.clone(), r))),
            Err(e) => eprintln!(
                "warning: run {} stage {}: evaluation.json is not an evaluation result: {e}",
                run.id, s.stage
            ),
        }
    }
    Ok(out)
}

#[derive(clap::Args)]
pub struct ResultsArgs {
    #[command(subcommand)]
    action: Option<ResultsAction>,
    /// Print the results as JSON lines.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum ResultsAction {
    /// The baseline against the hardened prompt on each model, for one run.
    Compare(CompareArgs),
}

#[derive(clap::Args)]
struct CompareArgs {
    /// The run of an LSL pipeline (see `host runs`).
    run_id: String,
    /// How to print the comparison.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The prompt stage to compare from.
    #[arg(long, default_value = "baseline")]
    baseline: String,
    /// The prompt stage to compare to.
    #[arg(long, default_value = "harden")]
    hardened: String,
}

pub fn results(globals: &Globals, args: ResultsArgs) -> Outcome {
    match args.action {
        None => list(globals, args.json),
        Some(ResultsAction::Compare(c)) => {
            compare(globals, &c.run_id, &c.baseline, &c.hardened, c.format)
        }
    }
}

fn list(globals: &Globals, json: bool) -> Outcome {
    let store = globals.existing_store()?;
    let runs = store.runs()?;
    if !json {
        println!(
            "{:<24} {:<10} {:<10} {:<14} {:<8} {:>8} {:>15} {:>4} {:>8}",
            "run", "stage", "prompt", "prompt id", "model", "accuracy", "95% CI", "n", "tokens"
        );
    }
    for run in &runs {
        let rows = rows_of(&store, run)?;
        for (stage, r) in rows {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "run": run.id, "stage": stage, "prompt_stage": r.prompt_stage,
                        "prompt_id": r.prompt_id, "model": r.model, "n": r.n, "correct": r.correct,
                        "accuracy": r.accuracy, "ci_low": r.ci_low, "ci_high": r.ci_high,
                        "tokens": r.tokens, "duration_ms": r.duration_ms,
                    })
                );
            } else {
                println!(
                    "{:<24} {:<10} {:<10} {:<14} {:<8} {:>8.3} {:>15} {:>4} {:>8}",
                    run.id,
                    stage,
                    r.prompt_stage,
                    r.prompt_id,
                    r.model,
                    r.accuracy,
                    format!("[{:.2}, {:.2}]", r.ci_low, r.ci_high),
                    r.n,
                    r.tokens
                );
            }
        }
    }
    Ok(Exit::Success)
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// Aligned columns for the terminal.
    Text,
    /// A Markdown table, to paste into a report.
    Markdown,
}

fn compare(
    globals: &Globals,
    run_id: &str,
    baseline: &str,
    hardened: &str,
    format: Format,
) -> Outcome {
    let (store, run) = globals.run_store(run_id)?;
    let rows = rows_of(&store, &run)?;
    if rows.is_empty() {
        return Err(Failure::invalid(format!(
            "run {run_id} has no evaluation results (no stage wrote evaluation.json)"
        )));
    }
    let mut models: Vec<String> = rows.iter().map(|(_, r)| r.model.clone()).collect();
    models.sort();
    models.dedup();
    let find = |stage: &str, model: &str| {
        rows.iter()
            .map(|(_, r)| r)
            .find(|r| r.prompt_stage == stage && r.model == model)
    };
    let cell = |r: Option<&Row>| {
        r.map_or("-".to_string(), |r| {
            format!("{:.3} [{:.2}, {:.2}]", r.accuracy, r.ci_low, r.ci_high)
        })
    };
    let header = [
        "model".to_string(),
        format!("{baseline} accuracy [95% CI]"),
        format!("{hardened} accuracy [95% CI]"),
        "delta".to_string(),
        "tokens".to_string(),
        "duration".to_string(),
    ];
    let mut table = Vec::new();
    for model in &models {
        let (b, h) = (find(baseline, model), find(hardened, model));
        let delta = match (b, h) {
            (Some(b), Some(h)) => format!("{:+.3}", h.accuracy - b.accuracy),
            _ => "-".into(),
        };
        let tokens: u64 = [b, h].iter().flatten().map(|r| r.tokens).sum();
        let ms: u64 = [b, h].iter().flatten().map(|r| r.duration_ms).sum();
        table.push([
            model.clone(),
            cell(b),
            cell(h),
            delta,
            tokens.to_string(),
            format!("{:.1}s", ms as f64 / 1000.0),
        ]);
    }
    match format {
        Format::Markdown => {
            println!("# {} vs {} (run {run_id})\n", baseline, hardened);
            println!("| {} |", header.join(" | "));
            println!("|{}|", vec!["---"; header.len()].join("|"));
            for row in &table {
                println!("| {} |", row.join(" | "));
            }
            println!(
                "\nAccuracy is exact match after answer extraction on the test split; the interval is Wilson's."
            );
        }
        Format::Text => {
            println!("run {run_id}: {baseline} vs {hardened}");
            println!(
                "{:<10} {:<26} {:<26} {:>7} {:>8} {:>9}",
                header[0], header[1], header[2], header[3], header[4], header[5]
            );
            for r in &table {
                println!(
                    "{:<10} {:<26} {:<26} {:>7} {:>8} {:>9}",
                    r[0], r[1], r[2], r[3], r[4], r[5]
                );
            }
        }
    }
    Ok(Exit::Success)
}
