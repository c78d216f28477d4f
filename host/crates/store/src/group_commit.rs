//! Group commit: concurrent writers share one redb write transaction and one
//! fsync.
//!
//! redb runs one write transaction at a time, and each durable commit costs an
//! fsync (about half a millisecond here). Stages finishing at the same moment
//! would queue behind each other's fsync, so commit throughput could never
//! grow with parallelism. Here, the first writer to find no open batch
//! becomes its leader: it begins the transaction (waiting, inside redb, for
//! the previous batch's commit), applies its change, lets every writer that
//! arrived meanwhile apply theirs to the same transaction, then commits once
//! for all of them. Each writer returns only after the commit that holds its
//! change is durable, so callers see exactly the guarantee of a commit of
//! their own.
//!
//! A writer whose change fails poisons its batch: redb cannot undo one
//! writer's part of a transaction, so the leader aborts the batch, the failing
//! writer gets its own error, and the others apply their change again in a
//! new batch. That is why changes are `Fn`: they may run more than once, and
//! only the run whose batch commits counts.

use super::StoreError;
use super::guard::guard;
use redb::WriteTransaction;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Most writers joining one leader's batch.
const MAX_FOLLOWERS: usize = 1024;

/// How a batch ended, as each of its writers learns it.
#[derive(Clone)]
enum Outcome {
    Committed,
    /// Another writer's change failed; apply yours again.
    Aborted,
    /// The commit itself failed: every writer in the batch gets this.
    Failed(String),
}

struct OpenBatch {
    id: u64,
    txn: WriteTransaction,
    poisoned: bool,
    /// Writers (besides the leader) whose change is in this batch.
    followers: usize,
}

#[derive(Default)]
struct Filling {
    open: Option<OpenBatch>,
    next_id: u64,
}

#[derive(Default)]
struct Finished {
    /// Batch id -> its outcome and the followers that have not read it yet.
    outcomes: HashMap<u64, (Outcome, usize)>,
}

pub struct GroupCommit {
    path: PathBuf,
    filling: Mutex<Filling>,
    /// Writers that have announced themselves (before queueing for
    /// `filling`) but not yet applied their change: the leader waits for
    /// them before it commits. Only decremented under `filling`.
    arriving: AtomicUsize,
    /// Signalled when a writer has applied its change to the open batch.
    joined: Condvar,
    finished: Mutex<Finished>,
    /// Signalled when a batch ends.
    ended: Condvar,
    /// Changes and commits so far: their ratio is the batching achieved.
    changes: AtomicU64,
    commits: AtomicU64,
}

/// How much batching happened: changes committed, and commits it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    pub changes: u64,
    pub commits: u64,
}

/// Locks without giving up on a poisoned mutex: every critical section here
/// leaves the state consistent (changes run under `guard`, which catches
/// redb's panics).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g).unwrap_or_else(|e| e.into_inner())
}

