//! pipeline.toml: parsing, validation, and the typed pipeline it yields.
//!
//! Loading never stops at the first mistake: every section is read on its
//! own and every cross-reference is checked, so one `host validate` lists
//! every problem with its file, line and column.

mod diagnostic;
mod duration;
pub mod locate;
mod overrides;
mod pipeline;
mod sections;
mod validate;
pub mod when;

pub use diagnostic::{Diagnostic, Diagnostics, Source};
pub use duration::{Age, HumanDuration};
pub use overrides::{
    OverrideError, SetError, apply_config_override, apply_model_override, apply_workspace_override,
};
pub use pipeline::*;
pub use validate::is_valid_name;

use std::path::Path;

/// Reads and validates the manifest at `path`.
pub fn load(path: &Path) -> Result<Pipeline, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::whole_file(
            path,
            format!("cannot read pipeline file: {e}"),
        )])
    })?;
    parse(path, text)
}

/// Validates manifest `text` as if read from `path` (relative paths in it are
/// resolved against `path`'s directory).
pub fn parse(path: &Path, text: String) -> Result<Pipeline, Diagnostics> {
    let source = Source::new(path.to_path_buf(), text);
    validate::validate(&source)
}
