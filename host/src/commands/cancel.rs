//! `host cancel RUN_ID`: asks the process running a run to stop it (SIGTERM);
//! that process records its running stages as interrupted and leaves the
//! run resumable.

use super::{Exit, Failure, Globals, Outcome, parse_duration};
use host::store::RunStatus;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct CancelArgs {
    /// The run to stop (see `host runs`).
    run_id: String,
    /// How long to wait for the run to stop.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    wait: Duration,
}

pub async fn cancel(globals: &Globals, args: CancelArgs) -> Outcome {
    let (run_id, wait) = (args.run_id.as_str(), args.wait);
    let (store, run) = globals.run_store(run_id)?;
    // Read through the store, a run whose process is gone is interrupted.
    if run.status != RunStatus::Running {
        return Err(Failure::Message(
            Exit::InvalidInput,
            format!(
                "run {run_id} is not running ({}); nothing to cancel",
                run.status.as_str()
            ),
        ));
    }
    let Ok(pid) = i32::try_from(run.owner.pid) else {
        return Err(Failure::host(format!(
            "run {run_id} records an impossible pid {}",
            run.owner.pid
        )));
    };
    // SAFETY: kill only sends a signal; reading the run as running checked
    // (`Owner::is_alive`) that the pid belongs
    // to the host process that owns the run.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(Failure::host(format!(
            "cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        )));
    }
    eprintln!("asked process {pid} to stop run {run_id}");
    let started = Instant::now();
    while started.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = store.run(run_id)?;
        if r.status != RunStatus::Running {
            println!(
                "run {run_id} is {}; `host resume {run_id}` continues it",
                r.status.as_str()
            );
            return Ok(Exit::Success);
        }
    }
    Err(Failure::Message(
        Exit::HostError,
        format!(
            "run {run_id} is still stopping after {:.1}s",
            wait.as_secs_f64()
        ),
    ))
}
