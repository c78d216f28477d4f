//! The host's interfaces under their orchestrator:stage 0.1 names, so
//! plugins built against 0.1.x keep running beside 0.2 ones.
//!
//! 0.2.0 changed only `plugin-info`; every function a 0.1 plugin imports has
//! the same signature in 0.2, and component-model types match by structure,
//! not by package. So each 0.1 function is the 0.2 implementation registered
//! under the 0.1 instance name (a 0.1.0 plugin resolves to these too: the
//! linker matches semver-compatible names). What differs, `runner.info`, is
//! handled where plugins are called (`runtime::world`).

use crate::bindings::orchestrator::stage::{artifacts, gates, kv, log, models};
use crate::runtime::StageState;
use wasmtime::component::Linker;

/// The newest 0.1 patch: its name covers every 0.1.x import.
const VERSION: &str = "0.1.1";

fn name(iface: &str) -> String {
    format!("{}/{iface}@{VERSION}", crate::bindings::WIT_PACKAGE)
}

type Message = models::Message;
type Params = models::Params;

pub fn add_to_linker(linker: &mut Linker<StageState>) -> wasmtime::Result<()> {
    // Types only: an instance with nothing in it, as bindgen makes for 0.2.
    linker.instance(&name("types"))?;

    let mut i = linker.instance(&name("models"))?;
    i.func_wrap_async(
        "complete",
        |mut store, (alias, messages, params): (String, Vec<Message>, Params)| {
            Box::new(async move {
                let s = store.data_mut();
                s.beat();
                Ok((models::Host::complete(&mut s.models, alias, messages, params).await?,))
            })
        },
    )?;
    i.func_wrap_async(
        "complete-all",
        |mut store, (requests,): (Vec<models::Request>,)| {
            Box::new(async move {
                let s = store.data_mut();
                s.beat();
                Ok((models::Host::complete_all(&mut s.models, requests).await?,))
            })
        },
    )?;
    i.func_wrap_async(
        "converse",
        |mut store, (alias, session, messages, params): (String, String, Vec<Message>, Params)| {
            Box::new(async move {
                let s = store.data_mut();
                s.beat();
                Ok(
                    (
                        models::Host::converse(&mut s.models, alias, session, messages, params)
                            .await?,
                    ),
                )
            })
        },
    )?;

    let mut i = linker.instance(&name("log"))?;
    i.func_wrap_async(
        "log",
        |mut store, (level, message): (log::Level, String)| {
            Box::new(async move {
                let s = store.data_mut();
                s.beat();
                log::Host::log(&mut s.log, level, message).await
            })
        },
    )?;
    i.func_wrap_async(
        "progress",
        |mut store, (done, total, message): (u64, u64, String)| {
            Box::new(async move {
                let s = store.data_mut();
                s.beat();
                log::Host::progress(&mut s.log, done, total, message).await
            })
        },
    )?;

    let mut i = linker.instance(&name("kv"))?;
    i.func_wrap_async("get", |mut store, (key,): (String,)| {
        Box::new(async move {
            let s = store.data_mut();
            s.beat();
            Ok((kv::Host::get(&mut s.kv, key).await?,))
        })
    })?;
    i.func_wrap_async("set", |mut store, (key, value): (String, Vec<u8>)| {
        Box::new(async move {
            let s = store.data_mut();
            s.beat();
            Ok((kv::Host::set(&mut s.kv, key, value).await?,))
        })
    })?;
    i.func_wrap_async("delete", |mut store, (key,): (String,)| {
        Box::new(async move {
            let s = store.data_mut();
            s.beat();
            kv::Host::delete(&mut s.kv, key).await
        })
    })?;

    let mut i = linker.instance(&name("gates"))?;
    i.func_wrap_async("run", |mut store, (gate,): (String,)| {
        Box::new(async move {
            let s = store.data_mut();
            s.beat();
            Ok((gates::Host::run(&mut s.gates, gate).await?,))
        })
    })?;

    let mut i = linker.instance(&name("artifacts"))?;
    i.func_wrap_async(
        "append",
        |mut store, (artifact, media_type, bytes): (String, String, Vec<u8>)| {
            Box::new(async move {
                let s = store.data_mut();
                s.beat();
                Ok(
                    (
                        artifacts::Host::append(&mut s.artifacts, artifact, media_type, bytes)
                            .await?,
                    ),
                )
            })
        },
    )?;
    Ok(())
}
