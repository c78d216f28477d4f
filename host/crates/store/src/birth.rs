//! The database file is born whole: it is built under a temporary name,
//! synced, and linked into place in one step, so a process killed while
//! creating it leaves either no `state.redb` or a complete one, never a
//! file without a header that every later command would fail on. An empty
//! or damaged file is reported, never silently replaced.

use super::{DB_FILE, Db, Owner, Result, Store, StoreError};
use std::path::Path;

const TEMP_PREFIX: &str = ".state.redb.new-";

/// Makes sure `dir` holds a complete database file, creating one if none
/// is there.
pub(crate) fn ensure_database(dir: &Path) -> Result<()> {
    let path = dir.join(DB_FILE);
    match std::fs::metadata(&path) {
        Ok(m) if m.len() == 0 => Err(StoreError::Corrupted {
            path,
            detail: "the file is empty".into(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir),
        Err(e) => Err(StoreError::Db {
            path,
            detail: e.to_string(),
        }),
    }
}

fn create(dir: &Path) -> Result<()> {
    remove_abandoned(dir);
    let path = dir.join(DB_FILE);
    let temp = dir.join(format!("{TEMP_PREFIX}{}", std::process::id()));
    let io = |e: std::io::Error| StoreError::Db {
        path: path.clone(),
        detail: format!("cannot create it: {e}"),
    };
    let _ = std::fs::remove_file(&temp);
    {
        let db = super::builder()
            .create(&temp)
            .map_err(|e| super::classify(&temp, e.into()))?;
        Store::with(Db::Writable(db), temp.clone()).init_schema()?;
    }
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    crate::failpoint::hit("database-built");
    // A hard link never replaces: if another process put its own file in
    // place first, that one is the database and this one is dropped.
    let linked = std::fs::hard_link(&temp, &path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Temporary files of creations whose process is gone.
fn remove_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let creator = Owner {
            pid,
            start_ticks: None,
        };
        if !creator.is_alive() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_damage_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), b"").unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Corrupted { .. }), "{err}");
        assert!(err.to_string().contains("empty"), "{err}");
        assert_eq!(
            std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len(),
            0
        );
    }

    #[test]
    fn a_new_database_leaves_no_temporary_file_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        // An abandoned creation of a process that is gone.
        let abandoned = dir.path().join(format!("{TEMP_PREFIX}{}", u32::MAX - 1));
        std::fs::write(&abandoned, b"half").unwrap();
        drop(Store::open(dir.path()).unwrap());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [DB_FILE]);
        assert!(Store::open(dir.path()).unwrap().runs().unwrap().is_empty());
    }

    #[test]
    fn a_file_without_a_header_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0u8; 73_728]).unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Corrupted { .. }), "{err}");
    }
}
