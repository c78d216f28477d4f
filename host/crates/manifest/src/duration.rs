//! Durations as people write them in a manifest: "500ms", "30s", "5m", "1h".

use serde::{Deserialize, Deserializer, Serialize, de};
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
            0 => write!(f, "0s"),
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

/// How old a run may grow before retention lets it go: "90m", "12h",
/// "30d", "2w" (whole numbers; up to about 100 years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Age {
    pub ms: u64,
}

impl Age {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("'{text}' is not an age like 30d, 12h or 2w"))?;
        let minute = 60_000u64;
        let per = match unit {
            "m" => minute,
            "h" => 60 * minute,
            "d" => 24 * 60 * minute,
            "w" => 7 * 24 * 60 * minute,
            "" => {
                return Err(format!(
                    "age '{text}' needs a unit: m, h, d or w (e.g. \"30d\")"
                ));
            }
            other => {
                return Err(format!(
                    "unknown age unit '{other}' in '{text}': use m, h, d or w"
                ));
            }
        };
        if n == 0 {
            return Err(format!("age '{text}' must be more than 0"));
        }
        match n.checked_mul(per) {
            Some(ms) if ms <= 100 * 366 * 24 * 60 * minute => Ok(Age { ms }),
            _ => Err(format!("age '{text}' is more than 100 years")),
        }
    }
}

impl std::fmt::Display for Age {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let minute = 60_000u64;
        for (unit, per) in [("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60), ("m", 1)] {
            if self.ms.is_multiple_of(per * minute) {
                return write!(f, "{}{unit}", self.ms / (per * minute));
            }
        }
        write!(f, "{}ms", self.ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_minutes_to_weeks() {
        assert_eq!(Age::parse("90m").unwrap().ms, 90 * 60_000);
        assert_eq!(Age::parse("2w").unwrap().ms, 14 * 24 * 3_600_000);
        assert_eq!(Age::parse("48h").unwrap().to_string(), "2d");
        assert!(Age::parse("3y").unwrap_err().contains("unknown age unit"));
        assert!(Age::parse("30").unwrap_err().contains("needs a unit"));
        assert!(Age::parse("d").is_err());
        assert!(Age::parse("0d").is_err());
        assert!(Age::parse("99999999999999w").is_err());
    }

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
