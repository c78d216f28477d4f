//! `host plugin run FILE.wasm`: one plugin, outside any pipeline of the
//! user's. The flags become a small pipeline (the plugin's stage, with an
//! upstream stage per `--input` whose output is given, not computed), which
//! runs like any other: in the state directory, with its record, log and
//! exit code, so `host show RUN STAGE --log`, `host status` and `host diff`
//! work on it afterwards.

use super::inspect::ShowArgs;
use super::run::{execute, open_session};
use super::{Failure, Globals, Outcome, OutputFlags};
use host::builder::BuildPolicy;
use host::lifecycle;
use host::manifest::Pipeline;
use host::report::OutputMode;
use host::scheduler::RunContext;
use host::store::{RunOptions, Store};
use host::vocab::{Activity, Artifact, StageOutput, StageResult};
use host::workspace::RunFiles;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name of the pipeline such runs belong to (`host runs` shows it).
const PIPELINE_NAME: &str = "plugin-run";
/// The plugin's name in that pipeline when its file name is not one.
const PLUGIN: &str = "plugin";

/// The plugin's name: its file's stem, when that is a valid name.
fn plugin_name(wasm: &Path) -> String {
    wasm.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| host::manifest::is_valid_name(s))
        .unwrap_or(PLUGIN)
        .to_string()
}

#[derive(clap::Args)]
pub struct PluginRunArgs {
    /// The component to run.
    wasm: PathBuf,
    /// Read these flags from a TOML file (keys: stage, task, task_file,
    /// config, set, inputs, models, sessions, gates, workspace, access,
    /// timeout); flags given here override its values and add to its lists.
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// The stage id the plugin sees (and `host show` takes) [default: stage].
    #[arg(long, value_name = "ID")]
    pub(super) stage: Option<String>,
    /// The task the plugin is given.
    #[arg(long, value_name = "TEXT", conflicts_with = "task_file")]
    pub(super) task: Option<String>,
    /// The task, read from FILE.
    #[arg(long, value_name = "FILE")]
    pub(super) task_file: Option<PathBuf>,
    /// The stage's config, as a JSON object.
    #[arg(long, value_name = "JSON")]
    pub(super) config: Option<String>,
    /// Set one config key: KEY=VALUE (VALUE as JSON when it parses, else text; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(super) sets: Vec<String>,
    /// An upstream stage's output: NAME=PATH, a file (one artifact) or a
    /// directory (each file in it an artifact); repeatable, in order.
    #[arg(long = "input", value_name = "NAME=PATH")]
    pub(super) inputs: Vec<String>,
    /// Grant a model alias: ALIAS=PROVIDER:MODEL[@BASE_URL] (repeatable).
    #[arg(long = "model", value_name = "ALIAS=PROVIDER:MODEL[@URL]")]
    pub(super) models: Vec<String>,
    /// Grant a conversation session by name (repeatable).
    #[arg(long = "session", value_name = "NAME")]
    pub(super) sessions: Vec<String>,
    /// Grant a gate: NAME=COMMAND, run in the workspace; COMMAND is split on
    /// spaces, or a JSON array of words (repeatable; needs --workspace).
    #[arg(long = "gate", value_name = "NAME=COMMAND")]
    pub(super) gates: Vec<String>,
    /// Grant this directory as the workspace (changes are kept in the run:
    /// `host diff RUN_ID`, then `host apply RUN_ID`).
    #[arg(long, value_name = "DIR")]
    pub(super) workspace: Option<PathBuf>,
    /// The workspace grant's access [default: read-only].
    #[arg(long, value_name = "ACCESS", value_parser = access_values())]
    pub(super) access: Option<String>,
    /// Longest the attempt may run (e.g. 30s, 5m) [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub(super) timeout: Option<String>,
    #[command(flatten)]
    output: OutputFlags,
    /// Write the output's artifacts as DIR/STAGE/NAME.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn access_values() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue;
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("read-only").help("The plugin reads the directory"),
        PossibleValue::new("read-write")
            .help("It may change it too (in the run's copy: `host diff`, `host apply`)"),
    ])
}

