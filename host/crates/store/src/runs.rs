//! Runs: creating one, taking one over, its status, reading them back.

use super::*;

impl Store {
    pub(crate) fn set_run_status(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        to: RunStatus,
        owner: Option<Owner>,
    ) -> Tx<()> {
        let mut runs = txn.open_table(RUNS)?;
        let mut record: RunRecord = {
            let bytes = runs
                .get(run)?
                .ok_or_else(|| StoreError::UnknownRun(run.into()))?;
            self.decode("runs", run, bytes.value())?
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
        runs.insert(run, json(&record).as_slice())?;
        Ok(())
    }

    /// Records a new run with every stage pending.
    pub fn create_run(&self, run: &RunRecord) -> Result<()> {
        self.write(|txn| {
            txn.open_table(RUNS)?
                .insert(run.id.as_str(), json(run).as_slice())?;
            {
                let mut stages = txn.open_table(STAGES)?;
                for stage in &run.stages {
                    stages.insert(
                        (run.id.as_str(), stage.as_str()),
                        json(&StageRecord::pending(stage)).as_slice(),
                    )?;
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
    ///
    /// The claim is atomic: the owner's liveness is checked in the same
    /// write transaction that records the new owner, and write transactions
    /// are serialized across processes, so of two processes taking one run
    /// at once exactly one gets it; the other is told it is busy.
    pub fn resume_run(&self, run: &str, owner: Owner) -> Result<Vec<String>> {
        self.write(|txn| {
            let record = self.run_in(txn, run)?;
            if record.status == RunStatus::Succeeded {
                return Err(StoreError::AlreadySucceeded(run.into()).into());
            }
            if record.status == RunStatus::Running
                && record.owner != owner
                && record.owner.is_alive()
            {
                return Err(StoreError::Busy {
                    run: run.into(),
                    pid: record.owner.pid,
                }
                .into());
            }
            if record.status == RunStatus::Running {
                self.set_run_status(txn, run, RunStatus::Interrupted, None)?;
            }
            self.set_run_status(txn, run, RunStatus::Running, Some(owner.clone()))?;
            let mut reset = Vec::new();
            for stage in &record.stages {
                let current = self.interrupt_if_running(txn, run, stage)?;
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

    pub(crate) fn run_in(&self, txn: &redb::WriteTransaction, run: &str) -> Tx<RunRecord> {
        let runs = txn.open_table(RUNS)?;
        let bytes = runs
            .get(run)?
            .ok_or_else(|| StoreError::UnknownRun(run.into()))?;
        self.decode("runs", run, bytes.value())
    }

    pub fn run_finished(&self, run: &str, status: RunStatus) -> Result<()> {
        self.write(|txn| {
            self.set_run_status(txn, run, status, None)?;
            self.append_event(txn, run, Event::RunFinished { status })
        })
    }

    pub fn run(&self, id: &str) -> Result<RunRecord> {
        self.read(|txn| {
            let runs = txn.open_table(RUNS)?;
            let bytes = runs
                .get(id)?
                .ok_or_else(|| StoreError::UnknownRun(id.into()))?;
            self.decode("runs", id, bytes.value())
                .map(RunRecord::observed)
        })
    }

    /// Every run, oldest first (run ids sort by start time).
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.read(|txn| {
            let runs = txn.open_table(RUNS)?;
            let mut out = Vec::new();
            for entry in runs.iter()? {
                let (k, v) = entry?;
                out.push(
                    self.decode::<RunRecord>("runs", k.value(), v.value())?
                        .observed(),
                );
            }
            Ok(out)
        })
    }
}
