//! Stage 1 of the Large-Small-Large experiment: optimise a seed instruction
//! on the large model with the reflective loop in `lsl-core`.

use plugin_sdk::prelude::*;

struct Baseline;

impl Stage for Baseline {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "lsl-baseline",
            env!("CARGO_PKG_VERSION"),
            "Optimises a prompt on the task model with a reflective loop",
        )
        .model(Need::config("task_model"))
        .model(Need::config("reflection_model"))
        .workspace(WorkspaceAccess::ReadOnly)
    }

    fn run(input: Input) -> Result<Output, StageError> {
        lsl_core::stage::optimize(&input, "baseline")
    }
}

plugin_sdk::export_stage!(Baseline);
