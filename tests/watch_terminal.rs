//! What `host run` shows while it runs: line-by-line output when stdout is
//! not a terminal, a live board on a pseudo-terminal (util-linux `script`),
//! `--quiet`, and logs as tracing events (`RUST_LOG`, `--log-format json`).

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Command, Output};

fn setup(label: &str, steps: u32, every_ms: u32) -> (Scratch, PathBuf) {
    let scratch = Scratch::new(label);
    let manifest = scratch.write(
        "term.toml",
        &format!(
            r#"[pipeline]
name = "terminal"
task = "show me"

[plugins.faulty]
wasm = {:?}

[[stage]]
id = "first"
plugin = "faulty"
config = {{ behaviour = "succeed" }}

[[stage]]
id = "slow"
plugin = "faulty"
after = ["first"]
config = {{ behaviour = {{ chatter = {{ steps = {steps}, every_ms = {every_ms} }} }} }}
"#,
            plugin("faulty").display().to_string()
        ),
    );
    (scratch, manifest)
}

fn host_run(scratch: &Scratch, args: &[&str], rust_log: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host"));
    cmd.args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["--state-dir", scratch.path("state").to_str().unwrap()])
        .args(args)
        .env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        cmd.env("RUST_LOG", filter);
    }
    cmd.output().unwrap()
}

#[test]
fn without_a_terminal_output_is_line_by_line_and_quiet_keeps_only_the_summary() {
    let (scratch, manifest) = setup("term-lines", 4, 20);
    let m = manifest.to_str().unwrap();
    let out = host_run(&scratch, &["run", m], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("  > slow started\n"), "{text}");
    assert!(text.contains("  ok slow "), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no terminal control codes in a pipe: {text:?}"
    );
    assert!(
        !text.contains("  ~ slow"),
        "no progress board in a pipe: {text}"
    );
    // Plugin log lines are tracing events on stderr, with their ids.
    let err = stderr(&out);
    assert!(err.contains("chatter step 4 of 4"), "{err}");
    assert!(
        err.contains("stage=slow") || err.contains("stage=\"slow\""),
        "{err}"
    );

    let quiet = host_run(&scratch, &["run", "--new", "--quiet", m], None);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    let text = stdout(&quiet);
    assert!(
        !text.contains("started"),
        "no event lines with --quiet: {text}"
    );
    assert!(
        text.contains("succeeded: 2 succeeded"),
        "the summary stays: {text}"
    );
    assert!(!stderr(&quiet).contains("chatter"), "{}", stderr(&quiet));
}

#[test]
fn logs_are_filtered_by_rust_log_and_written_as_json_lines() {
    let (scratch, manifest) = setup("term-logs", 3, 10);
    let m = manifest.to_str().unwrap();
    let out = host_run(&scratch, &["--log-format", "json", "run", m], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "chatter step 2 of 3")
        .unwrap_or_else(|| panic!("no JSON log line for the plugin's message: {lines:?}"));
    assert_eq!(line["target"], "plugin");
    // The ids are the attempt's span's, once: not repeated as the event's.
    assert_eq!(
        line["span"]["stage"], "slow",
        "inside the attempt's span: {line}"
    );
    assert_eq!(line["span"]["attempt"], 1);
    assert!(line["span"]["run"].as_str().unwrap().len() > 4, "{line}");
    assert!(line["fields"].get("stage").is_none(), "{line}");

    let filtered = host_run(&scratch, &["run", "--new", m], Some("plugin=off"));
    assert!(filtered.status.success(), "{}", stderr(&filtered));
    assert!(
        !stderr(&filtered).contains("chatter"),
        "{}",
        stderr(&filtered)
    );
}

/// `host run` on a pseudo-terminal (`script` copies what it wrote: stdout
/// and stderr together).
fn on_a_terminal(
    scratch: &Scratch,
    manifest: &std::path::Path,
    flags: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let command = format!(
        "{} --cache-dir {} --state-dir {} run {} {}",
        env!("CARGO_BIN_EXE_host"),
        cache_dir().display(),
        scratch.path("state").display(),
        flags.join(" "),
        manifest.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &command, "/dev/null"])
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm")
        .env("COLUMNS", "120");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("util-linux script runs")
}

/// The escapes that set a colour (the board's cursor moves are not colour).
fn coloured(text: &str) -> bool {
    text.contains("\x1b[0m")
}

#[test]
fn colour_follows_the_terminal_no_color_and_the_color_flag() {
    let (scratch, manifest) = setup("term-colour", 2, 20);
    let out = on_a_terminal(&scratch, &manifest, &["--new"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("\x1b[32m  ok slow "),
        "a finished stage in green: {text:?}"
    );
    assert!(
        text.contains("\x1b[32msucceeded\x1b[0m: 2 succeeded"),
        "{text:?}"
    );
    assert!(
        text.contains("\x1b[2m") || text.contains("\x1b[3m"),
        "log lines coloured too: {text:?}"
    );

    for (flags, env) in [
        (vec!["--new"], vec![("NO_COLOR", "1")]),
        (vec!["--new"], vec![("TERM", "dumb")]),
        (vec!["--new", "--color", "never"], vec![]),
    ] {
        let out = on_a_terminal(&scratch, &manifest, &flags, &env);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(!coloured(&text), "{flags:?} {env:?}: {text:?}");
        assert!(text.contains("  ok slow "), "{text:?}");
    }

    // Into a pipe: plain, unless asked; NO_COLOR does not outvote the flag.
    let m = manifest.to_str().unwrap();
    let plain = host_run(&scratch, &["run", "--new", m], None);
    assert!(!coloured(&stdout(&plain)), "{}", stdout(&plain));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host"));
    let forced = cmd
        .args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["--state-dir", scratch.path("state").to_str().unwrap()])
        .args(["run", "--new", "--color=always", m])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(forced.status.success());
    assert!(coloured(&stdout(&forced)), "{}", stdout(&forced));
    // A refused command's `error:` follows the flag too.
    let refused = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["--color", "always", "validate", "nope.toml"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(10));
    assert!(
        stderr(&refused).starts_with("\x1b[1;31merror:\x1b[0m nope.toml"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn a_terminal_shows_a_live_board_of_running_stages() {
    let (scratch, manifest) = setup("term-tty", 8, 250);
    // Colour is another test's subject: here the words.
    let out = on_a_terminal(&scratch, &manifest, &["--new"], &[("NO_COLOR", "1")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("  ~ slow  "),
        "a board line for the running stage: {text:?}"
    );
    assert!(
        text.contains("] ") && text.contains("%  chattering"),
        "a progress bar: {text:?}"
    );
    assert!(text.contains("\x1b[1A\x1b[J"), "redrawn in place: {text:?}");
    assert!(
        text.contains("  ok slow "),
        "the event lines stay: {text:?}"
    );
    assert!(text.contains("succeeded: 2 succeeded"), "{text:?}");
}
