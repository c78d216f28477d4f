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

/// What a call asks to spend: its prompt (estimated), the most it may
/// generate, and the prices of both.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub input_tokens: u64,
    /// The request's `max_tokens`; `None` when it sets none.
    pub max_output: Option<u64>,
    pub price_in_per_token: f64,
    pub price_out_per_token: f64,
}

impl Ask {
    fn usage(&self, output: u64) -> Usage {
        Usage {
            tokens: self.input_tokens + output,
            cost_usd: self.input_tokens as f64 * self.price_in_per_token
                + output as f64 * self.price_out_per_token,
            calls: 1,
        }
    }

    /// The most output tokens `budget` leaves after `used` and this prompt;
    /// `None` when it sets no token or cost limit; 0 when nothing is left.
    fn room(&self, used: &Usage, budget: &Budget) -> Option<u64> {
        let by_tokens = budget
            .tokens
            .map(|max| max.saturating_sub(used.tokens + self.input_tokens));
        let by_cost = match budget.cost_usd {
            Some(max) if self.price_out_per_token > 0.0 => {
                let left = max - used.cost_usd - self.input_tokens as f64 * self.price_in_per_token;
                // A hair over, so 0.008 / 0.00001 is 800, not 799.99...
                Some((left / self.price_out_per_token + 1e-6).max(0.0).floor() as u64)
            }
            _ => None,
        };
        tighter(by_tokens, by_cost)
    }
}

