//! `host verify`: the state directory checked end to end (every record's
//! checksum, every blob's hash, every reference followed).

use super::{Exit, Failure, Globals, Outcome};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn verify(globals: &Globals, args: VerifyArgs) -> Outcome {
    let store = globals.existing_store()?;
    let report = store.verify()?;
    let path = store.path().display().to_string();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "database": path,
                "checked": report.checked,
                "problems": report.problems,
            })
        );
    } else {
        let counts: Vec<String> = report
            .checked
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(table, n)| format!("{n} {table}"))
            .collect();
        println!(
            "{path}: checked {}",
            if counts.is_empty() {
                "nothing (empty)".to_string()
            } else {
                counts.join(", ")
            }
        );
        for p in &report.problems {
            println!("damaged: {p}");
        }
    }
    if report.is_clean() {
        if !args.json {
            println!("no damage found");
        }
        Ok(Exit::Success)
    } else {
        Err(Failure::Message(
            Exit::HostError,
            format!(
                "error: {} problem(s) in {path}: the state directory is damaged; records that fail their checksum are refused by every command",
                report.problems.len()
            ),
        ))
    }
}
