//! The Large-Small-Large experiment's shared logic, used by the
//! `lsl-baseline`, `lsl-harden` and `lsl-evaluate` stage plugins: one
//! implementation of the dataset, the scorer, evaluation and the optimizer.

pub mod candidate;
pub mod dataset;
pub mod evaluate;
pub mod optimizer;
pub mod scoring;
pub mod stage;
