//! What the transactional workspace costs on a real-sized tree (10,000
//! files, 200 MB by default), beside a plain `cp -r` of the same tree run
//! in the same minute: the run's first copy (copy and hash every file), an
//! attempt's private copy, finding what an attempt changed, and committing
//! the changeset (contents read, stored, copied into the run's tree).

use super::stats::Summary;
use host_vocab::FileChange;
use host_workspace::{Exclusions, RunWorkspace, WorkspaceError};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct CopyFigures {
    pub files: usize,
    pub bytes: u64,
    pub cp_r: Summary,
    pub run_copy: Summary,
    pub attempt_copy: Summary,
    pub changes: Summary,
    pub commit: Summary,
    /// Files the copies shared by reflink (0 on ext4).
    pub reflinked: u64,
}

/// A project-like tree: 100 directories of `files / 100` files, sizes
/// spread around `bytes / files` (a few large ones, many small).
fn make_tree(root: &Path, files: usize, bytes: u64) -> std::io::Result<()> {
    let per_dir = files.div_ceil(100);
    let mean = bytes / files as u64;
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..files {
        let dir = root.join(format!("pkg{:03}", i / per_dir));
        if i % per_dir == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Sizes between mean/2 and 3*mean/2, every 50th file 5x the mean.
        let size = if i % 50 == 0 {
            mean * 5
        } else {
            mean / 2 + seed % mean.max(1)
        } as usize;
        let line = format!("// file {i} of the benchmark tree, seed {seed:x}\n");
        let content: Vec<u8> = line.bytes().cycle().take(size).collect();
        std::fs::write(dir.join(format!("f{i:05}.rs")), content)?;
    }
    Ok(())
}

fn cp_r(from: &Path, to: &Path) -> Result<Duration, String> {
    let _ = std::fs::remove_dir_all(to);
    let t = Instant::now();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .map_err(|e| format!("cp: {e}"))?;
    if !status.success() {
        return Err(format!("cp -r failed: {status}"));
    }
    Ok(t.elapsed())
}

fn no_blobs(h: &str) -> Result<Vec<u8>, WorkspaceError> {
    Err(WorkspaceError::MissingBlob(h.to_string()))
}

pub fn measure(
    dir: &Path,
    files: usize,
    bytes: u64,
    repeats: usize,
) -> Result<CopyFigures, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let _ = std::fs::remove_dir_all(dir);
    let source = dir.join("project");
    std::fs::create_dir_all(&source).map_err(|e| err(&e))?;
    make_tree(&source, files, bytes).map_err(|e| err(&e))?;
    let state = dir.join("state");
    let mut figures: [Vec<Duration>; 5] = Default::default();
    let mut reflinked = 0;
    let mut total_bytes = 0;
    for round in 0..repeats.max(1) {
        // Interleaved: each round measures the baseline beside the host's.
        figures[0].push(cp_r(&source, &dir.join("cp-copy"))?);
        let _ = std::fs::remove_dir_all(&state);
        let t = Instant::now();
        let ws = RunWorkspace::open(
            &source,
            &state,
            "bench",
            Exclusions::default(),
            &[],
            &no_blobs,
        )
        .map_err(|e| err(&e))?;
        figures[1].push(t.elapsed());
        reflinked = ws.created.cloned;
        total_bytes = ws.created.bytes;
        let t = Instant::now();
        let place = ws
            .private_copy(&format!("attempt-{round}"))
            .map_err(|e| err(&e))?;
        figures[2].push(t.elapsed());
        // An attempt that edits ten files and adds one.
        for i in 0..10 {
            let f = place
                .dir()
                .join(format!("pkg{:03}/f{:05}.rs", i, i * files.div_ceil(100)));
            std::fs::write(&f, format!("edited in round {round}\n")).map_err(|e| err(&e))?;
        }
        std::fs::write(place.dir().join("NEW.md"), "new\n").map_err(|e| err(&e))?;
        let t = Instant::now();
        let changes: Vec<FileChange> = ws
            .changes(&place, host_workspace::ChangeBounds::NONE)
            .map_err(|e| err(&e))?;
        figures[3].push(t.elapsed());
        if changes.len() != 11 {
            return Err(format!("expected 11 changes, found {}", changes.len()));
        }
        let t = Instant::now();
        ws.commit(&place, &changes, |blobs| Ok::<usize, ()>(blobs.len()))
            .map_err(|e| err(&e))?
            .map_err(|()| "record failed".to_string())?;
        figures[4].push(t.elapsed());
        ws.discard(&place);
        ws.remove();
    }
    let _ = std::fs::remove_dir_all(dir);
    let s = |v: &[Duration]| Summary::of(v).ok_or("no samples".to_string());
    Ok(CopyFigures {
        files,
        bytes: total_bytes,
        cp_r: s(&figures[0])?,
        run_copy: s(&figures[1])?,
        attempt_copy: s(&figures[2])?,
        changes: s(&figures[3])?,
        commit: s(&figures[4])?,
        reflinked,
    })
}
