//! `host bench`: the host's own overhead, measured. Each scenario runs
//! several times and reports medians (and tails where they matter), next to
//! the target it is held to. Figures, never assertions: a slow machine prints
//! slow numbers, it does not fail a build.

mod dev_reload;
mod instantiate;
mod live_log;
mod model_call;
mod pipelines;
mod polyglot;
mod retention;
mod stats;
mod store_commit;
mod streaming;
mod workspace_copy;

pub use pipelines::dag_manifest;
pub use stats::{Summary, human};

use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// One durable stage transition, fsync on (median, p99), and throughput.
    Commit,
    /// Instantiate and call a no-op stage.
    Instantiate,
    /// Load a component whose compiled code is cached.
    CachedLoad,
    /// Resume a run with many finished stages.
    Resume,
    /// A large DAG of no-op stages end to end, with durable state.
    Dag,
    /// The host's overhead per model call over a direct HTTP request.
    ModelCall,
    /// What the limits (epoch interruption, memory limiter) cost a CPU-heavy stage.
    Limits,
    /// `host dev`: from a changed component on disk to its stage re-running.
    DevReload,
    /// Peak memory of the host running the AI-coding example against a model.
    AiCoding,
    /// One plugin log line: appended to the attempt's live log, sent to the observer.
    LogLine,
    /// Plugins in several languages (`--plugin LABEL=WASM`): first and
    /// cached load, and one stage attempt with a model call.
    Polyglot,
    /// The transactional workspace on a tree of 10,000 files / 200 MB,
    /// beside `cp -r`: the run's copy, an attempt's copy, its changeset.
    WorkspaceCopy,
    /// The state directory after many runs (1,000 by default), without and
    /// with `[pipeline] retention`, and `host gc` on the one without.
    Retention,
    /// Host peak memory with three 60 MiB upstream artifacts: a 0.3 stage
    /// reading 1 KiB of them, a 0.2 stage handed them whole, a no-op run.
    LazyInputs,
    /// A streamed model answer: time to the first token and to the end,
    /// direct and through the host.
    Streaming,
}

pub struct Options {
    pub scenarios: Vec<Scenario>,
    /// The real `host` binary, for the end-to-end scenarios.
    pub host: PathBuf,
    pub noop: PathBuf,
    /// The misbehaving test stage, whose `burn` behaviour is CPU-heavy.
    pub faulty: PathBuf,
    /// A large component (e.g. a Python plugin) for the cached-load figure.
    pub large: Option<PathBuf>,
    /// Labelled plugins for the polyglot scenario: template stages that
    /// call the alias in `config.model` once.
    pub plugins: Vec<(String, PathBuf)>,
    /// Scratch space on the disk whose fsync is being measured.
    pub dir: PathBuf,
    pub commit_stages: usize,
    pub resume_stages: usize,
    pub dag_stages: usize,
    /// Files in the workspace-copy scenario's tree (20 KB each on average).
    pub workspace_files: usize,
    /// Runs in the retention scenario, in each of its two state directories.
    pub retention_runs: usize,
    pub repeats: usize,
    /// The OpenAI-compatible server the AI-coding scenario's models use.
    pub model_url: Option<String>,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub figure: String,
    /// The figure as a number, in `unit`.
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<String>,
    pub detail: String,
}

fn time_row(
    scenario: impl Into<String>,
    s: &Summary,
    target: Option<&str>,
    detail: impl Into<String>,
) -> Row {
    Row {
        scenario: scenario.into(),
        figure: format!("{} (p99 {})", human(s.median), human(s.p99)),
        value: s.median.as_secs_f64() * 1e6,
        unit: "µs",
        target: target.map(str::to_string),
        detail: format!("{} samples; {}", s.samples, detail.into()),
    }
}

fn error_row(scenario: Scenario, error: String) -> Row {
    Row {
        scenario: format!("{scenario:?}").to_lowercase(),
        figure: "failed".into(),
        value: f64::NAN,
        unit: "",
        target: None,
        detail: error,
    }
}

