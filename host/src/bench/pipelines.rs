//! End-to-end figures from the real `host` binary in a child process: a big
//! DAG of no-op stages, and resuming a run with many finished stages.

use super::stats::Summary;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What one child `host` process cost.
#[derive(Debug, Clone, Copy)]
pub struct ProcessFigures {
    pub elapsed: Duration,
    /// Peak resident memory, when the child reported it.
    pub peak_kib: Option<u64>,
    pub exit: i32,
}

/// The AI-coding run: its process figures and how it ended.
pub struct AiCodingFigures {
    pub figures: ProcessFigures,
    pub ended: &'static str,
}

/// Copies the regular files and directories under `from` into `to`.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

pub struct Bench<'a> {
    pub host: &'a Path,
    pub noop: &'a Path,
    pub faulty: &'a Path,
    pub dir: &'a Path,
    pub cache_dir: &'a Path,
}

/// A pipeline of `stages` no-op stages in layers of `width` (each stage
/// depends on one stage of the layer before), `parallel` running at once,
/// plus an optional last stage that always fails.
pub fn dag_manifest(
    noop: &Path,
    stages: usize,
    width: usize,
    parallel: usize,
    failing_tail: bool,
) -> String {
    let mut text = format!(
        "[pipeline]\nname = \"bench-dag\"\ntask = \"nothing\"\nmax_parallel = {parallel}\n\n\
         [plugins.noop]\nwasm = {:?}\n",
        noop.display().to_string()
    );
    let width = width.max(1);
    for i in 0..stages {
        let _ = write!(text, "\n[[stage]]\nid = \"s{i:05}\"\nplugin = \"noop\"\n");
        if i >= width {
            let _ = writeln!(text, "after = [\"s{:05}\"]", i - width);
        }
    }
    if failing_tail {
        let _ = write!(
            text,
            "\n[[stage]]\nid = \"tail\"\nplugin = \"noop\"\nconfig = {{ fail = true }}\n"
        );
        if stages > 0 {
            let _ = writeln!(text, "after = [\"s{:05}\"]", stages - 1);
        }
    }
    text
}

