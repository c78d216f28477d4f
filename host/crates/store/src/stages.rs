//! Stages: every move of a stage (checked against the state machine in
//! `host_vocab::status`), each with its event, in one transaction.

use super::artifacts::output_hash;
use super::blobs::artifact_hash;
use super::*;

impl Store {
    pub(crate) fn load_stage(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
    ) -> Tx<StageRecord> {
        let stages = txn.open_table(STAGES)?;
        let bytes = stages
            .get((run, stage))?
            .ok_or_else(|| StoreError::UnknownStage {
                run: run.into(),
                stage: stage.into(),
            })?;
        self.decode("stages", &format!("{run}/{stage}"), bytes.value())
    }

    /// Moves a stage to `to` (checked), applies `update`, saves it, logs `event`.
    pub(crate) fn transition(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
        to: StageStatus,
        update: impl FnOnce(&mut StageRecord),
        event: Event,
    ) -> Tx<StageRecord> {
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
        txn.open_table(STAGES)?
            .insert((run, stage), json(&record).as_slice())?;
        self.append_event(txn, run, event)?;
        Ok(record)
    }

    /// Puts a stage back to pending (resume, loop), without its failure or
    /// skip reason, after `update`; checked against the state machine.
    pub(crate) fn make_pending(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
        update: impl FnOnce(&mut StageRecord),
    ) -> Tx<()> {
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
        txn.open_table(STAGES)?
            .insert((run, stage), json(&r).as_slice())?;
        Ok(())
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
                for (artifact, r) in output.artifacts.iter().zip(&refs) {
                    self.put_blob(txn, &r.hash, &artifact.bytes)?;
                }
                let mut lineage = txn.open_table(LINEAGE)?;
                for r in &refs {
                    lineage.insert((r.hash.as_str(), run, stage, "produced"), attempt)?;
                }
                for hash in consumed {
                    lineage.insert((hash.as_str(), run, stage, "consumed"), attempt)?;
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
            if !activity.workspace_blobs.is_empty() {
                for (hash, bytes) in &activity.workspace_blobs {
                    self.put_blob(txn, hash, bytes)?;
                }
            }
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
                txn.open_table(OUTPUTS)?
                    .insert(key.as_str(), json(&record).as_slice())?;
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
                    // Attempts count within a pass of the loop.
                    r.attempts = 0;
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
            let exists = txn.open_table(STAGES)?.get((run, stage))?.is_some();
            if exists {
                return Ok(());
            }
            let mut record = StageRecord::pending(stage);
            record.parent = Some(parent.to_string());
            txn.open_table(STAGES)?
                .insert((run, stage), json(&record).as_slice())?;
            let mut run_record = self.run_in(txn, run)?;
            run_record.stages.push(stage.to_string());
            txn.open_table(RUNS)?
                .insert(run, json(&run_record).as_slice())?;
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

    /// A running stage stopped by a cancel or a deadline.
    pub fn stage_interrupted(&self, run: &str, stage: &str) -> Result<()> {
        self.write(|txn| self.interrupt_if_running(txn, run, stage).map(|_| ()))
    }

    /// Marks `stage` interrupted if it is running (its process stopped it or
    /// died); returns the record as it was.
    pub(crate) fn interrupt_if_running(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
    ) -> Tx<StageRecord> {
        let current = self.load_stage(txn, run, stage)?;
        if current.status == StageStatus::Running {
            self.settle_in_flight(txn, run, stage)?;
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
            )?;
        }
        Ok(current)
    }

    /// A run's stages in plan order.
    pub fn stages(&self, run: &RunRecord) -> Result<Vec<StageRecord>> {
        self.read(|txn| {
            let stages = txn.open_table(STAGES)?;
            run.stages
                .iter()
                .map(|s| {
                    let bytes = stages.get((run.id.as_str(), s.as_str()))?.ok_or_else(|| {
                        StoreError::UnknownStage {
                            run: run.id.clone(),
                            stage: s.clone(),
                        }
                    })?;
                    let mut record: StageRecord =
                        self.decode("stages", &format!("{}/{s}", run.id), bytes.value())?;
                    record.model_calls.extend(self.calls_of(txn, &run.id, s)?);
                    // A dead run's running stage is as interrupted as its run.
                    if run.status == RunStatus::Interrupted && record.status == StageStatus::Running
                    {
                        record.status = StageStatus::Interrupted;
                    }
                    Ok(record)
                })
                .collect()
        })
    }
}
