//! Plugin-controlled text made safe to print on a terminal: control
//! characters and the invisible ones that reorder text are shown escaped,
//! so a summary, a name, an error or a log message can neither move the
//! cursor, recolour the screen, nor fake a line of the host's own.

use crate::output_rules::is_unprintable;
use std::borrow::Cow;

/// `text` on one line: every unprintable character escaped, newlines too.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` as lines: newlines and tabs kept, every other unprintable
/// character escaped.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// The first five of `items` joined by `sep`, then how many more there are:
/// a message naming files or runs stays readable however many there are.
pub fn first_few(items: impl ExactSizeIterator<Item = String>, sep: &str) -> String {
    let total = items.len();
    let shown: Vec<String> = items.take(5).collect();
    match total - shown.len() {
        0 => shown.join(sep),
        more => format!("{} and {more} more", shown.join(sep)),
    }
}

fn escape(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_lines && (c == '\n' || c == '\t');
    if !text.chars().any(|c| is_unprintable(c) && !kept(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if kept(c) || !is_unprintable(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_codes_and_newlines_are_shown_not_obeyed() {
        assert_eq!(
            printable("ok\n2026-01-01 INFO host: fake\u{1b}[2J"),
            "ok\\n2026-01-01 INFO host: fake\\x1b[2J"
        );
        assert_eq!(printable("rtl\u{202E}gnp.exe"), "rtl\\u{202e}gnp.exe");
        assert!(matches!(printable("plain text é"), Cow::Borrowed(_)));
    }

    #[test]
    fn lines_keep_their_breaks_and_lose_their_escapes() {
        assert_eq!(
            printable_lines("a\n\tb\u{1b}]0;title\u{7}"),
            "a\n\tb\\x1b]0;title\\x07"
        );
    }
}