/// Runs the chosen scenarios; a scenario that cannot run is reported as a
/// failed row, and the others still run.
pub async fn run(options: &Options, mut on_row: impl FnMut(&Row)) -> Vec<Row> {
    let mut rows = Vec::new();
    let cache_dir = options.dir.join("component-cache");
    for &scenario in &options.scenarios {
        let produced = match scenario {
            Scenario::Commit => commit(options),
            Scenario::Instantiate => instantiate(options, &cache_dir).await,
            Scenario::CachedLoad => cached_load(options, &cache_dir).await,
            Scenario::Resume => resume(options, &cache_dir),
            Scenario::Dag => dag(options, &cache_dir),
            Scenario::ModelCall => model_call(options).await,
            Scenario::Limits => limits(options, &cache_dir).await,
            Scenario::DevReload => dev_reload(options),
            Scenario::AiCoding => ai_coding(options, &cache_dir),
            Scenario::LogLine => log_line(options),
            Scenario::Polyglot => polyglot(options).await,
            Scenario::WorkspaceCopy => workspace_copy(options),
            Scenario::Retention => retention(options, &cache_dir),
            Scenario::LazyInputs => lazy_inputs(options, &cache_dir),
            Scenario::Streaming => streamed_call(options).await,
        };
        let produced = produced.unwrap_or_else(|e| vec![error_row(scenario, e)]);
        for row in produced {
            on_row(&row);
            rows.push(row);
        }
    }
    rows
}

fn retention(o: &Options, cache_dir: &std::path::Path) -> Result<Vec<Row>, String> {
    let keep = retention::KEEP;
    let f = bench(o, cache_dir).retention(o.retention_runs)?;
    let mb = |b: u64| b as f64 / 1e6;
    let per_run = |s: &Summary| format!("{:.1} ms/run", s.median.as_secs_f64() * 1e3);
    let size_row = |scenario: String, bytes: u64, detail: String| Row {
        scenario,
        figure: format!("{:.1} MB", mb(bytes)),
        value: mb(bytes),
        unit: "MB",
        target: None,
        detail,
    };
    let runs = o.retention_runs;
    Ok(vec![
        size_row(
            format!("state.redb after {runs} runs, no retention"),
            f.without.database,
            format!(
                "{}; the last tenth {}",
                per_run(&f.without.all),
                per_run(&f.without.last_tenth)
            ),
        ),
        size_row(
            format!("state.redb after {runs} runs, retention keep {keep}"),
            f.with.database,
            format!(
                "{}; the last tenth {}; {:.2}x the size without",
                per_run(&f.with.all),
                per_run(&f.with.last_tenth),
                f.with.database as f64 / f.without.database.max(1) as f64
            ),
        ),
        size_row(
            format!("state.redb after `host gc --keep {keep}` of {runs} runs"),
            f.collected,
            format!(
                "gc and compaction took {:.0} ms; {:.2}x the size before",
                f.gc_time.as_secs_f64() * 1e3,
                f.collected as f64 / f.without.database.max(1) as f64
            ),
        ),
    ])
}

fn workspace_copy(o: &Options) -> Result<Vec<Row>, String> {
    let (files, bytes) = (o.workspace_files, o.workspace_files as u64 * 20_000);
    let f = workspace_copy::measure(
        &o.dir.join("workspace-copy"),
        files,
        bytes,
        o.repeats.max(3),
    )?;
    let tree = format!(
        "{} files, {:.0} MB, {} reflinked",
        f.files,
        f.bytes as f64 / 1e6,
        f.reflinked
    );
    let ratio = |s: &Summary| s.median.as_secs_f64() / f.cp_r.median.as_secs_f64().max(1e-9);
    Ok(vec![
        time_row("workspace: cp -r (baseline)", &f.cp_r, None, tree.clone()),
        time_row(
            "workspace: the run's copy",
            &f.run_copy,
            None,
            format!(
                "{tree}; copy and hash every file; {:.2}x cp -r",
                ratio(&f.run_copy)
            ),
        ),
        time_row(
            "workspace: an attempt's private copy",
            &f.attempt_copy,
            None,
            format!("{tree}; {:.2}x cp -r", ratio(&f.attempt_copy)),
        ),
        time_row(
            "workspace: what an attempt changed",
            &f.changes,
            None,
            "stat every file, hash the 11 changed",
        ),
        time_row(
            "workspace: commit a changeset",
            &f.commit,
            None,
            "11 files: conflict check, both sides read, copied into the run's tree (store write not included)",
        ),
    ])
}

