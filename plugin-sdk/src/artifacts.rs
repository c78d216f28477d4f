//! Streamed artifacts: write a large artifact a piece at a time, without
//! holding it in the plugin's memory. It joins the stage's output when the
//! attempt succeeds.

// In a component the host's own functions; anywhere else (a plugin's
// `cargo test`) the test host installed on the thread (crate::testing).
#[cfg(target_arch = "wasm32")]
use crate::bindings::orchestrator::stage::artifacts as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::artifacts as host;
use serde::Serialize;

/// Appends `bytes` to the streamed artifact `name`.
pub fn append(name: &str, media_type: &str, bytes: &[u8]) -> Result<(), crate::StageError> {
    host::append(name, media_type, bytes)
        .map_err(|e| crate::StageError::fatal(format!("streaming '{name}': {e}")))
}

/// A JSON Lines artifact written one record at a time.
pub struct JsonlWriter {
    name: String,
    records: usize,
}

impl JsonlWriter {
    pub fn new(name: &str) -> Self {
        JsonlWriter {
            name: name.to_string(),
            records: 0,
        }
    }

    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), crate::StageError> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| crate::StageError::fatal(format!("a record for {}: {e}", self.name)))?;
        line.push(b'\n');
        append(&self.name, "application/jsonl", &line)?;
        self.records += 1;
        Ok(())
    }

    pub fn records(&self) -> usize {
        self.records
    }
}