impl Bench<'_> {
    pub(super) fn host(&self, state: &Path, args: &[&str]) -> Result<ProcessFigures, String> {
        let started = Instant::now();
        let out = Command::new(self.host)
            .args(args)
            .arg("--state-dir")
            .arg(state)
            .arg("--cache-dir")
            .arg(self.cache_dir)
            .env("HOST_REPORT_PEAK_MEMORY", "1")
            .output()
            .map_err(|e| format!("cannot start {}: {e}", self.host.display()))?;
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let peak_kib = stderr
            .lines()
            .find_map(|l| l.strip_prefix("peak memory: "))
            .and_then(|v| v.trim_end_matches(" KiB").parse().ok());
        Ok(ProcessFigures {
            elapsed,
            peak_kib,
            exit: out.status.code().unwrap_or(-1),
        })
    }

    pub(super) fn write_manifest(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Runs a DAG of `stages` no-op stages end to end with durable state,
    /// in a state directory of its own.
    pub fn dag(
        &self,
        stages: usize,
        width: usize,
        parallel: usize,
    ) -> Result<ProcessFigures, String> {
        self.run_fresh(
            &format!("dag-{stages}-{parallel}"),
            &dag_manifest(self.noop, stages, width, parallel, false),
        )
    }

    /// Runs the pipeline `text` once, as `name`, in a state directory of
    /// its own (removed after); a run that does not succeed is an error.
    fn run_fresh(&self, name: &str, text: &str) -> Result<ProcessFigures, String> {
        let manifest = self.write_manifest(&format!("{name}.toml"), text)?;
        let state = self.dir.join(format!("{name}-state"));
        let _ = std::fs::remove_dir_all(&state);
        let figures = self.host(&state, &["run", "--json", &manifest.to_string_lossy()]);
        let _ = std::fs::remove_dir_all(&state);
        let figures = figures?;
        if figures.exit != 0 {
            return Err(format!(
                "the {name} run failed with exit code {}",
                figures.exit
            ));
        }
        Ok(figures)
    }

    /// Leaves a run with `stages` finished stages and one failed one, then
    /// resumes it `repeats` times (the failing stage fails again each time,
    /// so every resume starts from the same state).
    pub fn resume(&self, stages: usize, repeats: usize) -> Result<Summary, String> {
        let manifest = self.write_manifest(
            &format!("resume-{stages}.toml"),
            &dag_manifest(self.noop, stages, 4, 2, true),
        )?;
        let state = self.dir.join(format!("resume-{stages}-state"));
        let first = self.host(&state, &["run", "--json", &manifest.to_string_lossy()])?;
        if first.exit != 1 {
            return Err(format!(
                "expected the seeded run to fail its last stage (exit 1), got exit {}",
                first.exit
            ));
        }
        let run_id = self.only_run(&state)?;
        let mut samples = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let f = self.host(&state, &["resume", "--json", &run_id])?;
            if f.exit != 1 {
                return Err(format!("resume exited with {}, expected 1", f.exit));
            }
            samples.push(f.elapsed);
        }
        Summary::of(&samples).ok_or_else(|| "no repeats".into())
    }

    /// Runs the AI-coding example as a user would (its task routes to
    /// MEDIUM risk: planning, execution, verification) on a fresh copy of
    /// its project, both aliases pointed at `model_url`.
    pub fn ai_coding(&self, model_url: Option<&str>) -> Result<AiCodingFigures, String> {
        let example = Path::new("examples/ai-coding");
        let manifest = example.join("pipeline.toml");
        if !manifest.is_file() {
            return Err(format!(
                "{} not found: run `host bench ai-coding` from the repository root",
                manifest.display()
            ));
        }
        let workspace = self.dir.join("ai-coding-workspace");
        let _ = std::fs::remove_dir_all(&workspace);
        copy_tree(&example.join("project"), &workspace)
            .map_err(|e| format!("cannot copy the example project: {e}"))?;
        let url = model_url
            .map(str::to_string)
            .or_else(|| std::env::var("LOCAL_LLM_URL").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8088/v1".into());
        let state = self.dir.join("ai-coding-state");
        let _ = std::fs::remove_dir_all(&state);
        let large = format!("large=openai:smollm2@{url}");
        let small = format!("small=openai:smollm2@{url}");
        let figures = self.host(
            &state,
            &[
                "run",
                "--json",
                &manifest.to_string_lossy(),
                "--workspace",
                &workspace.to_string_lossy(),
                "--model",
                &large,
                "--model",
                &small,
            ],
        )?;
        let ended = match figures.exit {
            0 => "succeeded",
            2 => "escalated",
            3 => "escalated, gates failing",
            code => {
                return Err(format!(
                    "the AI-coding run ended with exit code {code} (is a model server at {url}?)"
                ));
            }
        };
        Ok(AiCodingFigures { figures, ended })
    }

    /// Three stages stream 60 MiB each; a fourth, after them, reads 1 KiB
    /// of one (a 0.3 plugin in a 32 MiB memory limit) or, as `eager`, is a
    /// plugin of 0.2 (handed all 180 MiB). Returns the host's figures.
    pub fn lazy_inputs(&self, eager: Option<&Path>) -> Result<ProcessFigures, String> {
        let mut text = format!(
            "[pipeline]\nname = \"bench-lazy\"\ntask = \"t\"\nmax_parallel = 1\n\n\
             [plugins.faulty]\nwasm = {:?}\n",
            self.faulty.display().to_string()
        );
        for p in ["p1", "p2", "p3"] {
            let _ = write!(
                text,
                "\n[[stage]]\nid = \"{p}\"\nplugin = \"faulty\"\n\
                 config = {{ behaviour = {{ stream-big = {{ name = \"{p}.bin\", bytes = {} }} }} }}\n",
                60u64 << 20
            );
        }
        let reader = match eager {
            None => "plugin = \"faulty\"\nmemory = \"32MiB\"\n\
                     config = { behaviour = { read-range = { stage = \"p2\", name = \"p2.bin\", offset = 1000, length = 1024 } } }\n"
                .to_string(),
            Some(old) => format!("plugin = {:?}\n", old.display().to_string()),
        };
        let _ = write!(
            text,
            "\n[[stage]]\nid = \"reader\"\nafter = [\"p1\", \"p2\", \"p3\"]\n{reader}"
        );
        let label = if eager.is_some() { "eager" } else { "lazy" };
        self.run_fresh(&format!("inputs-{label}"), &text)
    }

    fn only_run(&self, state: &Path) -> Result<String, String> {
        let out = Command::new(self.host)
            .args(["runs", "--json", "--state-dir"])
            .arg(state)
            .output()
            .map_err(|e| e.to_string())?;
        // One JSON object per line, one line per run.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let first = stdout.lines().next().unwrap_or_default();
        let run: serde_json::Value = serde_json::from_str(first)
            .map_err(|e| format!("`host runs --json` printed no JSON: {e}"))?;
        run.get("id")
            .and_then(|id| id.as_str())
            .map(str::to_string)
            .ok_or_else(|| "the seeded run is not listed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dag_manifest_is_a_valid_pipeline() {
        let text = dag_manifest(Path::new("/x/noop.wasm"), 10, 3, 2, true);
        let dir = std::env::temp_dir().join(format!("bench-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("noop.wasm"), b"\0asm").unwrap();
        let text = text.replace("/x/noop.wasm", &dir.join("noop.wasm").to_string_lossy());
        let p = host_manifest::parse(&dir.join("p.toml"), text).expect("valid manifest");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(p.stages.len(), 11);
        let after = |id: &str| -> Vec<String> {
            p.stages
                .iter()
                .find(|s| s.id == id)
                .unwrap()
                .deps()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(after("s00005"), vec!["s00002".to_string()]);
        assert!(after("s00002").is_empty());
        assert_eq!(after("tail"), vec!["s00009".to_string()]);
    }
}
