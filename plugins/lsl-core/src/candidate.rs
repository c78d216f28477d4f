//! Prompt candidates and the Pareto frontier over validation examples.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: String,
    pub parent: Option<String>,
    /// The stage that made it ("baseline", "harden", or "seed").
    pub stage: String,
    pub instruction: String,
    /// Score per validation example, in split order.
    pub val_scores: Vec<f64>,
}

impl Candidate {
    pub fn mean(&self) -> f64 {
        if self.val_scores.is_empty() {
            0.0
        } else {
            self.val_scores.iter().sum::<f64>() / self.val_scores.len() as f64
        }
    }
}

/// Candidates that are best (ties included) on at least one validation
/// example: GEPA's frontier, which keeps specialists alive instead of only
/// the best average.
pub fn frontier(candidates: &[Candidate]) -> Vec<usize> {
    let n = candidates
        .iter()
        .map(|c| c.val_scores.len())
        .max()
        .unwrap_or(0);
    let mut on = std::collections::BTreeSet::new();
    for i in 0..n {
        let best = candidates
            .iter()
            .filter_map(|c| c.val_scores.get(i))
            .fold(f64::MIN, |a, &b| a.max(b));
        for (k, c) in candidates.iter().enumerate() {
            if c.val_scores.get(i) == Some(&best) {
                on.insert(k);
            }
        }
    }
    if on.is_empty() && !candidates.is_empty() {
        on.insert(0);
    }
    on.into_iter().collect()
}

/// The candidate with the best mean validation score (the earliest on ties).
pub fn best(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates
        .iter()
        .fold(None, |acc: Option<&Candidate>, c| match acc {
            Some(a) if a.mean() >= c.mean() => Some(a),
            _ => Some(c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, scores: &[f64]) -> Candidate {
        Candidate {
            id: id.into(),
            parent: None,
            stage: "t".into(),
            instruction: id.into(),
            val_scores: scores.to_vec(),
        }
    }

    #[test]
    fn frontier_keeps_specialists() {
        let cands = [
            c("a", &[1.0, 0.0, 0.0]),
            c("b", &[0.0, 1.0, 0.0]),
            c("c", &[0.0, 0.0, 0.0]),
        ];
        assert_eq!(frontier(&cands), vec![0, 1, 2]);
        let cands = [
            c("a", &[1.0, 1.0]),
            c("b", &[0.0, 1.0]),
            c("c", &[0.0, 0.0]),
        ];
        assert_eq!(frontier(&cands), vec![0, 1]);
        assert_eq!(best(&cands).unwrap().id, "a");
    }
}
