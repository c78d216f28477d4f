//! Every default and limit the host applies, in one place: the manifest
//! checker resolves stages with them, the runtime and the capabilities
//! enforce them, and the docs quote them.

use std::time::Duration;

/// Largest task (`task`, `task_file`): it is copied into every stage's
/// input and stored with the run.
pub const MAX_TASK_BYTES: u64 = 4 << 20;

/// Default wall-clock limit of one stage attempt.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default largest linear memory of one attempt: all of a component's
/// memories together (a component may have several).
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 << 20;
/// Most table elements of one attempt, all of its tables together (a
/// componentize-py component has some 30,000).
pub const MAX_TABLE_ELEMENTS: u64 = 1 << 20;
/// Default largest total of artifact bytes one attempt may return.
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;
/// Default most log lines one attempt may write.
pub const MAX_LOG_LINES: u64 = 10_000;
/// Default most model calls one attempt may make: a runaway loop in a
/// plugin must not run up an unbounded bill.
pub const MAX_CALLS_PER_ATTEMPT: usize = 1000;
/// Most requests of one `complete-all` batch in flight at once (a server's
/// own `max_concurrent` may allow fewer).
pub const MAX_BATCH_IN_FLIGHT: usize = 16;
/// Distinct refusals (alias, session, reason) one attempt keeps apart;
/// beyond them, refusals of a reason are counted together.
pub const MAX_DISTINCT_REFUSALS: usize = 32;
/// Most gate runs one attempt may ask for: a plugin stuck in a loop must not
/// keep the machine busy running test suites.
pub const MAX_GATE_RUNS_PER_ATTEMPT: usize = 50;
/// Largest checkpoint key and value (the `kv` interface).
pub const MAX_KV_KEY_BYTES: usize = 256;
pub const MAX_KV_VALUE_BYTES: usize = 16 << 20;
/// What one stage of one run may keep in checkpoints, together: keys and
/// values, and how many keys. Distinct keys must not grow the state
/// directory without end.
pub const MAX_KV_STAGE_BYTES: u64 = 64 << 20;
pub const MAX_KV_KEYS: u64 = 10_000;
/// The same over all stages of one run (spawned jobs included): 100 jobs
/// each near their own quota must not make gigabytes.
pub const MAX_KV_RUN_BYTES: u64 = 256 << 20;
pub const MAX_KV_RUN_KEYS: u64 = 100_000;
/// Default of what one read-write attempt's changes may hold (new and
/// changed files' contents, together): above it the attempt fails before a
/// byte of them is read, hashed or stored. A sparse file of terabytes costs
/// a plugin nothing to make; it must cost the host nothing either.
pub const DEFAULT_MAX_CHANGED_BYTES: u64 = 256 << 20;
/// Default most files one read-write attempt may create, change or delete:
/// each is a line of the changeset every later reader loads.
pub const DEFAULT_MAX_CHANGED_FILES: u64 = 10_000;

/// What one output may hold besides artifact bytes (`max_output`): each is
/// stored with the stage and copied into every downstream stage's input.
pub const MAX_ARTIFACTS: usize = 4096;
pub const MAX_ARTIFACT_NAME_BYTES: usize = 255;
pub const MAX_SUMMARY_BYTES: usize = 256 << 10;
pub const MAX_METRICS: usize = 1000;
pub const MAX_METRIC_NAME_BYTES: usize = 128;
pub const MAX_DECISION_BYTES: usize = 128;
/// A plugin's error message is kept up to this many bytes (the rest is cut,
/// saying so): it is stored once per attempt.
pub const MAX_ERROR_BYTES: usize = 64 << 10;

/// Most instances alive at once; a stage attempt is one component instance,
/// so this bounds `max_parallel` (the manifest refuses more).
pub const MAX_CONCURRENT_INSTANCES: u32 = 1000;

/// Default request timeout and retries of a model endpoint.
pub const DEFAULT_MODEL_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MODEL_RETRIES: u32 = 2;

/// Default wall-clock limit of a gate, and bytes of its output kept.
pub const DEFAULT_GATE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_GATE_OUTPUT: usize = 64 << 10;

/// Default most jobs a run may spawn, and how deep spawns may nest.
pub const DEFAULT_MAX_SPAWNED: usize = 100;
pub const DEFAULT_MAX_SPAWN_DEPTH: u32 = 2;
