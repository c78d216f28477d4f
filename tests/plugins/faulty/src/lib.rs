//! A stage that fails in the way its config asks: the host's failure paths
//! are tested against real components, not mocks.

use plugin_sdk::models::{self, Params};
use plugin_sdk::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Behaviour {
    /// Succeed, echoing the task.
    Succeed,
    /// Return a fatal stage error.
    Fatal,
    /// Return a retryable stage error.
    Retryable,
    /// Panic (a trap in the host's eyes).
    Panic,
    /// Spin forever.
    Loop,
    /// Allocate until something gives.
    MemoryBomb,
    /// Recurse until the stack overflows.
    Recurse,
    /// The same with 256 KiB frames: a few of them fill the stack.
    RecurseBig,
    /// Call a model alias (granted or not) and report what happened.
    CallModel { alias: String },
    /// Call a model with `complete-streamed`, writing every event it reads
    /// to events.json and the finished answer to answer.txt; with `leave`,
    /// leave the stream unread instead: "drop" it, or "forget" it (still
    /// open when the attempt ends).
    StreamModel {
        alias: String,
        #[serde(default)]
        leave: Option<String>,
    },
    /// Call a model `times` times (in a session, if given), each prompt
    /// numbered; the answers go in answers.json.
    CallModels {
        alias: String,
        times: u32,
        #[serde(default)]
        session: Option<String>,
        #[serde(default)]
        max_tokens: Option<u32>,
        /// Go on after a failed call (a plugin asking in a loop).
        #[serde(default)]
        keep_going: bool,
    },
    /// Succeed with this routing decision.
    Decide { decision: String },
    /// Decide "revise" (with a feedback artifact) while the loop iteration
    /// is below `until`, then "pass".
    ReviseUntil { until: u32 },
    /// Succeed, saying what feedback and iteration it was given.
    EchoFeedback,
    /// Ask for spawned jobs: `jobs` is written as spawn.json.
    Spawn { jobs: serde_json::Value },
    /// Sleep (a WASI call, so no heartbeat is missed), then succeed.
    Sleep { ms: u64 },
    /// Save each key (value "1"), then report `kv::keys(prefix)`.
    KvKeys { set: Vec<String>, prefix: String },
    /// Print numbered lines to stdout and stderr (the last stdout line with
    /// no newline), then succeed, or panic when asked.
    Print {
        stdout: u32,
        stderr: u32,
        #[serde(default)]
        panic: bool,
    },
    /// Report every environment variable and argument the plugin can see.
    Env,
    /// Burn CPU: `rounds` rounds of integer mixing; the result is a metric.
    /// With `progress_every`, report progress (a host call) that often.
    Burn {
        rounds: u64,
        #[serde(default)]
        progress_every: Option<u64>,
    },
    /// Return an artifact of `bytes` bytes.
    BigOutput { bytes: usize },
    /// Log `count` lines.
    LogFlood { count: u64 },
    /// A slow stage to watch: `steps` times, log a line, report progress
    /// and sleep `every_ms`; then succeed.
    Chatter { steps: u64, every_ms: u64 },
    /// Count attempts in a kv checkpoint; fail retryably until the count
    /// reaches `succeed_at`.
    Checkpoint { succeed_at: u64 },
    /// Run these gates; report their results in gates.json.
    RunGates { names: Vec<String> },
    /// Try file operations and report each outcome in probe.json, as
    /// "ok: ..." or "error: ...".
    Probe {
        #[serde(default)]
        read: Vec<String>,
        #[serde(default)]
        write: Vec<String>,
        #[serde(default)]
        list: Vec<String>,
    },
    /// Edit the workspace: report what `read` paths hold first (seen.json),
    /// write `write` (path -> content), delete `delete`, then (on attempt
    /// 1 only) sleep `sleep_ms`, to be killed mid-stage; then fail retryably
    /// while the attempt is below `fail_until`, else succeed.
    Edit {
        #[serde(default)]
        read: Vec<String>,
        #[serde(default)]
        write: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        delete: Vec<String>,
        #[serde(default)]
        sleep_ms: u64,
        #[serde(default)]
        fail_until: u32,
    },
    /// Succeed with a metric computed as 0/0 (NaN) and one as 1/0.
    ZeroByZero,
    /// Plant symlinks (path -> target, relative), then run `gates` and
    /// report their output in gates.json.
    Symlink {
        links: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        gates: Vec<String>,
    },
    /// An output past the host's bounds: `artifacts` small artifacts (named
    /// `name` followed by a number, or as given), `metrics` metrics, a
    /// summary of `summary_bytes`, a message logged as given.
    Overflow {
        #[serde(default)]
        artifacts: u32,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        metrics: u32,
        #[serde(default)]
        summary_bytes: usize,
        #[serde(default)]
        summary: Option<String>,
        #[serde(default)]
        log: Option<String>,
    },
    /// Stream one byte to each of `names` distinct artifacts.
    StreamNames { names: u32 },
    /// Stream an artifact `name` of `bytes` bytes, byte i being i % 251,
    /// a MiB at a time (the plugin never holds more).
    StreamBig { name: String, bytes: u64 },
    /// Read `length` bytes from `offset` of upstream `stage`'s artifact
    /// `name`, and return them as `range.bin` (with the sizes of every
    /// input as metrics).
    ReadRange {
        stage: String,
        name: String,
        offset: u64,
        length: u64,
    },
    /// One batch of `count` requests to `alias`.
    CallBatch { alias: String, count: u32 },
    /// Write `files` files of `bytes` bytes each under `dir`.
    ManyFiles {
        dir: String,
        files: u32,
        bytes: usize,
        /// Then make each file this long, without writing (a sparse file).
        #[serde(default)]
        sparse: Option<u64>,
    },
    /// Ask for `count` jobs from `template`.
    SpawnMany { template: String, count: u32 },
    /// Write `keys` checkpoints of `bytes` each under distinct keys; with
    /// `heed`, stop at the first refusal and report it, else write on.
    KvFlood {
        keys: u32,
        bytes: usize,
        #[serde(default)]
        heed: bool,
    },
    /// Look for what an earlier attempt left in memory (a static counter,
    /// a zero-initialised buffer), fail if anything is there, then
    /// leave marks of its own for the next attempt to find.
    Residue,
}

