//! `host bench`: runs the benchmark scenarios and prints their figures.

use super::{Exit, Failure, Outcome};
use host::bench::{self, Options, Scenario};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Scenarios to run (default: all).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// The no-op stage component (default: target/wasm32-wasip2/release/noop.wasm).
    #[arg(long, value_name = "WASM")]
    noop: Option<PathBuf>,
    /// The `faulty` test stage, for the limits scenario (default: next to --noop).
    #[arg(long, value_name = "WASM")]
    faulty: Option<PathBuf>,
    /// A large component (e.g. a Python plugin) to time cached loads of.
    #[arg(long, value_name = "WASM")]
    large: Option<PathBuf>,
    /// A plugin for the polyglot scenario, labelled (repeatable): a stage
    /// made by `host plugin new`, e.g. --plugin python=tpl-py/tpl-py.wasm.
    #[arg(long = "plugin", value_name = "LABEL=WASM", value_parser = labelled)]
    plugins: Vec<(String, PathBuf)>,
    /// Scratch directory, on the disk to measure (default: a temporary one).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Stages in the resume scenario's finished run.
    #[arg(long, default_value_t = 1000)]
    resume_stages: usize,
    /// Stages in the DAG scenario.
    #[arg(long, default_value_t = 10_000)]
    dag_stages: usize,
    /// Files in the workspace-copy scenario's tree (20 KB each on average:
    /// 10,000 files is 200 MB).
    #[arg(long, default_value_t = 10_000)]
    workspace_files: usize,
    /// Runs in the retention scenario (each of two state directories).
    #[arg(long, default_value_t = 1000)]
    retention_runs: usize,
    /// Stage transitions timed in the commit scenario.
    #[arg(long, default_value_t = 500)]
    commit_stages: usize,
    /// Repetitions of each end-to-end scenario.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// The OpenAI-compatible server for the ai-coding scenario (default:
    /// $LOCAL_LLM_URL, else http://127.0.0.1:8088/v1).
    #[arg(long, value_name = "URL")]
    model_url: Option<String>,
    /// Print rows as JSON lines.
    #[arg(long)]
    json: bool,
}

fn labelled(spec: &str) -> Result<(String, PathBuf), String> {
    match spec.split_once('=') {
        Some((label, path)) if !label.is_empty() && !path.is_empty() => {
            Ok((label.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected LABEL=WASM, got '{spec}'")),
    }
}

fn default_noop() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("wasm32-wasip2/release/noop.wasm")
}

pub async fn bench(args: BenchArgs) -> Outcome {
    let noop = args.noop.unwrap_or_else(default_noop);
    if !noop.is_file() {
        return Err(Failure::invalid(format!(
            "the no-op component {} does not exist; build it with\n  \
             cargo build --release --target wasm32-wasip2 -p noop\nor pass --noop FILE",
            noop.display()
        )));
    }
    // Generated pipelines live elsewhere: they need an absolute path.
    let noop = std::path::absolute(&noop).unwrap_or(noop);
    let host = std::env::current_exe()
        .map_err(|e| Failure::host(format!("cannot find the host binary itself: {e}")))?;
    let (dir, temporary) = match args.dir {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("host-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::host(format!("cannot create {}: {e}", dir.display())))?;
    let scenarios = if args.scenarios.is_empty() {
        vec![
            Scenario::Commit,
            Scenario::Instantiate,
            Scenario::CachedLoad,
            Scenario::Resume,
            Scenario::Dag,
            Scenario::ModelCall,
            Scenario::Limits,
            Scenario::DevReload,
            Scenario::AiCoding,
            Scenario::LogLine,
            Scenario::Retention,
            Scenario::LazyInputs,
            Scenario::Streaming,
        ]
        .into_iter()
        .chain((!args.plugins.is_empty()).then_some(Scenario::Polyglot))
        .collect()
    } else {
        args.scenarios
    };
    let faulty = args
        .faulty
        .unwrap_or_else(|| noop.with_file_name("faulty.wasm"));
    let faulty = std::path::absolute(&faulty).unwrap_or(faulty);
    let needs_faulty = [Scenario::Limits, Scenario::Retention];
    if needs_faulty.iter().any(|s| scenarios.contains(s)) && !faulty.is_file() {
        return Err(Failure::invalid(format!(
            "the limits and retention scenarios need the faulty test stage at {}; build it with\n  \
             cargo build --release --target wasm32-wasip2 -p faulty\nor pass --faulty FILE",
            faulty.display()
        )));
    }
    let options = Options {
        scenarios,
        host,
        faulty,
        noop,
        large: args.large,
        // Like --noop: the generated manifest lives elsewhere.
        plugins: args
            .plugins
            .into_iter()
            .map(|(label, p)| (label, std::path::absolute(&p).unwrap_or(p)))
            .collect(),
        dir: dir.clone(),
        commit_stages: args.commit_stages.max(1),
        resume_stages: args.resume_stages,
        dag_stages: args.dag_stages.max(1),
        workspace_files: args.workspace_files.max(100),
        retention_runs: args.retention_runs,
        repeats: args.repeats.max(1),
        model_url: args.model_url,
    };
    let json = args.json;
    let rows = bench::run(&options, |row| {
        if json {
            println!("{}", serde_json::to_string(row).unwrap_or_default());
        } else {
            eprintln!("  {}: {}", row.scenario, row.figure);
        }
    })
    .await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if !json {
        println!();
        bench::print_table(&rows);
    }
    if rows.iter().any(|r| r.value.is_nan()) {
        Err(Failure::Reported(Exit::HostError))
    } else {
        Ok(Exit::Success)
    }
}
