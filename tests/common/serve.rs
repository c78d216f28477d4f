//! A `host serve` process on a free loopback port, for the tests that read
//! the dashboard or its API.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// `host serve` over `state`, killed when dropped.
pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
}

impl Serve {
    pub fn start(state: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
            .args(["serve", "--addr", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first.trim().trim_end_matches('/').to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "first line: {first:?}"
        );
        Serve { child, url }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