fn commit(o: &Options) -> Result<Vec<Row>, String> {
    let dir = o.dir.join("commit-state");
    let _ = std::fs::remove_dir_all(&dir);
    let f = store_commit::measure(&dir, o.commit_stages, &[4, 16]).map_err(|e| e.to_string())?;
    let mut rows = vec![
        time_row(
            "durable commit",
            &f.commit,
            None,
            "one redb write transaction (a stage start or success), fsync on",
        ),
        time_row(
            "durable stage transition",
            &f.stage,
            Some("< 2 ms"),
            "start and success records of one stage, both committed",
        ),
    ];
    for (writers, rate, per_commit) in f.throughput {
        rows.push(Row {
            scenario: format!("stage transitions, {writers} writer(s)"),
            figure: format!("{rate:.0} stages/s"),
            value: rate,
            unit: "stages/s",
            target: None,
            detail: format!(
                "{} stages; {per_commit:.1} changes per commit (group commit)",
                o.commit_stages
            ),
        });
    }
    Ok(rows)
}

async fn instantiate(o: &Options, cache_dir: &std::path::Path) -> Result<Vec<Row>, String> {
    let iterations = 200 * o.repeats.max(1);
    let s = instantiate::call_noop(cache_dir, &o.noop, iterations).await?;
    Ok(vec![time_row(
        "no-op stage: instantiate + call",
        &s,
        Some("< 20 µs"),
        "fresh store and instance per attempt, from a pre-linked InstancePre",
    )])
}

async fn cached_load(o: &Options, cache_dir: &std::path::Path) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut components = vec![("no-op component", o.noop.clone())];
    if let Some(large) = &o.large {
        components.push(("large component", large.clone()));
    }
    for (label, path) in components {
        let size = std::fs::metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let (s, first) = instantiate::cached_load(cache_dir, &path, 5 * o.repeats.max(1)).await?;
        rows.push(time_row(
            format!("load {label} (cached)"),
            &s,
            (label == "large component").then_some("< 100 ms"),
            format!(
                "{:.1} MB; first load {} (compiled or cached before)",
                size as f64 / 1e6,
                human(first)
            ),
        ));
    }
    Ok(rows)
}

async fn polyglot(o: &Options) -> Result<Vec<Row>, String> {
    if o.plugins.is_empty() {
        return Err("no plugins: pass --plugin LABEL=WASM (e.g. python=tpl-py.wasm)".into());
    }
    let mut rows = Vec::new();
    for (label, path) in &o.plugins {
        let f = polyglot::measure(&o.dir, path, o.repeats.max(1)).await?;
        let mb = f.size as f64 / 1e6;
        rows.push(Row {
            scenario: format!("{label} plugin: first load (compile)"),
            figure: human(f.first),
            value: f.first.as_secs_f64() * 1e6,
            unit: "µs",
            target: None,
            detail: format!("{mb:.1} MB component, empty cache"),
        });
        rows.push(time_row(
            format!("{label} plugin: cached load"),
            &f.cached,
            None,
            format!("{mb:.1} MB component, compiled code from the cache"),
        ));
        rows.push(time_row(
            format!("{label} plugin: instantiate + call"),
            &f.attempt,
            None,
            "one stage attempt: fresh instance, run() with one loopback model call (~0.1 ms)",
        ));
    }
    Ok(rows)
}

fn dev_reload(o: &Options) -> Result<Vec<Row>, String> {
    let s = dev_reload::measure(&o.host, &o.noop, &o.dir, 5 * o.repeats.max(1))?;
    Ok(vec![time_row(
        "host dev: changed component to stage started",
        &s,
        None,
        "debounce 20 ms; includes compiling the new component",
    )])
}

fn log_line(o: &Options) -> Result<Vec<Row>, String> {
    let s = live_log::measure(&o.dir, 10_000, 5 * o.repeats.max(1))?;
    Ok(vec![time_row(
        "plugin log line (live log + observer)",
        &s,
        None,
        "one JSON line written to the attempt's log file (no fsync), one event",
    )])
}

async fn limits(o: &Options, cache_dir: &std::path::Path) -> Result<Vec<Row>, String> {
    use host_runtime::Limits;
    let rounds = 200_000_000;
    let repeats = o.repeats.max(3);
    let on = instantiate::burn(cache_dir, &o.faulty, rounds, repeats, Limits::On).await?;
    let off = instantiate::burn(cache_dir, &o.faulty, rounds, repeats, Limits::Off).await?;
    let ratio = on.median.as_secs_f64() / off.median.as_secs_f64().max(1e-9);
    Ok(vec![
        time_row(
            "CPU-heavy stage, limits on",
            &on,
            None,
            "200M rounds of xorshift in wasm",
        ),
        time_row(
            "CPU-heavy stage, limits off",
            &off,
            None,
            "no epoch checks, no limiter",
        ),
        Row {
            scenario: "cost of the limits".into(),
            figure: format!("{ratio:.3}x"),
            value: ratio,
            unit: "ratio",
            target: None,
            detail: "median with limits / median without".into(),
        },
    ])
}

