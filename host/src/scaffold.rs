//! `host plugin new`: a ready-to-build plugin project, from templates
//! embedded in the binary (with the WIT package this host implements, so a
//! project always starts from the exact contract its host runs).

use host_runtime::bindings::WIT_VERSION;
use std::path::{Component, Path, PathBuf};

/// The languages a project can be created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust on plugin-sdk.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "invalid plugin name '{0}': use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter (and not a Rust keyword)"
    )]
    InvalidName(String),
    #[error("{0} exists and is not empty: choose another --dir, or empty it first")]
    NotEmpty(PathBuf),
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "no plugin-sdk at {0} (a Rust plugin depends on it by path): pass --sdk PATH to the plugin-sdk directory of a checkout of the host's sources"
    )]
    NoSdk(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One file of a template.
struct File {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

const fn file(path: &'static str, text: &'static str) -> File {
    File {
        path,
        text,
        executable: false,
    }
}

const fn script(path: &'static str, text: &'static str) -> File {
    File {
        path,
        text,
        executable: true,
    }
}

const WIT: &str = include_str!("../../wit/stage.wit");
const PIPELINE: &str = include_str!("../templates/pipeline.toml");
const RUN_SPEC: &str = include_str!("../templates/run.toml");
const NOTES: &str = include_str!("../templates/notes.md");

const RUST: &[File] = &[
    file(
        "Cargo.toml",
        include_str!("../templates/rust/Cargo.toml.tmpl"),
    ),
    file("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    script("build.sh", include_str!("../templates/rust/build.sh")),
    file("README.md", include_str!("../templates/rust/README.md")),
    file(".gitignore", include_str!("../templates/rust/.gitignore")),
    file("pipeline.toml", PIPELINE),
    file("run.toml", RUN_SPEC),
    file("notes.md", NOTES),
];

const PYTHON: &[File] = &[
    file("app.py", include_str!("../templates/python/app.py")),
    file("prompt.py", include_str!("../templates/python/prompt.py")),
    file(
        "test_prompt.py",
        include_str!("../templates/python/test_prompt.py"),
    ),
    file(
        "test_app.py",
        include_str!("../templates/python/test_app.py"),
    ),
    file(
        "testing_host.py",
        include_str!("../templates/python/testing_host.py"),
    ),
    script("build.sh", include_str!("../templates/python/build.sh")),
    file("README.md", include_str!("../templates/python/README.md")),
    file(".gitignore", include_str!("../templates/python/.gitignore")),
    file("wit/stage.wit", WIT),
    file("pipeline.toml", PIPELINE),
    file("run.toml", RUN_SPEC),
    file("notes.md", NOTES),
];

const JS: &[File] = &[
    file("app.js", include_str!("../templates/js/app.js")),
    file("prompt.js", include_str!("../templates/js/prompt.js")),
    file(
        "prompt.test.js",
        include_str!("../templates/js/prompt.test.js"),
    ),
    file("app.test.js", include_str!("../templates/js/app.test.js")),
    file(
        "testing/host.js",
        include_str!("../templates/js/testing/host.js"),
    ),
    file(
        "testing/hooks.js",
        include_str!("../templates/js/testing/hooks.js"),
    ),
    file(
        "testing/register.js",
        include_str!("../templates/js/testing/register.js"),
    ),
    file("package.json", include_str!("../templates/js/package.json")),
    script("build.sh", include_str!("../templates/js/build.sh")),
    file("README.md", include_str!("../templates/js/README.md")),
    file(".gitignore", include_str!("../templates/js/.gitignore")),
    file("wit/stage.wit", WIT),
    file("pipeline.toml", PIPELINE),
    file("run.toml", RUN_SPEC),
    file("notes.md", NOTES),
];

/// Where plugin-sdk was when this host was built: the default for `--sdk`.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk")
}

/// Words Cargo refuses as package names.
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "try",
    "gen",
    "test",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "proc-macro",
];

/// A name that works as a plugin name in pipeline.toml, a Cargo package,
/// an npm package and a file name.
pub fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && host_manifest::is_valid_name(name)
        && !RESERVED.contains(&name)
}

/// What was created.
pub struct Created {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Creates a `lang` project for plugin `name` in `dir` (created if missing,
/// refused unless empty). `sdk` is the plugin-sdk directory a Rust project
/// depends on.
pub fn create(name: &str, lang: Lang, dir: &Path, sdk: &Path) -> Result<Created, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName(name.to_string()));
    }
    check_target(dir)?;
    let sdk_text = match lang {
        Lang::Rust => {
            let sdk = sdk
                .canonicalize()
                .ok()
                .filter(|p| p.join("Cargo.toml").is_file())
                .ok_or_else(|| ScaffoldError::NoSdk(sdk.to_path_buf()))?;
            Some(sdk)
        }
        _ => None,
    };
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let root = dir.canonicalize().map_err(write_err(dir))?;
    let sdk_path = sdk_text
        .map(|sdk| relative(&root, &sdk).display().to_string())
        .unwrap_or_default();
    let (files, watch) = match lang {
        Lang::Rust => (RUST, r#""src", "Cargo.toml""#),
        Lang::Python => (PYTHON, r#""app.py", "prompt.py""#),
        Lang::Js => (JS, r#""app.js", "prompt.js""#),
    };
    let mut written = Vec::new();
    for f in files {
        let text = f
            .text
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &sdk_path.replace('\\', "/"))
            .replace("{{wit_version}}", WIT_VERSION)
            .replace("{{watch}}", watch);
        let path = root.join(f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        std::fs::write(&path, text).map_err(write_err(&path))?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(write_err(&path))?;
        }
        written.push(PathBuf::from(f.path));
    }
    Ok(Created {
        dir: root,
        files: written,
    })
}

/// A target directory must be missing or empty: nothing of the user's is
/// ever overwritten.
fn check_target(dir: &Path) -> Result<(), ScaffoldError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
            }
            Ok(())
        }
        Err(_) if dir.exists() => Err(ScaffoldError::NotADirectory(dir.to_path_buf())),
        Err(_) => Ok(()),
    }
}

/// `to` relative to `from` when they share more than the root (a project
/// inside the host's checkout gets "../../plugin-sdk"), else `to` itself.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common <= 1 {
        return to.to_path_buf();
    }
    let mut path = PathBuf::new();
    for _ in common..a.len() {
        path.push("..");
    }
    for c in &b[common..] {
        path.push(c.as_os_str());
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["summarise", "my-stage", "stage_2", "a"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "2fast",
            "-x",
            "My",
            "has space",
            "dot.ted",
            "fn",
            "test",
            &"x".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(
                Path::new("/work/repo/plugins/x"),
                Path::new("/work/repo/plugin-sdk")
            ),
            PathBuf::from("../../plugin-sdk")
        );
        assert_eq!(
            relative(Path::new("/tmp/x"), Path::new("/work/repo/plugin-sdk")),
            PathBuf::from("/work/repo/plugin-sdk")
        );
    }

    #[test]
    fn templates_have_no_placeholder_left_after_rendering() {
        for files in [RUST, PYTHON, JS] {
            for f in files {
                let text = f
                    .text
                    .replace("{{name}}", "n")
                    .replace("{{crate}}", "n")
                    .replace("{{sdk}}", "s")
                    .replace("{{wit_version}}", "v")
                    .replace("{{watch}}", "w");
                assert!(!text.contains("{{"), "{} keeps a placeholder", f.path);
            }
        }
    }
}
