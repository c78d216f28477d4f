//! Upstream artifacts read when wanted (orchestrator:stage 0.3): a stage
//! given three 60 MiB inputs that reads 1 KiB of one runs in a 32 MiB
//! memory limit, and gets exactly the bytes it asked for; what it may read
//! is its own input only.

mod common;

use common::*;

const MIB: u64 = 1 << 20;

/// Byte `i` of what `StreamBig` streams.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

fn producers(text: &mut String, bytes: u64) {
    for p in ["p1", "p2", "p3"] {
        text.push_str(&format!(
            "\n[[stage]]\nid = \"{p}\"\nplugin = \"faulty\"\n\
             config = {{ behaviour = {{ stream-big = {{ name = \"{p}.bin\", bytes = {bytes} }} }} }}\n"
        ));
    }
}

/// Runs `text` with --out, in a state directory of the scratch's: the
/// summary, the --out directory and the state directory.
fn run_with_out(
    scratch: &Scratch,
    text: &str,
) -> (serde_json::Value, std::path::PathBuf, std::path::PathBuf) {
    let manifest = scratch.write("pipeline.toml", text);
    let (out_dir, state) = (scratch.path("out"), scratch.path("state"));
    let out = host(&[
        "--state-dir",
        state.to_str().unwrap(),
        "run",
        "--json",
        manifest.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    (summary(&out), out_dir, state)
}

#[test]
fn a_stage_reads_one_range_of_three_large_inputs_within_32_mib() {
    let scratch = Scratch::new("lazy-inputs");
    let mut text = format!(
        "[pipeline]\nname = \"lazy\"\ntask = \"t\"\nmax_parallel = 1\n\n[plugins.faulty]\nwasm = \"{}\"\n",
        plugin("faulty").display()
    );
    producers(&mut text, 60 * MIB);
    let offset = 45 * MIB - 100;
    text.push_str(&format!(
        "\n[[stage]]\nid = \"reader\"\nplugin = \"faulty\"\nafter = [\"p1\", \"p2\", \"p3\"]\nmemory = \"32MiB\"\n\
         config = {{ behaviour = {{ read-range = {{ stage = \"p2\", name = \"p2.bin\", offset = {offset}, length = 1024 }} }} }}\n"
    ));
    // The same inputs handed whole to a plugin of 0.2 do not fit.
    text.push_str(&format!(
        "\n[plugins.old]\nwasm = \"{}\"\n\n[[stage]]\nid = \"eager\"\nplugin = \"old\"\n\
         after = [\"p1\", \"p2\", \"p3\"]\nmemory = \"32MiB\"\n",
        workspace_root()
            .join("tests/fixtures/hello-wit-0.2.2.wasm")
            .display()
    ));
    let (summary, out_dir, state) = run_with_out(&scratch, &text);
    let state = state.to_str().unwrap();
    assert_eq!(
        stage(&summary, "reader")["status"],
        "succeeded",
        "{summary}"
    );
    let eager = stage(&summary, "eager");
    assert_eq!(eager["status"], "failed", "{summary}");
    assert_eq!(eager["failure"]["kind"], "out-of-memory", "{eager}");
    let range = std::fs::read(out_dir.join("reader/range.bin")).unwrap();
    let expected: Vec<u8> = (offset..offset + 1024).map(pattern).collect();
    assert_eq!(
        range, expected,
        "the bytes asked for, across a chunk boundary"
    );
    // Each input was described with its size, none of it read but the range.
    let shown = host(&[
        "--state-dir",
        state,
        "show",
        summary["run_id"].as_str().unwrap(),
        "reader",
        "--json",
    ]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown = stdout(&shown);
    for p in ["p1", "p2", "p3"] {
        assert!(
            shown.contains(&format!("{p}.{p}.bin")) && shown.contains(&format!("{}", 60 * MIB)),
            "{shown}"
        );
    }
    // --out still writes a large artifact whole (the run keeps it in the
    // store, not in memory).
    let p1 = std::fs::read(out_dir.join("p1/p1.bin")).unwrap();
    assert_eq!(p1.len() as u64, 60 * MIB);
    assert!(
        p1.iter()
            .enumerate()
            .take(300)
            .all(|(i, &b)| b == pattern(i as u64))
    );
}

#[test]
fn a_stage_reads_only_its_own_inputs_and_gets_the_end_of_one_short() {
    let scratch = Scratch::new("lazy-scope");
    let mut text = format!(
        "[pipeline]\nname = \"scope\"\ntask = \"t\"\n\n[plugins.faulty]\nwasm = \"{}\"\n",
        plugin("faulty").display()
    );
    producers(&mut text, 3000);
    // p3 is not upstream of `other`: its artifact is not reachable by name.
    text.push_str(
        "\n[[stage]]\nid = \"tail\"\nplugin = \"faulty\"\nafter = [\"p1\"]\n\
         config = { behaviour = { read-range = { stage = \"p1\", name = \"p1.bin\", offset = 2990, length = 100 } } }\n\
         \n[[stage]]\nid = \"other\"\nplugin = \"faulty\"\nafter = [\"p1\"]\n\
         config = { behaviour = { read-range = { stage = \"p3\", name = \"p3.bin\", offset = 0, length = 10 } } }\n",
    );
    let (summary, out_dir, _) = run_with_out(&scratch, &text);
    assert_eq!(stage(&summary, "tail")["status"], "succeeded", "{summary}");
    let tail = std::fs::read(out_dir.join("tail/range.bin")).unwrap();
    assert_eq!(tail, (2990..3000).map(pattern).collect::<Vec<_>>());
    assert_eq!(stage(&summary, "other")["status"], "failed");
    let failure = stage(&summary, "other")["failure"].to_string();
    assert!(failure.contains("no input p3/p3.bin"), "{failure}");
}
