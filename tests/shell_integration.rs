//! `host completions SHELL` and `host man`: generated from the CLI itself,
//! and usable by the shells and `man` as they come.

mod common;

use common::*;

#[test]
fn completions_load_in_bash_and_name_every_command() {
    let o = host(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = stdout(&o);
    for word in ["resume", "completions", "--task-file", "--color"] {
        assert!(script.contains(word), "{word} missing");
    }
    let scratch = Scratch::new("completions");
    let file = scratch.write("host.bash", &script);
    // Sourced by a real bash, it registers a completion function for host.
    let loaded = std::process::Command::new("bash")
        .args([
            "--norc",
            "-c",
            &format!("source {} && complete -p host", file.display()),
        ])
        .output()
        .expect("bash runs");
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    assert!(
        stdout(&loaded).contains("-F _host host"),
        "{}",
        stdout(&loaded)
    );

    for (shell, mark) in [("zsh", "#compdef host"), ("fish", "complete -c host")] {
        let o = host(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        assert!(stdout(&o).contains(mark), "{shell}: {}", stdout(&o));
    }
    let o = host(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(10));
}

#[test]
fn the_manual_page_is_roff_for_host_and_one_page_per_command() {
    let o = host(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.contains(".TH host 1"), "{page}");
    assert!(page.contains("resume"), "{page}");

    let scratch = Scratch::new("man-pages");
    let dir = scratch.path("man1");
    std::fs::create_dir_all(&dir).unwrap();
    let o = host(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for page in ["host.1", "host-run.1", "host-resume.1", "host-plugin-new.1"] {
        assert!(dir.join(page).is_file(), "{page} not written");
    }
    let o = host(&["man", "--dir", scratch.path("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(10));
    assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));
}
