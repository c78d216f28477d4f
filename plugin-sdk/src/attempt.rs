//! Why this attempt is running: the first, a retry after a failure, a
//! resume after the host stopped mid-attempt, or a loop's pass. A stage that
//! keeps `kv` checkpoints reads them back on a resume; one that must not
//! repeat an effect (a message sent, a ticket filed) can check first.

use crate::bindings::orchestrator::stage::attempt as wit;
// In a component the host's own functions; anywhere else (a plugin's
// `cargo test`) the test host installed on the thread (crate::testing).
#[cfg(target_arch = "wasm32")]
use crate::bindings::orchestrator::stage::attempt as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::attempt as host;

pub use wit::AttemptKind;

/// What came before this attempt (host 0.2.1 and later).
pub fn kind() -> AttemptKind {
    host::kind()
}
