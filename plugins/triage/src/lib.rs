//! Triage: scores the task's risk from its words, the files it names and
//! its size, and routes the run: LOW starts at execution, MEDIUM at
//! planning, HIGH at discovery. No model: routing must be predictable.

use plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// Force a level (LOW, MEDIUM, HIGH); anything else counts as HIGH.
    risk: Option<String>,
    /// Words that make a task risky (matched as whole words).
    high_words: Vec<String>,
    medium_words: Vec<String>,
    /// Score at or above which a task is HIGH, and MEDIUM.
    high_at: u32,
    medium_at: u32,
}

impl Default for Config {
    fn default() -> Self {
        let words = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Config {
            risk: None,
            high_words: words(&[
                "auth",
                "authentication",
                "authorization",
                "security",
                "database",
                "migration",
                "migrations",
                "api",
                "payment",
                "payments",
                "credential",
                "credentials",
                "password",
                "passwords",
                "token",
                "tokens",
                "encryption",
                "permission",
                "permissions",
                "schema",
                "delete",
                "production",
            ]),
            medium_words: words(&[
                "refactor",
                "performance",
                "config",
                "configuration",
                "dependency",
                "dependencies",
                "cache",
                "concurrency",
                "async",
                "thread",
                "upgrade",
                "interface",
            ]),
            high_at: 6,
            medium_at: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Risk {
    #[serde(rename = "LOW")]
    Low,
    #[serde(rename = "MEDIUM")]
    Medium,
    #[serde(rename = "HIGH")]
    High,
}

impl Risk {
    fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "LOW",
            Risk::Medium => "MEDIUM",
            Risk::High => "HIGH",
        }
    }

    fn parse(text: &str) -> Option<Risk> {
        match text.trim().to_ascii_uppercase().as_str() {
            "LOW" => Some(Risk::Low),
            "MEDIUM" => Some(Risk::Medium),
            "HIGH" => Some(Risk::High),
            _ => None,
        }
    }
}

#[derive(Debug, Serialize)]
struct Assessment {
    risk: Risk,
    score: u32,
    reasons: Vec<String>,
    overridden: bool,
}

const CONFIG_EXTENSIONS: &[&str] = &["toml", "yaml", "yml", "json", "ini", "cfg", "env"];
const CODE_EXTENSIONS: &[&str] = &[
    "py", "rs", "js", "ts", "go", "java", "rb", "c", "h", "cpp", "sql", "md", "sh",
];

/// Words of the task, lower-cased, split at anything not a letter or digit:
/// "authentication" never matches "auth", "tokenizer" never matches "token".
fn words(task: &str) -> Vec<String> {
    task.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Paths the task names: tokens with a '/' or a known file extension.
fn files(task: &str) -> Vec<String> {
    task.split_whitespace()
        .map(|t| t.trim_matches(|c: char| "`'\",;:()[]".contains(c)))
        .map(|t| t.trim_end_matches('.'))
        .filter(|t| {
            let ext = t.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
            (t.contains('/') && t.len() > 2)
                || ext.is_some_and(|e| {
                    CONFIG_EXTENSIONS.contains(&e.as_str()) || CODE_EXTENSIONS.contains(&e.as_str())
                })
        })
        .map(str::to_string)
        .collect()
}

fn assess(task: &str, config: &Config) -> Assessment {
    let mut score = 0;
    let mut reasons = Vec::new();
    let words = words(task);
    let mut seen = std::collections::BTreeSet::new();
    for w in &words {
        if !seen.insert(w.clone()) {
            continue;
        }
        if config.high_words.contains(w) {
            score += 3;
            reasons.push(format!("mentions '{w}' (+3)"));
        } else if config.medium_words.contains(w) {
            score += 2;
            reasons.push(format!("mentions '{w}' (+2)"));
        }
    }
    for f in files(task) {
        let ext = f
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        // Schema and configuration changes reach further than code.
        let points =
            if ext == "sql" || f.contains("migration") || CONFIG_EXTENSIONS.contains(&ext.as_str())
            {
                2
            } else {
                1
            };
        score += points;
        reasons.push(format!("names file {f} (+{points})"));
    }
    let size = words.len();
    if size > 150 {
        score += 2;
        reasons.push(format!("long task, {size} words (+2)"));
    } else if size > 60 {
        score += 1;
        reasons.push(format!("task of {size} words (+1)"));
    }
    let mut risk = if score >= config.high_at {
        Risk::High
    } else if score >= config.medium_at {
        Risk::Medium
    } else {
        Risk::Low
    };
    if words.is_empty() {
        risk = Risk::High;
        reasons.push("empty task: unknown risk counts as HIGH".into());
    }
    let mut overridden = false;
    if let Some(forced) = &config.risk {
        overridden = true;
        risk = Risk::parse(forced).unwrap_or_else(|| {
            reasons.push(format!("unknown risk override '{forced}' counts as HIGH"));
            Risk::High
        });
        reasons.push(format!("risk set to {} by configuration", risk.as_str()));
    }
    Assessment {
        risk,
        score,
        reasons,
        overridden,
    }
}

struct Triage;

impl Stage for Triage {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "triage",
            env!("CARGO_PKG_VERSION"),
            "Scores a coding task's risk (LOW, MEDIUM, HIGH) and routes the run",
        )
    }

    fn run(input: Input) -> Result<Output, StageError> {
        let config: Config = input.config()?;
        let a = assess(input.task(), &config);
        let route = match a.risk {
            Risk::Low => "execution",
            Risk::Medium => "planning",
            Risk::High => "discovery",
        };
        Output::new(format!(
            "risk {} (score {}), starting at {route}",
            a.risk.as_str(),
            a.score
        ))
        .decision(a.risk.as_str())
        .metric("score", f64::from(a.score))
        .json("triage.json", &a)
    }
}

plugin_sdk::export_stage!(Triage);

#[cfg(test)]
mod tests {
    use super::*;

    fn risk(task: &str) -> Risk {
        assess(task, &Config::default()).risk
    }

    #[test]
    fn routes_by_words_files_and_size() {
        assert_eq!(risk("Fix a typo in the greeting message"), Risk::Low);
        assert_eq!(
            risk("Refactor the cache layer in src/cache.py"),
            Risk::Medium
        );
        assert_eq!(
            risk("Add a database migration for the auth tokens table"),
            Risk::High
        );
    }

    #[test]
    fn keywords_match_whole_words_only() {
        // "authorship", "tokenizer" and "apiary" are not auth, token, api.
        assert_eq!(
            risk("Improve the tokenizer and authorship notes about an apiary"),
            Risk::Low
        );
    }

    #[test]
    fn overrides_and_unknowns() {
        let config = Config {
            risk: Some("low".into()),
            ..Config::default()
        };
        assert_eq!(
            assess("drop the production database", &config).risk,
            Risk::Low
        );
        let config = Config {
            risk: Some("urgent".into()),
            ..Config::default()
        };
        assert_eq!(assess("fix a typo", &config).risk, Risk::High);
        assert_eq!(risk("   "), Risk::High);
    }
}
