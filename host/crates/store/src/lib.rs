//! The only code that touches redb: runs, stages, an append-only event log,
//! content-addressed artifacts with lineage, the result cache, and per-stage
//! key/value checkpoints, all in one database file per state directory.
//!
//! Every state change is one write transaction that updates the tables and
//! appends the event describing the change, so the tables are always what the
//! events say, and a process killed at any moment leaves either all of a
//! change or none of it.

mod artifacts;
mod birth;
mod blobs;
mod events;
pub mod failpoint;
mod fault;
mod gc;
mod group_commit;
mod guard;
mod kv;
mod model_calls;
mod model_tables;
pub mod records;
mod runs;
mod seal;
mod stages;
#[cfg(test)]
mod tests;
mod verify;
mod workspace_changes;

pub use gc::{Collection, Expiry};
pub use group_commit::CommitStats;
pub use host_vocab::{IllegalTransition, RunStatus, StageStatus};
pub use kv::KvQuota;
pub use model_tables::RecordingKey;
pub use records::*;
pub use verify::Verification;
pub use workspace_changes::{Applied, Changeset};

use fault::{Fault, Tx};
use guard::guard;
use host_vocab::stage_io as wit;
use host_vocab::{StageFailure, StageOutput};
use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

/// Bumped when the layout changes; older files are migrated on open.
/// 2 added the model tables (recordings, response cache, sessions); 3 the
/// tables of model calls committed one by one (and in flight); 4 sealed
/// every record; 5 added chunked blobs (older blobs stay whole).
pub const SCHEMA_VERSION: u64 = 5;
/// The schema from which every value carries a checksum ([`seal`]).
const SEALED_SINCE: u64 = 4;
pub const DB_FILE: &str = "state.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
const STAGES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("stages");
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
/// Hash of a blob larger than one chunk -> its [`blobs::ChunkIndex`].
const BLOB_INDEX: TableDefinition<&str, &[u8]> = TableDefinition::new("blob_index");
/// (blob hash, chunk number) -> the chunk's bytes.
const BLOB_CHUNKS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("blob_chunks");
const OUTPUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("outputs");
/// (blob hash, run, stage, role) -> attempt; role is "produced" or "consumed".
const LINEAGE: TableDefinition<(&str, &str, &str, &str), u32> = TableDefinition::new("lineage");
const KV: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("kv");
/// (run, stage) -> (keys, bytes) its checkpoints hold: quotas are checked
/// without reading the values. A stage whose checkpoints an older host
/// wrote has no row until its next write counts them once.
const KV_USAGE: TableDefinition<(&str, &str), (u64, u64)> = TableDefinition::new("kv_usage");
/// (run, stage, request hash, n-th identical request) -> recorded exchange.
const RECORDINGS: TableDefinition<(&str, &str, &str, u32), &[u8]> =
    TableDefinition::new("recordings");
/// Hash of (endpoint, full request) -> response.
const MODEL_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("model_cache");
/// (run, session) -> the session's messages.
const SESSIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("sessions");
/// (run, stage, iteration, attempt, n) -> a model call, committed as it
/// finished (see [`model_calls`]).
const CALLS: TableDefinition<(&str, &str, u32, u32, u32), &[u8]> = TableDefinition::new("calls");
/// Same key -> a request sent whose answer is not recorded yet.
const IN_FLIGHT: TableDefinition<(&str, &str, u32, u32, u32), &[u8]> =
    TableDefinition::new("calls_in_flight");

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
    #[error(
        "state database {path} is open read-only (it or its directory cannot be written here): reading works, running needs a writable --state-dir"
    )]
    ReadOnly { path: PathBuf },
    #[error("run {run} is being executed by process {pid} right now")]
    Busy { run: String, pid: u32 },
    /// Another process finished it between this one's look and its claim.
    #[error("run {0} already succeeded: nothing to resume")]
    AlreadySucceeded(String),
    #[error("no run '{0}' in this state directory (see `host runs`)")]
    UnknownRun(String),
    #[error("run {0} was interrupted and can be resumed: only a finished run can be removed")]
    NotFinished(String),
    #[error("run '{run}' has no stage '{stage}'")]
    UnknownStage { run: String, stage: String },
    #[error("run '{run}', stage '{stage}': {source}")]
    Illegal {
        run: String,
        stage: String,
        source: IllegalTransition,
    },
    /// A plugin asked for more than its share (a checkpoint quota): its
    /// request is refused, nothing else is wrong.
    #[error("{0}")]
    Quota(host_vocab::LimitReached),
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
    /// Values carry checksums (schema 4 on): an older database opened
    /// read-only has none to check.
    sealed: bool,
    kv_quota: kv::KvQuota,
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

/// A record as stored: JSON, sealed with its checksum.
fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data: serialization cannot fail.
    seal::seal(&serde_json::to_vec(value).unwrap_or_default())
}

/// How every process opens the database: several may share it.
fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_concurrency_mode(ConcurrencyMode::MultiWriter);
    // redb keeps what it reads and writes cached up to this (1 GiB by
    // default): large artifacts would stay in the host's memory after
    // they are committed. Records are small and read rarely; the page
    // cache of the OS keeps the file warm anyway.
    b.set_cache_size(CACHE_BYTES);
    b
}

