//! The scheduler with real plugins in the real host: concurrency, edge
//! conditions, `when` routing, loops with caps, spawned jobs, deadlock,
//! hung stages, groups, the run deadline, and cancel then resume.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Run {
    scratch: Scratch,
    state: PathBuf,
}

impl Run {
    fn new(label: &str) -> Self {
        let scratch = Scratch::new(label);
        let state = scratch.path("state");
        Run { scratch, state }
    }

    fn manifest(&self, name: &str, pipeline_extra: &str, body: &str) -> PathBuf {
        self.scratch.write(
            name,
            &format!(
                "[pipeline]\nname = \"sched\"\ntask = \"schedule\"\nmax_parallel = 4\n{pipeline_extra}\n\n\
                 [plugins.faulty]\nwasm = {:?}\n\n{body}",
                plugin("faulty").display().to_string()
            ),
        )
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_host"));
        c.args(["--cache-dir", cache_dir().to_str().unwrap()])
            .args(["--state-dir", self.state.to_str().unwrap()])
            .env_remove("RUST_LOG");
        c
    }

    fn host(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn run(&self, manifest: &Path) -> (Output, serde_json::Value) {
        let out = self.host(&["run", "--json", manifest.to_str().unwrap()]);
        let s = summary(&out);
        (out, s)
    }

    fn events(&self, run: &str) -> Vec<serde_json::Value> {
        let out = self.host(&["events", run, "--json"]);
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn stage_block(id: &str, extra: &str, behaviour: &str) -> String {
    format!(
        "[[stage]]\nid = \"{id}\"\nplugin = \"faulty\"\n{extra}\nconfig = {{ behaviour = {behaviour} }}\n\n"
    )
}

fn at(events: &[serde_json::Value], kind: &str, stage: &str) -> u64 {
    events
        .iter()
        .find(|e| e["event"] == kind && e["stage"] == stage)
        .unwrap_or_else(|| panic!("no {kind} for {stage}"))["at_ms"]
        .as_u64()
        .unwrap()
}

fn count(events: &[serde_json::Value], kind: &str, stage: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["stage"] == stage)
        .count()
}

#[test]
fn a_diamond_runs_its_middle_stages_at_the_same_time() {
    let r = Run::new("diamond");
    let body = [
        stage_block("top", "", "\"succeed\""),
        stage_block("left", "after = [\"top\"]", "{ sleep = { ms = 600 } }"),
        stage_block("right", "after = [\"top\"]", "{ sleep = { ms = 601 } }"),
        stage_block("bottom", "after = [\"left\", \"right\"]", "\"succeed\""),
    ]
    .concat();
    let (out, s) = r.run(&r.manifest("p.toml", "", &body));
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = r.events(s["run_id"].as_str().unwrap());
    let (ls, le) = (
        at(&ev, "stage-started", "left"),
        at(&ev, "stage-succeeded", "left"),
    );
    let (rs, re) = (
        at(&ev, "stage-started", "right"),
        at(&ev, "stage-succeeded", "right"),
    );
    assert!(
        ls < re && rs < le,
        "no overlap: left {ls}-{le}, right {rs}-{re}"
    );
    assert!(at(&ev, "stage-started", "bottom") >= le.max(re));
}

#[test]
fn each_edge_condition_decides_and_skips_say_why() {
    let r = Run::new("conditions");
    let body = [
        stage_block("broken", "", "\"fatal\""),
        stage_block("fine", "", "\"succeed\""),
        stage_block("next", "after = [\"broken\"]", "\"succeed\""),
        stage_block(
            "on-failure",
            "after = [{ stage = \"broken\", on = \"failure\" }]",
            "\"succeed\"",
        ),
        stage_block(
            "cleanup",
            "after = [{ stage = \"broken\", on = \"always\" }, \"fine\"]",
            "\"succeed\"",
        ),
        stage_block(
            "not-needed",
            "after = [{ stage = \"fine\", on = \"failure\" }]",
            "\"succeed\"",
        ),
        stage_block(
            "after-skip",
            "after = [{ stage = \"next\", on = \"success-or-skip\" }]",
            "\"succeed\"",
        ),
    ]
    .concat();
    let (out, s) = r.run(&r.manifest("p.toml", "", &body));
    assert_eq!(out.status.code(), Some(1), "a failed stage fails the run");
    assert_eq!(
        stage(&s, "next")["skip_reason"],
        "dependency 'broken' failed"
    );
    assert_eq!(stage(&s, "on-failure")["status"], "succeeded");
    assert_eq!(stage(&s, "cleanup")["status"], "succeeded");
    assert_eq!(
        stage(&s, "not-needed")["skip_reason"],
        "dependency 'fine' succeeded (this stage runs on its failure)"
    );
    assert_eq!(stage(&s, "after-skip")["status"], "succeeded");
}

fn routing(risk: &str) -> String {
    [
        stage_block(
            "triage",
            "",
            &format!("{{ decide = {{ decision = \"{risk}\" }} }}"),
        ),
        stage_block(
            "discovery",
            "after = [\"triage\"]\nwhen = \"triage.decision == 'HIGH'\"",
            "\"succeed\"",
        ),
        stage_block(
            "planning",
            "after = [\"triage\", { stage = \"discovery\", on = \"success-or-skip\" }]\n\
             when = \"triage.decision in ['MEDIUM', 'HIGH']\"",
            "\"succeed\"",
        ),
        stage_block(
            "execution",
            "after = [\"triage\", { stage = \"planning\", on = \"success-or-skip\" }]",
            "\"succeed\"",
        ),
    ]
    .concat()
}

#[test]
fn when_conditions_route_on_an_earlier_decision() {
    for (risk, ran) in [
        ("HIGH", ["discovery", "planning", "execution"].as_slice()),
        ("MEDIUM", ["planning", "execution"].as_slice()),
        ("LOW", ["execution"].as_slice()),
    ] {
        let r = Run::new(&format!("route-{risk}"));
        let (out, s) = r.run(&r.manifest("p.toml", "", &routing(risk)));
        assert!(
            out.status.success(),
            "{risk}: a branch not taken is not a failure\n{}",
            stderr(&out)
        );
        for id in ["discovery", "planning", "execution"] {
            let status = stage(&s, id)["status"].as_str().unwrap().to_string();
            if ran.contains(&id) {
                assert_eq!(status, "succeeded", "{risk}: {id}");
            } else {
                assert_eq!(status, "skipped", "{risk}: {id}");
                assert!(
                    stage(&s, id)["skip_reason"]
                        .as_str()
                        .unwrap()
                        .starts_with("condition not met"),
                    "{risk}: {id}: {}",
                    stage(&s, id)
                );
            }
        }
    }
}

fn looping(until: u32, max: u32) -> String {
    [
        stage_block("plan", "", "\"succeed\""),
        stage_block("execution", "after = [\"plan\"]", "\"echo-feedback\""),
        stage_block(
            "verify",
            &format!("after = [\"execution\"]\nloop = {{ to = \"execution\", max = {max}, on = \"revise\" }}"),
            &format!("{{ revise-until = {{ until = {until} }} }}"),
        ),
        stage_block("ship", "after = [\"verify\"]", "\"succeed\""),
    ]
    .concat()
}

#[test]
fn a_loop_goes_back_with_feedback_until_the_verifier_passes() {
    let r = Run::new("loop");
    let (out, s) = r.run(&r.manifest("p.toml", "", &looping(2, 3)));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stage(&s, "execution")["summary"],
        "iteration 2, feedback: fix the thing found in iteration 1"
    );
    assert_eq!(stage(&s, "verify")["summary"], "iteration 2: good");
    assert_eq!(stage(&s, "ship")["status"], "succeeded");
    let ev = r.events(s["run_id"].as_str().unwrap());
    assert_eq!(ev.iter().filter(|e| e["event"] == "looped-back").count(), 2);
    assert_eq!(
        count(&ev, "stage-succeeded", "plan"),
        1,
        "plan is outside the loop"
    );
    assert_eq!(count(&ev, "stage-succeeded", "execution"), 3);
    // The plugin was told it runs a loop's pass.
    let run = s["run_id"].as_str().unwrap();
    let kind = r.host(&["show", run, "execution", "--artifact", "kind.txt"]);
    assert_eq!(stdout(&kind), "loop-pass");
}

#[test]
fn a_loop_that_hits_its_cap_escalates_the_run() {
    let r = Run::new("loop-cap");
    let (out, s) = r.run(&r.manifest("p.toml", "", &looping(10, 2)));
    assert_eq!(
        out.status.code(),
        Some(2),
        "escalation has its own exit code"
    );
    assert_eq!(s["outcome"], "escalated");
    assert_eq!(stage(&s, "verify")["summary"], "iteration 2: needs work");
    assert!(
        stage(&s, "ship")["skip_reason"]
            .as_str()
            .unwrap()
            .starts_with("escalated"),
        "{}",
        stage(&s, "ship")
    );
    let runs = stdout(&r.host(&["runs", "--json"]));
    assert!(runs.contains("\"escalated\""), "{runs}");
}

#[test]
fn spawned_jobs_join_the_graph_with_a_parent_link_and_caps() {
    let r = Run::new("spawn");
    let jobs = r#"[{ template = "fixer", id = "fix-a", config = { behaviour = { sleep = { ms = 300 } } } }, { template = "fixer", id = "fix-b" }, { template = "deep", id = "deeper" }]"#;
    let body = [
        stage_block(
            "tests",
            "spawns = [\"fixer\", \"deep\"]",
            &format!("{{ spawn = {{ jobs = {jobs} }} }}"),
        ),
        stage_block("report", "after = [\"tests\"]", "\"succeed\""),
        stage_block("fixer", "template = true", "\"succeed\""),
        // A job that spawns again: one level deeper than allowed.
        stage_block(
            "deep",
            "template = true\nspawns = [\"fixer\"]",
            r#"{ spawn = { jobs = [{ template = "fixer", id = "x" }] } }"#,
        ),
    ]
    .concat();
    let (out, s) = r.run(&r.manifest("p.toml", "max_spawn_depth = 1", &body));
    assert!(out.status.success(), "{}", stderr(&out));
    for id in ["tests.fix-a", "tests.fix-b", "tests.deeper"] {
        assert_eq!(stage(&s, id)["status"], "succeeded", "{id}");
        assert_eq!(stage(&s, id)["parent"], "tests", "{id}");
    }
    let ev = r.events(s["run_id"].as_str().unwrap());
    // The parent's dependants wait for its jobs.
    assert!(at(&ev, "stage-started", "report") >= at(&ev, "stage-succeeded", "tests.fix-a"));
    let refused: Vec<_> = ev
        .iter()
        .filter(|e| e["event"] == "spawn-refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("over the cap of 1")
    );
    assert_eq!(
        ev.iter().filter(|e| e["event"] == "stage-spawned").count(),
        3
    );

    // A template the stage may not spawn fails the stage.
    let r = Run::new("spawn-denied");
    let body = [
        stage_block(
            "tests",
            "",
            r#"{ spawn = { jobs = [{ template = "fixer", id = "a" }] } }"#,
        ),
        stage_block("fixer", "template = true", "\"succeed\""),
    ]
    .concat();
    let (out, s) = r.run(&r.manifest("p.toml", "", &body));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stage(&s, "tests")["failure"]
            .to_string()
            .contains("may not spawn from 'fixer'")
    );
}

