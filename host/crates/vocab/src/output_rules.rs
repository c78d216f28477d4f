//! What a stage's output must be before any of it is recorded: every part a
//! plugin controls is bounded, and every name can be a file name and be
//! printed. Checked once, at the component boundary, so the store, `--out`,
//! the terminal and the dashboard never meet an output they cannot hold.

use crate::bounds::{Bound, LimitReached};
use crate::failure::StageFailure;
use crate::limits::{
    MAX_ARTIFACT_NAME_BYTES, MAX_ARTIFACTS, MAX_DECISION_BYTES, MAX_ERROR_BYTES,
    MAX_METRIC_NAME_BYTES, MAX_METRICS, MAX_SUMMARY_BYTES,
};
use crate::stage_io::StageOutput;

/// The artifact the host adds to a read-write stage's output (its
/// changeset): a plugin may not return or stream one of that name.
pub const CHANGES_ARTIFACT: &str = "workspace-changes.json";
/// The artifact a stage asks for spawned jobs in.
pub const SPAWN_ARTIFACT: &str = "spawn.json";

/// Why `name` cannot be an artifact's name, if it cannot: it must be one
/// plain file name (no directory, not `.` or `..`), at most
/// [`MAX_ARTIFACT_NAME_BYTES`], with no control or invisible formatting
/// characters, and not a name the host gives its own artifacts.
pub fn artifact_name_problem(name: &str) -> Option<String> {
    if name == CHANGES_ARTIFACT {
        return Some(format!(
            "artifact name '{CHANGES_ARTIFACT}' is the host's (a read-write stage's changes)"
        ));
    }
    file_name_problem(name)
}

/// Why `name` cannot be written as DIR/STAGE/NAME and printed, if it
/// cannot (the rules of [`artifact_name_problem`] but the host's own name).
pub fn file_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an artifact name is empty".into());
    }
    if name.len() > MAX_ARTIFACT_NAME_BYTES {
        return Some(format!(
            "an artifact name is {} bytes (at most {MAX_ARTIFACT_NAME_BYTES})",
            name.len()
        ));
    }
    if name == "." || name == ".." || name.contains(['/', '\\']) {
        return Some(format!("artifact name {name:?} is not a plain file name"));
    }
    if let Some(c) = name.chars().find(|&c| is_unprintable(c)) {
        return Some(format!(
            "artifact name {name:?} holds the character U+{:04X}",
            c as u32
        ));
    }
    None
}

/// Control characters, and the invisible ones that reorder or hide text
/// on a terminal (bidirectional overrides, zero-width marks).
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Checks a successful output against its bounds: artifact bytes within
/// `max_output`, artifact count and names, summary, metrics (finite, named
/// within bounds, not too many), decision. The first problem fails the
/// attempt.
pub fn check_output(output: &StageOutput, max_output: usize) -> Result<(), StageFailure> {
    let limit = |bound, max: usize, detail: String| {
        Err(StageFailure::Limit(LimitReached::new(bound, max, detail)))
    };
    let bytes: usize = output.artifacts.iter().map(|a| a.bytes.len()).sum();
    if bytes > max_output {
        return Err(StageFailure::OutputTooLarge {
            bytes,
            limit: max_output,
        });
    }
    if output.artifacts.len() > MAX_ARTIFACTS {
        let n = output.artifacts.len();
        return limit(
            Bound::Artifacts,
            MAX_ARTIFACTS,
            format!("the plugin returned {n} artifacts"),
        );
    }
    let mut names = std::collections::HashSet::new();
    for a in &output.artifacts {
        if a.name.len() > MAX_ARTIFACT_NAME_BYTES {
            return limit(
                Bound::ArtifactName,
                MAX_ARTIFACT_NAME_BYTES,
                format!("an artifact name is {} bytes", a.name.len()),
            );
        }
        if let Some(problem) = artifact_name_problem(&a.name) {
            return Err(fatal(problem));
        }
        if !names.insert(a.name.as_str()) {
            return Err(fatal(format!(
                "artifact '{}' is returned twice: artifact names are unique",
                a.name
            )));
        }
    }
    if output.summary.len() > MAX_SUMMARY_BYTES {
        return limit(
            Bound::Summary,
            MAX_SUMMARY_BYTES,
            format!("the summary is {} bytes", output.summary.len()),
        );
    }
    if output.metrics.len() > MAX_METRICS {
        let n = output.metrics.len();
        return limit(
            Bound::Metrics,
            MAX_METRICS,
            format!("the plugin returned {n} metrics"),
        );
    }
    for m in &output.metrics {
        if m.name.len() > MAX_METRIC_NAME_BYTES {
            return limit(
                Bound::MetricName,
                MAX_METRIC_NAME_BYTES,
                format!("a metric name is {} bytes", m.name.len()),
            );
        }
        if m.name.is_empty() || m.name.chars().any(is_unprintable) {
            return Err(fatal(format!(
                "metric name {:?} is empty or holds control characters",
                m.name
            )));
        }
        // A NaN or an infinity (an honest 0/0 in a plugin) has no JSON form
        // and no order, so `when` conditions and the record could not hold it.
        if !m.value.is_finite() {
            return Err(fatal(format!(
                "metric '{}' is {}: a metric must be a finite number",
                m.name, m.value
            )));
        }
    }
    if let Some(d) = &output.decision {
        if d.len() > MAX_DECISION_BYTES {
            return limit(
                Bound::Decision,
                MAX_DECISION_BYTES,
                format!("the decision is {} bytes", d.len()),
            );
        }
        if d.chars().any(is_unprintable) {
            return Err(fatal(format!("decision {d:?} holds control characters")));
        }
    }
    Ok(())
}