async fn model_call(o: &Options) -> Result<Vec<Row>, String> {
    let f = model_call::measure(&o.dir, &o.noop, 200 * o.repeats.max(1)).await?;
    let overhead = f.host.median.saturating_sub(f.direct.median);
    Ok(vec![
        time_row(
            "model call, direct HTTP (loopback)",
            &f.direct,
            None,
            "reqwest POST + JSON parse, keep-alive",
        ),
        time_row(
            "model call through the host",
            &f.host,
            None,
            "grant, budget, request hash, OpenAI wire format, and two durable commits (in flight, then answered)",
        ),
        Row {
            scenario: "host overhead per model call".into(),
            figure: human(overhead),
            value: overhead.as_secs_f64() * 1e6,
            unit: "µs",
            target: None,
            detail: "difference of the two medians".into(),
        },
    ])
}

async fn streamed_call(o: &Options) -> Result<Vec<Row>, String> {
    let f = streaming::measure(&o.dir, &o.noop, 40 * o.repeats.max(1)).await?;
    let ratio =
        |a: &Summary, b: &Summary| a.median.as_secs_f64() / b.median.as_secs_f64().max(1e-9);
    let overhead = f.host_whole.median.saturating_sub(f.direct_whole.median);
    Ok(vec![
        time_row(
            "streamed answer, first token, direct",
            &f.direct_first,
            None,
            "reqwest POST stream=true to a loopback server: 32 pieces, 2 ms apart",
        ),
        Row {
            detail: format!(
                "{:.2}x direct: grant, budget, request hash, in-flight commit, SSE parse, live log and observer",
                ratio(&f.host_first, &f.direct_first)
            ),
            ..time_row(
                "streamed answer, first token, through the host",
                &f.host_first,
                None,
                "",
            )
        },
        time_row(
            "streamed answer, whole, direct",
            &f.direct_whole,
            None,
            "the same stream, read to its end",
        ),
        Row {
            detail: format!(
                "{:.2}x direct; host overhead per streamed call {} (32 pieces to the live view, two commits)",
                ratio(&f.host_whole, &f.direct_whole),
                human(overhead)
            ),
            ..time_row(
                "streamed answer, whole, through the host",
                &f.host_whole,
                None,
                "",
            )
        },
    ])
}

fn bench<'a>(o: &'a Options, cache_dir: &'a std::path::Path) -> pipelines::Bench<'a> {
    pipelines::Bench {
        host: &o.host,
        noop: &o.noop,
        faulty: &o.faulty,
        dir: &o.dir,
        cache_dir,
    }
}

fn resume(o: &Options, cache_dir: &std::path::Path) -> Result<Vec<Row>, String> {
    let s = bench(o, cache_dir).resume(o.resume_stages, o.repeats.max(1))?;
    Ok(vec![time_row(
        format!("resume a run with {} finished stages", o.resume_stages),
        &s,
        None,
        "`host resume` end to end: process start, state load, one stage re-run",
    )])
}

fn dag(o: &Options, cache_dir: &std::path::Path) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    // Group commit lets concurrent stages share an fsync: the same DAG at
    // three parallelism levels shows whether throughput grows with it.
    for parallel in [2, 8, 32] {
        let mut samples = Vec::new();
        let mut peak = 0;
        for _ in 0..o.repeats.clamp(1, 3) {
            let f = bench(o, cache_dir).dag(o.dag_stages, 50, parallel)?;
            samples.push(f.elapsed);
            peak = peak.max(f.peak_kib.unwrap_or(0));
        }
        let s = Summary::of(&samples).ok_or("no repeats")?;
        let rate = o.dag_stages as f64 / s.median.as_secs_f64().max(1e-9);
        rows.push(time_row(
            format!("{}-stage DAG, max_parallel {parallel}", o.dag_stages),
            &s,
            Some("< 5 s"),
            "`host run` end to end, layers of 50, durable state",
        ));
        rows.push(Row {
            scenario: format!(
                "{}-stage DAG throughput, max_parallel {parallel}",
                o.dag_stages
            ),
            figure: format!("{rate:.0} stages/s, peak {:.1} MB", peak as f64 / 1024.0),
            value: rate,
            unit: "stages/s",
            target: None,
            detail: "peak resident memory of the host process".into(),
        });
    }
    Ok(rows)
}

