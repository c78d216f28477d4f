//! The example stage: greets the task, lists what upstream stages handed it,
//! and, when its config names a model alias, asks that model for a short
//! JSON verdict on the upstream text and parses whatever comes back.

use plugin_sdk::models::{self, Message, Params};
use plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// Word to greet the task with.
    greeting: String,
    /// Model alias to ask; no model call when absent.
    model: Option<String>,
    /// Upper bound on the model's answer.
    max_tokens: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting: "Hello".into(),
            model: None,
            max_tokens: 96,
        }
    }
}

/// The shape the model is asked to answer in.
#[derive(Debug, Deserialize, Serialize)]
struct Verdict {
    mood: String,
}

#[derive(Serialize)]
struct InputListing<'a> {
    stage: &'a str,
    summary: &'a str,
    artifacts: Vec<(&'a str, usize)>,
}

struct Hello;

impl Stage for Hello {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "hello",
            env!("CARGO_PKG_VERSION"),
            "Greets the task, lists upstream artifacts, optionally asks a model",
        )
        .model(Need::config("model").optional())
    }

    fn run(input: Input) -> Result<Output, StageError> {
        let config: Config = input.config()?;
        let greeting = format!("{}, {}!", config.greeting, input.task());
        let listing: Vec<InputListing> = input
            .upstream()
            .iter()
            .map(|u| InputListing {
                stage: &u.stage_id,
                summary: &u.summary,
                artifacts: u
                    .artifacts
                    .iter()
                    .map(|a| (a.name.as_str(), a.size as usize))
                    .collect(),
            })
            .collect();
        let upstream_bytes: usize = listing
            .iter()
            .flat_map(|l| &l.artifacts)
            .map(|(_, n)| n)
            .sum();
        plugin_sdk::log::info(&format!(
            "{} upstream stage(s), {upstream_bytes} bytes of artifacts",
            listing.len()
        ));

        let mut output = Output::new(format!(
            "greeted with '{}', read {} upstream stage(s)",
            config.greeting,
            listing.len()
        ))
        .text("greeting.txt", greeting.clone())
        .json("inputs.json", &listing)?
        .metric("upstream_bytes", upstream_bytes as f64);

        if let Some(alias) = &config.model {
            let (raw, verdict) = ask_mood(alias, &input, &greeting, config.max_tokens)?;
            output = output
                .text("model-answer.txt", raw)
                .metric("json_ok", f64::from(verdict.is_some() as u8));
            if let Some(verdict) = verdict {
                output = output
                    .json("verdict.json", &verdict)?
                    .decision(verdict.mood);
            }
        }
        Ok(output)
    }
}

/// Asks the model for a one-word mood of the upstream text. Small models often
/// answer without JSON: the raw text is kept and the verdict is `None`.
fn ask_mood(
    alias: &str,
    input: &Input,
    greeting: &str,
    max_tokens: u32,
) -> Result<(String, Option<Verdict>), StageError> {
    let upstream_text: String = input
        .upstream()
        .iter()
        .flat_map(|u| &u.artifacts)
        .filter_map(|a| a.as_text())
        .collect::<Vec<_>>()
        .join("\n");
    let messages = [
        Message::system("You answer with one JSON object and nothing else."),
        Message::user(format!(
            "Text:\n{greeting}\n{upstream_text}\n\nWhat is the mood of this text in one word? \
             Answer exactly like {{\"mood\": \"cheerful\"}}."
        )),
    ];
    let completion = models::complete(
        alias,
        &messages,
        &Params::default().max_tokens(max_tokens).temperature(0.0),
    )?;
    let verdict = extract_json_as::<Verdict>(&completion.text).ok();
    match &verdict {
        Some(v) => plugin_sdk::log::info(&format!(
            "model {} says the mood is '{}'",
            completion.model, v.mood
        )),
        None => plugin_sdk::log::warn(&format!(
            "model {} answered without a usable JSON verdict",
            completion.model
        )),
    }
    Ok((completion.text, verdict))
}

plugin_sdk::export_stage!(Hello);
