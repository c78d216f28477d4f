//! The only code that touches redb: runs, stages, an append-only event log,
//! content-addressed artifacts with lineage, the result cache, and per-stage
//! key/value checkpoints, all in one database file per state directory.
//!
//! Every state change is one write transaction that updates the tables and
//! appends the event describing the change, so the tables are always what the
//! events say, and a process killed at any moment leaves either all of a
//! change or none of it.

pub mod failpoint;
mod group_commit;
mod guard;
mod model_tables;
pub mod records;

pub use group_commit::CommitStats;
pub use host_vocab::{IllegalTransition, RunStatus, StageStatus};
pub use model_tables::RecordingKey;
pub use records::*;

use guard::guard;
use host_vocab::stage_io as wit;
use host_vocab::{StageFailure, StageOutput};
use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

/// Bumped when the layout changes; older files are migrated on open.
/// 2 added the model tables (recordings, response cache, sessions).
pub const SCHEMA_VERSION: u64 = 2;
pub const DB_FILE: &str = "state.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
const STAGES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("stages");
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
const OUTPUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("outputs");
/// (blob hash, run, stage, role) -> attempt; role is "produced" or "consumed".
const LINEAGE: TableDefinition<(&str, &str, &str, &str), u32> = TableDefinition::new("lineage");
const KV: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("kv");
/// (run, stage, request hash, n-th identical request) -> recorded exchange.
const RECORDINGS: TableDefinition<(&str, &str, &str, u32), &[u8]> =
    TableDefinition::new("recordings");
