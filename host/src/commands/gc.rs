//! `host gc`: finished runs that are no longer needed removed from the
//! state directory, with everything only they referenced (records, blobs,
//! attempt logs, the run's copy of the workspace), then the database
//! compacted so the space goes back to the disk.

use super::{Exit, Failure, Globals, Outcome};
use host::retention::{self, Removed};
use host::store::Expiry;
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
    host::manifest::Age::parse(text).map(|a| a.ms)
}

pub fn gc(globals: &Globals, args: GcArgs) -> Outcome {
    if args.runs.is_empty() && args.keep.is_none() && args.older_than.is_none() {
        return Err(Failure::invalid(
            "say which runs to remove: RUN ids, --keep N (the N most recent finished runs stay) or --older-than AGE",
        ));
    }
    let mut store = globals.existing_store()?;
    let mut ids = args.runs.clone();
    let expiry = Expiry {
        pipeline: None,
        keep: args.keep,
        older_than_ms: args.older_than,
    };
    for id in store.expired_runs(&expiry, host::vocab::now_ms())? {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let before = file_size(store.path());
    let removed = retention::remove_runs(&store, &ids, args.dry_run)?;
    let compacted = if args.dry_run || args.no_compact || removed.collection.runs.is_empty() {
        None
    } else {
        Some(store.compact()?)
    };
    let after = file_size(store.path());
    report(&args, &removed, (before, after), compacted);
    Ok(Exit::Success)
}

fn report(args: &GcArgs, removed: &Removed, (before, after): (u64, u64), compacted: Option<bool>) {
    let c = &removed.collection;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "dry_run": args.dry_run,
                "runs": c.runs,
                "records": c.records,
                "blobs": c.blobs,
                "blob_bytes": c.blob_bytes,
                "log_bytes": removed.log_bytes,
                "workspace_bytes": removed.workspace_bytes,
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
        mib(removed.log_bytes),
        mib(removed.workspace_bytes)
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

#[cfg(test)]
mod tests {
    #[test]
    fn an_age_reads_as_in_a_manifest() {
        assert_eq!(super::parse_age("2w"), Ok(14 * 24 * 3_600_000));
        assert!(super::parse_age("3y").is_err());
    }
}
