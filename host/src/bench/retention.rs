//! What a state directory grows to after many runs of a small pipeline
//! (a stage returning an artifact of its own per run, two stages after it),
//! without retention and with `[pipeline] retention = { keep = 20 }`, both
//! run in the same minutes; then `host gc --keep 20` on the one without.

use super::pipelines::Bench;
use super::stats::Summary;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs kept by the retention and by `host gc`.
pub const KEEP: usize = 20;

pub struct Grown {
    pub database: u64,
    pub all: Summary,
    pub last_tenth: Summary,
}

pub struct RetentionFigures {
    pub without: Grown,
    pub with: Grown,
    /// The database of `without` after `host gc --keep KEEP`.
    pub collected: u64,
    pub gc_time: Duration,
}

/// A task of some 4 KB, different each run: its echo is an artifact no
/// other run shares, so nothing is deduplicated or served from the cache.
fn manifest(b: &Bench<'_>, run: usize, retention: bool) -> String {
    let task = format!("run {run}: {}", "the quick brown fox ".repeat(200));
    format!(
        "[pipeline]\nname = \"bench-retention\"\ntask = {task:?}\n{}\n\
         [plugins.faulty]\nwasm = {:?}\n\n[plugins.noop]\nwasm = {:?}\n\n\
         [[stage]]\nid = \"echo\"\nplugin = \"faulty\"\nconfig = {{ behaviour = \"succeed\" }}\n\n\
         [[stage]]\nid = \"check\"\nplugin = \"noop\"\nafter = [\"echo\"]\n\n\
         [[stage]]\nid = \"report\"\nplugin = \"noop\"\nafter = [\"check\"]\n",
        if retention {
            format!("retention = {{ keep = {KEEP} }}\n")
        } else {
            String::new()
        },
        b.faulty.display().to_string(),
        b.noop.display().to_string(),
    )
}

impl Bench<'_> {
    pub fn retention(&self, runs: usize) -> Result<RetentionFigures, String> {
        let runs = runs.max(KEEP + 1);
        let states = [
            self.dir.join("retention-without"),
            self.dir.join("retention-with"),
        ];
        let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for state in &states {
            let _ = std::fs::remove_dir_all(state);
        }
        // Interleaved, so that both see the same disk and CPU.
        for run in 0..runs {
            for (i, state) in states.iter().enumerate() {
                let path = self
                    .write_manifest(&format!("retention-{i}.toml"), &manifest(self, run, i == 1))?;
                let f = self.host(state, &["run", "--json", &path.to_string_lossy()])?;
                if f.exit != 0 {
                    return Err(format!("run {run} exited with {}", f.exit));
                }
                times[i].push(f.elapsed);
            }
        }
        let grown = |i: usize| -> Result<Grown, String> {
            let tenth = (runs / 10).max(1);
            Ok(Grown {
                database: database_bytes(&states[i]),
                all: Summary::of(&times[i]).ok_or("no runs")?,
                last_tenth: Summary::of(&times[i][runs - tenth..]).ok_or("no runs")?,
            })
        };
        let (without, with) = (grown(0)?, grown(1)?);
        let started = Instant::now();
        let keep = KEEP.to_string();
        let f = self.host(&states[0], &["gc", "--keep", &keep])?;
        let gc_time = started.elapsed();
        if f.exit != 0 {
            return Err(format!("host gc exited with {}", f.exit));
        }
        let collected = database_bytes(&states[0]);
        for state in &states {
            let _ = std::fs::remove_dir_all(state);
        }
        Ok(RetentionFigures {
            without,
            with,
            collected,
            gc_time,
        })
    }
}

fn database_bytes(state: &Path) -> u64 {
    std::fs::metadata(state.join(host_store::DB_FILE)).map_or(0, |m| m.len())
}
