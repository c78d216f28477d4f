//! From a place in a string's value back to its place in the manifest: a
//! `when` error found at byte N of the condition must point at the right
//! column of the TOML string it was written in, whatever escapes (`\"`,
//! `\u00e9`), quotes (`'`, `"""`) or line-ending backslashes it uses.

/// The byte offset, inside `literal` (a TOML string as written, quotes
/// included), of the character at byte `value_offset` of its value. Past
/// the end, the closing quote.
pub fn source_offset(literal: &str, value_offset: usize) -> usize {
    let (open, basic) = match literal {
        l if l.starts_with("\"\"\"") => (3, true),
        l if l.starts_with("'''") => (3, false),
        l if l.starts_with('"') => (1, true),
        _ => (1, false),
    };
    let mut at = open;
    // A multi-line string drops the newline right after its opening quotes.
    if open == 3 {
        if literal[at..].starts_with("\r\n") {
            at += 2;
        } else if literal[at..].starts_with('\n') {
            at += 1;
        }
    }
    let close = literal.len().saturating_sub(open).max(at);
    let mut decoded = 0;
    while at < close {
        if decoded >= value_offset {
            return at;
        }
        let rest = &literal[at..close];
        let Some(c) = rest.chars().next() else { break };
        if !(basic && c == '\\') {
            at += c.len_utf8();
            decoded += c.len_utf8();
            continue;
        }
        let mut after = rest[1..].chars();
        match after.next() {
            Some('u') => {
                decoded += hex_char(&rest[2..], 4);
                at += 6;
            }
            Some('U') => {
                decoded += hex_char(&rest[2..], 8);
                at += 10;
            }
            // A line-ending backslash: it and the whitespace after it vanish.
            Some(w) if w.is_whitespace() => {
                at += 1;
                at += literal[at..close]
                    .find(|c: char| !c.is_whitespace())
                    .unwrap_or(close - at);
            }
            Some(e) => {
                at += 1 + e.len_utf8();
                decoded += 1;
            }
            None => at += 1,
        }
    }
    at.min(literal.len())
}

/// Bytes of the character `digits` hex digits at the start of `text` name.
fn hex_char(text: &str, digits: usize) -> usize {
    text.get(..digits)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .and_then(char::from_u32)
        .map_or(1, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::source_offset;

    /// Where `needle` starts in `value`, mapped into `literal`.
    fn at(literal: &str, value: &str, needle: &str) -> String {
        let o = source_offset(literal, value.find(needle).unwrap());
        literal[o..].chars().take(needle.len()).collect()
    }

    #[test]
    fn escapes_and_quotes_keep_the_column_on_the_character() {
        let plain = r#""a.status == 'x'""#;
        assert_eq!(at(plain, "a.status == 'x'", "'x'"), "'x'");
        let escaped = r#""a.status == \"x\" and a.decison == 1""#;
        assert_eq!(
            at(escaped, "a.status == \"x\" and a.decison == 1", "decison"),
            "decison"
        );
        let unicode = r#""\u00e9t\u00e9 == a.decison""#;
        assert_eq!(at(unicode, "été == a.decison", "decison"), "decison");
        let literal = "'a.status == \"x\" or a.decison'";
        assert_eq!(
            at(literal, "a.status == \"x\" or a.decison", "decison"),
            "decison"
        );
        let multi = "\"\"\"\na.status == 'x' \\\n    or a.decison\"\"\"";
        assert_eq!(
            at(multi, "a.status == 'x' or a.decison", "decison"),
            "decison"
        );
        assert_eq!(
            source_offset("\"ab\"", 99),
            3,
            "past the end: the closing quote"
        );
    }
}
