//! Which imports a component may have and which export it must have:
//! checked at load time, so an ungranted import is named clearly instead of
//! failing deep inside instantiation.

use super::world::WitLine;
use crate::bindings::{WIT_ACCEPTED, WIT_PACKAGE};

/// WASI packages a plugin may import. Importing is not being granted: files
/// need a preopen the stage's grant adds, and `wasi:sockets` is linked only
/// so that toolchains that always import it (componentize-py's CPython) can
/// load; the WASI context of every stage refuses every address and lookup.
const WASI_ALLOWED: &[&str] = &[
    "wasi:cli",
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:filesystem",
    "wasi:sockets",
];

/// Interfaces of this host's own package every plugin may import, whatever
/// its capabilities: the shared types (each capability adds its own).
pub const BASE_INTERFACES: &[&str] = &["types"];

/// Why one import or export is unacceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("imports {0}: network access (wasi:http) is not available to stage plugins")]
    Http(String),
    #[error(
        "imports {name}: built against {WIT_PACKAGE}@{found}, but this host runs {WIT_PACKAGE} {WIT_ACCEPTED}"
    )]
    IncompatibleVersion { name: String, found: String },
    #[error("imports {0}: an interface this host does not provide")]
    Unknown(String),
    #[error(
        "does not export {WIT_PACKAGE}/runner ({WIT_ACCEPTED}): it is not a stage plugin (exports: {0})"
    )]
    NoRunner(String),
}

/// Splits "pkg:name/iface@1.2.3" into ("pkg:name", "iface", Some("1.2.3")).
fn split_name(name: &str) -> (&str, &str, Option<&str>) {
    let (path, version) = match name.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (name, None),
    };
    let (package, iface) = path.split_once('/').unwrap_or((path, ""));
    (package, iface, version)
}

/// A version of a line this host runs (see `runtime::world`).
pub fn version_compatible(found: &str) -> bool {
    WitLine::of(found).is_some()
}

/// Checks one import; `interfaces` are this host's own it serves.
pub fn check_import(name: &str, interfaces: &[&str]) -> Result<(), PolicyViolation> {
    let (package, iface, version) = split_name(name);
    if package == WIT_PACKAGE {
        let found = version.unwrap_or("(unversioned)");
        if !version.is_some_and(version_compatible) {
            return Err(PolicyViolation::IncompatibleVersion {
                name: name.to_string(),
                found: found.to_string(),
            });
        }
        return if interfaces.contains(&iface) {
            Ok(())
        } else {
            Err(PolicyViolation::Unknown(name.to_string()))
        };
    }
    match package {
        "wasi:http" => Err(PolicyViolation::Http(name.to_string())),
        p if WASI_ALLOWED.contains(&p) && version.is_some_and(|v| v.starts_with("0.2.")) => Ok(()),
        _ => Err(PolicyViolation::Unknown(name.to_string())),
    }
}

/// Checks the exports contain a compatible `runner`; returns its name and
/// the line it belongs to.
pub fn check_exports<'a>(
    exports: impl Iterator<Item = &'a str>,
) -> Result<(&'a str, WitLine), PolicyViolation> {
    let exports: Vec<&str> = exports.collect();
    let runner = exports.iter().find_map(|name| {
        let (package, iface, version) = split_name(name);
        let line = version.and_then(WitLine::of)?;
        (package == WIT_PACKAGE && iface == "runner").then_some((*name, line))
    });
    if let Some(found) = runner {
        return Ok(found);
    }
    if let Some(other) = exports
        .iter()
        .find(|n| n.starts_with(&format!("{WIT_PACKAGE}/runner@")))
    {
        let found = split_name(other).2.unwrap_or_default();
        return Err(PolicyViolation::IncompatibleVersion {
            name: other.to_string(),
            found: found.to_string(),
        });
    }
    Err(PolicyViolation::NoRunner(if exports.is_empty() {
        "none".into()
    } else {
        exports.join(", ")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &[&str] = &["types", "models", "log", "kv", "gates", "artifacts"];

    #[test]
    fn allows_host_and_plain_wasi() {
        assert_eq!(
            check_import("orchestrator:stage/models@0.1.0", HOST),
            Ok(())
        );
        assert_eq!(
            check_import("orchestrator:stage/models@0.2.0", HOST),
            Ok(())
        );
        assert_eq!(check_import("orchestrator:stage/log@0.1.3", HOST), Ok(()));
        assert_eq!(check_import("wasi:cli/environment@0.2.6", HOST), Ok(()));
        assert_eq!(check_import("wasi:filesystem/preopens@0.2.0", HOST), Ok(()));
    }

    #[test]
    fn names_what_is_refused() {
        assert!(matches!(
            check_import("wasi:http/outgoing-handler@0.2.0", HOST),
            Err(PolicyViolation::Http(_))
        ));
        assert!(matches!(
            check_import("wasi:keyvalue/store@0.2.0", HOST),
            Err(PolicyViolation::Unknown(_))
        ));
        assert!(matches!(
            check_import("acme:evil/steal@1.0.0", HOST),
            Err(PolicyViolation::Unknown(_))
        ));
        assert!(matches!(
            check_import("orchestrator:stage/models@0.4.0", HOST),
            Err(PolicyViolation::IncompatibleVersion { .. })
        ));
        assert!(matches!(
            check_import("orchestrator:stage/models@1.0.0", HOST),
            Err(PolicyViolation::IncompatibleVersion { .. })
        ));
        assert!(matches!(
            check_import("orchestrator:stage/secrets@0.1.1", HOST),
            Err(PolicyViolation::Unknown(_))
        ));
    }

    #[test]
    fn requires_a_compatible_runner() {
        assert_eq!(
            check_exports(["orchestrator:stage/runner@0.1.0"].into_iter()),
            Ok(("orchestrator:stage/runner@0.1.0", WitLine::V0_1))
        );
        assert_eq!(
            check_exports(["orchestrator:stage/runner@0.2.0"].into_iter()),
            Ok(("orchestrator:stage/runner@0.2.0", WitLine::V0_2))
        );
        assert_eq!(
            check_exports(["orchestrator:stage/runner@0.3.0"].into_iter()),
            Ok(("orchestrator:stage/runner@0.3.0", WitLine::V0_3))
        );
        assert!(matches!(
            check_exports(["orchestrator:stage/runner@0.4.0"].into_iter()),
            Err(PolicyViolation::IncompatibleVersion { .. })
        ));
        assert!(matches!(
            check_exports(["wasi:cli/run@0.2.0"].into_iter()),
            Err(PolicyViolation::NoRunner(_))
        ));
    }
}
