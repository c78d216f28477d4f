//! The repository needs nothing beside it: no file refers to a folder next to
//! the clone, and the project's own local-model script (tests/local-llm.sh)
//! brings up a server that answers a real chat completion.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file git tracks, or (outside a git checkout, as in an unpacked
/// archive) every file under the root but `target/` and `.git/`.
fn tree_files(root: &Path) -> Vec<PathBuf> {
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output();
    if let Ok(out) = listed
        && out.status.success()
    {
        return out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
            .filter(|p| p.is_file())
            .collect();
    }
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if path.is_file() {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn nothing_in_the_tree_refers_to_a_folder_beside_the_clone() {
    let root = common::workspace_root();
    // Spelled in pieces so this file does not find itself.
    let needles = [
        format!("..{}shared", '/'),
        format!("shared{}tools", '/'),
        format!("shared{}seeds", '/'),
    ];
    let files = tree_files(&root);
    assert!(
        files.len() > 100,
        "only {} files found under {}",
        files.len(),
        root.display()
    );
    let mut found = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read(file) else {
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        for (n, line) in text.lines().enumerate() {
            if let Some(needle) = needles.iter().find(|needle| line.contains(needle.as_str())) {
                let shown = file.strip_prefix(&root).unwrap_or(file);
                found.push(format!(
                    "{}:{}: {needle}: {}",
                    shown.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the repository must stand alone; these lines refer outside it:\n{}",
        found.join("\n")
    );
}

#[tokio::test]
async fn the_local_model_script_starts_a_server_that_answers_a_chat_completion() {
    // The script itself, not LOCAL_LLM_URL: this is the server a fresh clone
    // gets. A running one is reused (it prints the same URL at once).
    let script = common::workspace_root().join("tests/local-llm.sh");
    let out = Command::new(&script)
        .arg("start")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} start failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let url = stdout.trim().lines().last().unwrap_or("").to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/v1"),
        "the script's last line should be the loopback base URL, not {url:?}"
    );

    let body = serde_json::json!({
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Name one colour."}],
        "max_tokens": 16,
        "temperature": 0,
    });
    // The host's own TLS provider (its client is built without a default).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reply = reqwest::Client::new()
        .post(format!("{url}/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}/chat/completions: {e}"));
    assert_eq!(
        reply.status(),
        200,
        "the local model refused a chat completion"
    );
    let answer: serde_json::Value = reply.json().await.expect("a JSON answer");
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no choices[0].message.content in {answer}"));
    assert!(!content.trim().is_empty(), "an empty answer: {answer}");
    let completion_tokens = answer["usage"]["completion_tokens"].as_u64().unwrap_or(0);
    assert!(
        (1..=16).contains(&completion_tokens),
        "usage.completion_tokens should count the answer within max_tokens: {answer}"
    );
}
