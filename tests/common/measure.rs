//! Running `host` and measuring what it cost the machine: its peak resident
//! memory (from the kernel's account of that one child, `wait4`), and the
//! size of a state directory's database.

use super::cache_dir;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `host --state-dir STATE ARGS`, and its peak RSS in bytes.
// Reaped by wait4 below, which also reports the child's own peak memory
// (Child::wait would not).
#[allow(clippy::zombie_processes)]
pub fn host_measured(state: &Path, args: &[&str]) -> (Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
        .arg("--cache-dir")
        .arg(cache_dir())
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .current_dir(super::workspace_root())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("host starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not waited for yet; both pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    // Linux reports ru_maxrss in KiB.
    (output, usage.ru_maxrss as u64 * 1024)
}

/// Bytes of the state directory's database.
pub fn database_bytes(state: &Path) -> u64 {
    std::fs::metadata(state.join("state.redb")).map_or(0, |m| m.len())
}
