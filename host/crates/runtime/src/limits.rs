//! Memory and table limits for one attempt, remembering what was refused so
//! the failure can be reported as "out of memory" rather than a bare trap.

use wasmtime::ResourceLimiter;

pub struct MemoryLimiter {
    max_memory: u64,
    max_table_elements: usize,
    /// The largest growth request refused, in bytes.
    refused: Option<u64>,
}

impl MemoryLimiter {
    pub fn new(max_memory: u64) -> Self {
        MemoryLimiter {
            max_memory,
            max_table_elements: 1 << 20,
            refused: None,
        }
    }

    pub fn max_memory(&self) -> u64 {
        self.max_memory
    }

    pub fn refused(&self) -> Option<u64> {
        self.refused
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            self.refused = Some(self.refused.unwrap_or(0).max(desired as u64));
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}
