//! Durable checkpoints, private to this stage in this run: what a long stage
//! saves here survives a crash and is there when the run is resumed.

// In a component the host's own functions; anywhere else (a plugin's
// `cargo test`) the test host installed on the thread (crate::testing).
#[cfg(target_arch = "wasm32")]
use crate::bindings::orchestrator::stage::kv as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::kv as host;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a checkpoint could not be saved or read back.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("the host refused to store '{key}': {reason}")]
    Refused { key: String, reason: String },
    #[error("checkpoint '{key}' is not valid JSON for this type: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode checkpoint '{key}': {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<KvError> for crate::StageError {
    fn from(e: KvError) -> Self {
        crate::StageError::Fatal(e.to_string())
    }
}

pub fn get(key: &str) -> Option<Vec<u8>> {
    host::get(key)
}

pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    host::set(key, value).map_err(|reason| KvError::Refused {
        key: key.to_string(),
        reason,
    })
}

/// The keys of this stage's checkpoints that start with `prefix` ("" for
/// all), in byte order (host 0.2.2 and later).
pub fn keys(prefix: &str) -> Vec<String> {
    host::keys(prefix)
}

pub fn delete(key: &str) {
    host::delete(key)
}

/// Reads a JSON checkpoint saved with [`save`].
pub fn load<T: DeserializeOwned>(key: &str) -> Result<Option<T>, KvError> {
    match get(key) {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| KvError::Decode {
                key: key.to_string(),
                source,
            }),
    }
}

/// Saves `value` as a JSON checkpoint under `key`.
pub fn save<T: Serialize>(key: &str, value: &T) -> Result<(), KvError> {
    let bytes = serde_json::to_vec(value).map_err(|source| KvError::Encode {
        key: key.to_string(),
        source,
    })?;
    set(key, &bytes)
}
