//! Scoring as the seed's scorer does it: extract the final answer from a
//! model's text (`\boxed{}`, "Final Answer:", "The answer is", "####", else a
//! short last line), normalise, compare exactly; and say why, as feedback a
//! reflection model can use.

/// The answer a model's text commits to.
pub fn extract_answer(text: &str) -> String {
    if let Some(start) = text.rfind("\\boxed{") {
        let rest = &text[start + 7..];
        let mut depth = 1;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return rest[..i].trim().to_string();
                    }
                }
                _ => {}
            }
        }
    }
    let lower = text.to_lowercase();
    for marker in ["final answer:", "the answer is", "####"] {
        if let Some(at) = lower.rfind(marker) {
            let after = &text[at + marker.len()..];
            let answer = after.lines().next().unwrap_or("").trim();
            let answer = answer.trim_start_matches(':').trim();
            if !answer.is_empty() {
                return answer.to_string();
            }
        }
    }
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if last.split_whitespace().count() <= 6 {
        last.to_string()
    } else {
        String::new()
    }
}

/// Lower-case, no surrounding punctuation or `$`, no thousands separators,
/// numbers in canonical form ("4.0" is "4").
pub fn normalize(answer: &str) -> String {
    let s = answer
        .trim()
        .trim_matches(|c: char| c.is_whitespace() || ".,;:!?$*\"'`()[]".contains(c))
        .to_lowercase()
        .replace(',', "");
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() => {
            if n.fract() == 0.0 && n.abs() < 1e15 {
                format!("{}", n as i64)
            } else {
                format!("{n}")
            }
        }
        _ => s.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// A score with the feedback the reflective optimizer learns from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Graded {
    pub score: f64,
    pub extracted: String,
    pub feedback: String,
}

/// Exact match after normalisation, with feedback text.
pub fn grade(output: &str, expected: &str) -> Graded {
    let extracted = extract_answer(output);
    let ok = !extracted.is_empty() && normalize(&extracted) == normalize(expected);
    let feedback = if ok {
        format!("correct: {expected}")
    } else if extracted.is_empty() {
        format!(
            "no final answer could be found; expected {expected}. State the final answer on its own, e.g. 'Final Answer: {expected}'"
        )
    } else {
        format!("expected {expected}, got {extracted}")
    };
    Graded {
        score: if ok { 1.0 } else { 0.0 },
        extracted,
        feedback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_by_every_convention() {
        assert_eq!(extract_answer("so \\boxed{42} it is"), "42");
        assert_eq!(extract_answer("\\boxed{\\frac{1}{2}}"), "\\frac{1}{2}");
        assert_eq!(extract_answer("work...\nFinal Answer: 17"), "17");
        assert_eq!(extract_answer("The answer is 9."), "9.");
        assert_eq!(extract_answer("steps\n#### 1,234"), "1,234");
        assert_eq!(extract_answer("long reasoning\n12"), "12");
        assert_eq!(
            extract_answer("a sentence that is far too long to be a final answer here"),
            ""
        );
    }

    #[test]
    fn normalizes_and_grades() {
        assert_eq!(normalize(" $1,234.0. "), "1234");
        assert_eq!(normalize("Paris"), "paris");
        assert_eq!(grade("Final Answer: 4.0", "4").score, 1.0);
        let g = grade("I think 5", "4");
        assert_eq!(g.score, 0.0);
        assert!(g.feedback.contains("expected 4"));
        assert!(
            grade("no idea at all, sorry about that friend", "4")
                .feedback
                .contains("no final answer")
        );
    }
}