/// Hash of (endpoint, full request) -> response.
const MODEL_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("model_cache");
/// (run, session) -> the session's messages.
const SESSIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("sessions");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state database {path} is damaged ({detail}); move it aside to start a new one (the runs recorded in it cannot be read)"
    )]
    Corrupted { path: PathBuf, detail: String },
    #[error(
        "state database {path} has schema version {found}, newer than this host supports ({SCHEMA_VERSION}): use a newer host"
    )]
    TooNew { path: PathBuf, found: u64 },
    #[error(
        "state database {path} is not a state database of this host (it has tables but no schema version)"
    )]
    Foreign { path: PathBuf },
    #[error("state database {path} is open in a process using an incompatible database version")]
    Incompatible { path: PathBuf },
    #[error("state database {path}: {detail}")]
    Db { path: PathBuf, detail: String },
    #[error("state database {path} is open read-only")]
    ReadOnly { path: PathBuf },
    #[error("no run '{0}' in this state directory (see `host runs`)")]
    UnknownRun(String),
    #[error("run '{run}' has no stage '{stage}'")]
    UnknownStage { run: String, stage: String },
    #[error("run '{run}', stage '{stage}': {source}")]
    Illegal {
        run: String,
        stage: String,
        source: IllegalTransition,
    },
    #[error("unreadable {table} record {key}: {detail}")]
    BadRecord {
        table: &'static str,
        key: String,
        detail: String,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The state directory's database. Several host processes may open the same
/// one: write transactions are serialized by the database's file locks.
pub struct Store {
    db: Db,
    path: PathBuf,
    commits: group_commit::GroupCommit,
}

/// The database as opened: for writing (every command that runs), or
/// read-only (`host serve`, which must never take a writer's locks).
enum Db {
    Writable(Database),
    ReadOnly(redb::ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> std::result::Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Db::Writable(db) => db.begin_read(),
            Db::ReadOnly(db) => db.begin_read(),
        }
    }

    fn begin_write(&self, path: &Path) -> Result<redb::WriteTransaction> {
        match self {
            Db::Writable(db) => db.begin_write().map_err(|e| classify(path, e.into())),
            Db::ReadOnly(_) => Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Where state lives when neither `--state-dir` nor the pipeline says:
/// `$HOST_STATE_DIR`, else `$XDG_STATE_HOME/orchestrator-host`, else
/// `~/.local/state/orchestrator-host`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOST_STATE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("orchestrator-host")
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::BadRecord {
        table,
        key: key.to_string(),
        detail: e.to_string(),
    })
}

fn artifact_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The content hash of an output: what downstream cache keys are built from.
fn output_hash(output: &StageOutput, refs: &[ArtifactRef]) -> String {
    let canonical = serde_json::json!({
        "summary": output.summary,
        "decision": output.decision,
        "metrics": output.metrics.iter().map(|m| (&m.name, m.value)).collect::<Vec<_>>(),
        "artifacts": refs,
    });
    artifact_hash(canonical.to_string().as_bytes())
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let p = path.clone();
        guard(&path, move || {
            let db = Database::builder()
                .set_concurrency_mode(ConcurrencyMode::MultiWriter)
                .create(&p)
                .map_err(|e| classify(&p, e.into()))?;
            let store = Store {
                db: Db::Writable(db),
                commits: group_commit::GroupCommit::new(&p),
                path: p,
            };
            store.init_schema()?;
            Ok(store)
        })
    }

    /// Opens the database in `dir` for reading only, beside any process
    /// that has it open for writing (they share it in multi-writer mode,
    /// and a reader sees each of their commits). The file must exist.
    ///
    /// A file left unclean by a killed process cannot be read until it is
    /// repaired, and only a writable open repairs: that case opens it as
    /// every other command would (the repair is what they would do too).
    pub fn open_read_only(dir: &Path) -> Result<Store> {
        let path = dir.join(DB_FILE);
        let p = path.clone();
        guard(&path, move || {
            let opened = Database::builder()
                .set_concurrency_mode(ConcurrencyMode::MultiWriter)
                .open_read_only(&p);
            let db = match opened {
                Ok(db) => db,
                Err(redb::DatabaseError::RepairAborted) => return Store::open(dir),
                Err(e) => return Err(classify(&p, e.into())),
            };
            let store = Store {
                db: Db::ReadOnly(db),
                commits: group_commit::GroupCommit::new(&p),
                path: p,
            };
            let found = store.read(|txn| match txn.open_table(META) {
                Ok(meta) => Ok(meta
                    .get("schema_version")
                    .map_err(|e| store.err(e))?
                    .map(|v| v.value())),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(store.err(e)),
            })?;
            match found {
                Some(v) if v > SCHEMA_VERSION => Err(StoreError::TooNew {
                    path: store.path.clone(),
                    found: v,
                }),
                Some(_) => Ok(store),
                None => Err(StoreError::Foreign {
                    path: store.path.clone(),
                }),
            }
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes committed by this process and the commits they took.
    pub fn commit_stats(&self) -> CommitStats {
        self.commits.stats()
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        classify(&self.path, e.into())
    }

    fn init_schema(&self) -> Result<()> {
        let txn = self.db.begin_write(&self.path)?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let found = meta
                .get("schema_version")
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::TooNew {
                        path: self.path.clone(),
                        found: v,
                    });
                }
                Some(v) if v == SCHEMA_VERSION => return Ok(()),
                Some(_older) => {
                    // Future migrations go here, one version step at a time.
                }
                None => {
                    let existing = txn.list_tables().map_err(|e| self.err(e))?.count();
                    // META itself was just opened (and so created) above.
                    if existing > 1 {
                        return Err(StoreError::Foreign {
                            path: self.path.clone(),
                        });
                    }
                }
            }
            meta.insert("schema_version", SCHEMA_VERSION)
                .map_err(|e| self.err(e))?;
        }
        for_each_table(&txn).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    /// Applies `f` in a write transaction, committed durably before this
    /// returns, possibly together with concurrent writers' changes (group
    /// commit); `f` may run more than once (see [`group_commit`]).
    fn write<T>(&self, f: impl Fn(&redb::WriteTransaction) -> Result<T>) -> Result<T> {
        self.commits.write(|| self.db.begin_write(&self.path), f)
    }

    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T>) -> Result<T> {
        guard(&self.path, || {
            let txn = self.db.begin_read().map_err(|e| self.err(e))?;
            f(&txn)
        })
    }

    fn append_event(&self, txn: &redb::WriteTransaction, run: &str, event: Event) -> Result<()> {
        let mut events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let last = events
            .range((run, 0)..=(run, u64::MAX))
            .map_err(|e| self.err(e))?
            .next_back()
            .transpose()
            .map_err(|e| self.err(e))?
            .map(|(k, _)| k.value().1);
        let seq = last.map_or(1, |s| s + 1);
        let record = EventRecord {
            seq,
            at_ms: now_ms(),
            event,
        };
        events
            .insert((run, seq), json(&record).as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// One event per model call and gate run, one for the file changes.
    fn append_activity(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
        attempt: u32,
        activity: &Activity,
    ) -> Result<()> {
        for call in &activity.model_calls {
            let event = Event::ModelCalled {
                stage: stage.into(),
                call: call.clone(),
            };
            self.append_event(txn, run, event)?;
        }
        for gate in &activity.gate_runs {
            let event = Event::GateRan {
                stage: stage.into(),
                attempt,
                gate: gate.gate.clone(),
                passed: gate.passed,
                reason: gate.reason(),
                duration_ms: gate.duration_ms,
            };
            self.append_event(txn, run, event)?;
        }
        if !activity.file_changes.is_empty() {
            let event = Event::WorkspaceChanged {
                stage: stage.into(),
                attempt,
                changes: activity.file_changes.clone(),
            };
            self.append_event(txn, run, event)?;
        }
        Ok(())
    }

    fn load_stage(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
    ) -> Result<StageRecord> {
        let stages = txn.open_table(STAGES).map_err(|e| self.err(e))?;
        let bytes = stages
            .get((run, stage))
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::UnknownStage {
                run: run.into(),
                stage: stage.into(),
            })?;
        decode("stages", &format!("{run}/{stage}"), bytes.value())
    }

    /// Moves a stage to `to` (checked), applies `update`, saves it, logs `event`.
    fn transition(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
        to: StageStatus,
        update: impl FnOnce(&mut StageRecord),
        event: Event,
    ) -> Result<StageRecord> {
        let mut record = self.load_stage(txn, run, stage)?;
        host_vocab::status::check_stage(record.status, to).map_err(|source| {
            StoreError::Illegal {
                run: run.into(),
                stage: stage.into(),
                source,
            }
        })?;
        record.status = to;
        update(&mut record);
        txn.open_table(STAGES)
            .map_err(|e| self.err(e))?
            .insert((run, stage), json(&record).as_slice())
            .map_err(|e| self.err(e))?;
        self.append_event(txn, run, event)?;
        Ok(record)
    }

    fn set_run_status(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        to: RunStatus,
        owner: Option<Owner>,
    ) -> Result<()> {
        let mut runs = txn.open_table(RUNS).map_err(|e| self.err(e))?;
        let mut record: RunRecord = {
            let bytes = runs
                .get(run)
                .map_err(|e| self.err(e))?
                .ok_or_else(|| StoreError::UnknownRun(run.into()))?;
            decode("runs", run, bytes.value())?
        };
        host_vocab::status::check_run(record.status, to).map_err(|source| StoreError::Illegal {
            run: run.into(),
            stage: "(run)".into(),
            source,
        })?;
        record.status = to;
        record.finished_ms = to.is_finished().then(now_ms);
        if let Some(owner) = owner {
            record.owner = owner;
        }
        runs.insert(run, json(&record).as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records a new run with every stage pending.
    pub fn create_run(&self, run: &RunRecord) -> Result<()> {
        self.write(|txn| {
            txn.open_table(RUNS)
                .map_err(|e| self.err(e))?
                .insert(run.id.as_str(), json(run).as_slice())
                .map_err(|e| self.err(e))?;
            {
                let mut stages = txn.open_table(STAGES).map_err(|e| self.err(e))?;
                for stage in &run.stages {
                    stages
                        .insert(
                            (run.id.as_str(), stage.as_str()),
                            json(&StageRecord::pending(stage)).as_slice(),
                        )
                        .map_err(|e| self.err(e))?;
                }
            }
            self.append_event(
                txn,
                &run.id,
                Event::RunStarted {
                    pipeline: run.pipeline.clone(),
                    stages: run.stages.clone(),
                    pid: run.owner.pid,
                },
            )
        })
    }

    /// Takes over an unfinished (or failed) run: stages that were running are
    /// marked interrupted, then every stage that did not succeed is pending
    /// again. Returns the stages that will run again.
    pub fn resume_run(&self, run: &str, owner: Owner) -> Result<Vec<String>> {
        self.write(|txn| {
            let record = self.run_in(txn, run)?;
            if record.status == RunStatus::Running {
                self.set_run_status(txn, run, RunStatus::Interrupted, None)?;
            }
            self.set_run_status(txn, run, RunStatus::Running, Some(owner.clone()))?;
            let mut reset = Vec::new();
            for stage in &record.stages {
                let current = self.load_stage(txn, run, stage)?;
                if current.status == StageStatus::Running {
                    self.transition(
                        txn,
                        run,
                        stage,
                        StageStatus::Interrupted,
                        |r| r.finished_ms = Some(now_ms()),
                        Event::StageInterrupted {
                            stage: stage.clone(),
                            attempt: current.attempts,
                        },
                    )?;
                }
                if current.status != StageStatus::Succeeded
                    && current.status != StageStatus::Pending
                {
                    self.make_pending(txn, run, stage, |_| {})?;
                    reset.push(stage.clone());
                }
            }
            self.append_event(
                txn,
                run,
                Event::RunResumed {
                    pid: owner.pid,
                    reset: reset.clone(),
                },
            )?;
            Ok(reset)
        })
    }

    /// Puts a stage back to pending (resume, loop), without its failure or
    /// skip reason, after `update`; checked against the state machine.
    fn make_pending(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
        update: impl FnOnce(&mut StageRecord),
    ) -> Result<()> {
        let mut r = self.load_stage(txn, run, stage)?;
        if r.status != StageStatus::Pending {
            host_vocab::status::check_stage(r.status, StageStatus::Pending).map_err(|source| {
                StoreError::Illegal {
                    run: run.into(),
                    stage: stage.into(),
                    source,
                }
            })?;
        }
        r.status = StageStatus::Pending;
        r.failure = None;
        r.skip_reason = None;
        update(&mut r);
        txn.open_table(STAGES)
            .map_err(|e| self.err(e))?
            .insert((run, stage), json(&r).as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn run_in(&self, txn: &redb::WriteTransaction, run: &str) -> Result<RunRecord> {
        let runs = txn.open_table(RUNS).map_err(|e| self.err(e))?;
        let bytes = runs
            .get(run)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::UnknownRun(run.into()))?;
        decode("runs", run, bytes.value())
    }

    pub fn stage_started(
        &self,
        run: &str,
        stage: &str,
        attempt: u32,
        cache_key: Option<String>,
    ) -> Result<()> {
        self.write(|txn| {
            let key = cache_key.clone();
            self.transition(
                txn,
                run,
                stage,
                StageStatus::Running,
                |r| {
                    r.attempts = attempt;
                    if r.started_ms.is_none() || attempt == 1 {
                        r.started_ms = Some(now_ms());
                    }
                    r.cache_key = key;
                },
                Event::StageStarted {
                    stage: stage.into(),
                    attempt,
                    cache_key: cache_key.clone(),
                },
            )
            .map(|_| ())
        })
    }

    /// Stores the artifacts (once each, by content), the output (also under
    /// its cache key), lineage, model calls and the success, in one commit.
    pub fn stage_succeeded(
        &self,
        run: &str,
        stage: &str,
        attempt: u32,
        output: &StageOutput,
        consumed: &[String],
        activity: &Activity,
    ) -> Result<OutputRecord> {
        self.write(|txn| {
            let refs: Vec<ArtifactRef> = output
                .artifacts
                .iter()
                .map(|a| ArtifactRef {
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    hash: artifact_hash(&a.bytes),
                    size: a.bytes.len() as u64,
                })
                .collect();
            {
                let mut blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
                let mut lineage = txn.open_table(LINEAGE).map_err(|e| self.err(e))?;
                for (artifact, r) in output.artifacts.iter().zip(&refs) {
                    if blobs
                        .get(r.hash.as_str())
                        .map_err(|e| self.err(e))?
                        .is_none()
                    {
                        blobs
                            .insert(r.hash.as_str(), artifact.bytes.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    lineage
                        .insert((r.hash.as_str(), run, stage, "produced"), attempt)
                        .map_err(|e| self.err(e))?;
                }
                for hash in consumed {
                    lineage
                        .insert((hash.as_str(), run, stage, "consumed"), attempt)
                        .map_err(|e| self.err(e))?;
                }
            }
            let record = OutputRecord {
                summary: output.summary.clone(),
                decision: output.decision.clone(),
                metrics: output
                    .metrics
                    .iter()
                    .map(|m| (m.name.clone(), m.value))
                    .collect(),
                content_hash: output_hash(output, &refs),
                artifacts: refs.clone(),
                produced_by: (run.to_string(), stage.to_string()),
            };
            self.append_activity(txn, run, stage, attempt, activity)?;
            self.append_sessions(txn, run, &activity.session_appends)?;
            let out = record.clone();
            let activity = activity.clone();
            let saved = self.transition(
                txn,
                run,
                stage,
                StageStatus::Succeeded,
                |r| {
                    r.finished_ms = Some(now_ms());
                    r.output = Some(out);
                    r.model_calls.extend(activity.model_calls);
                    r.gate_runs.extend(activity.gate_runs);
                    r.file_changes = activity.file_changes;
                },
                Event::StageSucceeded {
                    stage: stage.into(),
                    attempt,
                    output: record.content_hash.clone(),
                    artifacts: refs,
                },
            )?;
            if let Some(key) = &saved.cache_key {
                txn.open_table(OUTPUTS)
                    .map_err(|e| self.err(e))?
                    .insert(key.as_str(), json(&record).as_slice())
                    .map_err(|e| self.err(e))?;
            }
            Ok(record)
        })
    }

    pub fn stage_failed(
        &self,
        run: &str,
        stage: &str,
        attempt: u32,
        failure: &StageFailure,
        will_retry: bool,
        activity: &Activity,
    ) -> Result<()> {
        self.write(|txn| {
            self.append_activity(txn, run, stage, attempt, activity)?;
            // A failure that will be retried keeps the stage running.
            let to = if will_retry {
                StageStatus::Running
            } else {
                StageStatus::Failed
            };
            let activity = activity.clone();
            let f = failure.clone();
            self.transition(
                txn,
                run,
                stage,
                to,
                |r| {
                    r.model_calls.extend(activity.model_calls);
                    r.gate_runs.extend(activity.gate_runs);
                    r.file_changes = activity.file_changes;
                    if !will_retry {
                        r.finished_ms = Some(now_ms());
                        r.failure = Some(f);
                    }
                },
                Event::StageFailed {
                    stage: stage.into(),
                    attempt,
                    failure: failure.clone(),
                    will_retry,
                },
            )
            .map(|_| ())
        })
    }

    pub fn stage_skipped(&self, run: &str, stage: &str, reason: &str) -> Result<()> {
        self.write(|txn| {
            self.transition(
                txn,
                run,
                stage,
                StageStatus::Skipped,
                |r| r.skip_reason = Some(reason.to_string()),
                Event::StageSkipped {
                    stage: stage.into(),
                    reason: reason.into(),
                },
            )
            .map(|_| ())
        })
    }

    /// Records that a stage took its output from the result cache.
    pub fn stage_reused(
        &self,
        run: &str,
        stage: &str,
        cache_key: &str,
        output: &OutputRecord,
    ) -> Result<()> {
        self.write(|txn| {
            let out = output.clone();
            let key = cache_key.to_string();
            self.transition(
                txn,
                run,
                stage,
                StageStatus::Succeeded,
                |r| {
                    let now = now_ms();
                    r.started_ms = Some(now);
                    r.finished_ms = Some(now);
                    r.cache_key = Some(key);
                    r.reused_from = Some(out.produced_by.0.clone());
                    r.output = Some(out);
                },
                Event::StageReused {
                    stage: stage.into(),
                    from_run: output.produced_by.0.clone(),
                    output: output.content_hash.clone(),
                },
            )
            .map(|_| ())
        })
    }

    /// A loop: every stage in `reset` is pending again one iteration later;
    /// `to` carries the feedback. One commit with its event.
    pub fn loop_back(
        &self,
        run: &str,
        from: &str,
        to: &str,
        reset: &[(String, u32)],
        feedback: &str,
    ) -> Result<()> {
        self.write(|txn| {
            let iteration = reset.iter().find(|(s, _)| s == to).map_or(0, |(_, i)| *i);
            for (stage, iteration) in reset {
                self.make_pending(txn, run, stage, |r| {
                    r.output = None;
                    r.iteration = *iteration;
                    if stage == to {
                        r.feedback = Some(feedback.to_string());
                    }
                })?;
            }
            self.append_event(
                txn,
                run,
                Event::LoopedBack {
                    from: from.into(),
                    to: to.into(),
                    iteration,
                    reset: reset.iter().map(|(s, _)| s.clone()).collect(),
                },
            )
        })
    }

    /// Adds a spawned job to the run (once: resuming a run spawns the same
    /// jobs again and finds them here).
    pub fn stage_spawned(
        &self,
        run: &str,
        parent: &str,
        stage: &str,
        template: &str,
    ) -> Result<()> {
        self.write(|txn| {
            let exists = txn
                .open_table(STAGES)
                .map_err(|e| self.err(e))?
                .get((run, stage))
                .map_err(|e| self.err(e))?
                .is_some();
            if exists {
                return Ok(());
            }
            let mut record = StageRecord::pending(stage);
            record.parent = Some(parent.to_string());
            txn.open_table(STAGES)
                .map_err(|e| self.err(e))?
                .insert((run, stage), json(&record).as_slice())
                .map_err(|e| self.err(e))?;
            let mut run_record = self.run_in(txn, run)?;
            run_record.stages.push(stage.to_string());
            txn.open_table(RUNS)
                .map_err(|e| self.err(e))?
                .insert(run, json(&run_record).as_slice())
                .map_err(|e| self.err(e))?;
            self.append_event(
                txn,
                run,
                Event::StageSpawned {
                    parent: parent.into(),
                    stage: stage.into(),
                    template: template.into(),
                },
            )
        })
    }

    /// Appends an event that changes no table (a refusal, a deadlock...).
    pub fn note(&self, run: &str, event: Event) -> Result<()> {
        self.write(|txn| self.append_event(txn, run, event.clone()))
    }

    /// A running stage stopped by a cancel or a deadline.
    pub fn stage_interrupted(&self, run: &str, stage: &str) -> Result<()> {
        self.write(|txn| {
            let current = self.load_stage(txn, run, stage)?;
            if current.status != StageStatus::Running {
                return Ok(());
            }
            self.transition(
                txn,
                run,
                stage,
                StageStatus::Interrupted,
                |r| r.finished_ms = Some(now_ms()),
                Event::StageInterrupted {
                    stage: stage.into(),
                    attempt: current.attempts,
                },
            )
            .map(|_| ())
        })
    }

    pub fn run_finished(&self, run: &str, status: RunStatus) -> Result<()> {
        self.write(|txn| {
            self.set_run_status(txn, run, status, None)?;
            self.append_event(txn, run, Event::RunFinished { status })
        })
    }

    pub fn run(&self, id: &str) -> Result<RunRecord> {
        self.read(|txn| {
            let runs = txn.open_table(RUNS).map_err(|e| self.err(e))?;
            let bytes = runs
                .get(id)
                .map_err(|e| self.err(e))?
                .ok_or_else(|| StoreError::UnknownRun(id.into()))?;
            decode("runs", id, bytes.value())
        })
    }

    /// Every run, oldest first (run ids sort by start time).
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.read(|txn| {
            let runs = txn.open_table(RUNS).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for entry in runs.iter().map_err(|e| self.err(e))? {
                let (k, v) = entry.map_err(|e| self.err(e))?;
                out.push(decode("runs", k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    /// A run's stages in plan order.
    pub fn stages(&self, run: &RunRecord) -> Result<Vec<StageRecord>> {
        self.read(|txn| {
            let stages = txn.open_table(STAGES).map_err(|e| self.err(e))?;
            run.stages
                .iter()
                .map(|s| {
                    let bytes = stages
                        .get((run.id.as_str(), s.as_str()))
                        .map_err(|e| self.err(e))?
                        .ok_or_else(|| StoreError::UnknownStage {
                            run: run.id.clone(),
                            stage: s.clone(),
                        })?;
                    decode("stages", &format!("{}/{s}", run.id), bytes.value())
                })
                .collect()
        })
    }

    /// Calls `f` for each event of `run` in order, without loading them all.
    pub fn for_each_event(
        &self,
        run: &str,
        mut f: impl FnMut(EventRecord) -> Result<()>,
    ) -> Result<()> {
        self.read(|txn| {
            let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
            for entry in events
                .range((run, 0)..=(run, u64::MAX))
                .map_err(|e| self.err(e))?
            {
                let (k, v) = entry.map_err(|e| self.err(e))?;
                let key = format!("{run}#{}", k.value().1);
                f(decode("events", &key, v.value())?)?;
            }
            Ok(())
        })
    }

    pub fn events(&self, run: &str) -> Result<Vec<EventRecord>> {
        let mut out = Vec::new();
        self.for_each_event(run, |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    pub fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        self.read(|txn| {
            let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            Ok(blobs
                .get(hash)
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec()))
        })
    }

    pub fn cached_output(&self, cache_key: &str) -> Result<Option<OutputRecord>> {
        self.read(|txn| {
            let outputs = txn.open_table(OUTPUTS).map_err(|e| self.err(e))?;
            match outputs.get(cache_key).map_err(|e| self.err(e))? {
                Some(v) => decode("outputs", cache_key, v.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    /// An output with its artifact bytes loaded, as handed to later stages.
    pub fn load_output(&self, record: &OutputRecord) -> Result<StageOutput> {
        let mut artifacts = Vec::with_capacity(record.artifacts.len());
        for a in &record.artifacts {
            let bytes = self.blob(&a.hash)?.ok_or_else(|| StoreError::BadRecord {
                table: "blobs",
                key: a.hash.clone(),
                detail: format!("artifact '{}' is missing", a.name),
            })?;
            artifacts.push(wit::Artifact {
                name: a.name.clone(),
                media_type: a.media_type.clone(),
                bytes,
            });
        }
        Ok(StageOutput {
            summary: record.summary.clone(),
            artifacts,
            metrics: record
                .metrics
                .iter()
                .map(|(name, value)| wit::Metric {
                    name: name.clone(),
                    value: *value,
                })
                .collect(),
            decision: record.decision.clone(),
        })
    }

    /// (run, stage, role, attempt) for every use of an artifact.
    pub fn lineage(&self, hash: &str) -> Result<Vec<(String, String, String, u32)>> {
        self.read(|txn| {
            let lineage = txn.open_table(LINEAGE).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for entry in lineage
                .range((hash, "", "", "")..)
                .map_err(|e| self.err(e))?
            {
                let (k, v) = entry.map_err(|e| self.err(e))?;
                let (h, run, stage, role) = k.value();
                if h != hash {
                    break;
                }
                out.push((
                    run.to_string(),
                    stage.to_string(),
                    role.to_string(),
                    v.value(),
                ));
            }
            Ok(out)
        })
    }

    pub fn kv_get(&self, run: &str, stage: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|txn| {
            let kv = txn.open_table(KV).map_err(|e| self.err(e))?;
            Ok(kv
                .get((run, stage, key))
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec()))
        })
    }

    pub fn kv_set(&self, run: &str, stage: &str, key: &str, value: &[u8]) -> Result<()> {
        self.write(|txn| {
            txn.open_table(KV)
                .map_err(|e| self.err(e))?
                .insert((run, stage, key), value)
                .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    pub fn kv_delete(&self, run: &str, stage: &str, key: &str) -> Result<()> {
        self.write(|txn| {
            txn.open_table(KV)
                .map_err(|e| self.err(e))?
                .remove((run, stage, key))
                .map_err(|e| self.err(e))?;
            Ok(())
        })
    }
}

fn for_each_table(txn: &redb::WriteTransaction) -> std::result::Result<(), redb::TableError> {
    txn.open_table(RUNS)?;
    txn.open_table(STAGES)?;
    txn.open_table(EVENTS)?;
    txn.open_table(BLOBS)?;
    txn.open_table(OUTPUTS)?;
    txn.open_table(LINEAGE)?;
    txn.open_table(KV)?;
    txn.open_table(RECORDINGS)?;
    txn.open_table(MODEL_CACHE)?;
    txn.open_table(SESSIONS)?;
    Ok(())
}

fn classify(path: &Path, e: redb::Error) -> StoreError {
    match e {
        redb::Error::Corrupted(detail) => StoreError::Corrupted {
            path: path.to_path_buf(),
            detail,
        },
        redb::Error::LockProtocolMismatch | redb::Error::UpgradeRequired(_) => {
            StoreError::Incompatible {
                path: path.to_path_buf(),
            }
        }
        other => {
            let detail = other.to_string();
            // redb reports a file that is not a database (or is truncated)
            // as an I/O or format problem: name it as damage.
            if detail.contains("magic")
                || detail.contains("invalid")
                || detail.contains("failed to fill whole buffer")
            {
                StoreError::Corrupted {
                    path: path.to_path_buf(),
                    detail,
                }
            } else {
                StoreError::Db {
                    path: path.to_path_buf(),
                    detail,
                }
            }
        }
    }
}

#[cfg(test)]
mod transition_tests {
    //! The run record's moves, through the store's public operations, on a
    //! real database in a temp directory.
    use super::*;
    use host_vocab::{Artifact, Metric};

    fn run_record(id: &str, stages: &[&str]) -> RunRecord {
        RunRecord {
            id: id.into(),
            pipeline: "p".into(),
            manifest_path: "p.toml".into(),
            manifest_text: String::new(),
            status: RunStatus::Running,
            started_ms: now_ms(),
            finished_ms: None,
            owner: Owner::current(),
            stages: stages.iter().map(|s| s.to_string()).collect(),
            options: RunOptions::default(),
        }
    }

    fn output(text: &str) -> StageOutput {
        StageOutput {
            summary: text.into(),
            artifacts: vec![Artifact {
                name: "out.txt".into(),
                media_type: "text/plain".into(),
                bytes: text.as_bytes().to_vec(),
            }],
            metrics: vec![Metric {
                name: "score".into(),
                value: 0.5,
            }],
            decision: Some("ok".into()),
        }
    }

    fn stage<'a>(records: &'a [StageRecord], id: &str) -> &'a StageRecord {
        records.iter().find(|r| r.stage == id).unwrap()
    }

    fn open() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Store::open(dir.path()).unwrap(), dir)
    }

    #[test]
    fn a_stage_runs_succeeds_and_its_output_reads_back() {
        let (store, _dir) = open();
        store.create_run(&run_record("r", &["a"])).unwrap();
        store.stage_started("r", "a", 1, None).unwrap();
        let record = store
            .stage_succeeded("r", "a", 1, &output("hello"), &[], &Activity::default())
            .unwrap();
        let run = store.run("r").unwrap();
        let a = stage(&store.stages(&run).unwrap(), "a").clone();
        assert_eq!(a.status, StageStatus::Succeeded);
        assert_eq!(a.attempts, 1);
        assert_eq!(store.load_output(&record).unwrap(), output("hello"));
        store.run_finished("r", RunStatus::Succeeded).unwrap();
        assert!(store.run("r").unwrap().finished_ms.is_some());
    }

    #[test]
    fn a_succeeded_stage_cannot_start_or_succeed_again() {
        let (store, _dir) = open();
        store.create_run(&run_record("r", &["a"])).unwrap();
        store.stage_started("r", "a", 1, None).unwrap();
        store
            .stage_succeeded("r", "a", 1, &output("x"), &[], &Activity::default())
            .unwrap();
        let again = store.stage_started("r", "a", 2, None).unwrap_err();
        assert!(matches!(again, StoreError::Illegal { .. }), "{again}");
        let twice = store
            .stage_succeeded("r", "a", 1, &output("x"), &[], &Activity::default())
            .unwrap_err();
        assert!(
            twice.to_string().contains("succeeded -> succeeded"),
            "{twice}"
        );
        // Nothing of the refused moves was written.
        let events = store.events("r").unwrap();
        let started = events
            .iter()
            .filter(|e| matches!(e.event, Event::StageStarted { .. }))
            .count();
        assert_eq!(started, 1);
    }

    #[test]
    fn a_retried_failure_keeps_the_stage_running_and_a_final_one_fails_it() {
        let (store, _dir) = open();
        store.create_run(&run_record("r", &["a"])).unwrap();
        let failure = StageFailure::Plugin {
            retryable: true,
            message: "flaky".into(),
        };
        store.stage_started("r", "a", 1, None).unwrap();
        store
            .stage_failed("r", "a", 1, &failure, true, &Activity::default())
            .unwrap();
        let run = store.run("r").unwrap();
        assert_eq!(
            stage(&store.stages(&run).unwrap(), "a").status,
            StageStatus::Running
        );
        store.stage_started("r", "a", 2, None).unwrap();
        store
            .stage_failed("r", "a", 2, &failure, false, &Activity::default())
            .unwrap();
        let a = stage(&store.stages(&run).unwrap(), "a").clone();
        assert_eq!(a.status, StageStatus::Failed);
        assert_eq!(a.attempts, 2);
    }

    #[test]
    fn resume_interrupts_what_was_running_and_resets_all_but_successes() {
        let (store, _dir) = open();
        store
            .create_run(&run_record("r", &["done", "running", "failed", "waiting"]))
            .unwrap();
        store.stage_started("r", "done", 1, None).unwrap();
        store
            .stage_succeeded("r", "done", 1, &output("d"), &[], &Activity::default())
            .unwrap();
        store.stage_started("r", "running", 1, None).unwrap();
        store.stage_started("r", "failed", 1, None).unwrap();
        let fatal = StageFailure::Plugin {
            retryable: false,
            message: "no".into(),
        };
        store
            .stage_failed("r", "failed", 1, &fatal, false, &Activity::default())
            .unwrap();
        let reset = store.resume_run("r", Owner::current()).unwrap();
        assert_eq!(reset, ["running", "failed"]);
        let run = store.run("r").unwrap();
        assert_eq!(run.status, RunStatus::Running);
        let stages = store.stages(&run).unwrap();
        assert_eq!(stage(&stages, "done").status, StageStatus::Succeeded);
        for id in ["running", "failed", "waiting"] {
            assert_eq!(stage(&stages, id).status, StageStatus::Pending, "{id}");
        }
        let interrupted = store
            .events("r")
            .unwrap()
            .into_iter()
            .filter(
                |e| matches!(&e.event, Event::StageInterrupted { stage, .. } if stage == "running"),
            )
            .count();
        assert_eq!(interrupted, 1);
    }

    #[test]
    fn unknown_runs_and_stages_are_named() {
        let (store, _dir) = open();
        assert!(matches!(store.run("nope"), Err(StoreError::UnknownRun(_))));
        store.create_run(&run_record("r", &["a"])).unwrap();
        let err = store.stage_started("r", "b", 1, None).unwrap_err();
        assert!(matches!(err, StoreError::UnknownStage { .. }), "{err}");
    }

    #[test]
    fn checkpoints_are_scoped_to_run_and_stage() {
        let (store, _dir) = open();
        store.kv_set("r", "a", "k", b"1").unwrap();
        assert_eq!(store.kv_get("r", "a", "k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.kv_get("r", "b", "k").unwrap(), None);
        assert_eq!(store.kv_get("r2", "a", "k").unwrap(), None);
        store.kv_delete("r", "a", "k").unwrap();
        assert_eq!(store.kv_get("r", "a", "k").unwrap(), None);
    }
}