fn lazy_inputs(o: &Options, cache_dir: &std::path::Path) -> Result<Vec<Row>, String> {
    let b = bench(o, cache_dir);
    let mb = |f: &pipelines::ProcessFigures| f.peak_kib.unwrap_or(0) as f64 / 1024.0;
    let baseline = b.dag(1, 1, 1)?;
    let lazy = b.lazy_inputs(None)?;
    let mut rows = vec![
        Row {
            scenario: "one no-op stage, host peak memory (baseline)".into(),
            figure: format!("{:.1} MB", mb(&baseline)),
            value: mb(&baseline),
            unit: "MB",
            target: None,
            detail: "the same host and state directory layout, nothing large".into(),
        },
        Row {
            scenario: "3 x 60 MiB inputs, 1 KiB read (0.3), host peak memory".into(),
            figure: format!(
                "{:.1} MB ({:.1}x baseline, {})",
                mb(&lazy),
                mb(&lazy) / mb(&baseline).max(1.0),
                human(lazy.elapsed)
            ),
            value: mb(&lazy),
            unit: "MB",
            target: Some("< 200 MB".into()),
            detail: "three streamed 60 MiB artifacts, a reader in a 32 MiB memory limit".into(),
        },
    ];
    if let Ok(old) = std::fs::canonicalize("tests/fixtures/hello-wit-0.2.2.wasm") {
        let eager = b.lazy_inputs(Some(&old))?;
        rows.push(Row {
            scenario: "3 x 60 MiB inputs, handed whole (0.2), host peak memory".into(),
            figure: format!(
                "{:.1} MB ({:.1}x the 0.3 reader, {})",
                mb(&eager),
                mb(&eager) / mb(&lazy).max(1.0),
                human(eager.elapsed)
            ),
            value: mb(&eager),
            unit: "MB",
            target: None,
            detail: "the same run with a 0.2 plugin (hello) as the reader".into(),
        });
    }
    Ok(rows)
}

fn ai_coding(o: &Options, cache_dir: &std::path::Path) -> Result<Vec<Row>, String> {
    let f = bench(o, cache_dir).ai_coding(o.model_url.as_deref())?;
    Ok(vec![Row {
        scenario: "AI-coding example, host peak memory".into(),
        figure: format!(
            "{:.1} MB ({} in {})",
            f.figures.peak_kib.unwrap_or(0) as f64 / 1024.0,
            f.ended,
            human(f.figures.elapsed)
        ),
        value: f.figures.peak_kib.unwrap_or(0) as f64 / 1024.0,
        unit: "MB",
        target: Some("< 100 MB".into()),
        detail: "`host run examples/ai-coding` as shipped, against the local model".into(),
    }])
}

/// Prints rows as an aligned table.
pub fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.scenario.len()).max().unwrap_or(8);
    let fig = rows
        .iter()
        .map(|r| r.figure.chars().count())
        .max()
        .unwrap_or(6);
    println!(
        "{:<width$}  {:<fig$}  {:<8}  detail",
        "scenario", "median", "target"
    );
    for r in rows {
        println!(
            "{:<width$}  {:<fig$}  {:<8}  {}",
            r.scenario,
            r.figure,
            r.target.as_deref().unwrap_or("-"),
            r.detail
        );
    }
}

/// The scope of attempt `i` of `stage` in the bench's run.
pub(crate) fn attempt_scope(
    stage: &host_manifest::StageSpec,
    i: u32,
) -> host_runtime::AttemptScope<'_> {
    static LIVE: std::sync::OnceLock<std::sync::Arc<host_runtime::live::AttemptLive>> =
        std::sync::OnceLock::new();
    host_runtime::AttemptScope {
        run_id: "bench",
        stage,
        iteration: 0,
        attempt: i + 1,
        workspace: None,
        kind: host_vocab::AttemptKind::First,
        files_guard: None,
        deadline: std::time::Instant::now() + stage.timeout,
        inputs: &[],
        live: LIVE.get_or_init(|| {
            std::sync::Arc::new(host_runtime::live::AttemptLive::detached("bench"))
        }),
    }
}
