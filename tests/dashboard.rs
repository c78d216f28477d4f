//! The dashboard end to end: `host serve` and a real `host run` in another
//! process, the page opened in headless Chromium (Debian's `chromium`,
//! installed by tests/run-all.sh), driven over the DevTools protocol. The
//! page's DOM must show the run, its stages and log lines streamed from the
//! running stage; a screenshot is kept in target/test-artifacts/.

mod common;

use common::http::{get, wait_for};
use common::*;
use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Chromium binary; a missing one fails the test (the project's set-up
/// installs it, so its absence is a broken set-up, not a reason to skip).
fn chromium() -> PathBuf {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!("chromium is not installed: tests/run-all.sh installs it (apt-get install -y chromium)");
}

/// Headless Chromium driven over the DevTools protocol on a pipe
/// (`--remote-debugging-pipe`: commands in on fd 3, answers out on fd 4,
/// each message JSON ended by a NUL). A live page (an open event stream)
/// never lets `--dump-dom --virtual-time-budget` finish, so the test asks
/// the page for its DOM while it runs instead.
struct Browser {
    // Held for its Drop: the browser dies with the test.
    _child: Killed,
    commands: File,
    answers: BufReader<File>,
    next_id: u64,
}

fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, owned by the Files.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

impl Browser {
    fn launch(profile: &Path) -> Self {
        let (their_in, commands) = pipe();
        let (answers, their_out) = pipe();
        let (fd_in, fd_out) = (their_in.as_raw_fd(), their_out.as_raw_fd());
        let mut cmd = Command::new(chromium());
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec. The
        // descriptors go above 10 first, so placing them at 3 and 4 cannot
        // overwrite one with the other.
        unsafe {
            cmd.pre_exec(move || {
                let a = libc::fcntl(fd_in, libc::F_DUPFD, 10);
                let b = libc::fcntl(fd_out, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("chromium starts");
        drop((their_in, their_out));
        // A hung browser would block the test on the pipe forever: kill it
        // (its answers pipe then ends, and the test fails saying so).
        let pid = child.id() as libc::pid_t;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(180));
            // SAFETY: a plain signal to the browser this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        Browser {
            _child: Killed(child),
            commands,
            answers: BufReader::new(answers),
            next_id: 0,
        }
    }

    /// Sends one command and waits for its answer (events are skipped).
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .expect("chromium takes commands");
        loop {
            let mut buf = Vec::new();
            let n = self.answers.read_until(0, &mut buf).unwrap();
            assert!(n > 0, "chromium closed the pipe during {method}");
            buf.pop();
            let answer: Value = serde_json::from_slice(&buf).unwrap();
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method} failed: {answer}");
                return answer["result"].clone();
            }
        }
    }
}

/// Standard base64 (the screenshot's encoding), padding allowed.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn the_dashboard_shows_a_live_run_its_stages_and_its_log() {
    let scratch = Scratch::new("dashboard");
    let state = scratch.path("state");
    let manifest = scratch.write(
        "dash.toml",
        &format!(
            r#"[pipeline]
name = "dashboarded"
task = "look at me"

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
config = {{ behaviour = {{ chatter = {{ steps = 150, every_ms = 200 }} }} }}

[[stage]]
id = "last"
plugin = "faulty"
after = ["slow"]
config = {{ behaviour = "succeed" }}
"#,
            plugin("faulty").display().to_string()
        ),
    );
    let serve = common::serve::Serve::start(&state);
    let base = serve.url.clone();

    let run = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["run", "--quiet"])
        .arg(&manifest)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut run = Killed(run);

    let run_id = wait_for("the slow stage to log", Duration::from_secs(120), || {
        let runs = get(&base, "/api/runs").json();
        let id = runs[0]["id"].as_str()?.to_string();
        let log = get(&base, &format!("/api/runs/{id}/stages/slow/log"));
        (log.status == 200 && !log.json()["lines"].as_array()?.is_empty()).then_some(id)
    });

    // The page picks the newest run and follows its running stage by itself.
    let profile = scratch.path("chromium-profile");
    let mut browser = Browser::launch(&profile);
    let target = browser.call(
        None,
        "Target.createTarget",
        json!({"url": format!("{base}/")}),
    );
    let session = browser.call(
        None,
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    )["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let session = Some(session.as_str());
    let dom = |browser: &mut Browser| -> String {
        browser.call(
            session,
            "Runtime.evaluate",
            json!({"expression": "document.documentElement.outerHTML", "returnByValue": true}),
        )["result"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let start = Instant::now();
    let html = loop {
        let html = dom(&mut browser);
        if html.contains("class=\"log-line info\"") || start.elapsed() > Duration::from_secs(30) {
            break html;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        html.contains(&format!("id=\"run-id\">{run_id}<")),
        "the run is shown:\n{html}"
    );
    for stage in ["first", "slow", "last"] {
        assert!(
            html.contains(&format!("data-stage=\"{stage}\"")),
            "stage {stage} is in the graph:\n{html}"
        );
    }
    assert!(
        html.contains("class=\"node status-running selected\" data-stage=\"slow\""),
        "the running stage is coloured as running and selected:\n{html}"
    );
    assert!(
        html.contains("class=\"log-line info\"") && html.contains("chatter step"),
        "a log line was streamed into the page:\n{html}"
    );
    assert!(
        html.contains("id=\"progress-text\">") && html.contains("/150 ("),
        "the plugin's progress is shown:\n{html}"
    );
    // More lines arrive while the page stays open: it is a live stream.
    let count = |html: &str| html.matches("class=\"log-line info\"").count();
    let before = count(&html);
    let grown = wait_for("more streamed log lines", Duration::from_secs(30), || {
        let html = dom(&mut browser);
        (count(&html) > before).then_some(html)
    });
    assert!(grown.contains("chatter step"));
    assert!(
        run.0.try_wait().unwrap().is_none(),
        "the run was still going while the page was read"
    );

    let shot = browser.call(session, "Page.captureScreenshot", json!({"format": "png"}));
    let bytes = base64_decode(shot["data"].as_str().unwrap());
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
    assert!(bytes.len() > 5_000, "a screenshot with something in it");
    let artifacts = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("dashboard.png"), &bytes).unwrap();
    drop(browser);

    let _ = run.0.kill();
}
