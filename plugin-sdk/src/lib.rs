//! Write stage plugins for the `host` orchestrator in Rust.
//!
//! A plugin is one type implementing [`Stage`], exported with [`export_stage!`],
//! built for `wasm32-wasip2` as a `cdylib`:
//!
//! ```ignore
//! use plugin_sdk::prelude::*;
//!
//! struct Echo;
//!
//! impl Stage for Echo {
//!     fn info() -> PluginInfo {
//!         // Declares what it needs: here nothing (see `capabilities`).
//!         PluginInfo::new("echo", env!("CARGO_PKG_VERSION"), "Echoes the task")
//!     }
//!     fn run(input: Input) -> Result<Output, StageError> {
//!         Ok(Output::new(format!("echoed {} bytes", input.task().len()))
//!             .text("echo.txt", input.task()))
//!     }
//! }
//!
//! plugin_sdk::export_stage!(Echo);
//! ```

pub mod artifacts;
pub mod attempt;
pub mod capabilities;
pub mod gates;
pub mod input;
pub mod json;
pub mod kv;
pub mod log;
pub mod models;
pub mod output;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "stage",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "plugin_sdk::bindings",
    });
}

pub use input::{ArtifactReader, ConfigError, Input, InputArtifact, ReadError, Upstream};
pub use output::{Artifact, Output};

/// What a plugin says about itself (name, version, description) and what it
/// needs (see [`capabilities`]).
pub use bindings::orchestrator::stage::types::PluginInfo;
/// Why a stage attempt failed: `Retryable` or `Fatal`.
pub use bindings::orchestrator::stage::types::StageError;

impl PluginInfo {
    /// A plugin that needs nothing yet: add its needs with [`PluginInfo::model`],
    /// [`PluginInfo::session`], [`PluginInfo::gate`], [`PluginInfo::workspace`].
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        PluginInfo {
            name: name.to_string(),
            version: version.to_string(),
            description: description.to_string(),
            capabilities: capabilities::Capabilities::none(),
        }
    }
}

impl StageError {
    /// A failure that may go away if the stage is tried again.
    pub fn retryable(reason: impl std::fmt::Display) -> Self {
        StageError::Retryable(reason.to_string())
    }

    /// A failure that retrying with the same input cannot fix.
    pub fn fatal(reason: impl std::fmt::Display) -> Self {
        StageError::Fatal(reason.to_string())
    }
}

impl From<input::ReadError> for StageError {
    /// An input the host cannot hand over will not appear on a retry.
    fn from(e: input::ReadError) -> Self {
        StageError::Fatal(e.to_string())
    }
}

impl From<ConfigError> for StageError {
    fn from(e: ConfigError) -> Self {
        StageError::Fatal(e.to_string())
    }
}

impl From<models::ModelError> for StageError {
    /// Provider trouble is worth a retry; a refused grant or budget is not.
    fn from(e: models::ModelError) -> Self {
        let text = models::describe(&e);
        match e {
            models::ModelError::Unavailable(_) => StageError::Retryable(text),
            _ => StageError::Fatal(text),
        }
    }
}

/// The one trait a plugin implements.
pub trait Stage {
    /// Describes the plugin and what it needs. Called when the host loads it;
    /// must not call imports.
    fn info() -> PluginInfo;

    /// Runs one attempt of the stage.
    fn run(input: Input) -> Result<Output, StageError>;
}

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::capabilities::{Need, WorkspaceAccess};
    pub use crate::json::{extract_json, extract_json_as};
    pub use crate::models::{Message, ModelError, Params};
    pub use crate::{Input, Output, PluginInfo, Stage, StageError, Upstream};
}

#[doc(hidden)]
pub mod __private {
    use crate::bindings::orchestrator::stage::types as wit;

    pub fn run<S: crate::Stage>(
        input: wit::StageInput,
    ) -> Result<wit::StageOutput, wit::StageError> {
        S::run(crate::Input::from_wit(input)).map(crate::Output::into_wit)
    }
}

/// Exports a [`Stage`] implementation as the component's `runner` interface.
#[macro_export]
macro_rules! export_stage {
    ($stage:ident) => {
        impl $crate::bindings::exports::orchestrator::stage::runner::Guest for $stage {
            fn info() -> $crate::PluginInfo {
                <$stage as $crate::Stage>::info()
            }
            fn run(
                input: $crate::bindings::orchestrator::stage::types::StageInput,
            ) -> ::core::result::Result<
                $crate::bindings::orchestrator::stage::types::StageOutput,
                $crate::StageError,
            > {
                $crate::__private::run::<$stage>(input)
            }
        }
        $crate::bindings::export_bindings!($stage with_types_in $crate::bindings);
    };
}
