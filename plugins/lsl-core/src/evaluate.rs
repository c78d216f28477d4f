//! Running an instruction over examples with a task model, in concurrent
//! batches (the host's `complete-all`), graded as the seed's scorer does.

use crate::dataset::Example;
use crate::scoring::{Graded, grade};
use plugin_sdk::models::{self, Message, Params, Request};
use serde::{Deserialize, Serialize};

/// How many requests go to the host at once.
pub const BATCH: usize = 8;

/// One example's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub example_id: String,
    pub question: String,
    pub expected: String,
    pub output: String,
    pub graded: Graded,
    pub tokens: u32,
    /// Wall time of the batch the example was answered in.
    pub latency_ms: u64,
    /// The model error, when there was no answer (scored 0).
    pub error: Option<String>,
}

pub fn messages(instruction: &str, question: &str) -> Vec<Message> {
    vec![Message::system(instruction), Message::user(question)]
}

/// Evaluates `instruction` on `examples` with `alias`, calling `each` with
/// every outcome as it is graded (so callers can stream them out).
pub fn evaluate(
    instruction: &str,
    examples: &[Example],
    alias: &str,
    params: &Params,
    mut each: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(BATCH) {
        let requests: Vec<Request> = chunk
            .iter()
            .map(|e| Request::new(alias, messages(instruction, &e.question), params.clone()))
            .collect();
        let started = std::time::Instant::now();
        let answers = models::complete_all(&requests);
        let latency_ms = started.elapsed().as_millis() as u64;
        for (example, answer) in chunk.iter().zip(answers) {
            let (output, tokens, error) = match answer {
                Ok(c) => (c.text, c.input_tokens + c.output_tokens, None),
                Err(e) => (String::new(), 0, Some(models::describe(&e))),
            };
            let outcome = Outcome {
                example_id: example.id.clone(),
                question: example.question.clone(),
                expected: example.answer.clone(),
                graded: grade(&output, &example.answer),
                output,
                tokens,
                latency_ms,
                error,
            };
            each(&outcome);
            out.push(outcome);
        }
    }
    out
}

/// Mean score.
pub fn accuracy(outcomes: &[Outcome]) -> f64 {
    if outcomes.is_empty() {
        return 0.0;
    }
    outcomes.iter().map(|o| o.graded.score).sum::<f64>() / outcomes.len() as f64
}

/// The 95% Wilson score interval of `correct` out of `n`.
pub fn wilson(correct: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let z = 1.96f64;
    let n_f = n as f64;
    let p = correct as f64 / n_f;
    let denom = 1.0 + z * z / n_f;
    let center = (p + z * z / (2.0 * n_f)) / denom;
    let half = z * ((p * (1.0 - p) + z * z / (4.0 * n_f)) / n_f).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let (lo, hi) = wilson(8, 10);
        assert!(lo < 0.8 && hi > 0.8 && lo > 0.4 && hi < 1.0, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 0.0));
        let (lo, _) = wilson(0, 5);
        assert_eq!(lo, 0.0);
    }
}
