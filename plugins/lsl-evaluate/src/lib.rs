//! Stage 3 of the Large-Small-Large experiment: every upstream prompt on the
//! held-out test split, on every configured model.

use plugin_sdk::prelude::*;

struct Evaluate;

impl Stage for Evaluate {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "lsl-evaluate",
            env!("CARGO_PKG_VERSION"),
            "Evaluates prompts on the test split, per example and in aggregate",
        )
        .model(Need::config("models"))
        .workspace(WorkspaceAccess::ReadOnly)
    }

    fn run(input: Input) -> Result<Output, StageError> {
        lsl_core::stage::evaluate_stage(&input)
    }
}

plugin_sdk::export_stage!(Evaluate);
