//! `host`: run multi-stage AI pipelines of sandboxed WebAssembly stage plugins.
//! This file is only the command line: parsing and dispatch.

mod commands;

use clap::{Parser, Subcommand, ValueEnum};
#[cfg(feature = "bench")]
use commands::bench;
use commands::{Exit, Globals, cancel, dev, gates, inspect, plugin, results, run, serve};
use host::builder::BuildPolicy;
use host::report::OutputMode;
use host::runtime::ComponentCache;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "host",
    version,
    about = "Run multi-stage AI pipelines of sandboxed WebAssembly stage plugins"
)]
struct Cli {
    /// Directory for the compiled-component cache (default: $HOST_CACHE_DIR or ~/.cache/orchestrator-host).
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile components every time instead of using the cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Directory of the state database (default: the pipeline's state_dir, $HOST_STATE_DIR, or ~/.local/state/orchestrator-host).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// How log lines (host and plugin) are written to stderr; RUST_LOG filters them.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct BuildFlags {
    /// Never run build commands: a missing component is an error.
    #[arg(long, conflicts_with = "build")]
    no_build: bool,
    /// Run every plugin's build command first, even if its component exists.
    #[arg(long)]
    build: bool,
}

impl BuildFlags {
    fn policy(&self) -> BuildPolicy {
        match (self.no_build, self.build) {
            (true, _) => BuildPolicy::Never,
            (_, true) => BuildPolicy::Always,
            _ => BuildPolicy::IfMissing,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    /// One JSON object per line, with run, stage and attempt as fields.
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
}

#[derive(Subcommand)]
enum PluginAction {
    /// What a component is: the WIT version it targets, its imports (and what
    /// governs each), its exports, its size, `info()`, and whether this host runs it.
    Check {
        wasm: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Create a ready-to-build plugin project: sources, build script, test,
    /// README and a pipeline.toml that runs it.
    New {
        /// The plugin's name (lower-case letters, digits, '-', '_').
        name: String,
        #[arg(long, value_enum)]
        lang: host::scaffold::Lang,
        /// Where to create it (default: ./NAME); must be missing or empty.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The plugin-sdk directory a Rust project depends on (default: the one this host was built from).
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ResultsAction {
    /// The baseline against the hardened prompt on each model, for one run.
    Compare {
        run_id: String,
        #[arg(long, value_enum, default_value = "text")]
        format: results::Format,
        /// The prompt stage to compare from.
        #[arg(long, default_value = "baseline")]
        baseline: String,
        /// The prompt stage to compare to.
        #[arg(long, default_value = "harden")]
        hardened: String,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline (resuming its unfinished run, if there is one).
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Print the resolved plan (order, conditions, grants) and call nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        build: BuildFlags,
        /// Write each stage's artifacts to DIR/STAGE/NAME.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print events and the summary as JSON lines.
        #[arg(long)]
        json: bool,
        /// Print only the summary (and errors): no event lines, no live progress.
        #[arg(long)]
        quiet: bool,
        /// Run every stage, even those whose result is cached from an identical earlier stage.
        #[arg(long)]
        fresh: bool,
        /// Start a new run even if an unfinished run of this pipeline exists.
        #[arg(long)]
        new: bool,
        /// Point a model alias elsewhere: ALIAS=PROVIDER:MODEL[@BASE_URL] (repeatable).
        #[arg(long = "model", value_name = "ALIAS=PROVIDER:MODEL[@URL]")]
        models: Vec<String>,
        /// Store every model request and response with the run, for --replay.
        #[arg(long, conflicts_with = "replay")]
        record: bool,
        /// Answer model calls from RUN_ID's recordings: offline, deterministic, free.
        #[arg(long, value_name = "RUN_ID")]
        replay: Option<String>,
        /// Set one key of a stage's config: STAGE.KEY=VALUE (repeatable), e.g. triage.risk=HIGH.
        #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
        sets: Vec<String>,
        /// Work on DIR instead of the manifest's workspace.
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
    /// Resume an interrupted or failed run: finished stages are not run again.
    Resume {
        run_id: String,
        #[command(flatten)]
        build: BuildFlags,
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        quiet: bool,
        #[arg(long)]
        fresh: bool,
    },
    /// Stop a running run (its process records running stages as interrupted); resume it later.
    Cancel {
        run_id: String,
        /// How long to wait for the run to stop.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        wait: std::time::Duration,
    },
    /// Run a pipeline, then watch its manifest and plugins: rebuild, reload and re-run what changed.
    Dev {
        pipeline: PathBuf,
        /// Stop after this many runs.
        #[arg(long, value_name = "N")]
        runs: Option<usize>,
        /// Quiet time after a change before acting on it.
        #[arg(long, default_value = "200ms", value_parser = parse_duration)]
        debounce: std::time::Duration,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        quiet: bool,
    },
    /// Serve a web dashboard and a JSON API (under /api) over the state directory.
    Serve {
        /// Address to listen on; port 0 picks a free port. The URL is printed first.
        #[arg(long, default_value = "127.0.0.1:7878")]
        addr: std::net::SocketAddr,
        /// Allow a non-loopback address: anyone who can reach it sees every run.
        #[arg(long)]
        public: bool,
    },
    /// Check a pipeline and load every plugin it uses; report every problem.
    Validate {
        pipeline: PathBuf,
        /// Never run build commands: a missing component is an error.
        #[arg(long)]
        no_build: bool,
    },
    /// Run every gate the pipeline declares once, on its workspace, and print a table.
    Gates {
        pipeline: PathBuf,
        /// Print each gate's output, not only that of failed gates.
        #[arg(long)]
        output: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the build command of every plugin the pipeline uses.
    Build { pipeline: PathBuf },
    /// List runs.
    Runs {
        #[arg(long)]
        json: bool,
    },
    /// Show each stage of a run: state, attempts, time, tokens, cost.
    Status {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a stage's outputs (or one artifact's raw bytes).
    Show {
        run_id: String,
        stage: String,
        /// Write this artifact's bytes to stdout.
        #[arg(long, value_name = "NAME")]
        artifact: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a run's event log.
    Events {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Measure the host's own overhead: commits, instantiation, loads, resume, a large DAG.
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Evaluation results across runs; `compare RUN_ID` puts the baseline beside the hardened prompt.
    Results {
        #[command(subcommand)]
        action: Option<ResultsAction>,
        #[arg(long)]
        json: bool,
    },
    /// Stream a run's records (run, stages, events) out.
    Export {
        run_id: String,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    host::manifest::HumanDuration::parse(text).map(|d| d.0)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::InvalidInput as u8
            } else {
                0
            });
        }
    };
    init_tracing(cli.log_format, cli.command.is_quiet());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::HostError as u8);
        }
    };
    let exit = runtime.block_on(dispatch(cli));
    if std::env::var_os("HOST_REPORT_PEAK_MEMORY").is_some() {
        report_peak_memory();
    }
    ExitCode::from(exit as u8)
}

/// For `host bench`: the process's peak resident memory, as Linux counts it.
fn report_peak_memory() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kib) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        eprintln!("peak memory: {kib} KiB");
    }
}

impl Command {
    fn is_quiet(&self) -> bool {
        matches!(
            self,
            Command::Run { quiet: true, .. }
                | Command::Resume { quiet: true, .. }
                | Command::Dev { quiet: true, .. }
        )
    }
}

/// Logs go to stderr, through the live progress board's writer so a log
/// line never tears the board; `--quiet` keeps only errors by default.
fn init_tracing(format: LogFormat, quiet: bool) {
    use host::progress::TerminalWriter;
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "error" } else { "warn,plugin=info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(TerminalWriter);
    let _ = match format {
        LogFormat::Text => builder.without_time().try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

async fn dispatch(cli: Cli) -> Exit {
    let globals = Globals {
        cache_dir: if cli.no_cache {
            None
        } else {
            cli.cache_dir.clone().or_else(ComponentCache::default_dir)
        },
        state_dir: cli.state_dir.clone(),
    };
    match cli.command {
        Command::Run {
            pipeline,
            dry_run,
            build,
            out,
            json,
            quiet,
            fresh,
            new,
            models,
            record,
            replay,
            sets,
            workspace,
        } => {
            let args = run::RunArgs {
                pipeline,
                dry_run,
                build: build.policy(),
                out,
                output: OutputMode::choose(json, quiet),
                fresh,
                new,
                options: host::store::RunOptions {
                    model_overrides: models,
                    record,
                    replay_from: replay,
                    config_overrides: sets,
                    workspace,
                },
            };
            run::run(&globals, args).await
        }
        Command::Resume {
            run_id,
            build,
            out,
            json,
            quiet,
            fresh,
        } => {
            let args = run::ResumeArgs {
                run_id,
                build: build.policy(),
                out,
                output: OutputMode::choose(json, quiet),
                fresh,
            };
            run::resume(&globals, args).await
        }
        Command::Validate { pipeline, no_build } => {
            let policy = if no_build {
                BuildPolicy::Never
            } else {
                BuildPolicy::IfMissing
            };
            run::validate(&globals, &pipeline, policy).await
        }
        Command::Build { pipeline } => run::build(&pipeline),
        Command::Gates {
            pipeline,
            output,
            json,
        } => gates::gates(&pipeline, json, output).await,
        #[cfg(feature = "bench")]
        Command::Bench(args) => bench::bench(args).await,
        Command::Plugin {
            action: PluginAction::Check { wasm, json },
        } => plugin::check(&globals, &wasm, json).await,
        Command::Plugin {
            action:
                PluginAction::New {
                    name,
                    lang,
                    dir,
                    sdk,
                },
        } => plugin::new(&name, lang, dir, sdk),
        Command::Results { action: None, json } => results::list(&globals, json),
        Command::Results {
            action:
                Some(ResultsAction::Compare {
                    run_id,
                    format,
                    baseline,
                    hardened,
                }),
            ..
        } => results::compare(&globals, &run_id, &baseline, &hardened, format),
        Command::Dev {
            pipeline,
            runs,
            debounce,
            json,
            quiet,
        } => {
            let args = dev::DevArgs {
                pipeline,
                runs,
                debounce,
                output: OutputMode::choose(json, quiet),
            };
            dev::dev(&globals, args).await
        }
        Command::Serve { addr, public } => serve::serve(&globals, addr, public).await,
        Command::Cancel { run_id, wait } => cancel::cancel(&globals, &run_id, wait).await,
        Command::Runs { json } => inspect::runs(&globals, json),
        Command::Status { run_id, json } => inspect::status(&globals, &run_id, json),
        Command::Show {
            run_id,
            stage,
            artifact,
            json,
        } => inspect::show(&globals, &run_id, &stage, artifact.as_deref(), json),
        Command::Events { run_id, json } => inspect::events(&globals, &run_id, json),
        Command::Export {
            run_id,
            format: ExportFormat::Jsonl,
        } => inspect::export(&globals, &run_id),
    }
}
