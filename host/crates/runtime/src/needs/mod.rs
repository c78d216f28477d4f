//! What a plugin declares it needs from the stage that runs it (the WIT
//! `capabilities` its `info()` returns since orchestrator:stage 0.2.0), in
//! the host's own terms, and how that compares with a stage's grants.
//!
//! Declarations never widen a grant: the sandbox enforces the manifest
//! alone. They let `host validate` say, before anything runs, that a stage
//! lacks what its plugin needs or holds what its plugin never uses.

mod compare;

pub use compare::{Finding, GrantKey, Severity, compare};

use crate::bindings::orchestrator::stage::types as wit;
use host_manifest::WorkspaceAccess;
use serde::Serialize;
use std::fmt;

/// Where the names of one need come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "from")]
pub enum NameSource {
    /// A name written into the plugin.
    Fixed { name: String },
    /// The name or names under `key` of the stage's config; `fallback` when
    /// the key is absent.
    Config { key: String, fallback: Vec<String> },
}

/// One model alias, session or gate a plugin uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Need {
    #[serde(flatten)]
    pub source: NameSource,
    /// Whether the plugin fails without it.
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkspaceNeed {
    pub access: WorkspaceAccess,
    pub required: bool,
}

/// Everything a plugin declares it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Needs {
    pub models: Vec<Need>,
    pub sessions: Vec<Need>,
    pub gates: Vec<Need>,
    pub workspace: WorkspaceNeed,
}

impl From<wit::Need> for Need {
    fn from(n: wit::Need) -> Self {
        let source = match n.source {
            wit::NameSource::Fixed(name) => NameSource::Fixed { name },
            wit::NameSource::Config(c) => NameSource::Config {
                key: c.key,
                fallback: c.fallback,
            },
        };
        Need {
            source,
            required: n.required,
        }
    }
}

impl From<wit::Capabilities> for Needs {
    fn from(c: wit::Capabilities) -> Self {
        let access = match c.workspace.access {
            wit::WorkspaceAccess::None => WorkspaceAccess::None,
            wit::WorkspaceAccess::ReadOnly => WorkspaceAccess::ReadOnly,
            wit::WorkspaceAccess::ReadWrite => WorkspaceAccess::ReadWrite,
        };
        Needs {
            models: c.models.into_iter().map(Need::from).collect(),
            sessions: c.sessions.into_iter().map(Need::from).collect(),
            gates: c.gates.into_iter().map(Need::from).collect(),
            workspace: WorkspaceNeed {
                access,
                required: c.workspace.required,
            },
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            NameSource::Fixed { name } => write!(f, "'{name}'")?,
            NameSource::Config { key, fallback } => {
                write!(f, "config `{key}`")?;
                if !fallback.is_empty() {
                    write!(f, " (default {})", quoted(fallback))?;
                }
            }
        }
        if !self.required {
            write!(f, " optional")?;
        }
        Ok(())
    }
}

impl fmt::Display for WorkspaceNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.access.as_str())?;
        if !self.required && self.access != WorkspaceAccess::None {
            f.write_str(" optional")?;
        }
        Ok(())
    }
}

impl Needs {
    /// One line per kind, for `host plugin check` and `host validate`.
    pub fn lines(&self) -> Vec<String> {
        let list = |needs: &[Need]| {
            if needs.is_empty() {
                "none".to_string()
            } else {
                needs
                    .iter()
                    .map(Need::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        vec![
            format!("models: {}", list(&self.models)),
            format!("sessions: {}", list(&self.sessions)),
            format!("gates: {}", list(&self.gates)),
            format!("workspace: {}", self.workspace),
        ]
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