impl PluginRunArgs {
    pub fn is_quiet(&self) -> bool {
        self.output.quiet
    }

    fn stage(&self) -> &str {
        self.stage.as_deref().unwrap_or("stage")
    }

    fn access(&self) -> &str {
        self.access.as_deref().unwrap_or("read-only")
    }

    fn timeout(&self) -> &str {
        self.timeout.as_deref().unwrap_or("5m")
    }

    /// The spec file's values under the flags, then what needs the whole:
    /// gates and an access need a workspace, wherever each was given.
    fn resolve(&mut self) -> Result<(), Failure> {
        if let Some(file) = self.spec.clone() {
            super::plugin_run_spec::RunSpec::load(&file)?.apply(self, &file)?;
        }
        if self.workspace.is_none() {
            if let Some(gate) = self.gates.first() {
                return Err(Failure::invalid(format!(
                    "--gate {gate:?}: a gate runs in the workspace: give --workspace DIR"
                )));
            }
            if self.access.is_some() {
                return Err(Failure::invalid(
                    "--access: there is no workspace to grant: give --workspace DIR",
                ));
            }
        }
        match self.access() {
            "read-only" | "read-write" => Ok(()),
            other => Err(Failure::invalid(format!(
                "access {other:?}: expected read-only or read-write"
            ))),
        }
    }
}

/// One `--input NAME=PATH`: the given output of an upstream stage.
struct Given {
    name: String,
    output: StageOutput,
}

fn media_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("md") => "text/markdown",
        Some("txt" | "log" | "csv" | "toml" | "yaml" | "yml" | "py" | "rs" | "js") => "text/plain",
        Some("html") => "text/html",
        _ => "application/octet-stream",
    }
}

fn artifact(path: &Path) -> Result<Artifact, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::invalid(format!("--input: cannot read {}: {e}", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Artifact {
        name,
        media_type: media_type(path).to_string(),
        bytes,
    })
}

