//! Budgets on model use, per run and per stage. A call reserves its worst
//! case before it is sent and settles to what it really used after, so two
//! stages running at once cannot both slip under a limit and overshoot it.

use host_manifest::Budget;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub tokens: u64,
    pub cost_usd: f64,
    pub calls: u64,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.tokens += other.tokens;
        self.cost_usd += other.cost_usd;
        self.calls += other.calls;
    }

    fn sub(&mut self, other: Usage) {
        self.tokens = self.tokens.saturating_sub(other.tokens);
        self.cost_usd = (self.cost_usd - other.cost_usd).max(0.0);
        self.calls = self.calls.saturating_sub(other.calls);
    }

    /// Which limit `self` breaks, if any.
    fn breaks(&self, budget: &Budget) -> Option<String> {
        if let Some(max) = budget.calls
            && self.calls > max
        {
            return Some(format!("{} calls > limit {max}", self.calls));
        }
        if let Some(max) = budget.tokens
            && self.tokens > max
        {
            return Some(format!("{} tokens > limit {max}", self.tokens));
        }
        if let Some(max) = budget.cost_usd
            && self.cost_usd > max
        {
            return Some(format!("${:.4} > limit ${max:.4}", self.cost_usd));
        }
        None
    }
}

/// What the run and each stage have used (and reserved) so far.
#[derive(Default)]
pub struct Ledger {
    state: Mutex<(Usage, HashMap<String, Usage>)>,
}

/// A reservation to settle once the call's real usage is known.
#[must_use]
pub struct Reservation {
    stage: String,
    estimate: Usage,
}

impl Ledger {
    /// Starts from what a resumed run used before this process took over.
    pub fn seed(&self, run: Usage, stages: HashMap<String, Usage>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = (run, stages);
    }

    /// Reserves `estimate` for `stage`, or says which budget it would break.
    pub fn reserve(
        &self,
        stage: &str,
        estimate: Usage,
        run_budget: &Budget,
        stage_budget: &Budget,
    ) -> Result<Reservation, String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (run, stages) = &mut *state;
        let mut run_after = *run;
        run_after.add(estimate);
        if let Some(why) = run_after.breaks(run_budget) {
            return Err(format!("the run's model budget would be exceeded ({why})"));
        }
        let mut stage_after = stages.get(stage).copied().unwrap_or_default();
        stage_after.add(estimate);
        if let Some(why) = stage_after.breaks(stage_budget) {
            return Err(format!(
                "stage '{stage}' model budget would be exceeded ({why})"
            ));
        }
        *run = run_after;
        stages.insert(stage.to_string(), stage_after);
        Ok(Reservation {
            stage: stage.to_string(),
            estimate,
        })
    }

    /// Replaces a reservation by what the call really used.
    pub fn settle(&self, reservation: Reservation, actual: Usage) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (run, stages) = &mut *state;
        run.sub(reservation.estimate);
        run.add(actual);
        let stage = stages.entry(reservation.stage).or_default();
        stage.sub(reservation.estimate);
        stage.add(actual);
    }

    pub fn run_usage(&self) -> Usage {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: u64) -> Usage {
        Usage {
            tokens: n,
            cost_usd: 0.0,
            calls: 1,
        }
    }

    #[test]
    fn refuses_the_call_that_would_go_past_the_run_budget() {
        let ledger = Ledger::default();
        let run = Budget {
            tokens: Some(100),
            ..Budget::default()
        };
        let r = ledger
            .reserve("a", tokens(60), &run, &Budget::default())
            .unwrap();
        ledger.settle(r, tokens(50));
        let err = ledger
            .reserve("b", tokens(60), &run, &Budget::default())
            .err()
            .unwrap();
        assert!(err.contains("110 tokens > limit 100"), "{err}");
        // A smaller call still fits.
        assert!(
            ledger
                .reserve("b", tokens(40), &run, &Budget::default())
                .is_ok()
        );
    }

    #[test]
    fn stage_budgets_are_per_stage() {
        let ledger = Ledger::default();
        let stage = Budget {
            calls: Some(1),
            ..Budget::default()
        };
        let r = ledger
            .reserve("a", tokens(1), &Budget::default(), &stage)
            .unwrap();
        ledger.settle(r, tokens(1));
        let err = ledger
            .reserve("a", tokens(1), &Budget::default(), &stage)
            .err()
            .unwrap();
        assert!(
            err.contains("stage 'a'") && err.contains("2 calls > limit 1"),
            "{err}"
        );
        assert!(
            ledger
                .reserve("b", tokens(1), &Budget::default(), &stage)
                .is_ok()
        );
    }

    #[test]
    fn a_seeded_ledger_remembers_what_a_resumed_run_spent() {
        let ledger = Ledger::default();
        ledger.seed(
            Usage {
                tokens: 0,
                cost_usd: 0.9,
                calls: 3,
            },
            HashMap::new(),
        );
        let run = Budget {
            cost_usd: Some(1.0),
            ..Budget::default()
        };
        let estimate = Usage {
            tokens: 10,
            cost_usd: 0.2,
            calls: 1,
        };
        assert!(
            ledger
                .reserve("a", estimate, &run, &Budget::default())
                .is_err()
        );
    }
}
