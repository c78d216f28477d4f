//! Examples as JSONL: one `{"id": ..., "question": ..., "answer": ...}` per
//! line. A bad line is an error naming the file and line.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    pub question: String,
    pub answer: String,
}

/// Reads a JSONL split.
pub fn load(path: &Path) -> Result<Vec<Example>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|(line, e)| format!("{}:{line}: {e}", path.display()))
}

/// Parses JSONL text; `Err((line, reason))` for the first bad line.
pub fn parse(text: &str) -> Result<Vec<Example>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: Example = serde_json::from_str(line).map_err(|e| (i + 1, e.to_string()))?;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_locates_bad_lines() {
        let ok = parse("{\"id\":\"a\",\"question\":\"1+1?\",\"answer\":\"2\"}\n\n").unwrap();
        assert_eq!(ok.len(), 1);
        let err =
            parse("{\"id\":\"a\",\"question\":\"q\",\"answer\":\"1\"}\n{oops}\n").unwrap_err();
        assert_eq!(err.0, 2);
    }
}
