//! Stage 2 of the Large-Small-Large experiment: harden Stage 1's prompt
//! against the small model's failures, the large model reflecting.

use plugin_sdk::prelude::*;

struct Harden;

impl Stage for Harden {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "lsl-harden",
            env!("CARGO_PKG_VERSION"),
            "Hardens a prompt against a weak model's failures",
        )
        .model(Need::config("task_model"))
        .model(Need::config("reflection_model"))
        .workspace(WorkspaceAccess::ReadOnly)
    }

    fn run(input: Input) -> Result<Output, StageError> {
        lsl_core::stage::optimize(&input, "harden")
    }
}

plugin_sdk::export_stage!(Harden);
