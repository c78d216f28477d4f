//! Which paths of a workspace are not the run's to copy, diff or apply.

/// Directories that are never part of a stage's view: version-control
/// internals belong to the user's checkout, not to the work. (A gate that
/// needs `git` runs on the user's directory through their own tooling.)
pub const ALWAYS_EXCLUDED: &[&str] = &[".git", ".hg", ".svn", ".jj"];

/// Excluded paths: a bare name (`target`, `node_modules`) matches that name
/// at any depth; an entry with a `/` (`build/out`) is relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusions {
    names: Vec<String>,
    paths: Vec<String>,
}

impl Default for Exclusions {
    fn default() -> Self {
        Exclusions::new(&[])
    }
}

impl Exclusions {
    pub fn new(entries: &[String]) -> Self {
        let mut names: Vec<String> = ALWAYS_EXCLUDED.iter().map(|s| s.to_string()).collect();
        let mut paths = Vec::new();
        for e in entries {
            let e = e.trim_end_matches('/');
            if e.is_empty() {
                continue;
            }
            if e.contains('/') {
                paths.push(e.to_string());
            } else {
                names.push(e.to_string());
            }
        }
        Exclusions { names, paths }
    }

    /// Whether `rel` (relative, `/`-separated) is excluded, itself: a
    /// caller walking a tree does not descend into an excluded directory.
    pub fn excludes(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        self.names.iter().any(|n| n == name)
            || self.paths.iter().any(|p| {
                rel == p
                    || rel
                        .strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_at_any_depth_and_paths_from_the_root() {
        let e = Exclusions::new(&["target".into(), "build/out/".into()]);
        assert!(e.excludes(".git"));
        assert!(e.excludes("sub/.git"));
        assert!(e.excludes("target"));
        assert!(e.excludes("crates/a/target"));
        assert!(e.excludes("build/out"));
        assert!(e.excludes("build/out/x.o"));
        assert!(!e.excludes("build/output"));
        assert!(!e.excludes("src/build/out"));
        assert!(!e.excludes("targets"));
        assert!(!e.excludes("src/main.rs"));
    }
}