/// The smaller of two limits, where `None` is no limit.
fn tighter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reserves `estimate` in `state` (the run's usage, each stage's), or says
/// which budget it would break.
fn reserve_in(
    state: &mut (Usage, HashMap<String, Usage>),
    stage: &str,
    estimate: Usage,
    run_budget: &Budget,
    stage_budget: &Budget,
) -> Result<Reservation, String> {
    let (run, stages) = state;
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

/// What is left of the budgets that apply to a stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Left {
    pub tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    pub calls: Option<u64>,
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

    /// Reserves `estimate` for `stage`, or says which budget it would break
    /// (calls go through [`Ledger::reserve_call`], which caps them first).
    #[cfg(test)]
    pub fn reserve(
        &self,
        stage: &str,
        estimate: Usage,
        run_budget: &Budget,
        stage_budget: &Budget,
    ) -> Result<Reservation, String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        reserve_in(&mut state, stage, estimate, run_budget, stage_budget)
    }

    /// Reserves a call, first capping what it may generate to what the run's
    /// and the stage's budgets have left (so no answer can overshoot them);
    /// returns the reservation and the cap, when the call needs one.
    pub fn reserve_call(
        &self,
        stage: &str,
        ask: Ask,
        run_budget: &Budget,
        stage_budget: &Budget,
    ) -> Result<(Reservation, Option<u64>), String> {
        // One lock for both: no call of another stage can reserve between
        // the cap and the reservation.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (run, stages) = &*state;
        let stage_used = stages.get(stage).copied().unwrap_or_default();
        let room = tighter(
            ask.room(run, run_budget),
            ask.room(&stage_used, stage_budget),
        );
        let output = match (ask.max_output, room) {
            (_, Some(0)) => {
                return Err(
                    "no tokens are left in the model budget for an answer to this prompt".into(),
                );
            }
            (Some(wanted), Some(room)) => wanted.min(room),
            (None, Some(room)) => room,
            (wanted, None) => wanted.unwrap_or(0),
        };
        let cap = (room.is_some() && Some(output) != ask.max_output).then_some(output);
        let reservation = reserve_in(
            &mut state,
            stage,
            ask.usage(output),
            run_budget,
            stage_budget,
        )?;
        Ok((reservation, cap))
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

    /// What `stage` may still spend under the run's and its own budget
    /// (reservations of calls in flight counted as spent); `None` in a
    /// field no budget limits.
    pub fn left(&self, stage: &str, run_budget: &Budget, stage_budget: &Budget) -> Left {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (run, stages) = &*state;
        let stage_used = stages.get(stage).copied().unwrap_or_default();
        let pair = [(run, run_budget), (&stage_used, stage_budget)];
        let nearest_u64 =
            |f: fn(&Usage, &Budget) -> Option<u64>| pair.iter().filter_map(|(u, b)| f(u, b)).min();
        Left {
            tokens: nearest_u64(|u, b| b.tokens.map(|max| max.saturating_sub(u.tokens))),
            calls: nearest_u64(|u, b| b.calls.map(|max| max.saturating_sub(u.calls))),
            cost_usd: pair
                .iter()
                .filter_map(|(u, b)| b.cost_usd.map(|max| (max - u.cost_usd).max(0.0)))
                .reduce(f64::min),
        }
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

    fn ask(input: u64, max_output: Option<u64>) -> Ask {
        Ask {
            input_tokens: input,
            max_output,
            price_in_per_token: 0.0,
            price_out_per_token: 0.0,
        }
    }

    #[test]
    fn a_call_may_generate_only_what_the_budget_has_left() {
        let ledger = Ledger::default();
        let stage = Budget {
            tokens: Some(1000),
            ..Budget::default()
        };
        // No max_tokens of its own: capped to what is left after the prompt.
        let (r, cap) = ledger
            .reserve_call("a", ask(100, None), &Budget::default(), &stage)
            .unwrap();
        assert_eq!(cap, Some(900));
        ledger.settle(r, tokens(400));
        // Its own max_tokens, below what is left: kept.
        let (r, cap) = ledger
            .reserve_call("a", ask(100, Some(50)), &Budget::default(), &stage)
            .unwrap();
        assert_eq!(cap, None);
        ledger.settle(r, tokens(600));
        // Nothing left for an answer: refused.
        assert!(
            ledger
                .reserve_call("a", ask(10, None), &Budget::default(), &stage)
                .is_err()
        );
        // No token or cost limit: nothing is capped.
        let (_, cap) = ledger
            .reserve_call("b", ask(10, None), &Budget::default(), &Budget::default())
            .unwrap();
        assert_eq!(cap, None);
    }

    #[test]
    fn a_cost_budget_caps_the_answer_at_its_price() {
        let ledger = Ledger::default();
        let run = Budget {
            cost_usd: Some(0.01),
            ..Budget::default()
        };
        let priced = Ask {
            input_tokens: 1000,
            max_output: Some(100_000),
            price_in_per_token: 0.000_002,
            price_out_per_token: 0.000_01,
        };
        // $0.01 - 1000 x $0.000002 = $0.008 left: 800 tokens of answer.
        let (_, cap) = ledger
            .reserve_call("a", priced, &run, &Budget::default())
            .unwrap();
        assert_eq!(cap, Some(800));
    }

    #[test]
    fn what_is_left_is_the_nearer_of_the_run_and_the_stage() {
        let ledger = Ledger::default();
        let run = Budget {
            tokens: Some(1_000),
            cost_usd: Some(1.0),
            ..Budget::default()
        };
        let stage = Budget {
            tokens: Some(300),
            calls: Some(5),
            ..Budget::default()
        };
        let unlimited = Budget::default();
        let r = ledger.reserve("a", tokens(200), &run, &stage).unwrap();
        let left = ledger.left("a", &run, &stage);
        assert_eq!(left.tokens, Some(100));
        assert_eq!(left.calls, Some(4));
        assert_eq!(left.cost_usd, Some(1.0));
        // Another stage sees the run's budget, less what "a" holds.
        assert_eq!(ledger.left("b", &run, &unlimited).tokens, Some(800));
        ledger.settle(r, tokens(50));
        assert_eq!(ledger.left("a", &run, &stage).tokens, Some(250));
        let none = ledger.left("a", &unlimited, &unlimited);
        assert_eq!((none.tokens, none.cost_usd, none.calls), (None, None, None));
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
