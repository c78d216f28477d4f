//! Reviews and audits as structured JSON: `{"approved": bool, "issues": [...]}`
//! or `{"ready": bool, "issues": [...]}`. Models answer badly; reading the
//! answer fails closed: anything that is not the JSON asked for counts as a
//! rejection, with the reason as its issue.

use plugin_sdk::json::extract_json;

/// A reviewer's or auditor's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub ok: bool,
    pub issues: Vec<String>,
    /// Whether the answer was the JSON asked for (false: fail-closed default).
    pub well_formed: bool,
}

/// The instruction to append to a review prompt.
pub fn instructions(key: &str) -> String {
    format!(
        "Answer with JSON only, exactly in this shape: {{\"{key}\": true or false, \"issues\": [\"...\"]}}. \
         List every problem in \"issues\" (an empty list when there is none)."
    )
}

/// Reads a verdict whose boolean is under `key`.
pub fn parse(text: &str, key: &str) -> Verdict {
    let rejected = |why: String| Verdict {
        ok: false,
        issues: vec![why],
        well_formed: false,
    };
    let Ok(value) = extract_json(text) else {
        return rejected(format!(
            "the answer was not the JSON asked for: {}",
            crate::text::excerpt(text, 200)
        ));
    };
    let Some(ok) = value.get(key).and_then(|v| {
        v.as_bool().or_else(|| match v.as_str() {
            Some("true" | "yes") => Some(true),
            Some("false" | "no") => Some(false),
            _ => None,
        })
    }) else {
        return rejected(format!("the answer has no boolean \"{key}\": {value}"));
    };
    let issues = match value.get("issues") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .filter(|s| !s.trim().is_empty())
            .collect(),
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => vec![s.clone()],
        _ => Vec::new(),
    };
    // Approval with open issues is not approval.
    let ok = ok && issues.is_empty();
    Verdict {
        ok,
        issues,
        well_formed: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_clean_and_wrapped_answers() {
        let v = parse(r#"{"approved": true, "issues": []}"#, "approved");
        assert!(v.ok && v.well_formed);
        let v = parse(
            "Sure! ```json\n{\"ready\": false, \"issues\": [\"tests fail\", \"\"]}\n```",
            "ready",
        );
        assert!(!v.ok);
        assert_eq!(v.issues, vec!["tests fail"]);
    }

    #[test]
    fn fails_closed() {
        let v = parse("Looks good to me!", "approved");
        assert!(!v.ok && !v.well_formed);
        assert!(v.issues[0].contains("not the JSON asked for"));
        let v = parse(r#"{"verdict": "fine"}"#, "approved");
        assert!(!v.ok && v.issues[0].contains("no boolean"));
        // Approved but with issues: not approved.
        let v = parse(
            r#"{"approved": true, "issues": ["missing tests"]}"#,
            "approved",
        );
        assert!(!v.ok);
    }
}