impl GroupCommit {
    pub fn new(path: &Path) -> Self {
        GroupCommit {
            path: path.to_path_buf(),
            filling: Mutex::new(Filling::default()),
            arriving: AtomicUsize::new(0),
            joined: Condvar::new(),
            finished: Mutex::new(Finished::default()),
            ended: Condvar::new(),
            changes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            changes: self.changes.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }

    fn db_error(&self, e: impl Into<redb::Error>) -> StoreError {
        super::classify(&self.path, e.into())
    }

    /// Applies `change` in a write transaction and returns once that
    /// transaction is committed (with fsync), or with the change's error.
    pub fn write<T>(
        &self,
        begin: impl Fn() -> Result<WriteTransaction, StoreError>,
        change: impl Fn(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        loop {
            match self.write_once(&begin, &change)? {
                Some(value) => return Ok(value),
                // Our batch was aborted for another writer's failure.
                None => continue,
            }
        }
    }

    /// One try: `Ok(None)` when the batch was aborted through no fault of
    /// this change.
    fn write_once<T>(
        &self,
        begin: &impl Fn() -> Result<WriteTransaction, StoreError>,
        change: &impl Fn(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.arriving.fetch_add(1, Ordering::SeqCst);
        let mut filling = lock(&self.filling);
        let leader = filling.open.is_none();
        if leader {
            // Blocks until the previous batch is committed; writers arriving
            // meanwhile queue on `filling` and join this batch.
            let begun = guard(&self.path, begin);
            let txn = match begun {
                Ok(txn) => txn,
                Err(e) => {
                    self.arriving.fetch_sub(1, Ordering::SeqCst);
                    self.joined.notify_all();
                    return Err(e);
                }
            };
            let id = filling.next_id;
            filling.next_id += 1;
            filling.open = Some(OpenBatch {
                id,
                txn,
                poisoned: false,
                followers: 0,
            });
        }
        let (id, result) = {
            let batch = filling.open.as_mut().expect("a batch is open");
            let result = guard(&self.path, || change(&batch.txn));
            batch.poisoned |= result.is_err();
            if !leader {
                batch.followers += 1;
            }
            (batch.id, result)
        };
        self.arriving.fetch_sub(1, Ordering::SeqCst);
        if !leader {
            self.joined.notify_all();
            drop(filling);
            let outcome = self.outcome_of(id);
            return match (result, outcome) {
                (Err(e), _) => Err(e),
                (Ok(value), Outcome::Committed) => Ok(Some(value)),
                (Ok(_), Outcome::Aborted) => Ok(None),
                (Ok(_), Outcome::Failed(detail)) => Err(StoreError::Db {
                    path: self.path.clone(),
                    detail,
                }),
            };
        }
        // The leader: wait for every writer already in line, then seal. A
        // batch is capped so a steady stream of writers cannot hold it open.
        while self.arriving.load(Ordering::SeqCst) > 0
            && filling
                .open
                .as_ref()
                .is_some_and(|b| b.followers < MAX_FOLLOWERS)
        {
            filling = wait(&self.joined, filling);
        }
        let batch = filling.open.take().expect("the leader's batch is open");
        drop(filling);
        let (outcome, own) = if batch.poisoned {
            // Dropping the transaction aborts it.
            drop(batch.txn);
            (Outcome::Aborted, None)
        } else {
            crate::failpoint::hit("before-commit");
            let committed = guard(&self.path, || {
                batch.txn.commit().map_err(|e| self.db_error(e))
            });
            crate::failpoint::hit("after-commit");
            match committed {
                Ok(()) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    self.changes
                        .fetch_add(batch.followers as u64 + 1, Ordering::Relaxed);
                    (Outcome::Committed, None)
                }
                Err(e) => (Outcome::Failed(e.to_string()), Some(e)),
            }
        };
        if batch.followers > 0 {
            lock(&self.finished)
                .outcomes
                .insert(batch.id, (outcome.clone(), batch.followers));
            self.ended.notify_all();
        }
        match (result, outcome, own) {
            (Err(e), _, _) => Err(e),
            (Ok(_), _, Some(commit_error)) => Err(commit_error),
            (Ok(value), Outcome::Committed, None) => Ok(Some(value)),
            (Ok(_), _, None) => Ok(None),
        }
    }

    /// Waits for batch `id` to end; the last follower to read an outcome
    /// removes it.
    fn outcome_of(&self, id: u64) -> Outcome {
        let mut finished = lock(&self.finished);
        loop {
            if let Some((outcome, readers)) = finished.outcomes.get_mut(&id) {
                let outcome = outcome.clone();
                *readers -= 1;
                if *readers == 0 {
                    finished.outcomes.remove(&id);
                }
                return outcome;
            }
            finished = wait(&self.ended, finished);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, TableDefinition};
    use std::sync::Arc;

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn db(dir: &Path) -> Database {
        Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .create(dir.join("t.redb"))
            .unwrap()
    }

    fn put(txn: &WriteTransaction, k: u64) -> Result<(), StoreError> {
        let mut t = txn.open_table(T).map_err(|e| StoreError::Db {
            path: PathBuf::new(),
            detail: e.to_string(),
        })?;
        t.insert(k, k * 10).map_err(|e| StoreError::Db {
            path: PathBuf::new(),
            detail: e.to_string(),
        })?;
        Ok(())
    }

    fn begin(db: &Database) -> Result<WriteTransaction, StoreError> {
        db.begin_write().map_err(|e| StoreError::Db {
            path: PathBuf::new(),
            detail: e.to_string(),
        })
    }

    fn get(db: &Database, k: u64) -> Option<u64> {
        use redb::ReadableDatabase;
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).ok()?;
        t.get(k).unwrap().map(|v| v.value())
    }

    #[test]
    fn concurrent_writers_share_commits_and_each_change_lands() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(db(dir.path()));
        let gc = Arc::new(GroupCommit::new(dir.path()));
        let writers = 8;
        let per_writer = 40;
        std::thread::scope(|s| {
            for w in 0..writers {
                let (db, gc) = (db.clone(), gc.clone());
                s.spawn(move || {
                    for i in 0..per_writer {
                        let k = (w * per_writer + i) as u64;
                        gc.write(|| begin(&db), |txn| put(txn, k)).unwrap();
                        // Durable and visible as soon as write returns.
                        assert_eq!(get(&db, k), Some(k * 10));
                    }
                });
            }
        });
        let stats = gc.stats();
        assert_eq!(stats.changes, (writers * per_writer) as u64);
        assert!(stats.commits >= 1, "{stats:?}");
        for k in 0..(writers * per_writer) as u64 {
            assert_eq!(get(&db, k), Some(k * 10), "key {k}");
        }
    }

    #[test]
    fn a_failing_change_fails_alone_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(db(dir.path()));
        let gc = Arc::new(GroupCommit::new(dir.path()));
        std::thread::scope(|s| {
            for w in 0..6u64 {
                let (db, gc) = (db.clone(), gc.clone());
                s.spawn(move || {
                    for i in 0..30u64 {
                        let k = w * 100 + i;
                        let result = gc.write(
                            || begin(&db),
                            |txn| {
                                put(txn, k)?;
                                if k % 7 == 0 {
                                    // Half-written, then failed: must not land.
                                    return Err(StoreError::UnknownRun(format!("r{k}")));
                                }
                                Ok(k)
                            },
                        );
                        match result {
                            Ok(v) => assert_eq!(v, k),
                            Err(StoreError::UnknownRun(r)) => assert_eq!(r, format!("r{k}")),
                            Err(e) => panic!("unexpected error {e}"),
                        }
                    }
                });
            }
        });
        for w in 0..6u64 {
            for i in 0..30u64 {
                let k = w * 100 + i;
                let expected = (k % 7 != 0).then_some(k * 10);
                assert_eq!(get(&db, k), expected, "key {k}");
            }
        }
    }
}
