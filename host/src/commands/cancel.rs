//! `host cancel RUN_ID`: asks the process running a run to stop it (SIGTERM);
//! that process records its running stages as interrupted and leaves the
//! run resumable.

use super::{Exit, Globals, report_store_error};
use host::store::RunStatus;
use std::time::{Duration, Instant};

pub async fn cancel(globals: &Globals, run_id: &str, wait: Duration) -> Exit {
    let store = match globals.open_store(None) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let run = match store.run(run_id) {
        Ok(r) => r,
        Err(e) => return report_store_error(&e),
    };
    if run.status != RunStatus::Running || !run.owner.is_alive() {
        eprintln!(
            "run {run_id} is not running ({}); nothing to cancel",
            run.status.as_str()
        );
        return Exit::InvalidInput;
    }
    let Ok(pid) = i32::try_from(run.owner.pid) else {
        eprintln!(
            "error: run {run_id} records an impossible pid {}",
            run.owner.pid
        );
        return Exit::HostError;
    };
    // SAFETY: kill only sends a signal; `is_alive` checked the pid belongs
    // to the host process that owns the run.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        eprintln!(
            "error: cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        );
        return Exit::HostError;
    }
    eprintln!("asked process {pid} to stop run {run_id}");
    let started = Instant::now();
    while started.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match store.run(run_id) {
            Ok(r) if r.status != RunStatus::Running => {
                println!(
                    "run {run_id} is {}; `host resume {run_id}` continues it",
                    r.status.as_str()
                );
                return Exit::Success;
            }
            Ok(_) => {}
            Err(e) => return report_store_error(&e),
        }
    }
    eprintln!("run {run_id} is still stopping after {wait:?}");
    Exit::HostError
}
