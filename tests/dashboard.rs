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
/// A page of the dashboard open in a headless browser.
struct Page {
    browser: Browser,
    session: String,
}

impl Page {
    fn open(profile: &Path, url: &str) -> Page {
        let mut browser = Browser::launch(profile);
        let target = browser.call(None, "Target.createTarget", json!({ "url": url }));
        let session = browser.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )["sessionId"]
            .as_str()
            .unwrap()
            .to_string();
        Page { browser, session }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params)
    }

    /// The page's DOM as it is now.
    fn html(&mut self) -> String {
        self.text_of("document.documentElement.outerHTML")
    }

    /// The string a JavaScript expression evaluates to in the page ("" if
    /// it is not one).
    fn text_of(&mut self, expression: &str) -> String {
        self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        )["result"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

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

    let mut run = Killed(quiet_run_in_background(&state, &manifest));

    let run_id = wait_for("the slow stage to log", Duration::from_secs(120), || {
        let runs = get(&base, "/api/runs").json();
        let id = runs[0]["id"].as_str()?.to_string();
        let log = get(&base, &format!("/api/runs/{id}/stages/slow/log"));
        (log.status == 200 && !log.json()["lines"].as_array()?.is_empty()).then_some(id)
    });

    // The page picks the newest run and follows its running stage by itself.
    let mut page = Page::open(&scratch.path("chromium-profile"), &format!("{base}/"));
    let start = Instant::now();
    let html = loop {
        let html = page.html();
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
        let html = page.html();
        (count(&html) > before).then_some(html)
    });
    assert!(grown.contains("chatter step"));
    assert!(
        run.0.try_wait().unwrap().is_none(),
        "the run was still going while the page was read"
    );

    let shot = page.call("Page.captureScreenshot", json!({"format": "png"}));
    let bytes = base64_decode(shot["data"].as_str().unwrap());
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
    assert!(bytes.len() > 5_000, "a screenshot with something in it");
    let artifacts = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("dashboard.png"), &bytes).unwrap();
    drop(page);

    let _ = run.0.kill();
}

/// A model answer streams into the page while the call is still open (the
/// scripted server holds the rest until the page has shown the first
/// pieces), and is marked as the answer once the call ends.
#[test]
fn a_model_answer_streams_into_the_page_before_the_call_ends() {
    use common::model_server::{ModelServer, Reply, Streamed};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let release = Arc::new(AtomicBool::new(false));
    let hold = release.clone();
    let server = ModelServer::start(move |_| {
        Reply::stream(Streamed {
            pieces: ["Once ", "upon ", "a ", "time"].map(String::from).to_vec(),
            gap: Duration::from_millis(10),
            hold: Some((3, hold.clone())),
            cut_after: None,
        })
    });
    let scratch = Scratch::new("dashboard-stream");
    let state = scratch.path("state");
    let manifest = scratch.write(
        "stream.toml",
        &format!(
            "[pipeline]\nname = \"streaming\"\ntask = \"t\"\n\n[plugins.faulty]\nwasm = {:?}\n\n\
             [models.m]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"scripted\"\n\n\
             [[stage]]\nid = \"ask\"\nplugin = \"faulty\"\nmodels = [\"m\"]\n\
             config = {{ behaviour = {{ call-model = {{ alias = \"m\" }} }} }}\n",
            plugin("faulty").display().to_string(),
            server.url
        ),
    );
    let serve = common::serve::Serve::start(&state);
    let mut run = Killed(quiet_run_in_background(&state, &manifest));
    let mut page = Page::open(
        &scratch.path("chromium-profile"),
        &format!("{}/", serve.url),
    );
    let stream = |page: &mut Page| {
        page.text_of(
            "(() => { const b = document.querySelector('#log .model-stream'); \
             return b ? b.className + ': ' + b.querySelector('.text').textContent : ''; })()",
        )
    };
    let shown = wait_for(
        "the first pieces in the page",
        Duration::from_secs(60),
        || {
            let shown = stream(&mut page);
            shown.contains("Once upon a").then_some(shown)
        },
    );
    assert_eq!(
        shown, "model-stream streaming: Once upon a ",
        "pieces shown while the call is open"
    );
    assert!(
        run.0.try_wait().unwrap().is_none(),
        "the call was still open"
    );
    release.store(true, Ordering::SeqCst);
    let shown = wait_for("the answer marked", Duration::from_secs(60), || {
        let shown = stream(&mut page);
        shown.contains("answered").then_some(shown)
    });
    assert_eq!(shown, "model-stream answered: Once upon a time");
    let status = run.0.wait().unwrap();
    assert!(status.success());
}
