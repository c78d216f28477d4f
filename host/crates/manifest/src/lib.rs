//! pipeline.toml: parsing, validation, and the typed pipeline it yields.
//!
//! Loading never stops at the first mistake: every section is read on its
//! own and every cross-reference is checked, so one `host validate` lists
//! every problem with its file, line and column.

mod diagnostic;
mod duration;
mod literal;
pub mod locate;
mod overrides;
mod pipeline;
mod sections;
mod validate;
pub mod when;

pub use diagnostic::{Diagnostic, Diagnostics, Source};
pub use duration::{Age, HumanDuration};
pub use overrides::{
    OverrideError, SetError, apply_config_override, apply_model_override, apply_task_override,
    apply_workspace_override, read_task_file,
};
pub use pipeline::*;
pub use validate::is_valid_name;

use std::path::Path;

/// Largest manifest read: a 10,000-stage pipeline is well under 1 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Reads and validates the manifest at `path`.
pub fn load(path: &Path) -> Result<Pipeline, Diagnostics> {
    parse(path, read_manifest(path)?)
}

/// The manifest's text: at most [`MAX_MANIFEST_BYTES`], UTF-8 (a byte that
/// is not is reported at its line and column).
pub fn read_manifest(path: &Path) -> Result<String, Diagnostics> {
    use std::io::Read;
    let whole = |message: String| Diagnostics(vec![Diagnostic::whole_file(path, message)]);
    let file =
        std::fs::File::open(path).map_err(|e| whole(format!("cannot read pipeline file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole(format!("cannot read pipeline file: {e}")))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(whole(format!(
            "the pipeline file is larger than {} MiB: it cannot be a manifest",
            MAX_MANIFEST_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let source = Source::new(
            path.to_path_buf(),
            String::from_utf8_lossy(&bytes).into_owned(),
        );
        // The lossy text has the same lines up to the bad byte.
        let lossy_at = String::from_utf8_lossy(&bytes[..at]).len();
        Diagnostics(vec![Diagnostic::at(
            &source,
            Some(lossy_at..lossy_at + 1),
            format!(
                "the file is not UTF-8 text: byte {at} (0x{:02x}) is not valid here",
                bytes[at]
            ),
        )])
    })
}

/// Validates manifest `text` as if read from `path` (relative paths in it are
/// resolved against `path`'s directory).
pub fn parse(path: &Path, text: String) -> Result<Pipeline, Diagnostics> {
    let source = Source::new(path.to_path_buf(), text);
    validate::validate(&source)
}
