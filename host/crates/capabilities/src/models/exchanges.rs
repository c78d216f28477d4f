//! Where an answer comes from besides the provider: a recording of an earlier
//! run (`--replay`), or the response cache (opt-in per model). And where
//! every exchange goes with `--record`.

use crate::providers::{ChatRequest, ChatResponse};
use host_store::{RecordingKey, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How this run treats recordings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExchangeMode {
    /// Store every request and response of this run.
    pub record: bool,
    /// Answer from this run's recordings instead of the providers.
    pub replay_from: Option<String>,
}

/// One recorded request and its answer.
#[derive(Serialize, Deserialize)]
struct Exchange {
    alias: String,
    request: ChatRequest,
    response: ChatResponse,
}

pub struct Exchanges {
    store: Arc<Store>,
    mode: ExchangeMode,
    /// (stage, request hash) -> identical requests seen so far: the n-th
    /// identical request is answered by the n-th recorded answer.
    seen: Mutex<HashMap<(String, String), u32>>,
}

/// Identifies a request independently of the endpoint serving it, so a
/// replay works with the provider unreachable or overridden.
pub fn request_hash(alias: &str, request: &ChatRequest) -> String {
    let material = serde_json::json!({ "alias": alias, "request": request });
    blake3::hash(material.to_string().as_bytes())
        .to_hex()
        .to_string()
}

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

impl Exchanges {
    pub fn new(store: Arc<Store>, mode: ExchangeMode) -> Self {
        Exchanges {
            store,
            mode,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn mode(&self) -> &ExchangeMode {
        &self.mode
    }

    /// The 0-based occurrence of this request in this stage.
    pub fn occurrence(&self, stage: &str, hash: &str) -> u32 {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let n = seen
            .entry((stage.to_string(), hash.to_string()))
            .or_insert(0);
        let this = *n;
        *n += 1;
        this
    }

    /// The recorded answer, when replaying; `Err` names what is missing.
    pub fn replayed(
        &self,
        stage: &str,
        hash: &str,
        n: u32,
    ) -> Option<Result<ChatResponse, String>> {
        let from = self.mode.replay_from.as_deref()?;
        let key = RecordingKey {
            run: from,
            stage,
            request: hash,
            n,
        };
        let found = match block(|| self.store.recording(key)) {
            Ok(found) => found,
            Err(e) => return Some(Err(format!("cannot read recordings of run {from}: {e}"))),
        };
        Some(match found {
            None => Err(format!(
                "replay of run {from}: stage '{stage}' sent a request that run {from} did not record \
                 (request {}, occurrence {n}); nothing is sent to the provider during a replay",
                &hash[..16]
            )),
            Some(bytes) => serde_json::from_slice::<Exchange>(&bytes)
                .map(|e| e.response)
                .map_err(|e| format!("the recording of run {from} is unreadable: {e}")),
        })
    }

    /// Stores the exchange when recording; a failure to record is logged,
    /// never passed to the plugin.
    pub fn record(
        &self,
        run: &str,
        stage: &str,
        (hash, n): (&str, u32),
        alias: &str,
        request: &ChatRequest,
        response: &ChatResponse,
    ) {
        if !self.mode.record {
            return;
        }
        let exchange = Exchange {
            alias: alias.to_string(),
            request: request.clone(),
            response: response.clone(),
        };
        let bytes = serde_json::to_vec(&exchange).unwrap_or_default();
        let key = RecordingKey {
            run,
            stage,
            request: hash,
            n,
        };
        if let Err(e) = block(|| self.store.record_exchange(key, &bytes)) {
            tracing::warn!(%stage, "cannot record a model exchange: {e}");
        }
    }

    pub fn cached(&self, key: &str) -> Option<ChatResponse> {
        let bytes = block(|| self.store.cached_response(key)).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn cache(&self, key: &str, response: &ChatResponse) {
        let bytes = serde_json::to_vec(response).unwrap_or_default();
        if let Err(e) = block(|| self.store.cache_response(key, &bytes)) {
            tracing::warn!("cannot cache a model response: {e}");
        }
    }
}