/// A plugin's error message as it is kept: at most [`MAX_ERROR_BYTES`],
/// cut at a character boundary, saying how much was cut.
pub fn bounded_error(message: String) -> String {
    if message.len() <= MAX_ERROR_BYTES {
        return message;
    }
    let mut end = MAX_ERROR_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... [{} more bytes of the plugin's error cut]",
        &message[..end],
        message.len() - end
    )
}

fn fatal(message: String) -> StageFailure {
    StageFailure::Plugin {
        retryable: false,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage_io::{Artifact, Metric};

    fn output() -> StageOutput {
        StageOutput {
            summary: "ok".into(),
            artifacts: vec![Artifact {
                name: "plan.md".into(),
                media_type: "text/markdown".into(),
                bytes: b"x".to_vec(),
            }],
            metrics: vec![Metric {
                name: "score".into(),
                value: 1.0,
            }],
            decision: Some("done".into()),
        }
    }

    fn bound_of(result: Result<(), StageFailure>) -> Option<Bound> {
        match result {
            Err(StageFailure::Limit(hit)) => Some(hit.bound),
            _ => None,
        }
    }

    #[test]
    fn a_plain_output_passes() {
        assert_eq!(check_output(&output(), 100), Ok(()));
    }

    #[test]
    fn names_that_cannot_be_files_or_be_printed_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "nul\0byte",
            "esc\u{1b}[31m",
            "bidi\u{202E}txt",
            CHANGES_ARTIFACT,
        ] {
            assert!(artifact_name_problem(name).is_some(), "{name:?} accepted");
        }
        for name in ["plan.md", ".hidden", "résumé.txt", "spawn.json"] {
            assert_eq!(artifact_name_problem(name), None, "{name:?} refused");
        }
        let mut o = output();
        o.artifacts[0].name = "x".repeat(MAX_ARTIFACT_NAME_BYTES + 1);
        assert_eq!(bound_of(check_output(&o, 100)), Some(Bound::ArtifactName));
    }

    #[test]
    fn duplicate_names_fail_the_attempt() {
        let mut o = output();
        o.artifacts.push(o.artifacts[0].clone());
        let e = check_output(&o, 100).unwrap_err();
        assert!(e.to_string().contains("returned twice"), "{e}");
    }

    #[test]
    fn every_part_of_an_output_is_bounded() {
        let mut o = output();
        o.summary = "s".repeat(MAX_SUMMARY_BYTES + 1);
        assert_eq!(bound_of(check_output(&o, 100)), Some(Bound::Summary));

        let mut o = output();
        o.metrics = (0..=MAX_METRICS)
            .map(|i| Metric {
                name: format!("m{i}"),
                value: 0.0,
            })
            .collect();
        assert_eq!(bound_of(check_output(&o, 100)), Some(Bound::Metrics));

        let mut o = output();
        o.artifacts = (0..=MAX_ARTIFACTS)
            .map(|i| Artifact {
                name: format!("a{i}"),
                media_type: "text/plain".into(),
                bytes: Vec::new(),
            })
            .collect();
        assert_eq!(bound_of(check_output(&o, 100)), Some(Bound::Artifacts));

        let mut o = output();
        o.decision = Some("d".repeat(MAX_DECISION_BYTES + 1));
        assert_eq!(bound_of(check_output(&o, 100)), Some(Bound::Decision));

        let e = check_output(&output(), 0).unwrap_err();
        assert!(matches!(
            e,
            StageFailure::OutputTooLarge { bytes: 1, limit: 0 }
        ));
    }

    #[test]
    fn a_non_finite_metric_is_refused_by_name() {
        let mut o = output();
        o.metrics[0].value = f64::NAN;
        let e = check_output(&o, 100).unwrap_err();
        assert!(e.to_string().contains("metric 'score' is NaN"), "{e}");
    }

    #[test]
    fn a_long_error_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_BYTES);
        let kept = bounded_error(long.clone());
        assert!(kept.len() < MAX_ERROR_BYTES + 100);
        assert!(
            kept.ends_with("bytes of the plugin's error cut]"),
            "{}",
            &kept[kept.len() - 60..]
        );
        assert_eq!(bounded_error("short".into()), "short");
    }
}