#[derive(Deserialize)]
struct Config {
    behaviour: Behaviour,
}

struct Faulty;

/// Starts at zero in every fresh instance; an attempt that sees it non-zero
/// is running on memory an earlier attempt wrote.
static ATTEMPTS_SEEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
/// Zero-initialised, larger than the part of a memory the host resets in
/// place (1 MiB), so both ways of resetting a reused slot are seen.
static RESIDUE: std::sync::Mutex<[u8; 2 << 20]> = std::sync::Mutex::new([0; 2 << 20]);

/// What `Behaviour::Residue` finds, then marks.
fn residue() -> Result<Output, StageError> {
    use std::sync::atomic::Ordering;
    let seen = ATTEMPTS_SEEN.fetch_add(1, Ordering::SeqCst);
    let mut buffer = RESIDUE.lock().map_err(|_| StageError::fatal("poisoned"))?;
    let dirty_static = buffer.iter().filter(|&&b| b != 0).count();
    buffer.fill(0xA5);
    if seen != 0 || dirty_static != 0 {
        return Err(StageError::fatal(format!(
            "memory of an earlier attempt: counter {seen}, {dirty_static} dirty bytes"
        )));
    }
    Ok(Output::new("clean"))
}

/// What the host says came before this attempt, as the manifest spells it.
fn attempt_kind() -> &'static str {
    use plugin_sdk::attempt::AttemptKind;
    match plugin_sdk::attempt::kind() {
        AttemptKind::First => "first",
        AttemptKind::Retry => "retry",
        AttemptKind::Resume => "resume",
        AttemptKind::LoopPass => "loop-pass",
    }
}

