//! Pulling JSON out of what models actually say.
//!
//! Models wrap JSON in prose, in Markdown fences, leave trailing commas, or
//! answer with several objects. [`extract_json`] finds the first balanced JSON
//! object or array that parses, preferring fenced ```json blocks.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why no JSON value could be pulled out of a text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonExtractError {
    #[error("the text contains no JSON object or array")]
    NotFound,
    #[error("found JSON, but not of the expected shape: {0}")]
    Shape(String),
}

/// The first JSON object or array in `text` that parses.
pub fn extract_json(text: &str) -> Result<Value, JsonExtractError> {
    fenced_blocks(text)
        .into_iter()
        .chain(std::iter::once(text))
        .find_map(first_balanced_value)
        .ok_or(JsonExtractError::NotFound)
}

/// The first JSON value in `text` that deserializes into `T`.
pub fn extract_json_as<T: DeserializeOwned>(text: &str) -> Result<T, JsonExtractError> {
    let mut last_shape_error = None;
    for region in fenced_blocks(text).into_iter().chain(std::iter::once(text)) {
        for value in balanced_values(region) {
            match serde_json::from_value::<T>(value) {
                Ok(v) => return Ok(v),
                Err(e) => last_shape_error = Some(e.to_string()),
            }
        }
    }
    Err(match last_shape_error {
        Some(e) => JsonExtractError::Shape(e),
        None => JsonExtractError::NotFound,
    })
}

/// Contents of Markdown code fences (```json ... ``` or ``` ... ```).
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        // Skip the info string ("json") up to the end of the line.
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(after.len());
        let body = &after[body_start..];
        match body.find("```") {
            Some(end) => {
                blocks.push(&body[..end]);
                rest = &body[end + 3..];
            }
            None => {
                blocks.push(body);
                break;
            }
        }
    }
    blocks
}

fn first_balanced_value(text: &str) -> Option<Value> {
    balanced_values(text).next()
}

/// Every parseable balanced `{...}` or `[...]` span, in order of start.
fn balanced_values(text: &str) -> impl Iterator<Item = Value> + '_ {
    text.char_indices()
        .filter(|(_, c)| *c == '{' || *c == '[')
        .filter_map(move |(start, _)| {
            let end = balanced_end(&text[start..])?;
            parse_lenient(&text[start..start + end])
        })
}

/// Length of the balanced bracket span at the start of `s`, honouring strings.
fn balanced_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + c.len_utf8());
                }
            }
            _ => {}
        }
    }
    None
}

/// Parses JSON, forgiving trailing commas (a frequent small-model habit).
fn parse_lenient(candidate: &str) -> Option<Value> {
    serde_json::from_str(candidate)
        .ok()
        .or_else(|| serde_json::from_str(&strip_trailing_commas(candidate)).ok())
}

fn strip_trailing_commas(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_string = false;
    let mut escaped = false;
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[test]
    fn finds_object_in_prose() {
        let text = "Sure! Here is the review: {\"approved\": true, \"issues\": []} Hope it helps.";
        assert_eq!(
            extract_json(text).unwrap(),
            json!({"approved": true, "issues": []})
        );
    }

    #[test]
    fn prefers_fenced_block() {
        let text = "Example {\"a\": 0}\n```json\n{\"a\": 1}\n```\n";
        assert_eq!(extract_json(text).unwrap(), json!({"a": 1}));
    }

    #[test]
    fn braces_inside_strings_do_not_confuse_it() {
        let text = "x {\"code\": \"fn f() { }\", \"n\": \"}\"} y";
        assert_eq!(
            extract_json(text).unwrap(),
            json!({"code": "fn f() { }", "n": "}"})
        );
    }

    #[test]
    fn forgives_trailing_commas() {
        let text = "{\"issues\": [\"a\", \"b\",], }";
        assert_eq!(extract_json(text).unwrap(), json!({"issues": ["a", "b"]}));
    }

    #[test]
    fn skips_broken_candidates() {
        let text = "{not json} then {\"ok\": 1}";
        assert_eq!(extract_json(text).unwrap(), json!({"ok": 1}));
    }

    #[test]
    fn reports_absence() {
        assert_eq!(
            extract_json("no json here {"),
            Err(JsonExtractError::NotFound)
        );
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Review {
        approved: bool,
    }

    #[test]
    fn typed_extraction_skips_wrong_shapes() {
        let text = "{\"x\": 1} and {\"approved\": false}";
        assert_eq!(
            extract_json_as::<Review>(text).unwrap(),
            Review { approved: false }
        );
    }

    #[test]
    fn typed_extraction_reports_shape() {
        let err = extract_json_as::<Review>("{\"x\": 1}").unwrap_err();
        assert!(matches!(err, JsonExtractError::Shape(m) if m.contains("approved")));
    }
}
