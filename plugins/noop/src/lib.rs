//! A stage that does nothing but answer: what is left of a stage's cost is
//! the host's own (instantiation, the call, state, scheduling).

use plugin_sdk::prelude::*;

struct Noop;

impl Stage for Noop {
    fn info() -> PluginInfo {
        PluginInfo::new("noop", env!("CARGO_PKG_VERSION"), "Does nothing, quickly")
    }

    fn run(input: Input) -> Result<Output, StageError> {
        // `config = { fail = true }` makes a stage that always fails, so a
        // benchmark can leave a run unfinished on purpose. Checked without a
        // JSON parser: the no-op path stays as short as a stage can be.
        if input
            .config_json()
            .replace(' ', "")
            .contains("\"fail\":true")
        {
            return Err(StageError::Fatal("asked to fail".into()));
        }
        Ok(Output::new(format!("{} done", input.stage_id())))
    }
}

plugin_sdk::export_stage!(Noop);