#[test]
fn a_run_that_cannot_progress_is_reported_as_deadlocked() {
    let r = Run::new("deadlock");
    // The job waits for `report`, which waits for the job.
    let body = [
        stage_block(
            "tests",
            "spawns = [\"fixer\"]",
            r#"{ spawn = { jobs = [{ template = "fixer", id = "fix", after = ["report"] }] } }"#,
        ),
        stage_block("report", "after = [\"tests\"]", "\"succeed\""),
        stage_block("fixer", "template = true", "\"succeed\""),
    ]
    .concat();
    let started = Instant::now();
    let (out, s) = r.run(&r.manifest("p.toml", "", &body));
    assert!(started.elapsed() < Duration::from_secs(60), "it hung");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(s["outcome"], "deadlocked");
    assert!(
        stage(&s, "report")["skip_reason"]
            .as_str()
            .unwrap()
            .starts_with("deadlock: waits on tests.fix")
    );
    let ev = r.events(s["run_id"].as_str().unwrap());
    assert!(ev.iter().any(|e| e["event"] == "deadlocked"));
}

#[test]
fn a_silent_stage_is_hung_and_a_group_runs_one_at_a_time() {
    let r = Run::new("hung");
    let body = [
        stage_block(
            "spinner",
            "heartbeat = \"300ms\"\ntimeout = \"60s\"",
            "\"loop\"",
        ),
        // Busy for longer than its heartbeat, but reporting progress: alive.
        stage_block(
            "busy",
            "heartbeat = \"300ms\"\ntimeout = \"60s\"",
            "{ burn = { rounds = 800000000, progress_every = 5000000 } }",
        ),
        // Different configs: identical stages would come from the result cache.
        stage_block("g1", "group = \"db\"", "{ sleep = { ms = 300 } }"),
        stage_block("g2", "group = \"db\"", "{ sleep = { ms = 301 } }"),
        stage_block("g3", "group = \"db\"", "{ sleep = { ms = 302 } }"),
    ]
    .concat();
    let started = Instant::now();
    let (out, s) = r.run(&r.manifest("p.toml", "[groups.db]\nmax_parallel = 1", &body));
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        stage(&s, "spinner")["failure"]["kind"],
        "hung",
        "{}",
        stage(&s, "spinner")
    );
    assert_eq!(
        stage(&s, "busy")["status"],
        "succeeded",
        "{}",
        stage(&s, "busy")
    );
    assert!(
        stage(&s, "busy")["elapsed"].as_u64().unwrap() > 300,
        "busy was not busy long enough to prove anything"
    );
    let ev = r.events(s["run_id"].as_str().unwrap());
    let mut spans: Vec<(u64, u64)> = ["g1", "g2", "g3"]
        .iter()
        .map(|g| (at(&ev, "stage-started", g), at(&ev, "stage-succeeded", g)))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "group stages overlapped: {spans:?}");
    }
}

