//! Shared helpers for the integration tests: build the test plugins once,
//! write pipelines into temporary directories, run the real `host` binary.

#![allow(dead_code)]

pub mod http;
pub mod measure;
pub mod model_server;
pub mod runs;
pub mod serve;
pub mod wasm_edit;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the Rust plugins for wasm32-wasip2 (once per test binary; cargo
/// makes it a no-op when nothing changed) and returns the path of `name`.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "hello",
                "-p",
                "faulty",
                "-p",
                "noop",
                "-p",
                "netgrab",
                "-p",
                "triage",
                "-p",
                "discovery",
                "-p",
                "planning",
                "-p",
                "execution",
                "-p",
                "verification",
                "-p",
                "ship",
                "-p",
                "lsl-baseline",
                "-p",
                "lsl-harden",
                "-p",
                "lsl-evaluate",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the test plugins failed");
    });
    let path = target_dir()
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A scratch directory that is removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> Self {
        let dir = target_dir().join("test-scratch").join(format!(
            "{label}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The compiled-component cache shared by the tests (compiling is slow).
pub fn cache_dir() -> PathBuf {
    target_dir().join("test-component-cache")
}

/// Runs `host ARGS` with the shared cache and returns its output.
pub fn host(args: &[&str]) -> Output {
    host_in(&workspace_root(), args)
}

/// A state directory no other invocation uses: one test's results are never
/// reused by another (tests that need shared state pass `--state-dir`).
pub fn private_state_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    target_dir()
        .join("test-scratch")
        .join(format!("state-{}-{n}", std::process::id()))
}

pub fn host_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host"))
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(args)
        .current_dir(cwd)
        .env("HOST_STATE_DIR", private_state_dir())
        .env_remove("RUST_LOG")
        .output()
        .expect("host runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON summary `host run --json` prints as its last line.
pub fn summary(o: &Output) -> serde_json::Value {
    let out = stdout(o);
    let last = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output; stderr:\n{}", stderr(o)));
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "last line is not JSON ({e}): {last}\nstderr:\n{}",
            stderr(o)
        )
    })
}

/// The summary entry of stage `id`.
pub fn stage<'a>(summary: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no stage {id} in {summary}"))
}

/// Starts (or reuses) the project's real local model server
/// (tests/local-llm.sh) and returns its OpenAI-compatible base URL.
pub fn local_llm() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("LOCAL_LLM_URL") {
            return url;
        }
        let tool = workspace_root().join("tests/local-llm.sh");
        let out = Command::new(&tool)
            .arg("start")
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tool.display()));
        assert!(
            out.status.success(),
            "local-llm-server failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap()
            .to_string()
    })
    .clone()
}

/// A virtualenv with real ruff and pytest, installed from PyPI on first use;
/// returns its `bin` directory, to be put first on the host's PATH.
pub fn gate_tools() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let venv = target_dir().join("gate-tools-venv");
        let bin = venv.join("bin");
        if !(bin.join("ruff").is_file() && bin.join("pytest").is_file()) {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(bin.join("pip"))
                    .args(["install", "-q", "ruff==0.14.5", "pytest==8.4.2"])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                ok,
                "installing ruff and pytest into {} failed",
                venv.display()
            );
        }
        bin
    })
    .clone()
}

/// PATH with `first` in front of the current one.
pub fn path_with(first: &Path) -> std::ffi::OsString {
    let mut paths = vec![first.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

/// `host run --quiet MANIFEST` in the background in `state`, its output
/// dropped: for a test that watches it from outside (`host serve`, files).
pub fn quiet_run_in_background(state: &Path, manifest: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["run", "--quiet"])
        .arg(manifest)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
