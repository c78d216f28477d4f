//! Host interfaces granted to stages, one module per capability.
//!
//! Each capability has two halves: an app-wide part built once from the
//! pipeline (`*Capability`), and a per-attempt grant (`*Grant`) that lives in
//! the attempt's store and enforces what the manifest allows that stage. The
//! WIT host functions are implemented on the grant, so the check sits in the
//! one place every call passes through.

pub mod artifacts;
pub mod gates;
pub mod kv;
pub mod log;
pub mod models;
pub mod wit_0_1;

use crate::runtime::StageState;
use wasmtime::component::{HasSelf, Linker};

/// Registers every capability's host functions.
pub fn add_to_linker(linker: &mut Linker<StageState>) -> wasmtime::Result<()> {
    use crate::bindings::orchestrator::stage as wit;
    // Each getter runs once per host call: the plugin's heartbeat.
    wit::models::add_to_linker::<StageState, HasSelf<models::ModelsGrant>>(linker, |s| {
        s.beat();
        &mut s.models
    })?;
    wit::log::add_to_linker::<StageState, HasSelf<log::LogGrant>>(linker, |s| {
        s.beat();
        &mut s.log
    })?;
    wit::kv::add_to_linker::<StageState, HasSelf<kv::KvGrant>>(linker, |s| {
        s.beat();
        &mut s.kv
    })?;
    wit::gates::add_to_linker::<StageState, HasSelf<gates::GatesGrant>>(linker, |s| {
        s.beat();
        &mut s.gates
    })?;
    wit::artifacts::add_to_linker::<StageState, HasSelf<artifacts::ArtifactsGrant>>(linker, |s| {
        s.beat();
        &mut s.artifacts
    })?;
    wit::types::add_to_linker::<StageState, HasSelf<StageState>>(linker, |s| s)?;
    // Plugins built against orchestrator:stage 0.1.x.
    wit_0_1::add_to_linker(linker)?;
    Ok(())
}

impl crate::bindings::orchestrator::stage::types::Host for StageState {}
