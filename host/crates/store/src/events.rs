//! The event log of a run: append-only, numbered per run.

use super::*;

impl Store {
    pub(crate) fn append_event(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        event: Event,
    ) -> Tx<()> {
        let mut events = txn.open_table(EVENTS)?;
        let last = events
            .range((run, 0)..=(run, u64::MAX))?
            .next_back()
            .transpose()?
            .map(|(k, _)| k.value().1);
        let seq = last.map_or(1, |s| s + 1);
        let record = EventRecord {
            seq,
            at_ms: now_ms(),
            event,
        };
        events.insert((run, seq), json(&record).as_slice())?;
        Ok(())
    }

    /// What an attempt did that is not durable yet, at its end: the model
    /// calls not committed as they finished (and the requests it left in
    /// flight, now unsettled), one event per gate run, one for the file
    /// changes.
    pub(crate) fn append_activity(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
        attempt: u32,
        activity: &Activity,
    ) -> Tx<()> {
        self.save_calls(txn, run, stage, &activity.unsaved_calls)?;
        self.settle_in_flight(txn, run, stage)?;
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

    /// Appends an event that changes no table (a refusal, a deadlock...).
    pub fn note(&self, run: &str, event: Event) -> Result<()> {
        self.write(|txn| self.append_event(txn, run, event.clone()))
    }

    /// Calls `f` for each event of `run` in order, without loading them all.
    pub fn for_each_event(
        &self,
        run: &str,
        mut f: impl FnMut(EventRecord) -> Result<()>,
    ) -> Result<()> {
        self.read(|txn| {
            let events = txn.open_table(EVENTS)?;
            for entry in events.range((run, 0)..=(run, u64::MAX))? {
                let (k, v) = entry?;
                let key = format!("{run}#{}", k.value().1);
                f(self.decode("events", &key, v.value())?)?;
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
}
