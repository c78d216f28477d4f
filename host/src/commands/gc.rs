//! `host gc`: finished runs that are no longer needed removed from the
//! state directory, with everything only they referenced (records, blobs,
//! attempt logs, the run's copy of the workspace), then the database
//! compacted so the space goes back to the disk.

use super::{Exit, Failure, Globals, Outcome};
use host::store::Collection;
use std::path::Path;

#[derive(clap::Args)]
pub struct GcArgs {
    /// Runs to remove by id (finished ones only).
    runs: Vec<String>,
    /// Keep this many most recent finished runs; remove the older ones.
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
    /// Remove finished runs started longer ago than this (`30d`, `12h`, `2w`).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<u64>,
    /// Say what would be removed and freed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave the database file as large as it is (removed records' space is
    /// reused by later runs instead of given back).
    #[arg(long)]
    no_compact: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// An age as `N` followed by `m`, `h`, `d` or `w`, in milliseconds.
fn parse_age(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not an age like 30d, 12h or 2w"))?;
    let minute = 60_000u64;
    let per = match unit {
        "m" => minute,
        "h" => 60 * minute,
        "d" => 24 * 60 * minute,
        "w" => 7 * 24 * 60 * minute,
        _ => return Err(format!("'{text}': the unit must be m, h, d or w")),
    };
    n.checked_mul(per)
        .ok_or_else(|| format!("'{text}' is too long an age"))
}

/// What removing the runs frees outside the database.
#[derive(Default, serde::Serialize)]
struct Files {
    log_bytes: u64,
    workspace_bytes: u64,
}

pub fn gc(globals: &Globals, args: GcArgs) -> Outcome {
    if args.runs.is_empty() && args.keep.is_none() && args.older_than.is_none() {
        return Err(Failure::invalid(
            "say which runs to remove: RUN ids, --keep N (the N most recent finished runs stay) or --older-than AGE",
        ));
    }
    let mut store = globals.open_store(None)?;
    let state_dir = store
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut ids = args.runs.clone();
    for id in store.expired_runs(args.keep, args.older_than, host::vocab::now_ms())? {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let before = file_size(store.path());
    let collection = store.collect(&ids, args.dry_run)?;
    let mut files = Files::default();
    for id in &collection.runs {
        let logs = host::runtime::live::run_log_dir(&state_dir, id);
        let tree = host::files::run_dir(&state_dir, id);
        files.log_bytes += tree_bytes(&logs);
        files.workspace_bytes += tree_bytes(&tree);
        if !args.dry_run {
            for dir in [logs, tree] {
                if let Err(e) = std::fs::remove_dir_all(&dir)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    eprintln!("warning: cannot remove {}: {e}", dir.display());
                }
            }
        }
    }
    let compacted = if args.dry_run || args.no_compact || collection.runs.is_empty() {
        None
    } else {
        Some(store.compact()?)
    };
    let after = file_size(store.path());
    report(&args, &collection, &files, (before, after), compacted);
    Ok(Exit::Success)
}

fn report(
    args: &GcArgs,
    c: &Collection,
    files: &Files,
    (before, after): (u64, u64),
    compacted: Option<bool>,
) {
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "dry_run": args.dry_run,
                "runs": c.runs,
                "records": c.records,
                "blobs": c.blobs,
                "blob_bytes": c.blob_bytes,
                "log_bytes": files.log_bytes,
                "workspace_bytes": files.workspace_bytes,
                "database_bytes_before": before,
                "database_bytes_after": after,
                "compacted": compacted,
            })
        );
        return;
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    if c.runs.is_empty() {
        println!("nothing to remove: no finished run matches");
        return;
    }
    println!("{verb} {} run(s): {}", c.runs.len(), c.runs.join(", "));
    println!(
        "  {} record(s), {} blob(s) of {}, attempt logs of {}, workspace copies of {}",
        c.records,
        c.blobs,
        mib(c.blob_bytes),
        mib(files.log_bytes),
        mib(files.workspace_bytes)
    );
    match compacted {
        Some(true) => println!("  state.redb {} -> {}", mib(before), mib(after)),
        Some(false) => println!(
            "  state.redb not compacted (another process has it open): its free space is reused by later runs"
        ),
        None => {}
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Bytes of the files under `dir` (0 if it is not there).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(list) = std::fs::read_dir(dir) else {
        return 0;
    };
    list.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => tree_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_in_minutes_to_weeks() {
        assert_eq!(super::parse_age("90m"), Ok(90 * 60_000));
        assert_eq!(super::parse_age("2w"), Ok(14 * 24 * 3_600_000));
        assert!(super::parse_age("3y").is_err());
        assert!(super::parse_age("d").is_err());
    }
}
