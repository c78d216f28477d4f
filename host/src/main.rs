//! `host`: run multi-stage AI pipelines of sandboxed WebAssembly stage plugins.

use anyhow::Context;
use clap::{Parser, Subcommand};
use host::builder::{self, BuildPolicy};
use host::manifest;
use host::report::{self, ConsoleObserver};
use host::runtime::ComponentCache;
use host::session::{Session, SessionError, SessionOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit codes, documented in README.md.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Exit {
    Success = 0,
    StageFailed = 1,
    InvalidInput = 10,
    HostError = 11,
}

#[derive(Parser)]
#[command(
    name = "host",
    version,
    about = "Run multi-stage AI pipelines of sandboxed WebAssembly stage plugins"
)]
struct Cli {
    /// Directory for compiled-component cache (default: $HOST_CACHE_DIR or ~/.cache/orchestrator-host).
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile components every time instead of using the cache.
    #[arg(long, global = true)]
    no_cache: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Print the resolved plan (order, conditions, grants) and call nothing.
        #[arg(long)]
        dry_run: bool,
        /// Never run build commands: a missing component is an error.
        #[arg(long, conflicts_with = "build")]
        no_build: bool,
        /// Run every plugin's build command first, even if its component exists.
        #[arg(long)]
        build: bool,
        /// Write each stage's artifacts to DIR/STAGE/NAME.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print events and the summary as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Check a pipeline and load every plugin it uses; report every problem.
    Validate {
        pipeline: PathBuf,
        /// Never run build commands: a missing component is an error.
        #[arg(long)]
        no_build: bool,
    },
    /// Run the build command of every plugin the pipeline uses.
    Build { pipeline: PathBuf },
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
    init_tracing();
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
    ExitCode::from(exit as u8)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,plugin=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

fn cache_dir(cli: &Cli) -> Option<PathBuf> {
    if cli.no_cache {
        return None;
    }
    cli.cache_dir.clone().or_else(ComponentCache::default_dir)
}

async fn dispatch(cli: Cli) -> Exit {
    let cache = cache_dir(&cli);
    match cli.command {
        Command::Run {
            pipeline,
            dry_run,
            no_build,
            build,
            out,
            json,
        } => {
            let policy = match (no_build, build) {
                (true, _) => BuildPolicy::Never,
                (_, true) => BuildPolicy::Always,
                _ => BuildPolicy::IfMissing,
            };
            run(&pipeline, dry_run, policy, cache, out.as_deref(), json).await
        }
        Command::Validate { pipeline, no_build } => {
            let policy = if no_build {
                BuildPolicy::Never
            } else {
                BuildPolicy::IfMissing
            };
            validate(&pipeline, policy, cache).await
        }
        Command::Build { pipeline } => {
            let Some(p) = load_manifest(&pipeline) else {
                return Exit::InvalidInput;
            };
            match builder::build_plugins(&p, BuildPolicy::Always) {
                Ok(built) => {
                    for (name, took) in built {
                        println!("built {name} in {:.1}s", took.as_secs_f64());
                    }
                    Exit::Success
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::InvalidInput
                }
            }
        }
    }
}

fn load_manifest(path: &Path) -> Option<manifest::Pipeline> {
    match manifest::load(path) {
        Ok(p) => Some(p),
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            None
        }
    }
}

fn session_exit(e: &SessionError) -> Exit {
    match e {
        SessionError::Runtime(_) => Exit::HostError,
        SessionError::Build(_) | SessionError::Load(_) => Exit::InvalidInput,
    }
}

async fn validate(path: &Path, policy: BuildPolicy, cache_dir: Option<PathBuf>) -> Exit {
    let Some(pipeline) = load_manifest(path) else {
        return Exit::InvalidInput;
    };
    let session = match Session::open(
        &pipeline,
        &SessionOptions {
            build: policy,
            cache_dir,
        },
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return session_exit(&e);
        }
    };
    let mut names: Vec<_> = session.plugins.values().collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    for p in names {
        println!(
            "plugin '{}': {} {} ({} KiB, {:?} in {:.0} ms): {}",
            p.name,
            p.info.name,
            p.info.version,
            p.size / 1024,
            p.cache,
            p.load_time.as_secs_f64() * 1000.0,
            p.info.description
        );
    }
    println!(
        "{}: valid ({} stages)",
        path.display(),
        pipeline.stages.len()
    );
    Exit::Success
}

async fn run(
    path: &Path,
    dry_run: bool,
    policy: BuildPolicy,
    cache_dir: Option<PathBuf>,
    out: Option<&Path>,
    json: bool,
) -> Exit {
    let Some(pipeline) = load_manifest(path) else {
        return Exit::InvalidInput;
    };
    if dry_run {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&pipeline).unwrap_or_default()
            );
        } else {
            report::print_plan(&pipeline);
        }
        return Exit::Success;
    }
    let session = match Session::open(
        &pipeline,
        &SessionOptions {
            build: policy,
            cache_dir,
        },
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return session_exit(&e);
        }
    };
    let http = match http_client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Exit::HostError;
        }
    };
    let scheduler = session.scheduler(&pipeline, http);
    let run_id = new_run_id();
    let observer = Arc::new(ConsoleObserver::new(json));
    let summary = scheduler.run(&pipeline, &run_id, observer).await;
    if let Some(out) = out
        && let Err(e) = write_outputs(out, &summary)
    {
        eprintln!("error: cannot write outputs to {}: {e:#}", out.display());
        return Exit::HostError;
    }
    if json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        report::print_summary(&summary);
    }
    if summary.succeeded() {
        Exit::Success
    } else {
        Exit::StageFailed
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    // One process-wide TLS provider (ring: no C toolchain beyond cc needed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("orchestrator-host/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")
}

/// A sortable, unique-enough run id: UTC time plus a short hash.
fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let salt = blake3::hash(
        &[
            now.as_nanos().to_le_bytes().as_slice(),
            &std::process::id().to_le_bytes(),
        ]
        .concat(),
    );
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        &salt.to_hex()[..6]
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Writes artifacts as DIR/STAGE/NAME, each atomically. Artifact names come
/// from plugins, so anything that is not a plain file name is refused.
fn write_outputs(dir: &Path, summary: &host::scheduler::RunSummary) -> anyhow::Result<()> {
    for stage in &summary.stages {
        let Some(output) = &stage.output else {
            continue;
        };
        let stage_dir = dir.join(&stage.id);
        std::fs::create_dir_all(&stage_dir)
            .with_context(|| format!("creating {}", stage_dir.display()))?;
        for artifact in &output.artifacts {
            let name = &artifact.name;
            let plain = !name.is_empty()
                && Path::new(name)
                    .file_name()
                    .is_some_and(|f| f == name.as_str())
                && name != "."
                && name != "..";
            if !plain {
                eprintln!(
                    "warning: stage '{}': artifact name {name:?} is not a plain file name; not written",
                    stage.id
                );
                continue;
            }
            let target = stage_dir.join(name);
            let tmp = stage_dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, &artifact.bytes)
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &target)
                .with_context(|| format!("renaming to {}", target.display()))?;
        }
    }
    Ok(())
}
