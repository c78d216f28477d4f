//! Durations as people write them in a manifest: "500ms", "30s", "5m", "1h".

use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

/// A duration read from a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| {
                format!("duration '{text}' needs a unit: ms, s, m or h (e.g. \"30s\")")
            })?;
        let (number, unit) = text.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("duration '{text}' does not start with a number"))?;
        let seconds = match unit.trim() {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            other => {
                return Err(format!(
                    "unknown duration unit '{other}' in '{text}': use ms, s, m or h"
                ));
            }
        };
        if !seconds.is_finite() || seconds <= 0.0 || seconds > 7.0 * 24.0 * 3600.0 {
            return Err(format!(
                "duration '{text}' must be more than 0 and at most a week"
            ));
        }
        Ok(HumanDuration(Duration::from_secs_f64(seconds)))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        HumanDuration::parse(&text).map_err(de::Error::custom)
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(
            HumanDuration::parse("250ms").unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            HumanDuration::parse("30s").unwrap().0,
            Duration::from_secs(30)
        );
        assert_eq!(
            HumanDuration::parse("5m").unwrap().0,
            Duration::from_secs(300)
        );
        assert_eq!(
            HumanDuration::parse("1.5h").unwrap().0,
            Duration::from_secs(5400)
        );
    }

    #[test]
    fn rejects_nonsense() {
        assert!(
            HumanDuration::parse("30")
                .unwrap_err()
                .contains("needs a unit")
        );
        assert!(
            HumanDuration::parse("5 days")
                .unwrap_err()
                .contains("unknown duration unit")
        );
        assert!(HumanDuration::parse("0s").is_err());
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(HumanDuration::parse("120s").unwrap().to_string(), "2m");
        assert_eq!(
            HumanDuration::parse("1500ms").unwrap().to_string(),
            "1500ms"
        );
    }
}