fn given(spec: &str) -> Result<Given, Failure> {
    let Some((name, path)) = spec.split_once('=') else {
        return Err(Failure::invalid(format!(
            "--input {spec:?}: expected NAME=PATH, e.g. --input draft=notes.md"
        )));
    };
    let path = Path::new(path);
    let artifacts = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Failure::invalid(format!("--input: cannot read {}: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| artifact(p))
            .collect::<Result<_, _>>()?
    } else {
        vec![artifact(path)?]
    };
    Ok(Given {
        name: name.to_string(),
        output: StageOutput {
            summary: format!("given by --input {name}={}", path.display()),
            artifacts,
            metrics: Vec::new(),
            decision: None,
        },
    })
}

/// `--gate NAME=COMMAND`: the gate's name and its words.
fn gate(spec: &str) -> Result<(String, Vec<String>), Failure> {
    let Some((name, command)) = spec.split_once('=') else {
        return Err(Failure::invalid(format!(
            "--gate {spec:?}: expected NAME=COMMAND, e.g. --gate 'tests=python3 -m unittest'"
        )));
    };
    let words: Vec<String> = if command.trim_start().starts_with('[') {
        serde_json::from_str(command).map_err(|e| {
            Failure::invalid(format!(
                "--gate {name}: the command is not a JSON array of strings: {e}"
            ))
        })?
    } else {
        command.split_whitespace().map(str::to_string).collect()
    };
    if words.is_empty() {
        return Err(Failure::invalid(format!(
            "--gate {name}: the command is empty"
        )));
    }
    Ok((name.to_string(), words))
}

/// The pipeline the flags describe, as manifest text (what the run records).
fn manifest_text(args: &PluginRunArgs, wasm: &Path, given: &[Given]) -> Result<String, Failure> {
    use toml::{Table, Value};
    let aliases: Vec<&str> = args
        .models
        .iter()
        .map(|m| m.split_once('=').map_or(m.as_str(), |(alias, _)| alias))
        .collect();
    let mut pipeline = Table::new();
    pipeline.insert("name".into(), PIPELINE_NAME.into());
    // The task is set by the run's options (so it is recorded as given);
    // the manifest needs one of its own.
    pipeline.insert("task".into(), "(no task given)".into());
    if let Some(dir) = &args.workspace {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        pipeline.insert("workspace".into(), dir.display().to_string().into());
        pipeline.insert("apply".into(), "never".into());
    }
    let mut doc = Table::new();
    doc.insert("pipeline".into(), Value::Table(pipeline));
    let mut models = Table::new();
    for alias in &aliases {
        // Where it points comes from `--model`, applied as an override.
        let mut m = Table::new();
        m.insert("provider".into(), "openai".into());
        m.insert("model".into(), "set-by-model-flag".into());
        models.insert(alias.to_string(), Value::Table(m));
    }
    if !models.is_empty() {
        doc.insert("models".into(), Value::Table(models));
    }
    let mut gates = Table::new();
    let mut gate_names = Vec::new();
    for spec in &args.gates {
        let (name, words) = gate(spec)?;
        let mut g = Table::new();
        g.insert(
            "command".into(),
            Value::Array(words.into_iter().map(Value::from).collect()),
        );
        // What a gate of a user's pipeline usually needs to find its tools.
        g.insert(
            "env".into(),
            Value::Array(vec!["PATH".into(), "HOME".into()]),
        );
        gates.insert(name.clone(), Value::Table(g));
        gate_names.push(Value::from(name));
    }
    if !gates.is_empty() {
        doc.insert("gates".into(), Value::Table(gates));
    }
    let name = plugin_name(wasm);
    let mut plugin = Table::new();
    plugin.insert("wasm".into(), wasm.display().to_string().into());
    let mut plugins = Table::new();
    plugins.insert(name.clone(), Value::Table(plugin));
    doc.insert("plugins".into(), Value::Table(plugins));

    let mut stages = Vec::new();
    for g in given {
        let mut s = Table::new();
        s.insert("id".into(), g.name.clone().into());
        s.insert("plugin".into(), name.clone().into());
        stages.push(Value::Table(s));
    }
    let mut stage = Table::new();
    stage.insert("id".into(), args.stage().into());
    stage.insert("plugin".into(), name.into());
    if !given.is_empty() {
        let after: Vec<Value> = given.iter().map(|g| g.name.clone().into()).collect();
        stage.insert("after".into(), Value::Array(after));
    }
    if !aliases.is_empty() {
        let models: Vec<Value> = aliases.iter().map(|a| (*a).into()).collect();
        stage.insert("models".into(), Value::Array(models));
    }
    if !args.sessions.is_empty() {
        let sessions: Vec<Value> = args.sessions.iter().map(|s| s.clone().into()).collect();
        stage.insert("sessions".into(), Value::Array(sessions));
    }
    if !gate_names.is_empty() {
        stage.insert("gates".into(), Value::Array(gate_names));
    }
    if args.workspace.is_some() {
        stage.insert("workspace".into(), args.access().into());
    }
    stage.insert("timeout".into(), args.timeout().into());
    stage.insert("retries".into(), 0.into());
    if let Some(config) = &args.config {
        let json: serde_json::Value = serde_json::from_str(config)
            .map_err(|e| Failure::invalid(format!("--config is not JSON: {e}")))?;
        if !json.is_object() {
            return Err(Failure::invalid("--config must be a JSON object"));
        }
        let value = Value::try_from(json)
            .map_err(|e| Failure::invalid(format!("--config cannot be a TOML table: {e}")))?;
        stage.insert("config".into(), value);
    }
    stages.push(Value::Table(stage));
    doc.insert("stage".into(), Value::Array(stages));
    toml::to_string(&doc).map_err(|e| Failure::host(format!("cannot write the manifest: {e}")))
}

pub async fn run(globals: &Globals, mut args: PluginRunArgs) -> Outcome {
    args.resolve()?;
    let wasm = std::path::absolute(&args.wasm).unwrap_or_else(|_| args.wasm.clone());
    if !wasm.is_file() {
        return Err(Failure::invalid(format!(
            "{}: no such component",
            wasm.display()
        )));
    }
    // The flags the manifest checker would otherwise report at lines of a
    // file nobody wrote.
    let names = std::iter::once(("--stage", args.stage())).chain(
        args.inputs
            .iter()
            .map(|i| ("--input", i.split_once('=').map_or(i.as_str(), |(n, _)| n))),
    );
    let mut seen = std::collections::HashSet::new();
    for (flag, name) in names {
        if !host::manifest::is_valid_name(name) {
            return Err(Failure::invalid(format!(
                "{flag} {name:?}: a stage name is letters, digits, '-' and '_'"
            )));
        }
        if !seen.insert(name) {
            return Err(Failure::invalid(format!(
                "{flag} {name:?}: the name is taken (by --stage or another --input)"
            )));
        }
    }
    host::manifest::HumanDuration::parse(args.timeout())
        .map_err(|e| Failure::invalid(format!("--timeout {:?}: {e}", args.timeout())))?;
    let given: Vec<Given> = args
        .inputs
        .iter()
        .map(|s| given(s))
        .collect::<Result<_, _>>()?;
    let text = manifest_text(&args, &wasm, &given)?;
    // Its diagnostics name the flags' pipeline; relative paths in it are
    // none (every path is made absolute above).
    let key = format!("host plugin run {}", wasm.display());
    let pipeline = host::manifest::parse(Path::new(&key), text.clone())
        .map_err(|d| Failure::Message(super::Exit::InvalidInput, d.to_string()))?;
    let task = super::task_option(args.task.as_ref(), args.task_file.as_ref())?;
    let options = RunOptions {
        model_overrides: args.models.clone(),
        config_overrides: args
            .sets
            .iter()
            .map(|s| format!("{}.{s}", args.stage()))
            .collect(),
        fresh: true,
        task,
        ..RunOptions::default()
    };
    let pipeline = lifecycle::with_overrides(pipeline, &options)?;
    let session = open_session(globals, &pipeline, BuildPolicy::Never).await?;
    let store = Arc::new(globals.open_store(Some(&pipeline))?);
    start(
        &pipeline, &session, store, key, text, &options, given, &args, globals,
    )
    .await
}

/// Records the run and its given inputs as succeeded stages (so the record
/// is whole: a resumed run keeps them), then runs the plugin's stage.
#[allow(clippy::too_many_arguments)]
async fn start(
    pipeline: &Pipeline,
    session: &host::session::Session,
    store: Arc<Store>,
    key: String,
    text: String,
    options: &RunOptions,
    given: Vec<Given>,
    args: &PluginRunArgs,
    globals: &Globals,
) -> Outcome {
    let record = lifecycle::create_run(&store, pipeline, key, text, options)?;
    let mut done = HashMap::new();
    for g in given {
        store.stage_started(&record.id, &g.name, 1, None)?;
        let stored =
            store.stage_succeeded(&record.id, &g.name, 1, &g.output, &[], &Activity::default())?;
        let result = StageResult::restored(
            &g.name,
            1,
            g.output,
            stored.artifacts.clone(),
            stored.content_hash.clone(),
            "given by --input".to_string(),
        );
        done.insert(g.name, result);
    }
    let ctx = RunContext {
        run_id: record.id,
        fresh: true,
        done,
        progress: HashMap::new(),
        cancel: None,
        files: RunFiles::None,
    };
    let run_id = ctx.run_id.clone();
    let mode = lifecycle::exchange_mode(options);
    let exit = execute(
        pipeline,
        session,
        store,
        ctx,
        mode,
        args.out.as_deref(),
        args.output.mode(),
    )
    .await?;
    // What the plugin returned, as `host show` prints it: the point of
    // running one plugin is to read its output.
    if args.output.mode() != OutputMode::Json {
        println!();
        super::inspect::show(globals, ShowArgs::outputs(&run_id, args.stage()))?;
        println!(
            "\n(the run is recorded: host show {run_id} {} --log, host status {run_id})",
            args.stage()
        );
    }
    Ok(exit)
}
