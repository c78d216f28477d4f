//! What a plugin's language costs the host: loading its component the first
//! time (compiling it) and again (from the compiled-component cache), and
//! one stage attempt (instantiate, then `run` with one model call to a
//! loopback server), for each plugin given.

use super::stats::Summary;
use host_capabilities::inputs::InputsCapability;
use host_capabilities::models::{ExchangeMode, ModelsCapability};
use host_capabilities::{AttemptSpec, Grants, Runtime};
use host_runtime::{Capability, GrantSet};
use host_store::Store;
use host_vocab::StageInput;
use host_vocab::{Artifact, Upstream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Figures {
    pub size: u64,
    /// Load with an empty cache: read, compile, check, link, `info()`.
    pub first: Duration,
    /// Loads with the compiled code cached on disk.
    pub cached: Summary,
    /// One attempt: a fresh instance and `run`, with one model call.
    pub attempt: Summary,
}

/// The upstream text artifact every language's template stage gets.
fn notes() -> Artifact {
    Artifact {
        name: "notes.txt".into(),
        media_type: "text/plain".into(),
        bytes: "Some upstream notes worth a summary."
            .repeat(20)
            .into_bytes(),
    }
}

/// The input every language's template stage gets: the task and the
/// upstream stage that made [`notes`].
fn input(i: u32, upstream: &Upstream) -> StageInput {
    StageInput {
        run_id: "bench".into(),
        stage_id: "stage".into(),
        task: "Summarise the upstream text.".into(),
        config_json: r#"{"model":"m","max_tokens":16}"#.into(),
        inputs: vec![upstream.clone()],
        attempt: 1,
        iteration: i,
        feedback: None,
    }
}

pub async fn measure(dir: &Path, component: &Path, repeats: usize) -> Result<Figures, String> {
    let size = std::fs::metadata(component)
        .map_err(|e| format!("{}: {e}", component.display()))?
        .len();
    // An empty cache of its own, so the first load compiles.
    let cache_dir = dir.join("polyglot-cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    let (cached, first) =
        super::instantiate::cached_load(&cache_dir, component, 5 * repeats).await?;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = super::model_call::serve()
        .await
        .map_err(|e| e.to_string())?;
    let manifest = format!(
        "[pipeline]\nname = \"bench\"\ntask = \"t\"\n\n[models.m]\nprovider = \"openai\"\n\
         base_url = \"{url}\"\nmodel = \"bench\"\n\n[[stage]]\nid = \"stage\"\nplugin = {:?}\nmodels = [\"m\"]\n",
        component.display().to_string()
    );
    let pipeline = host_manifest::parse(&dir.join("polyglot-bench.toml"), manifest)
        .map_err(|d| d.to_string())?;
    let state = dir.join("polyglot-state");
    let _ = std::fs::remove_dir_all(&state);
    let store = Arc::new(Store::open(&state).map_err(|e| e.to_string())?);
    let upstream = stored_upstream(&store).map_err(|e| e.to_string())?;
    let inputs = InputsCapability::new(store.clone());
    let models = ModelsCapability::new(
        &pipeline,
        reqwest::Client::new(),
        store.clone(),
        ExchangeMode::default(),
    );
    let runtime = Runtime::new(Some(cache_dir)).map_err(|e| format!("{e:#}"))?;
    let plugin = runtime
        .load("bench", component)
        .await
        .map_err(|e| e.to_string())?;
    let stage = &pipeline.stages[0];
    let mut samples = Vec::new();
    let attempts = 5 * repeats;
    for i in 0..attempts + 3 {
        // The no-op bench's attempt, with this stage's input, model grant
        // and room for a large runtime.
        let mut scope = super::attempt_scope(stage, i as u32);
        let given = [upstream.clone()];
        scope.inputs = &given;
        let spec = AttemptSpec {
            input: input(i as u32, &upstream),
            grants: Grants {
                models: models.grant(&scope),
                inputs: Capability::grant(&inputs, &scope),
                ..Grants::deny()
            },
            artifacts: Some(store.clone()),
            timeout: Duration::from_secs(60),
            memory_limit: 256 << 20,
            ..super::instantiate::spec(i as u32)
        };
        let t = Instant::now();
        let report = runtime.run_attempt(&plugin, spec).await;
        let elapsed = t.elapsed();
        report
            .outcome
            .map_err(|e| format!("{}: the stage failed: {e}", component.display()))?;
        // The first attempts warm up the allocator and the connection pool.
        if i >= 3 {
            samples.push(elapsed);
        }
    }
    Ok(Figures {
        size,
        first,
        cached,
        attempt: Summary::of(&samples).ok_or("no attempts")?,
    })
}

/// Stores [`notes`] as the output of a stage "up" of a run "bench", as a
/// scheduler would have, and returns that stage as a downstream one sees it.
fn stored_upstream(store: &Store) -> host_store::Result<Upstream> {
    store.create_run(&host_store::RunRecord {
        id: "bench".into(),
        pipeline: "bench".into(),
        manifest_path: "bench.toml".into(),
        manifest_text: String::new(),
        status: host_store::RunStatus::Running,
        started_ms: host_vocab::now_ms(),
        finished_ms: None,
        owner: host_store::Owner::current(),
        stages: vec!["up".into(), "stage".into()],
        options: Default::default(),
    })?;
    store.stage_started("bench", "up", 1, None)?;
    let output = host_vocab::StageOutput {
        summary: "upstream".into(),
        artifacts: vec![notes()],
        metrics: Vec::new(),
        decision: None,
    };
    let out = store.stage_succeeded("bench", "up", 1, &output, &[], &Default::default())?;
    Ok(Upstream {
        stage_id: "up".into(),
        summary: out.summary,
        decision: None,
        artifacts: out.artifacts,
        metrics: Vec::new(),
    })
}
