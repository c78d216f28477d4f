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

/// Where the outcomes of finished batches are kept, so that an evaluation
/// killed part-way repays only the batch that was in flight.
pub trait Batches {
    /// The outcomes saved for batch `index` of this evaluation, if any.
    fn load(&mut self, index: usize, fingerprint: u64) -> Option<Vec<Outcome>>;
    fn save(&mut self, index: usize, fingerprint: u64, outcomes: &[Outcome]);
}

/// Keeps nothing: every batch is answered.
pub struct Unsaved;

impl Batches for Unsaved {
    fn load(&mut self, _: usize, _: u64) -> Option<Vec<Outcome>> {
        None
    }
    fn save(&mut self, _: usize, _: u64, _: &[Outcome]) {}
}

/// Identifies what a batch answers (instruction, model, examples), so a
/// saved batch is reused only for the very same requests. FNV-1a: stable
/// across builds, unlike the standard library's hasher.
pub fn fingerprint(instruction: &str, alias: &str, chunk: &[Example]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain([0xff].iter()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(instruction.as_bytes());
    eat(alias.as_bytes());
    for e in chunk {
        eat(e.id.as_bytes());
        eat(e.question.as_bytes());
    }
    h
}

/// Evaluates `instruction` on `examples` with `alias`, calling `each` with
/// every outcome as it is graded (so callers can stream them out).
pub fn evaluate(
    instruction: &str,
    examples: &[Example],
    alias: &str,
    params: &Params,
    each: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    evaluate_resumable(instruction, examples, alias, params, &mut Unsaved, each)
}

/// [`evaluate`], taking finished batches from `saved` and saving each new
/// one there as soon as it is graded.
pub fn evaluate_resumable(
    instruction: &str,
    examples: &[Example],
    alias: &str,
    params: &Params,
    saved: &mut impl Batches,
    mut each: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(examples.len());
    for (index, chunk) in examples.chunks(BATCH).enumerate() {
        let print = fingerprint(instruction, alias, chunk);
        let outcomes = match saved.load(index, print) {
            Some(outcomes) if outcomes.len() == chunk.len() => outcomes,
            _ => {
                let outcomes = answer_batch(instruction, chunk, alias, params);
                saved.save(index, print, &outcomes);
                outcomes
            }
        };
        for outcome in outcomes {
            each(&outcome);
            out.push(outcome);
        }
    }
    out
}

fn answer_batch(
    instruction: &str,
    chunk: &[Example],
    alias: &str,
    params: &Params,
) -> Vec<Outcome> {
    let requests: Vec<Request> = chunk
        .iter()
        .map(|e| Request::new(alias, messages(instruction, &e.question), params.clone()))
        .collect();
    let started = std::time::Instant::now();
    let answers = models::complete_all(&requests);
    let latency_ms = started.elapsed().as_millis() as u64;
    chunk
        .iter()
        .zip(answers)
        .map(|(example, answer)| {
            let (output, tokens, error) = match answer {
                Ok(c) => (c.text, c.input_tokens + c.output_tokens, None),
                Err(e) => (String::new(), 0, Some(models::describe(&e))),
            };
            Outcome {
                example_id: example.id.clone(),
                question: example.question.clone(),
                expected: example.answer.clone(),
                graded: grade(&output, &example.answer),
                output,
                tokens,
                latency_ms,
                error,
            }
        })
        .collect()
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

    /// Batches saved in memory, counting what was asked of them.
    #[derive(Default)]
    struct Memory {
        batches: std::collections::HashMap<(usize, u64), Vec<Outcome>>,
    }

    impl Batches for Memory {
        fn load(&mut self, index: usize, fingerprint: u64) -> Option<Vec<Outcome>> {
            self.batches.get(&(index, fingerprint)).cloned()
        }
        fn save(&mut self, index: usize, fingerprint: u64, outcomes: &[Outcome]) {
            self.batches.insert((index, fingerprint), outcomes.to_vec());
        }
    }

    fn example(i: usize) -> Example {
        Example {
            id: format!("e{i}"),
            question: format!("q{i}"),
            answer: "4".into(),
        }
    }

    fn outcome(e: &Example) -> Outcome {
        Outcome {
            example_id: e.id.clone(),
            question: e.question.clone(),
            expected: e.answer.clone(),
            output: "4".into(),
            graded: grade("4", &e.answer),
            tokens: 3,
            latency_ms: 1,
            error: None,
        }
    }

    #[test]
    fn saved_batches_are_not_asked_again() {
        let examples: Vec<Example> = (0..BATCH * 2).map(example).collect();
        let mut saved = Memory::default();
        for (i, chunk) in examples.chunks(BATCH).enumerate() {
            let outcomes: Vec<Outcome> = chunk.iter().map(outcome).collect();
            saved.save(i, fingerprint("say", "m", chunk), &outcomes);
        }
        // Every batch is saved: no model is asked (natively, asking would
        // reach the host's import and fail), and every outcome is passed on.
        let mut seen = 0;
        let out = evaluate_resumable(
            "say",
            &examples,
            "m",
            &Params::default(),
            &mut saved,
            |_| seen += 1,
        );
        assert_eq!((out.len(), seen), (BATCH * 2, BATCH * 2));
        assert_eq!(out[BATCH].example_id, "e8");
    }

    #[test]
    fn a_batch_saved_for_other_requests_is_not_reused() {
        let chunk: Vec<Example> = (0..BATCH).map(example).collect();
        let print = fingerprint("say", "m", &chunk);
        assert_ne!(print, fingerprint("say more", "m", &chunk));
        assert_ne!(print, fingerprint("say", "other", &chunk));
        assert_ne!(print, fingerprint("say", "m", &chunk[1..]));
        assert_eq!(print, fingerprint("say", "m", &chunk.to_vec()));
    }

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let (lo, hi) = wilson(8, 10);
        assert!(lo < 0.8 && hi > 0.8 && lo > 0.4 && hi < 1.0, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 0.0));
        let (lo, _) = wilson(0, 5);
        assert_eq!(lo, 0.0);
    }
}
