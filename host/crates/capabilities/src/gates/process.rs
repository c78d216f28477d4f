//! Running one gate as a real subprocess in its own process group, with a
//! scrubbed environment, a deadline and bounded output.

use super::capture::HeadTail;
use host_manifest::GateSpec;
use host_vocab::{GateOutcome, GateRun};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How long to keep reading output after the process group is gone: a
/// grandchild that escaped the group must not hold the gate open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs `gate` in `workspace` and reports how it went; never fails itself.
pub async fn run_gate(gate: &GateSpec, workspace: &Path) -> GateRun {
    let started = Instant::now();
    let finish = |outcome: GateOutcome, passed: bool, capture: &HeadTail| GateRun {
        gate: gate.name.clone(),
        passed,
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
        output: capture.text(),
        output_bytes: capture.total(),
    };
    let empty = HeadTail::new(0);
    let dir = workspace.join(&gate.dir);
    if !dir.is_dir() {
        let message = format!("working directory {} does not exist", dir.display());
        return finish(GateOutcome::CannotStart { message }, false, &empty);
    }
    let Some((program, args)) = gate.command.split_first() else {
        let message = "empty command".to_string();
        return finish(GateOutcome::CannotStart { message }, false, &empty);
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for name in &gate.env {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let outcome = GateOutcome::NotFound {
                program: program.clone(),
            };
            return finish(outcome, false, &empty);
        }
        Err(e) => {
            let message = format!("{program}: {e}");
            return finish(GateOutcome::CannotStart { message }, false, &empty);
        }
    };
    // Killed on every way out of here, including this future being dropped
    // (the stage's own deadline): nothing the gate started outlives it.
    let group = child.id().map(|id| ProcessGroup(id as i32));
    let capture = Arc::new(Mutex::new(HeadTail::new(gate.max_output)));
    let readers = [
        child.stdout.take().map(|s| drain(s, capture.clone())),
        child.stderr.take().map(|s| drain(s, capture.clone())),
    ];
    let waited = tokio::time::timeout(gate.timeout, child.wait()).await;
    if let Some(group) = &group {
        group.kill();
    }
    let outcome = match waited {
        Err(_) => {
            let _ = child.wait().await;
            GateOutcome::TimedOut {
                after_ms: gate.timeout.as_millis() as u64,
            }
        }
        Ok(Err(e)) => GateOutcome::CannotStart {
            message: format!("waiting for {program}: {e}"),
        },
        Ok(Ok(status)) => match (status.code(), status.signal()) {
            (Some(code), _) => GateOutcome::Exited { code },
            (None, Some(signal)) => GateOutcome::Signalled { signal },
            (None, None) => GateOutcome::CannotStart {
                message: "no exit status".into(),
            },
        },
    };
    for reader in readers.into_iter().flatten() {
        if tokio::time::timeout(DRAIN_GRACE, reader).await.is_err() {
            tracing::warn!(gate = %gate.name, "gate output still open after its process group was killed");
        }
    }
    let passed =
        matches!(outcome, GateOutcome::Exited { code } if gate.pass_exit_codes.contains(&code));
    let capture = capture.lock().unwrap_or_else(|p| p.into_inner());
    finish(outcome, passed, &capture)
}

fn drain(
    mut pipe: impl AsyncRead + Unpin + Send + 'static,
    capture: Arc<Mutex<HeadTail>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => capture
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(&buf[..n]),
            }
        }
    })
}

/// The gate's process group (its id is the gate's pid: it was spawned as a
/// group leader). Linux does not reuse a pid while a group of that id has
/// members, so a late kill reaches only the gate's own stragglers.
struct ProcessGroup(i32);

impl ProcessGroup {
    fn kill(&self) {
        // SAFETY: killpg only sends a signal; a group that is already gone
        // is ESRCH, which is fine to ignore.
        unsafe {
            libc::killpg(self.0, libc::SIGKILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
