//! `host`: run multi-stage AI pipelines of sandboxed WebAssembly stage plugins.
//! This file is only the command line: parsing and dispatch.

mod commands;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
#[cfg(feature = "bench")]
use commands::bench;
use commands::{
    Exit, Globals, cancel, changes, dev, gates, gc, inspect, plugin, results, run, serve, shell,
    verify,
};
use host::runtime::ComponentCache;
use host::style::{self, ColorChoice};
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
    /// When to colour output; NO_COLOR and CLICOLOR_FORCE are honoured under auto.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Plain lines for a person.
    Text,
    /// One JSON object per line, with run, stage and attempt as fields.
    Json,
}

/// Each command owns its arguments (`commands::*::*Args`); this only names them.
#[derive(Subcommand)]
enum Command {
    /// Run a pipeline (resuming its unfinished run, if there is one).
    Run(run::RunArgs),
    /// Resume an interrupted or failed run: finished stages are not run again.
    Resume(run::ResumeArgs),
    /// Stop a running run (its process records running stages as interrupted); resume it later.
    Cancel(cancel::CancelArgs),
    /// Run a pipeline, then watch its manifest and plugins: rebuild, reload and re-run what changed.
    Dev(dev::DevArgs),
    /// Serve a web dashboard and a JSON API (under /api) over the state directory.
    Serve(serve::ServeArgs),
    /// Check a pipeline and load every plugin it uses; report every problem.
    Validate(run::ValidateArgs),
    /// Run every gate the pipeline declares once, on its workspace, and print a table.
    Gates(gates::GatesArgs),
    /// Run the build command of every plugin the pipeline uses.
    Build(run::BuildArgs),
    /// List runs.
    Runs(inspect::RunsArgs),
    /// Show each stage of a run: state, attempts, time, tokens, cost.
    Status(inspect::StatusArgs),
    /// Print a stage's outputs (or one artifact's raw bytes).
    Show(inspect::ShowArgs),
    /// Print a run's event log.
    Events(inspect::EventsArgs),
    /// Print the files a run (or one of its stages) changed, as a unified diff.
    Diff(changes::DiffArgs),
    /// Write a run's changes to its workspace (refused if the files there changed since the run began).
    Apply(changes::ApplyArgs),
    /// Measure the host's own overhead: commits, instantiation, loads, resume, a large DAG.
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        action: plugin::PluginAction,
    },
    /// Evaluation results across runs; `compare RUN_ID` puts the baseline beside the hardened prompt.
    Results(results::ResultsArgs),
    /// Stream a run's records (run, stages, events) out.
    Export(inspect::ExportArgs),
    /// Check the state directory end to end: every record's checksum, every blob, every reference.
    Verify(verify::VerifyArgs),
    /// Remove finished runs no longer needed (by id, beyond --keep N, or --older-than AGE) and compact the database.
    Gc(gc::GcArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(shell::CompletionsArgs),
    /// Print the manual page (roff), or write one per command with --dir.
    Man(shell::ManArgs),
}

/// `--color WHEN` or `--color=WHEN` as the user wrote it, read before clap
/// parses so that clap's own help and errors follow it too (an unknown
/// value is left for clap to refuse).
fn color_flag(args: &[std::ffi::OsString]) -> ColorChoice {
    let mut choice = ColorChoice::Auto;
    let mut words = args.iter().skip(1).map(|a| a.to_str().unwrap_or(""));
    while let Some(word) = words.next() {
        let value = match word {
            "--" => break,
            "--color" => words.next().unwrap_or(""),
            w => match w.strip_prefix("--color=") {
                Some(v) => v,
                None => continue,
            },
        };
        if let Ok(c) = ColorChoice::from_str(value, false) {
            choice = c;
        }
    }
    choice
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let choice = color_flag(&args);
    style::init(choice);
    // clap's own auto reads the same variables, per stream (help goes to
    // stdout, errors to stderr).
    let clap_color = match choice {
        ColorChoice::Auto => clap::ColorChoice::Auto,
        ColorChoice::Always => clap::ColorChoice::Always,
        ColorChoice::Never => clap::ColorChoice::Never,
    };
    let parsed = Cli::command()
        .color(clap_color)
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
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
    let exit = runtime
        .block_on(dispatch(cli))
        .unwrap_or_else(commands::Failure::report);
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
        match self {
            Command::Run(a) => a.is_quiet(),
            Command::Resume(a) => a.is_quiet(),
            Command::Dev(a) => a.is_quiet(),
            Command::Plugin {
                action: commands::plugin::PluginAction::Run(a),
            } => a.is_quiet(),
            _ => false,
        }
    }
}

