//! Effects on the world are recorded when they happen: every request a
//! model server received is in the run's record (as an answered call, or as
//! one sent and never answered, counted at its reserved worst case), however
//! often the host is killed or cancelled, and a call budget holds across
//! kills. The server counts requests, which a plugin or the host cannot fake.

mod common;

use common::model_server::{ModelServer, Reply};
use common::runs::*;
use common::*;
use std::time::Duration;

/// Two stages of three model calls each, answered after `delay`, within a
/// run budget of `calls`.
fn pipeline(scratch: &Scratch, url: &str, calls: u32) -> std::path::PathBuf {
    let faulty = plugin("faulty");
    scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "paid"
task = "count every call"
budget = {{ calls = {calls} }}

[models.m]
provider = "openai"
base_url = "{url}"
model = "scripted"
max_retries = 0

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "first"
plugin = "faulty"
models = ["m"]
config = {{ behaviour = {{ call-models = {{ alias = "m", times = 3, max_tokens = 8 }} }} }}

[[stage]]
id = "second"
plugin = "faulty"
after = ["first"]
models = ["m"]
config = {{ behaviour = {{ call-models = {{ alias = "m", times = 3, max_tokens = 8 }} }} }}
"#,
            faulty.display()
        ),
    )
}

fn slow_server(delay: Duration) -> ModelServer {
    ModelServer::start(move |_| Reply::text("word").after(delay))
}

/// Waits until the server has received `n` requests.
fn wait_for_requests(srv: &ModelServer, n: usize) {
    common::http::wait_for(&format!("{n} requests"), Duration::from_secs(60), || {
        (srv.requests().len() >= n).then_some(())
    });
}

#[test]
fn every_request_a_killed_run_sent_is_recorded_and_the_budget_holds() {
    let scratch = Scratch::new("paid-kills");
    let srv = slow_server(Duration::from_millis(400));
    // Six calls are needed; two kills each leave one call unanswered.
    let manifest = pipeline(&scratch, &srv.url, 8);
    let state = scratch.path("state");

    let (mut child, mut lines) = spawn_run(&state, &manifest, &[]);
    let run = run_id_of(&lines.next().unwrap().unwrap());
    // Killed while the second call of `first` is in flight...
    wait_for_requests(&srv, 2);
    child.kill().unwrap();
    child.wait().unwrap();
    let calls = recorded_calls(&state, &run);
    assert_eq!(paid(&calls), srv.requests().len(), "{calls:?}");
    assert_eq!(
        calls.iter().filter(|(_, c)| c["unsettled"] == true).count(),
        1
    );

    // ...and again during `second`, after a resume.
    let mut resumed = std::process::Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["resume", &run])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // `first` again from its start (3 requests), then one of `second`.
    wait_for_requests(&srv, 2 + 3 + 1);
    resumed.kill().unwrap();
    resumed.wait().unwrap();
    let calls = recorded_calls(&state, &run);
    assert_eq!(paid(&calls), srv.requests().len(), "{calls:?}");

    // 6 requests so far, 2 of them unanswered: the budget of 8 leaves room
    // for `second`'s 3 calls only if the unanswered ones were not counted
    // twice nor forgotten; 6 + 3 = 9 > 8, so the run must stop at the
    // budget rather than overspend.
    let o = host_with(&state, &["resume", "--json", &run]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("model budget would be exceeded"),
        "{}",
        stdout(&o)
    );
    let sent = srv.requests().len();
    assert!(sent <= 8, "the budget of 8 calls was overspent: {sent}");
    let calls = recorded_calls(&state, &run);
    assert_eq!(paid(&calls), sent, "{calls:?}");
    // The totals agree with the calls.
    let o = host_with(&state, &["runs", "--json"]);
    let listed: serde_json::Value =
        serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    let tokens: u64 = calls
        .iter()
        .map(|(_, c)| c["input_tokens"].as_u64().unwrap() + c["output_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(listed["tokens"], tokens);
}

#[test]
fn calls_are_visible_as_they_happen_and_a_cancel_keeps_them() {
    let scratch = Scratch::new("paid-live");
    let srv = slow_server(Duration::from_millis(1500));
    let manifest = pipeline(&scratch, &srv.url, 100);
    let state = scratch.path("state");
    let (mut child, mut lines) = spawn_run(&state, &manifest, &[]);
    let run = run_id_of(&lines.next().unwrap().unwrap());
    wait_for_requests(&srv, 2);

    // While the second call waits: the first is recorded, the second is
    // in flight, both in the event log another process reads.
    let ev = events(&state, &run);
    assert_eq!(count(&ev, "model-called", "first"), 1, "{ev:?}");
    assert_eq!(count(&ev, "model-call-sent", "first"), 2, "{ev:?}");

    let o = host_with(&state, &["cancel", &run]);
    assert!(o.status.success(), "{}", stderr(&o));
    child.wait().unwrap();
    let calls = recorded_calls(&state, &run);
    assert_eq!(paid(&calls), srv.requests().len(), "{calls:?}");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1].1["unsettled"], true, "{calls:?}");
    let ev = events(&state, &run);
    assert_eq!(count(&ev, "model-called", "first"), 2, "{ev:?}");
}

#[test]
fn refusals_are_counted_not_stored_one_by_one() {
    let scratch = Scratch::new("refusals");
    let faulty = plugin("faulty");
    let manifest = scratch.write(
        "pipeline.toml",
        &format!(
            r#"
[pipeline]
name = "refused"
task = "t"

[models.m]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "never-called"

[plugins.faulty]
wasm = "{}"

[[stage]]
id = "asker"
plugin = "faulty"
max_model_calls = 100000
config = {{ behaviour = {{ call-models = {{ alias = "m", times = 20000, keep_going = true }} }} }}

[[stage]]
id = "capped"
plugin = "faulty"
models = ["m"]
max_model_calls = 0
config = {{ behaviour = {{ call-models = {{ alias = "m", times = 300, keep_going = true }} }} }}
"#,
            faulty.display()
        ),
    );
    let state = scratch.path("state");
    let o = host_with(&state, &["run", "--json", manifest.to_str().unwrap()]);
    // `capped` fails: its first call is past max_model_calls = 0.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let run = run_id_of(&stdout(&o));
    let calls = recorded_calls(&state, &run);
    // 20,000 refusals of one kind: one record that counts them, one event.
    let asker: Vec<_> = calls.iter().filter(|(s, _)| s == "asker").collect();
    assert_eq!(asker.len(), 1, "{calls:?}");
    assert_eq!(asker[0].1["source"], "refused");
    assert_eq!(asker[0].1["count"], 20000);
    assert!(
        asker[0].1["error"]
            .as_str()
            .unwrap()
            .starts_with("not-granted: ")
    );
    // Past max_model_calls the attempt ends at once, with the bound: no
    // record per try, and no 299 more tries.
    assert!(!calls.iter().any(|(s, _)| s == "capped"), "{calls:?}");
    let s = summary(&o);
    assert_eq!(stage(&s, "capped")["failure"]["bound"], "model-calls");
    let ev = events(&state, &run);
    assert_eq!(count(&ev, "model-called", "asker"), 1);
    // The state file stays small.
    let size = std::fs::metadata(state.join("state.redb")).unwrap().len();
    assert!(size < 4 << 20, "state.redb is {size} bytes");
}
