//! Errors in a pipeline file, located by file, line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column; `None` when the problem has no single place
    /// (a cycle, a file that cannot be read).
    pub location: Option<(usize, usize)>,
    pub message: String,
    /// The offending source line, for display under the message.
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn at(source: &Source, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        let (location, source_line) = match span {
            Some(span) => {
                let (line, col) = source.line_col(span.start);
                (
                    Some((line, col)),
                    source.line_text(line).map(str::to_string),
                )
            }
            None => (None, None),
        };
        Diagnostic {
            file: source.path.clone(),
            location,
            message: message.into(),
            source_line,
        }
    }

    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            file: path.to_path_buf(),
            location: None,
            message: message.into(),
            source_line: None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages quote the file's own values: shown, never obeyed by the
        // terminal (a `\r` in a stage id would rewrite the line).
        let message = host_vocab::printable_lines(&self.message);
        match self.location {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {message}", self.file.display())?,
            None => write!(f, "{}: {message}", self.file.display())?,
        }
        if let (Some((line, col)), Some(text)) = (self.location, &self.source_line) {
            let (text, col) = snippet(text, col);
            let gutter = line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{line} | {text}\n{:gutter$} | {:>col$}",
                "", "", "^"
            )?;
        }
        Ok(())
    }
}

/// Characters of a source line shown under a message, at most.
const SNIPPET_CHARS: usize = 100;

/// The part of `line` shown under a message: at most [`SNIPPET_CHARS`]
/// around the 1-based column `col` (elided ends marked `…`), unprintable
/// characters escaped so that the line cannot move the cursor; with the
/// column of the caret in what is shown.
fn snippet(line: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let at = col.saturating_sub(1).min(chars.len());
    let start = if chars.len() > SNIPPET_CHARS {
        at.saturating_sub(SNIPPET_CHARS / 2)
            .min(chars.len() - SNIPPET_CHARS)
    } else {
        0
    };
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let mut shown = String::new();
    let mut caret = 1;
    if start > 0 {
        shown.push('…');
        caret += 1;
    }
    for (i, c) in chars[start..end].iter().enumerate() {
        let mut one = [0u8; 4];
        let piece = host_vocab::printable(c.encode_utf8(&mut one));
        if start + i < at {
            caret += piece.chars().count();
        }
        shown.push_str(&piece);
    }
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret)
}

/// Every problem found in one manifest.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        let n = self.0.len();
        write!(f, "\n{n} problem{} found", if n == 1 { "" } else { "s" })
    }
}

/// A manifest's text and where it came from.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(path: PathBuf, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and (character) column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line, col)
    }

    fn line_text(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line - 1)?;
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |e| e - 1);
        self.text.get(start..end).map(|l| l.trim_end_matches('\r'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let s = Source::new("p.toml".into(), "a = 1\nbb = 2\n".into());
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(9), (2, 4));
    }

    #[test]
    fn a_long_or_unprintable_line_is_shown_around_the_column_escaped() {
        let long = format!("{}X{}", "a".repeat(5000), "b".repeat(5000));
        let (shown, caret) = snippet(&long, 5001);
        assert!(shown.chars().count() <= SNIPPET_CHARS + 2, "{shown}");
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(shown.chars().nth(caret - 1), Some('X'));
        let (shown, caret) = snippet("a\u{1b}[2Jb = x", 6);
        assert!(!shown.contains('\u{1b}'), "{shown}");
        assert_eq!(&shown[caret - 1..caret], "b");
        assert_eq!(snippet("id = 1", 6), ("id = 1".to_string(), 6));
    }

    #[test]
    fn display_points_at_the_column() {
        let s = Source::new("p.toml".into(), "x = 1\nid = \"bad\"\n".into());
        let d = Diagnostic::at(&s, Some(11..16), "bad id");
        assert_eq!(
            d.to_string(),
            "p.toml:2:6: bad id\n  |\n2 | id = \"bad\"\n  |      ^"
        );
    }
}
