//! `host dev`'s reaction time: from a changed component on disk to the
//! re-run stage starting, read from the dev process's own JSON events.

use super::stats::Summary;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The component with a custom section appended: same behaviour, new
/// bytes, so neither the compile cache nor the result cache knows it.
fn variant(component: &[u8], n: u32) -> Vec<u8> {
    let name = b"bench-variant";
    let payload = n.to_le_bytes();
    let mut section = Vec::new();
    section.push(name.len() as u8);
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = component.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8);
    out.extend(section);
    out
}

pub fn measure(host: &Path, noop: &Path, dir: &Path, changes: usize) -> Result<Summary, String> {
    let original = std::fs::read(noop).map_err(|e| format!("{}: {e}", noop.display()))?;
    let wasm = dir.join("dev-stage.wasm");
    std::fs::write(&wasm, &original).map_err(|e| e.to_string())?;
    let manifest = dir.join("dev.toml");
    std::fs::write(
        &manifest,
        "[pipeline]\nname = \"bench-dev\"\ntask = \"t\"\n\n[plugins.x]\nwasm = \"dev-stage.wasm\"\n\n\
         [[stage]]\nid = \"x\"\nplugin = \"x\"\n",
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new(host)
        .args(["--state-dir"])
        .arg(dir.join("dev-state"))
        .args(["--cache-dir"])
        .arg(dir.join("component-cache"))
        .args(["dev", "--json", "--debounce", "20ms", "--runs"])
        .arg((changes + 1).to_string())
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start host dev: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("\"event\":\"stage-started\"") && tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    let wait = |what: &str| {
        rx.recv_timeout(Duration::from_secs(60))
            .map_err(|_| format!("no stage started {what} within 60 s"))
    };
    wait("in the first run")?;
    let mut samples = Vec::with_capacity(changes);
    for n in 0..changes {
        // Let the dev loop settle into watching.
        std::thread::sleep(Duration::from_millis(300));
        let tmp = dir.join("dev-stage.wasm.tmp");
        std::fs::write(&tmp, variant(&original, n as u32)).map_err(|e| e.to_string())?;
        let changed = Instant::now();
        std::fs::rename(&tmp, &wasm).map_err(|e| e.to_string())?;
        let started = wait("after a change")?;
        samples.push(started.saturating_duration_since(changed));
    }
    let _ = child.wait();
    Summary::of(&samples).ok_or_else(|| "no changes".into())
}
