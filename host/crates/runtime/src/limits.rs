//! Memory and table limits for one attempt, across all of a component's
//! memories and tables (a component may hold several core instances, each
//! with its own), remembering what was refused so the failure can be
//! reported as "out of memory" rather than a bare trap.

use host_vocab::limits::MAX_TABLE_ELEMENTS;
use host_vocab::{Bound, LimitReached};
use wasmtime::ResourceLimiter;

pub struct MemoryLimiter {
    max_memory: u64,
    max_table_elements: u64,
    /// Bytes of all linear memories, and elements of all tables, so far.
    memory: u64,
    table_elements: u64,
    /// The largest total a refused memory growth asked for, in bytes.
    refused: Option<u64>,
    /// The largest total a refused table growth asked for, in elements.
    refused_tables: Option<u64>,
}

impl MemoryLimiter {
    pub fn new(max_memory: u64) -> Self {
        MemoryLimiter {
            max_memory,
            max_table_elements: MAX_TABLE_ELEMENTS,
            memory: 0,
            table_elements: 0,
            refused: None,
            refused_tables: None,
        }
    }

    pub fn max_memory(&self) -> u64 {
        self.max_memory
    }

    /// The total memory a refused growth would have reached.
    pub fn refused(&self) -> Option<u64> {
        self.refused
    }

    /// The table bound, if a growth past it was refused.
    pub fn tables_reached(&self) -> Option<LimitReached> {
        self.refused_tables.map(|asked| {
            LimitReached::new(
                Bound::TableElements,
                self.max_table_elements,
                format!("the plugin's tables asked for {asked} elements"),
            )
        })
    }
}

/// The total after one of the memories (or tables) goes from `current` to
/// `desired`, if it stays within `max`.
fn grown(total: u64, current: usize, desired: usize, max: u64) -> Result<u64, u64> {
    let after = total
        .saturating_sub(current as u64)
        .saturating_add(desired as u64);
    if after > max { Err(after) } else { Ok(after) }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        match grown(self.memory, current, desired, self.max_memory) {
            Ok(after) => {
                self.memory = after;
                Ok(true)
            }
            Err(after) => {
                self.refused = Some(self.refused.unwrap_or(0).max(after));
                Ok(false)
            }
        }
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        match grown(
            self.table_elements,
            current,
            desired,
            self.max_table_elements,
        ) {
            Ok(after) => {
                self.table_elements = after;
                Ok(true)
            }
            Err(after) => {
                self.refused_tables = Some(self.refused_tables.unwrap_or(0).max(after));
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Engine, Instance, Module, Store};

    /// A core module with four memories of `pages` 64 KiB pages each, and a
    /// function growing each by `pages` more (returning -1 where refused).
    fn four_memories(pages: u64) -> Vec<u8> {
        use wasm_encoder::{
            CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction,
            MemorySection, MemoryType, Module, TypeSection, ValType,
        };
        let mut types = TypeSection::new();
        types.ty().function([], [ValType::I32]);
        let mut memories = MemorySection::new();
        for _ in 0..4 {
            memories.memory(MemoryType {
                minimum: pages,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
        }
        let mut functions = FunctionSection::new();
        functions.function(0);
        let mut body = Function::new([]);
        // Sum of the four memory.grow results: -4 when all are refused.
        for m in 0..4 {
            body.instruction(&Instruction::I32Const(pages as i32));
            body.instruction(&Instruction::MemoryGrow(m));
            if m > 0 {
                body.instruction(&Instruction::I32Add);
            }
        }
        body.instruction(&Instruction::End);
        let mut code = CodeSection::new();
        code.function(&body);
        let mut exports = ExportSection::new();
        exports.export("grow", ExportKind::Func, 0);
        let mut module = Module::new();
        module
            .section(&types)
            .section(&functions)
            .section(&memories)
            .section(&exports)
            .section(&code);
        module.finish()
    }

    fn store(engine: &Engine, limit: u64) -> Store<MemoryLimiter> {
        let mut store = Store::new(engine, MemoryLimiter::new(limit));
        store.limiter(|l| l);
        store
    }

    #[test]
    fn all_memories_of_an_instance_count_against_one_limit() {
        // 4 x 40 MiB fits in 256 MiB at start; growing each by as much
        // again (4 x 80 MiB = 320 MiB) must not.
        let pages = (40 << 20) >> 16;
        let engine = Engine::default();
        let module = Module::new(&engine, four_memories(pages)).unwrap();
        let mut store = store(&engine, 256 << 20);
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        assert_eq!(store.data().memory, 4 * (40 << 20));
        let grow = instance
            .get_typed_func::<(), i32>(&mut store, "grow")
            .unwrap();
        let sum = grow.call(&mut store, ()).unwrap();
        // Two growths fit (240 MiB), the other two are refused (-1 each).
        assert_eq!(sum, 2 * pages as i32 - 2, "sum of old sizes and refusals");
        assert_eq!(store.data().memory, 6 * (40 << 20));
        assert_eq!(store.data().refused(), Some(7 * (40 << 20)));
    }

    #[test]
    fn instantiation_past_the_limit_is_refused() {
        let pages = (100 << 20) >> 16;
        let engine = Engine::default();
        let module = Module::new(&engine, four_memories(pages)).unwrap();
        let mut store = store(&engine, 256 << 20);
        assert!(Instance::new(&mut store, &module, &[]).is_err());
        assert!(store.data().refused().unwrap() > 256 << 20);
    }

    #[test]
    fn tables_are_bounded_together() {
        let mut limiter = MemoryLimiter::new(1 << 30);
        let half = (MAX_TABLE_ELEMENTS / 2) as usize;
        assert!(limiter.table_growing(0, half, None).unwrap());
        assert!(limiter.table_growing(0, half, None).unwrap());
        assert!(!limiter.table_growing(0, 1, None).unwrap());
        let hit = limiter.tables_reached().unwrap();
        assert_eq!(hit.bound, Bound::TableElements);
    }
}
