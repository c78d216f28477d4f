//! Reading one section into its typed form with every problem found, not
//! only the first: keys that must be there are checked together, values
//! that must be tables are checked before serde could read a list as one,
//! and after each serde error the key it is in is set aside and the rest
//! read again. Messages are put in the manifest's words, not Rust's.

use super::Checker;
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

/// What a section must look like beyond what serde checks.
pub(crate) trait Shape {
    /// Keys it cannot do without.
    const REQUIRED: &'static [&'static str];
    /// Keys whose values must be tables (`{ ... }`): serde would also take
    /// a list of the fields in order.
    const TABLES: &'static [&'static str];
    /// Keys whose values are lists of names or tables, never of lists.
    const FLAT_LISTS: &'static [&'static str] = &[];
}

/// Most problems reported for one section: past them, the rest are noise.
const MAX_PROBLEMS: usize = 20;

impl Checker<'_> {
    /// Deserializes one section, reporting every problem at its location.
    pub(super) fn section<T: for<'de> Deserialize<'de> + Shape>(
        &mut self,
        what: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                Some(value.span()),
                format!(
                    "{what} must be a table of keys, not {}",
                    kind(value.get_ref())
                ),
            );
            return None;
        };
        // Borrowed until a key is set aside: a section without problems is
        // cloned once, to be read, as before.
        let mut table = std::borrow::Cow::Borrowed(table);
        let mut failed = false;
        let missing: Vec<&str> = T::REQUIRED
            .iter()
            .copied()
            .filter(|k| !table.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            failed = true;
            let keys: Vec<String> = missing.iter().map(|k| format!("`{k}`")).collect();
            self.error(
                Some(value.span()),
                format!("{what}: missing {}", keys.join(" and ")),
            );
        }
        for key in T::TABLES {
            if let Some((name, v)) = table.get_key_value(*key)
                && !matches!(v.get_ref(), DeValue::Table(_))
            {
                failed = true;
                self.error(
                    Some(v.span()),
                    format!(
                        "{what}: `{}` must be a table, e.g. {} = {{ ... }}, not {}",
                        name.get_ref(),
                        name.get_ref(),
                        kind(v.get_ref())
                    ),
                );
                let name = name.get_ref().to_string();
                table.to_mut().remove(name.as_str());
            }
        }
        for key in T::FLAT_LISTS {
            let Some((name, DeValue::Array(items))) =
                table.get_key_value(*key).map(|(k, v)| (k, v.get_ref()))
            else {
                continue;
            };
            if let Some(nested) = items
                .iter()
                .find(|i| matches!(i.get_ref(), DeValue::Array(_)))
            {
                failed = true;
                self.error(
                    Some(nested.span()),
                    format!(
                        "{what}: `{}` entries must be names (or tables), not lists",
                        name.get_ref()
                    ),
                );
                let name = name.get_ref().to_string();
                table.to_mut().remove(name.as_str());
            }
        }
        for _ in 0..MAX_PROBLEMS {
            let attempt = Spanned::new(value.span(), DeValue::Table(table.as_ref().clone()));
            match T::deserialize(ValueDeserializer::from(attempt)) {
                Ok(v) => return (!failed).then_some(v),
                // Reported above, once for all of them.
                Err(e) if !missing.is_empty() && e.message().starts_with("missing field") => {
                    return None;
                }
                Err(e) => {
                    failed = true;
                    let span = e.span().unwrap_or_else(|| value.span());
                    self.error(
                        Some(span.clone()),
                        format!("{what}: {}", plain(e.message())),
                    );
                    // Set aside the key the problem is in, and read on.
                    let key = key_at(&table, &span)?;
                    table.to_mut().remove(key.as_str());
                }
            }
        }
        None
    }
}

/// The key of `table` whose key or value holds `span`.
fn key_at(table: &toml::de::DeTable<'_>, span: &Range<usize>) -> Option<String> {
    table
        .iter()
        .find(|(k, v)| {
            let (start, end) = (k.span().start, v.span().end.max(k.span().end));
            start <= span.start && span.start < end.max(start + 1)
        })
        .map(|(k, _)| k.get_ref().to_string())
}

/// A value's kind in the words of TOML.
fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// serde's message in the manifest's words: no Rust type names.
pub(super) fn plain(message: &str) -> String {
    let message = message.trim_end();
    if message.contains("did not match any variant of untagged enum AfterEntry") {
        return "each `after` entry must be a stage id or { stage = \"ID\", on = \"failure\" }"
            .to_string();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    // "struct NameSection with 4 elements" and "enum Name" say a table or
    // a choice of words; "sequence" and "map" are a list and a table.
    loop {
        let found = [
            ("struct ", "a table"),
            ("enum ", "one of the allowed values"),
        ]
        .into_iter()
        .filter_map(|(rust, words)| rest.find(rust).map(|at| (at, rust, words)))
        .min_by_key(|(at, ..)| *at);
        let Some((at, rust, words)) = found else {
            break;
        };
        out.push_str(&rest[..at]);
        out.push_str(words);
        let name = &rest[at + rust.len()..];
        let name_len = name
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(name.len());
        rest = &name[name_len..];
        if let Some(tail) = rest.strip_prefix(" with ")
            && let Some(end) = tail.find(" elements")
        {
            rest = &tail[end + " elements".len()..];
        }
    }
    out.push_str(rest);
    let mut out = out
        .replace("sequence", "a list")
        .replace("invalid type: map", "invalid type: a table");
    for (rust, words) in [
        ("usize", "a whole number"),
        ("u64", "a whole number"),
        ("u32", "a whole number"),
        ("u16", "a whole number"),
        ("u8", "a whole number"),
        ("i64", "a whole number"),
        ("i32", "a whole number"),
        ("f64", "a number"),
    ] {
        let rust = format!("expected {rust}");
        if let Some(at) = out.find(&rust)
            && !out[at + rust.len()..].starts_with(|c: char| c.is_alphanumeric())
        {
            out.replace_range(at..at + rust.len(), &format!("expected {words}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn rust_names_become_manifest_words() {
        assert_eq!(
            plain("invalid type: sequence, expected struct PluginSection with 4 elements"),
            "invalid type: a list, expected a table"
        );
        assert_eq!(
            plain("invalid length 1, expected struct PluginSection with 4 elements"),
            "invalid length 1, expected a table"
        );
        assert_eq!(
            plain("data did not match any variant of untagged enum AfterEntry"),
            "each `after` entry must be a stage id or { stage = \"ID\", on = \"failure\" }"
        );
        assert_eq!(
            plain("unknown field `x`, expected `a`"),
            "unknown field `x`, expected `a`"
        );
        assert_eq!(
            plain("invalid type: string \"four\", expected usize"),
            "invalid type: string \"four\", expected a whole number"
        );
    }
}
