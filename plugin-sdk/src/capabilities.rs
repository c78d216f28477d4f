//! What a plugin declares it needs from the stage that runs it, returned by
//! `info()` with [`PluginInfo`]'s builder methods. `host validate` compares
//! it with each stage's grants; the sandbox enforces the grants alone.
//!
//! ```ignore
//! PluginInfo::new("review", env!("CARGO_PKG_VERSION"), "Reviews a plan")
//!     .model(Need::config("reviewer"))                // the alias under config `reviewer`
//!     .model(Need::config("second").optional())       // used only when set
//!     .session(Need::config("session").or("review"))  // `review` when the key is absent
//!     .gate(Need::named("tests"))                     // a name written into the plugin
//!     .optional_workspace(WorkspaceAccess::ReadOnly)  // reads /workspace when granted
//! ```

use crate::PluginInfo;
pub use crate::bindings::orchestrator::stage::types::{
    Capabilities, ConfigNames, NameSource, Need, WorkspaceAccess, WorkspaceNeed,
};

impl Need {
    /// This name, written into the plugin; required.
    pub fn named(name: &str) -> Need {
        Need {
            source: NameSource::Fixed(name.to_string()),
            required: true,
        }
    }

    /// The name (or list of names) under `key` of the stage's config; a
    /// dotted key reaches into tables ("judge.model"). Required: the key must
    /// be set, or have a fallback given with [`Need::or`].
    pub fn config(key: &str) -> Need {
        Need {
            source: NameSource::Config(ConfigNames {
                key: key.to_string(),
                fallback: Vec::new(),
            }),
            required: true,
        }
    }

    /// A name the plugin uses when the config key is absent.
    pub fn or(mut self, fallback: &str) -> Need {
        if let NameSource::Config(c) = &mut self.source {
            c.fallback.push(fallback.to_string());
        }
        self
    }

    /// The plugin works without it (it skips what needs it).
    pub fn optional(mut self) -> Need {
        self.required = false;
        self
    }
}

impl Capabilities {
    /// Needs nothing: no model, session, gate or workspace.
    pub fn none() -> Capabilities {
        Capabilities {
            models: Vec::new(),
            sessions: Vec::new(),
            gates: Vec::new(),
            workspace: WorkspaceNeed {
                access: WorkspaceAccess::None,
                required: false,
            },
        }
    }
}

impl PluginInfo {
    /// A model alias the plugin calls.
    pub fn model(mut self, need: Need) -> Self {
        self.capabilities.models.push(need);
        self
    }

    /// A conversation session the plugin continues.
    pub fn session(mut self, need: Need) -> Self {
        self.capabilities.sessions.push(need);
        self
    }

    /// A preflight gate the plugin runs.
    pub fn gate(mut self, need: Need) -> Self {
        self.capabilities.gates.push(need);
        self
    }

    /// The workspace, which the plugin cannot work without.
    pub fn workspace(mut self, access: WorkspaceAccess) -> Self {
        self.capabilities.workspace = WorkspaceNeed {
            access,
            required: true,
        };
        self
    }

    /// The workspace, used when granted.
    pub fn optional_workspace(mut self, access: WorkspaceAccess) -> Self {
        self.capabilities.workspace = WorkspaceNeed {
            access,
            required: false,
        };
        self
    }
}