/// `symlink(2)` as wasi-libc (linked into std for WASI) has it: std's own
/// `std::os::wasi::fs::symlink_path` is not stable.
fn symlink(target: &str, path: &str) -> std::io::Result<()> {
    unsafe extern "C" {
        fn symlink(target: *const std::ffi::c_char, path: *const std::ffi::c_char) -> i32;
    }
    let c = |s: &str| std::ffi::CString::new(s).map_err(std::io::Error::other);
    let (target, path) = (c(target)?, c(path)?);
    // SAFETY: both are NUL-terminated strings that outlive the call.
    if unsafe { symlink(target.as_ptr(), path.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Recursion the optimiser cannot turn into a loop: the frame is used after
/// the call, through an opaque `black_box`.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64];
    let below = recurse(depth + 1);
    std::hint::black_box(&frame);
    below
}

/// The same with 256 KiB frames.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse_big(depth: u64) -> u64 {
    let mut frame = [0u8; 256 << 10];
    frame[(depth as usize * 4099) % frame.len()] = depth as u8;
    let below = recurse_big(depth + 1);
    std::hint::black_box(&frame);
    below
}

impl Stage for Faulty {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "faulty",
            env!("CARGO_PKG_VERSION"),
            "Misbehaves as configured",
        )
        // Each behaviour that reaches for a grant names it in its own table.
        .model(Need::config("behaviour.call-model.alias").optional())
        .model(Need::config("behaviour.call-models.alias").optional())
        .model(Need::config("behaviour.call-batch.alias").optional())
        .session(Need::config("behaviour.call-models.session").optional())
        .gate(Need::config("behaviour.run-gates.names").optional())
        .gate(Need::config("behaviour.symlink.gates").optional())
        .optional_workspace(WorkspaceAccess::ReadWrite)
    }

    fn run(input: Input) -> Result<Output, StageError> {
        let config: Config = input.config()?;
        match config.behaviour {
            Behaviour::Residue => residue(),
            Behaviour::Succeed => Ok(Output::new("succeeded").text("echo.txt", input.task())),
            Behaviour::Fatal => Err(StageError::fatal("asked to fail")),
            Behaviour::Retryable => Err(StageError::retryable("asked to fail, retryably")),
            Behaviour::Panic => panic!("asked to panic"),
            Behaviour::Loop => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            Behaviour::MemoryBomb => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Behaviour::Recurse => {
                let n = recurse(0);
                Ok(Output::new(format!("recursed {n}")))
            }
            Behaviour::RecurseBig => {
                let n = recurse_big(0);
                Ok(Output::new(format!("recursed {n}")))
            }
            Behaviour::CallModel { alias } => {
                match models::ask(&alias, None, "Say hi.", &Params::default().max_tokens(8)) {
                    Ok(text) => Ok(Output::new("model answered").text("answer.txt", text)),
                    Err(e) => Err(e.into()),
                }
            }
            Behaviour::StreamModel { alias, leave } => {
                let stream = models::complete_streamed(
                    &alias,
                    &[models::Message::user("Tell a story.")],
                    &Params::default().max_tokens(32),
                )?;
                match leave.as_deref() {
                    Some("drop") => {
                        drop(stream);
                        return Ok(Output::new("dropped the stream"));
                    }
                    Some(_) => {
                        std::mem::forget(stream);
                        return Ok(Output::new("left the stream open"));
                    }
                    None => {}
                }
                let mut events = Vec::new();
                while let Some(event) = stream.next_event() {
                    events.push(match event {
                        models::StreamEvent::Text(t) => serde_json::json!({ "text": t }),
                        models::StreamEvent::Restart(why) => serde_json::json!({ "restart": why }),
                    });
                }
                let completion = stream.finish()?;
                Output::new("streamed")
                    .text("answer.txt", completion.text)
                    .json("events.json", &events)
            }
            Behaviour::CallModels {
                alias,
                times,
                session,
                max_tokens,
                keep_going,
            } => {
                let mut params = Params::default();
                if let Some(n) = max_tokens {
                    params = params.max_tokens(n);
                }
                let mut answers = Vec::new();
                let mut failed = 0;
                for i in 0..times {
                    let prompt = format!("Question {i}: say a word.");
                    let answer = match &session {
                        Some(s) => models::ask_in(&alias, s, &prompt, &params),
                        None => models::ask(&alias, None, &prompt, &params),
                    };
                    match answer {
                        Ok(a) => answers.push(a),
                        Err(_) if keep_going => failed += 1,
                        Err(e) => return Err(StageError::from(e)),
                    }
                }
                Output::new(format!("{} answers, {failed} failed", answers.len()))
                    .json("answers.json", &answers)
            }
            Behaviour::Decide { decision } => {
                Ok(Output::new(format!("decided {decision}")).decision(decision))
            }
            Behaviour::ReviseUntil { until } => {
                let i = input.iteration();
                if i < until {
                    Ok(Output::new(format!("iteration {i}: needs work"))
                        .decision("revise")
                        .text(
                            "feedback.md",
                            format!("fix the thing found in iteration {i}"),
                        ))
                } else {
                    Ok(Output::new(format!("iteration {i}: good")).decision("pass"))
                }
            }
            Behaviour::ZeroByZero => {
                // From the input, so the optimiser cannot fold it: 0/0.
                let zero = f64::from(input.iteration());
                let done = f64::from(input.iteration());
                Ok(Output::new("divided")
                    .metric("ratio", done / zero)
                    .metric("rate", 1.0 / zero))
            }
            Behaviour::EchoFeedback => Ok(Output::new(format!(
                "iteration {}, feedback: {}",
                input.iteration(),
                input.feedback().unwrap_or("none")
            ))
            .metric("iteration", f64::from(input.iteration()))
            .text("kind.txt", attempt_kind())),
            Behaviour::Spawn { jobs } => Output::new("spawning").json("spawn.json", &jobs),
            Behaviour::KvKeys { set, prefix } => {
                for key in &set {
                    plugin_sdk::kv::set(key, b"1")?;
                }
                let keys = plugin_sdk::kv::keys(&prefix);
                Output::new(format!("{} keys", keys.len())).json("keys.json", &keys)
            }
            Behaviour::Print {
                stdout,
                stderr,
                panic,
            } => {
                use std::io::Write;
                for n in 1..=stderr {
                    eprintln!("err {n}");
                }
                let mut out = std::io::stdout().lock();
                for n in 1..=stdout {
                    let end = if n == stdout { "" } else { "\n" };
                    let _ = write!(out, "out {n}{end}");
                }
                let _ = out.flush();
                drop(out);
                if panic {
                    panic!("asked to panic after printing");
                }
                Ok(Output::new(format!("printed {stdout} + {stderr} lines")))
            }
            Behaviour::Sleep { ms } => {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(Output::new(format!("slept {ms} ms")))
            }
            Behaviour::Env => {
                let vars: Vec<(String, String)> = std::env::vars().collect();
                let args: Vec<String> = std::env::args().collect();
                let environ =
                    std::fs::read_to_string("/proc/self/environ").map_err(|e| e.to_string());
                Output::new(format!("{} variables", vars.len())).json(
                    "env.json",
                    &serde_json::json!({ "vars": vars, "args": args, "proc_environ": format!("{environ:?}") }),
                )
            }
            Behaviour::Burn {
                rounds,
                progress_every,
            } => {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
                for i in 0..rounds {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x = x.wrapping_add(i);
                    if let Some(every) = progress_every
                        && i % every.max(1) == 0
                    {
                        plugin_sdk::log::progress(i, rounds, "burning");
                    }
                }
                Ok(Output::new("burned").metric("result", (x % 1_000_000) as f64))
            }
            Behaviour::BigOutput { bytes } => Ok(Output::new("big").artifact(
                "big.bin",
                "application/octet-stream",
                vec![7u8; bytes],
            )),
            Behaviour::Checkpoint { succeed_at } => {
                let seen: u64 = plugin_sdk::kv::load("attempts")?.unwrap_or(0) + 1;
                plugin_sdk::kv::save("attempts", &seen)?;
                if seen < succeed_at {
                    return Err(StageError::retryable(format!(
                        "checkpoint says attempt {seen}"
                    )));
                }
                Ok(Output::new(format!("succeeded after {seen} attempts"))
                    .metric("attempts_seen", seen as f64))
            }
            Behaviour::RunGates { names } => {
                let results = plugin_sdk::gates::run_all(names.iter().map(String::as_str))?;
                let passed = results.iter().filter(|r| r.passed).count();
                let json: Vec<serde_json::Value> = results
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "name": r.name, "passed": r.passed, "exit_code": r.exit_code,
                            "reason": r.reason, "output": r.output,
                        })
                    })
                    .collect();
                Output::new(format!("{passed}/{} gates passed", results.len()))
                    .json("gates.json", &json)
            }
            Behaviour::Probe { read, write, list } => {
                let outcome = |r: std::io::Result<String>| match r {
                    Ok(v) => format!("ok: {v}"),
                    Err(e) => format!("error: {e}"),
                };
                let mut report = serde_json::Map::new();
                for path in read {
                    let r = outcome(std::fs::read_to_string(&path));
                    report.insert(format!("read {path}"), r.into());
                }
                for path in write {
                    let r =
                        outcome(std::fs::write(&path, "written by probe").map(|()| String::new()));
                    report.insert(format!("write {path}"), r.into());
                }
                for path in list {
                    let r = outcome(std::fs::read_dir(&path).map(|entries| {
                        let mut names: Vec<String> = entries
                            .flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect();
                        names.sort();
                        names.join(",")
                    }));
                    report.insert(format!("list {path}"), r.into());
                }
                Output::new("probed").json("probe.json", &report)
            }
            Behaviour::Edit {
                read,
                write,
                delete,
                sleep_ms,
                fail_until,
            } => {
                let mut seen: std::collections::BTreeMap<String, Option<String>> = read
                    .iter()
                    .map(|p| (p.clone(), std::fs::read_to_string(p).ok()))
                    .collect();
                seen.insert("attempt-kind".into(), Some(attempt_kind().into()));
                plugin_sdk::log::info(&format!("attempt {} saw {seen:?}", input.attempt()));
                for (path, content) in &write {
                    if let Some(dir) = std::path::Path::new(path).parent() {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| StageError::fatal(e.to_string()))?;
                    }
                    std::fs::write(path, content)
                        .map_err(|e| StageError::fatal(format!("{path}: {e}")))?;
                }
                for path in &delete {
                    std::fs::remove_file(path)
                        .map_err(|e| StageError::fatal(format!("{path}: {e}")))?;
                }
                if input.attempt() == 1 {
                    std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
                }
                if input.attempt() < fail_until {
                    return Err(StageError::retryable(format!(
                        "asked to fail attempt {}",
                        input.attempt()
                    )));
                }
                Output::new(format!("edited {} file(s)", write.len() + delete.len()))
                    .json("seen.json", &seen)
            }
            Behaviour::Symlink { links, gates } => {
                for (path, target) in &links {
                    let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir_all(path));
                    symlink(target, path).map_err(|e| {
                        StageError::fatal(format!("symlink {path} -> {target}: {e}"))
                    })?;
                }
                let results = plugin_sdk::gates::run_all(gates.iter().map(String::as_str))?;
                let outputs: Vec<String> = results.iter().map(|r| r.output.clone()).collect();
                Output::new(format!("planted {} link(s)", links.len())).json("gates.json", &outputs)
            }
            Behaviour::Overflow {
                artifacts,
                name,
                metrics,
                summary_bytes,
                summary,
                log,
            } => {
                if let Some(line) = &log {
                    plugin_sdk::log::info(line);
                }
                let summary = summary.unwrap_or_else(|| "s".repeat(summary_bytes.max(1)));
                let mut out = Output::new(summary);
                for i in 0..artifacts {
                    let n = match &name {
                        Some(n) if artifacts == 1 => n.clone(),
                        Some(n) => format!("{n}{i}"),
                        None => format!("a{i}.txt"),
                    };
                    out = out.text(&n, "x");
                }
                for i in 0..metrics {
                    out = out.metric(&format!("m{i}"), f64::from(i));
                }
                Ok(out)
            }
            Behaviour::StreamBig { name, bytes } => {
                let mut at = 0u64;
                let mut piece = Vec::with_capacity(1 << 20);
                while at < bytes {
                    let n = (bytes - at).min(1 << 20);
                    piece.clear();
                    piece.extend((at..at + n).map(|i| (i % 251) as u8));
                    plugin_sdk::artifacts::append(&name, "application/octet-stream", &piece)?;
                    at += n;
                }
                Ok(Output::new(format!("streamed {bytes} bytes")))
            }
            Behaviour::ReadRange {
                stage,
                name,
                offset,
                length,
            } => {
                let artifact = input
                    .from_stage(&stage)
                    .and_then(|u| u.artifact(&name))
                    .ok_or_else(|| StageError::fatal(format!("no input {stage}/{name}")))?;
                let bytes = artifact.range(offset, length).map_err(StageError::fatal)?;
                let mut out = Output::new(format!("read {} bytes", bytes.len())).artifact(
                    "range.bin",
                    "application/octet-stream",
                    bytes,
                );
                for u in input.upstream() {
                    for a in &u.artifacts {
                        out = out.metric(&format!("{}.{}", u.stage_id, a.name), a.size as f64);
                    }
                }
                Ok(out)
            }
            Behaviour::StreamNames { names } => {
                for i in 0..names {
                    plugin_sdk::artifacts::append(&format!("s{i}.txt"), "text/plain", b"x")?;
                }
                Ok(Output::new(format!("streamed {names} names")))
            }
            Behaviour::CallBatch { alias, count } => {
                let request = models::Request::new(
                    &alias,
                    vec![models::Message::user("Say a word.")],
                    Params::default().max_tokens(4),
                );
                let requests = vec![request; count as usize];
                let answered = models::complete_all(&requests)
                    .iter()
                    .filter(|r| r.is_ok())
                    .count();
                Ok(Output::new(format!("{answered} of {count} answered")))
            }
            Behaviour::ManyFiles {
                dir,
                files,
                bytes,
                sparse,
            } => {
                std::fs::create_dir_all(&dir).map_err(|e| StageError::fatal(e.to_string()))?;
                let content = vec![b'x'; bytes];
                for i in 0..files {
                    let path = format!("{dir}/f{i}");
                    std::fs::write(&path, &content)
                        .map_err(|e| StageError::fatal(e.to_string()))?;
                    if let Some(len) = sparse {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|f| f.set_len(len))
                            .map_err(|e| StageError::fatal(e.to_string()))?;
                    }
                }
                Ok(Output::new(format!("wrote {files} files")))
            }
            Behaviour::SpawnMany { template, count } => {
                let jobs: Vec<serde_json::Value> = (0..count)
                    .map(|i| serde_json::json!({ "template": template, "id": format!("j{i}") }))
                    .collect();
                Output::new(format!("asking for {count} jobs")).json("spawn.json", &jobs)
            }
            Behaviour::Chatter { steps, every_ms } => {
                for i in 1..=steps {
                    plugin_sdk::log::info(&format!("chatter step {i} of {steps}"));
                    plugin_sdk::log::progress(i, steps, "chattering");
                    std::thread::sleep(std::time::Duration::from_millis(every_ms));
                }
                Ok(Output::new(format!("chattered {steps} steps"))
                    .text("chatter.txt", format!("{steps} steps")))
            }
            Behaviour::KvFlood { keys, bytes, heed } => {
                let value = vec![9u8; bytes];
                let mut written = 0u32;
                for i in 0..keys {
                    match plugin_sdk::kv::set(&format!("k{i}"), &value) {
                        Ok(()) => written += 1,
                        Err(e) if heed => {
                            return Ok(Output::new(format!("wrote {written}, then: {e}")));
                        }
                        Err(_) => {}
                    }
                }
                Ok(Output::new(format!("wrote {written}")))
            }
            Behaviour::LogFlood { count } => {
                for i in 0..count {
                    plugin_sdk::log::info(&format!("line {i}"));
                }
                Ok(Output::new(format!("logged {count} lines")))
            }
        }
    }
}

plugin_sdk::export_stage!(Faulty);
