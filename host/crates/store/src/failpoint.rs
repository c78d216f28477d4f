//! Crash injection for tests: `HOST_FAILPOINT=NAME[@N]` aborts the process
//! the N-th time (default first) execution reaches `hit(NAME)`, as a power
//! cut would, so tests can kill the host at exact points (before or after a
//! commit) rather than at the mercy of timing.

#[cfg(feature = "failpoints")]
use std::sync::OnceLock;
#[cfg(feature = "failpoints")]
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "failpoints")]
fn target() -> Option<&'static (String, u64)> {
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let spec = std::env::var("HOST_FAILPOINT").ok()?;
            let (name, n) = match spec.split_once('@') {
                Some((name, n)) => (name.to_string(), n.parse().ok()?),
                None => (spec, 1),
            };
            Some((name, n))
        })
        .as_ref()
}

/// Aborts here if `HOST_FAILPOINT` names this point (builds with the
/// `failpoints` feature only; otherwise it compiles to nothing).
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    if let Some((target, n)) = target()
        && target == name
        && COUNT.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        eprintln!("failpoint {name}@{n}: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
