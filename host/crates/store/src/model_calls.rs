//! Model calls, each committed when it happens: a request to a provider is
//! recorded as in flight before it is sent, and replaced by the call's
//! record when the answer comes. A process killed in between leaves the
//! in-flight record, which counts as spent at its reserved worst case until
//! the stage's next outcome (or a resume) settles it as `unsettled`. So
//! budgets, totals and events agree with what the provider saw, whatever
//! moment the host died.

use super::fault::Tx;
use super::*;
use host_vocab::{CallKey, ModelCall, SentCall};

type Key<'a> = (&'a str, &'a str, u32, u32, u32);

fn key<'a>(run: &'a str, stage: &'a str, k: CallKey) -> Key<'a> {
    (run, stage, k.iteration, k.attempt, k.n)
}

fn call_key(k: Key<'_>) -> CallKey {
    CallKey {
        iteration: k.2,
        attempt: k.3,
        n: k.4,
    }
}

fn stage_range<'a>(run: &'a str, stage: &'a str) -> std::ops::RangeInclusive<Key<'a>> {
    (run, stage, 0, 0, 0)..=(run, stage, u32::MAX, u32::MAX, u32::MAX)
}

impl Store {
    /// Records a request about to be sent; the caller sends it only once
    /// this returned (a call the host could not record is not made).
    pub fn model_call_sent(
        &self,
        run: &str,
        stage: &str,
        k: CallKey,
        sent: &SentCall,
    ) -> Result<()> {
        self.write(|txn| {
            txn.open_table(IN_FLIGHT)?
                .insert(key(run, stage, k), json(sent).as_slice())?;
            self.append_event(
                txn,
                run,
                Event::ModelCallSent {
                    stage: stage.into(),
                    attempt: k.attempt,
                    n: k.n,
                    alias: sent.alias.clone(),
                    reserved_tokens: u64::from(sent.input_tokens) + u64::from(sent.output_tokens),
                    reserved_cost_usd: sent.cost_usd,
                },
            )
        })
    }

    /// Records a finished call (answered, failed, refused or served
    /// without the provider), settling its in-flight record if it had one.
    pub fn model_call_done(
        &self,
        run: &str,
        stage: &str,
        k: CallKey,
        call: &ModelCall,
    ) -> Result<()> {
        self.write(|txn| self.save_calls(txn, run, stage, &[(k, call.clone())]))
    }

    /// Stores `calls` (a call stored before is updated, e.g. a refusal's
    /// count, without a second event) and settles their in-flight records.
    pub(crate) fn save_calls(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
        calls: &[(CallKey, ModelCall)],
    ) -> Tx<()> {
        for (k, call) in calls {
            txn.open_table(IN_FLIGHT)?.remove(key(run, stage, *k))?;
            let known = txn
                .open_table(CALLS)?
                .insert(key(run, stage, *k), json(call).as_slice())?
                .is_some();
            if !known {
                self.append_event(
                    txn,
                    run,
                    Event::ModelCalled {
                        stage: stage.into(),
                        attempt: k.attempt,
                        call: call.clone(),
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Every request of `stage` still in flight becomes an unsettled call:
    /// its attempt is over, so no answer will be recorded for it.
    pub(crate) fn settle_in_flight(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        stage: &str,
    ) -> Tx<()> {
        let mut pending = Vec::new();
        {
            let table = txn.open_table(IN_FLIGHT)?;
            for entry in table.range(stage_range(run, stage))? {
                let (k, v) = entry?;
                let k = call_key(k.value());
                let sent: SentCall =
                    self.decode("calls_in_flight", &format!("{run}/{stage}"), v.value())?;
                pending.push((k, sent.unsettled(now_ms())));
            }
        }
        self.save_calls(txn, run, stage, &pending)
    }

    /// The calls of `stage` in order (loop pass, attempt, call), the ones
    /// still in flight as unsettled.
    pub(crate) fn calls_of(
        &self,
        txn: &redb::ReadTransaction,
        run: &str,
        stage: &str,
    ) -> Tx<Vec<ModelCall>> {
        let at = format!("{run}/{stage}");
        let mut calls: Vec<(CallKey, ModelCall)> = Vec::new();
        each_of_stage(txn, CALLS, run, stage, |k, v| {
            calls.push((k, self.decode("calls", &at, v)?));
            Ok(())
        })?;
        each_of_stage(txn, IN_FLIGHT, run, stage, |k, v| {
            let sent: SentCall = self.decode("calls_in_flight", &at, v)?;
            calls.push((k, sent.unsettled(now_ms())));
            Ok(())
        })?;
        calls.sort_by_key(|(k, _)| *k);
        Ok(calls.into_iter().map(|(_, c)| c).collect())
    }
}

/// Calls `f` with each entry of `stage` in `table`; a table that does not
/// exist yet (a database no call was recorded in) has none.
fn each_of_stage(
    txn: &redb::ReadTransaction,
    table: TableDefinition<Key<'_>, &[u8]>,
    run: &str,
    stage: &str,
    mut f: impl FnMut(CallKey, &[u8]) -> Tx<()>,
) -> Tx<()> {
    let table = match txn.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in table.range(stage_range(run, stage))? {
        let (k, v) = entry?;
        f(call_key(k.value()), v.value())?;
    }
    Ok(())
}
