//! {{name}}: a stage plugin for the `host` orchestrator.
//!
//! It reads the task and every upstream text or JSON artifact, asks the
//! model alias named by `config.model` (default "small") about them, and
//! returns the answer as `{{name}}.md` with an account of its inputs in
//! `{{name}}.json`.

use plugin_sdk::models::{self, Message, Params};
use plugin_sdk::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// The model alias to ask (the stage must be granted it).
    model: String,
    /// What the model is asked to do with the inputs.
    instruction: String,
    max_tokens: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: "small".into(),
            instruction: "Summarise the inputs in one short paragraph.".into(),
            max_tokens: 200,
        }
    }
}

/// Most characters of one upstream artifact put into the prompt.
const MAX_INPUT_CHARS: usize = 2000;

/// Bytes read of an artifact: enough for MAX_INPUT_CHARS of any UTF-8 text.
const HEAD_BYTES: u64 = 4 * MAX_INPUT_CHARS as u64;

/// The upstream artifacts worth showing a model (text and JSON), as much of
/// each as the prompt uses. Upstream artifacts come as references: only
/// these heads are read, so a large or binary input costs nothing.
fn readable(input: &Input) -> Result<Vec<(&str, &str, String)>, StageError> {
    let mut found = Vec::new();
    for u in input.upstream() {
        for a in &u.artifacts {
            if !(a.media_type.starts_with("text/") || a.media_type == "application/json") {
                continue;
            }
            if let Some(text) = decode_head(a.range(0, HEAD_BYTES)?) {
                found.push((u.stage_id.as_str(), a.name.as_str(), text));
            }
        }
    }
    Ok(found)
}

/// UTF-8 text of the head of an artifact, whose last character may be cut;
/// `None` if it is not UTF-8.
fn decode_head(mut bytes: Vec<u8>) -> Option<String> {
    if let Err(e) = std::str::from_utf8(&bytes) {
        // Only an incomplete character at the very end is forgiven.
        if e.error_len().is_some() {
            return None;
        }
        bytes.truncate(e.valid_up_to());
    }
    String::from_utf8(bytes).ok()
}

/// The user message: the task, then each input under a header.
fn build_prompt(task: &str, inputs: &[(&str, &str, String)]) -> String {
    let mut prompt = format!("Task:\n{task}\n");
    for (stage, name, text) in inputs {
        let text: String = text.chars().take(MAX_INPUT_CHARS).collect();
        prompt.push_str(&format!("\n--- {stage}/{name} ---\n{text}\n"));
    }
    prompt
}

struct Plugin;

impl Stage for Plugin {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "{{name}}",
            env!("CARGO_PKG_VERSION"),
            "Asks a model about the task and the upstream artifacts",
        )
        // What `host validate` checks each stage's grants against.
        .model(Need::config("model").or("small"))
    }

    fn run(input: Input) -> Result<Output, StageError> {
        let config: Config = input.config()?;
        let inputs = readable(&input)?;
        let messages = [
            Message::system(config.instruction.as_str()),
            Message::user(build_prompt(input.task(), &inputs)),
        ];
        let params = Params::default().max_tokens(config.max_tokens);
        // println! is a line of this attempt's log (host show RUN STAGE --log).
        println!("asking {} about {} inputs", config.model, inputs.len());
        let completion = models::complete(&config.model, &messages, &params)?;
        let account = serde_json::json!({
            "alias": config.model,
            "model": completion.model,
            "inputs": inputs
                .iter()
                .map(|(stage, name, text)| serde_json::json!({"stage": stage, "name": name, "chars": text.chars().count()}))
                .collect::<Vec<_>>(),
            "output_tokens": completion.output_tokens,
        });
        Output::new(format!(
            "{} answered from {} inputs",
            config.model,
            inputs.len()
        ))
        .text("{{name}}.md", completion.text)
        .metric("inputs", inputs.len() as f64)
        .metric("output_tokens", completion.output_tokens as f64)
        .json("{{name}}.json", &account)
    }
}

plugin_sdk::export_stage!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::Upstream;

    #[test]
    fn the_prompt_holds_the_task_and_each_readable_input() {
        let upstream = Upstream::new("greet", "")
            .with_artifact("greeting.txt", "text/plain", "Hello there")
            .with_artifact("image.png", "image/png", vec![0x89, 0x50]);
        let input = Input::for_test("s", "the task", serde_json::json!({})).with_upstream(upstream);
        let inputs = readable(&input).unwrap();
        assert_eq!(inputs, vec![("greet", "greeting.txt", "Hello there".to_string())]);
        let prompt = build_prompt(input.task(), &inputs);
        assert!(prompt.starts_with("Task:\nthe task\n"));
        assert!(prompt.contains("--- greet/greeting.txt ---\nHello there"));
    }

    #[test]
    fn a_head_cut_inside_a_character_still_reads() {
        let cut = "héllo wörld".as_bytes()[..9].to_vec();
        assert_eq!(decode_head(cut).as_deref(), Some("héllo w"));
        assert_eq!(decode_head(vec![0xff, b'a']), None);
    }

    /// `run()` end to end, natively: the SDK's test host answers the model
    /// call and records it (plugin_sdk::testing has a double for every host
    /// interface: models, log, kv, gates, artifacts, attempt).
    #[test]
    fn run_asks_the_model_about_the_task_and_returns_its_answer() {
        let host = plugin_sdk::testing::TestHost::new()
            .answer("small", "A short summary.")
            .install();
        let input = Input::for_test("s", "Summarise the notes", serde_json::json!({}));
        let output = Plugin::run(input).expect("run succeeds");
        let calls = host.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].alias, "small");
        assert!(calls[0].prompt().contains("Summarise the notes"));
        let answer = output
            .artifacts()
            .iter()
            .find(|a| a.name == "{{name}}.md")
            .and_then(|a| a.as_text());
        assert_eq!(answer, Some("A short summary."));
    }

    /// A model that fails makes the stage fail, with the reason.
    #[test]
    fn a_failed_model_call_fails_the_stage() {
        let _host = plugin_sdk::testing::TestHost::new()
            .fail(
                "small",
                plugin_sdk::models::ModelError::Unavailable("down".into()),
            )
            .install();
        let input = Input::for_test("s", "Summarise", serde_json::json!({}));
        assert!(Plugin::run(input).is_err());
    }
}
