//! `models` as plugins of 0.1 and 0.2 import it: the same functions, with
//! `params` as those lines have it (no `timeout-ms`), served by the current
//! implementation.

use super::ModelsGrant;
use host_runtime::bindings::older_line_names;
use host_runtime::bindings::orchestrator::stage::models::{self as wit, Host};
use host_runtime::{HasGrant, grant_of};
use wasmtime::component::{ComponentType, Lift, Linker};

/// `params` before 0.3.
#[derive(ComponentType, Lift)]
#[component(record)]
struct Params {
    #[component(name = "max-tokens")]
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    stop: Vec<String>,
}

impl From<Params> for wit::Params {
    fn from(p: Params) -> Self {
        wit::Params {
            max_tokens: p.max_tokens,
            temperature: p.temperature,
            stop: p.stop,
            timeout_ms: None,
        }
    }
}

/// `request` before 0.3.
#[derive(ComponentType, Lift)]
#[component(record)]
struct Request {
    alias: String,
    messages: Vec<wit::Message>,
    params: Params,
}

pub(super) fn link<T: HasGrant<ModelsGrant>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    for name in older_line_names("models") {
        let mut i = linker.instance(&name)?;
        i.func_wrap_async(
            "complete",
            |mut store, (alias, messages, params): (String, Vec<wit::Message>, Params)| {
                Box::new(async move {
                    let s = grant_of(store.data_mut());
                    Ok((Host::complete(s, alias, messages, params.into()).await?,))
                })
            },
        )?;
        i.func_wrap_async("complete-all", |mut store, (requests,): (Vec<Request>,)| {
            Box::new(async move {
                let s = grant_of(store.data_mut());
                let requests = requests
                    .into_iter()
                    .map(|r| wit::Request {
                        alias: r.alias,
                        messages: r.messages,
                        params: r.params.into(),
                    })
                    .collect();
                Ok((Host::complete_all(s, requests).await?,))
            })
        })?;
        i.func_wrap_async(
            "converse",
            |mut store,
             (alias, session, messages, params): (String, String, Vec<wit::Message>, Params)| {
                Box::new(async move {
                    let s = grant_of(store.data_mut());
                    Ok((Host::converse(s, alias, session, messages, params.into()).await?,))
                })
            },
        )?;
    }
    Ok(())
}