/// Logs go to stderr, through the live progress board's writer so a log
/// line never tears the board; `--quiet` keeps only errors by default.
fn init_tracing(format: LogFormat, quiet: bool) {
    use host::progress::TerminalWriter;
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "error" } else { "warn,plugin=info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(style::enabled(style::Stream::Stderr))
        .with_writer(TerminalWriter);
    let _ = match format {
        LogFormat::Text => builder.without_time().try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

async fn dispatch(cli: Cli) -> commands::Outcome {
    let globals = Globals {
        cache_dir: if cli.no_cache {
            None
        } else {
            cli.cache_dir.clone().or_else(ComponentCache::default_dir)
        },
        state_dir: cli.state_dir.clone(),
    };
    match cli.command {
        Command::Run(args) => run::run(&globals, args).await,
        Command::Resume(args) => run::resume(&globals, args).await,
        Command::Validate(args) => run::validate(&globals, args).await,
        Command::Build(args) => run::build(args),
        Command::Gates(args) => gates::gates(args).await,
        #[cfg(feature = "bench")]
        Command::Bench(args) => bench::bench(args).await,
        Command::Plugin { action } => plugin::plugin(&globals, action).await,
        Command::Results(args) => results::results(&globals, args),
        Command::Dev(args) => dev::dev(&globals, args).await,
        Command::Serve(args) => serve::serve(&globals, args).await,
        Command::Cancel(args) => cancel::cancel(&globals, args).await,
        Command::Runs(args) => inspect::runs(&globals, args),
        Command::Status(args) => inspect::status(&globals, args),
        Command::Show(args) => inspect::show(&globals, args),
        Command::Events(args) => inspect::events(&globals, args),
        Command::Diff(args) => changes::diff(&globals, args),
        Command::Apply(args) => changes::apply(&globals, args),
        Command::Export(args) => inspect::export(&globals, args),
        Command::Verify(args) => verify::verify(&globals, args),
        Command::Gc(args) => gc::gc(&globals, args),
        Command::Completions(args) => shell::completions(args, Cli::command()),
        Command::Man(args) => shell::man(args, Cli::command()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every subcommand, with no description.
    fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path} {}", arg.get_id()));
            }
            if !arg.get_action().takes_values() {
                continue;
            }
            for value in arg.get_possible_values() {
                if value.get_help().is_none() {
                    out.push(format!("{path} {}={}", arg.get_id(), value.get_name()));
                }
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() {
                out.push(format!("{path} {} (the command itself)", sub.get_name()));
            }
            undescribed(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_command_and_argument_has_a_description() {
        let mut missing = Vec::new();
        undescribed(&Cli::command(), "host", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }

    #[test]
    fn the_colour_flag_is_read_before_parsing() {
        let args =
            |words: &[&str]| -> Vec<std::ffi::OsString> { words.iter().map(Into::into).collect() };
        assert_eq!(color_flag(&args(&["host", "runs"])), ColorChoice::Auto);
        assert_eq!(
            color_flag(&args(&["host", "--color", "never", "runs"])),
            ColorChoice::Never
        );
        assert_eq!(
            color_flag(&args(&["host", "runs", "--color=always"])),
            ColorChoice::Always
        );
        // After `--` it is an argument, not the flag.
        assert_eq!(
            color_flag(&args(&["host", "run", "--", "--color=never"])),
            ColorChoice::Auto
        );
        assert_eq!(
            color_flag(&args(&["host", "--color", "purple"])),
            ColorChoice::Auto
        );
    }
}
