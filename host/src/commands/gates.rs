//! `host gates PIPELINE.toml`: runs every declared gate once on the
//! workspace, so a missing tool is found before a long run, not during it.

use super::{Exit, Outcome, load_manifest};
use host::capabilities::gates::run_gate;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct GatesArgs {
    /// The pipeline file whose gates to run.
    pipeline: PathBuf,
    /// Print each gate's output, not only that of failed gates.
    #[arg(long)]
    output: bool,
    /// Print the results as one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn gates(args: GatesArgs) -> Outcome {
    let (path, json, show_output) = (args.pipeline.as_path(), args.json, args.output);
    let pipeline = load_manifest(path)?;
    let Some(workspace) = &pipeline.workspace else {
        eprintln!(
            "{}: the pipeline declares no workspace and no gates",
            path.display()
        );
        return Ok(Exit::Success);
    };
    if pipeline.gates.is_empty() {
        eprintln!("{}: the pipeline declares no gates", path.display());
        return Ok(Exit::Success);
    }
    if !json {
        println!("workspace: {}", workspace.display());
        println!(
            "{:<16} {:<6} {:>5} {:>9}  reason",
            "gate", "result", "exit", "time"
        );
    }
    let mut failed = 0;
    for gate in pipeline.gates.values() {
        let run = run_gate(gate, workspace).await;
        if !run.passed {
            failed += 1;
        }
        if json {
            println!("{}", serde_json::to_string(&run).unwrap_or_default());
            continue;
        }
        println!(
            "{:<16} {:<6} {:>5} {:>8.2}s  {}",
            run.gate,
            if run.passed { "pass" } else { "FAIL" },
            run.exit_code().map_or("-".into(), |c| c.to_string()),
            run.duration_ms as f64 / 1000.0,
            run.reason()
        );
        if show_output || !run.passed {
            for line in run.output.lines() {
                println!("    | {line}");
            }
        }
    }
    if failed > 0 {
        if !json {
            println!("{failed} of {} gate(s) failed", pipeline.gates.len());
        }
        Ok(Exit::StageFailed)
    } else {
        Ok(Exit::Success)
    }
}