#[test]
fn the_run_deadline_stops_a_run() {
    let r = Run::new("deadline");
    let body = stage_block("slow", "", "{ sleep = { ms = 20000 } }");
    let started = Instant::now();
    let (out, s) = r.run(&r.manifest("p.toml", "deadline = \"1s\"", &body));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(s["outcome"], "deadline-exceeded");
    assert_eq!(stage(&s, "slow")["status"], "interrupted");
}

#[test]
fn cancel_stops_a_run_that_then_resumes() {
    let r = Run::new("cancel");
    let body = [
        stage_block("quick", "", "\"succeed\""),
        stage_block("slow", "after = [\"quick\"]", "{ sleep = { ms = 2500 } }"),
        stage_block("last", "after = [\"slow\"]", "\"succeed\""),
    ]
    .concat();
    let manifest = r.manifest("p.toml", "", &body);
    let child = r
        .cmd()
        .args(["run", "--json", manifest.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until `slow` is running.
    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        assert!(Instant::now() < deadline, "the run never started `slow`");
        std::thread::sleep(Duration::from_millis(50));
        let runs = stdout(&r.host(&["runs", "--json"]));
        let Some(line) = runs.lines().next() else {
            continue;
        };
        let id = serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        if r.events(&id)
            .iter()
            .any(|e| e["event"] == "stage-started" && e["stage"] == "slow")
        {
            break id;
        }
    };
    let cancel = r.host(&["cancel", &run_id]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    assert!(
        stdout(&cancel).contains("interrupted"),
        "{}",
        stdout(&cancel)
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s = summary(&out);
    assert_eq!(s["outcome"], "cancelled");
    assert_eq!(stage(&s, "slow")["status"], "interrupted");

    let resumed = r.host(&["resume", &run_id, "--json"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let ev = r.events(&run_id);
    assert_eq!(count(&ev, "stage-started", "quick"), 1, "quick ran again");
    assert_eq!(count(&ev, "stage-interrupted", "slow"), 1);
    assert_eq!(count(&ev, "stage-succeeded", "last"), 1);
}

/// `max_parallel` bounds attempts running at once: six 400 ms stages through
/// two slots take three rounds, even though a stage gives its slot up while
/// its outcome is committed.
#[test]
fn max_parallel_bounds_the_attempts_running_at_once() {
    let r = Run::new("slots");
    let ids: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let body: String = ids
        .iter()
        .enumerate()
        // Different configs: identical stages would come from the result cache.
        .map(|(i, id)| stage_block(id, "", &format!("{{ sleep = {{ ms = {} }} }}", 400 + i)))
        .collect();
    let manifest = r.scratch.write(
        "p.toml",
        &format!(
            "[pipeline]\nname = \"slots\"\ntask = \"wait\"\nmax_parallel = 2\n\n\
             [plugins.faulty]\nwasm = {:?}\n\n{body}",
            plugin("faulty").display().to_string()
        ),
    );
    let (out, s) = r.run(&manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = r.events(s["run_id"].as_str().unwrap());
    let first = ids.iter().map(|id| at(&ev, "stage-started", id)).min();
    let last = ids.iter().map(|id| at(&ev, "stage-succeeded", id)).max();
    let span = last.unwrap() - first.unwrap();
    assert!(
        span >= 3 * 400,
        "six 400 ms attempts through 2 slots took only {span} ms"
    );
}