/// redb's own cache of pages (see [`builder`]).
const CACHE_BYTES: usize = 32 << 20;

impl Store {
    fn with(db: Db, path: PathBuf) -> Store {
        Store {
            db,
            commits: group_commit::GroupCommit::new(&path),
            path,
            sealed: true,
            kv_quota: kv::KvQuota::default(),
        }
    }

    /// The same store with other checkpoint quotas (tests use small ones).
    pub fn with_kv_quota(mut self, quota: KvQuota) -> Store {
        self.kv_quota = quota;
        self
    }

    /// Opens the database in `dir` for writing, because it needs the repair
    /// only a writer can make; read-only, that is an error.
    fn open_for_repair(dir: &Path) -> Result<Store> {
        let path = dir.join(DB_FILE);
        let writable = std::fs::OpenOptions::new().write(true).open(&path);
        match writable {
            Err(e) if is_read_only_error(&e) => Err(StoreError::Db {
                path,
                detail: "it was left unclean by a process that stopped, and only a process that may write it can repair it".into(),
            }),
            _ => Store::open(dir),
        }
    }

    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let p = path.clone();
        guard(&path, move || {
            birth::ensure_database(dir)?;
            let db = match builder().open(&p) {
                Ok(db) => db,
                // A state directory the user may read but not write (a CI
                // artifact, another user's runs): reading still works, and
                // any write says the database is read-only.
                Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                    if p.exists() && is_read_only_error(&e) =>
                {
                    return Store::open_read_only(dir);
                }
                Err(e) => return Err(classify(&p, e.into())),
            };
            let store = Store::with(Db::Writable(db), p);
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
            let opened = builder().open_read_only(&p);
            let db = match opened {
                Ok(db) => db,
                Err(redb::DatabaseError::RepairAborted) => return Store::open_for_repair(dir),
                Err(e) => return Err(classify(&p, e.into())),
            };
            let mut store = Store::with(Db::ReadOnly(db), p);
            let found = store.read(|txn| match txn.open_table(META) {
                Ok(meta) => Ok(meta.get("schema_version")?.map(|v| v.value())),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(e.into()),
            })?;
            match found {
                Some(v) if v > SCHEMA_VERSION => Err(StoreError::TooNew {
                    path: store.path.clone(),
                    found: v,
                }),
                Some(v) => {
                    store.sealed = v >= SEALED_SINCE;
                    Ok(store)
                }
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

    fn init_schema(&self) -> Result<()> {
        self.migrate().map_err(|e| e.at(&self.path))
    }

    /// Creates the tables of a new database, or checks an existing one's
    /// schema version.
    fn migrate(&self) -> Tx<()> {
        let txn = self.db.begin_write(&self.path)?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value());
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::TooNew {
                        path: self.path.clone(),
                        found: v,
                    }
                    .into());
                }
                Some(v) if v == SCHEMA_VERSION => return Ok(()),
                Some(older) => {
                    // One version step at a time.
                    if older < SEALED_SINCE {
                        drop(meta);
                        self.seal_every_record(&txn)?;
                        meta = txn.open_table(META)?;
                    }
                }
                None => {
                    let existing = txn.list_tables()?.count();
                    // META itself was just opened (and so created) above.
                    if existing > 1 {
                        return Err(StoreError::Foreign {
                            path: self.path.clone(),
                        }
                        .into());
                    }
                }
            }
            meta.insert("schema_version", SCHEMA_VERSION)?;
        }
        for_each_table(&txn)?;
        Ok(txn.commit()?)
    }

    /// Applies `f` in a write transaction, committed durably before this
    /// returns, possibly together with concurrent writers' changes (group
    /// commit); `f` may run more than once (see [`group_commit`]).
    fn write<T>(&self, f: impl Fn(&redb::WriteTransaction) -> Tx<T>) -> Result<T> {
        self.commits.write(
            || self.db.begin_write(&self.path),
            |txn| f(txn).map_err(|e| e.at(&self.path)),
        )
    }

    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Tx<T>) -> Result<T> {
        guard(&self.path, || {
            let txn = self
                .db
                .begin_read()
                .map_err(|e| Fault::from(e).at(&self.path))?;
            f(&txn).map_err(|e| e.at(&self.path))
        })
    }
}

fn for_each_table(txn: &redb::WriteTransaction) -> std::result::Result<(), redb::TableError> {
    txn.open_table(RUNS)?;
    txn.open_table(STAGES)?;
    txn.open_table(EVENTS)?;
    txn.open_table(BLOBS)?;
    txn.open_table(BLOB_INDEX)?;
    txn.open_table(BLOB_CHUNKS)?;
    txn.open_table(OUTPUTS)?;
    txn.open_table(LINEAGE)?;
    txn.open_table(KV)?;
    txn.open_table(KV_USAGE)?;
    txn.open_table(RECORDINGS)?;
    txn.open_table(MODEL_CACHE)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(CALLS)?;
    txn.open_table(IN_FLIGHT)?;
    Ok(())
}

fn is_read_only_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
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
