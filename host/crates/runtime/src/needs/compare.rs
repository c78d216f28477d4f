//! A plugin's declared needs against one stage's grants.

use super::{NameSource, Need, Needs};
use host_manifest::{StageSpec, WorkspaceAccess};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// A required need the stage is not granted: the stage would fail.
    Error,
    /// A grant the plugin does not declare it uses: more access than needed.
    Warning,
    /// An optional need the stage is not granted: the plugin does without.
    Note,
}

/// The key of the stage's table a finding is about, to point at its line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantKey {
    Models,
    Sessions,
    Gates,
    Workspace,
    /// `config.KEY`.
    Config(String),
}

impl GrantKey {
    /// The key's path in the stage's table: "models", "config.model".
    pub fn path(&self) -> String {
        match self {
            GrantKey::Models => "models".into(),
            GrantKey::Sessions => "sessions".into(),
            GrantKey::Gates => "gates".into(),
            GrantKey::Workspace => "workspace".into(),
            GrantKey::Config(key) => format!("config.{key}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub key: GrantKey,
    pub message: String,
}

/// One kind of named grant: model aliases, sessions or gates.
struct Kind<'a> {
    /// "model alias", "session", "gate".
    noun: &'static str,
    key: GrantKey,
    needs: &'a [Need],
    granted: &'a [String],
}

/// Compares what the plugin declares with what `stage` grants. A template
/// (a blueprint for spawned jobs) gets its config at spawn time, so an unset
/// config key is not reported for it.
pub fn compare(needs: &Needs, stage: &StageSpec, template: bool) -> Vec<Finding> {
    let kinds = [
        Kind {
            noun: "model alias",
            key: GrantKey::Models,
            needs: &needs.models,
            granted: &stage.models,
        },
        Kind {
            noun: "session",
            key: GrantKey::Sessions,
            needs: &needs.sessions,
            granted: &stage.sessions,
        },
        Kind {
            noun: "gate",
            key: GrantKey::Gates,
            needs: &needs.gates,
            granted: &stage.gates,
        },
    ];
    let mut findings = Vec::new();
    for kind in &kinds {
        compare_names(kind, &stage.config, template, &mut findings);
    }
    compare_workspace(needs, stage.workspace, &mut findings);
    findings
}

/// The names a need resolves to with this config.
enum Resolved {
    /// The names, where they came from, and whether the stage's config
    /// gave them (then the plugin will use them, so they must be granted,
    /// however optional the need).
    Names(Vec<String>, String, bool),
    /// The config key is absent and there is no fallback.
    Unset(String),
    /// The config key holds something that is not a name or a list of names.
    Invalid(String),
}

/// The value at a dotted path ("model", "call-model.alias") of the config.
fn lookup<'a>(config: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(config, |v, key| v.get(key))
}

fn resolve(need: &Need, config: &serde_json::Value) -> Resolved {
    match &need.source {
        NameSource::Fixed { name } => Resolved::Names(vec![name.clone()], "built in".into(), false),
        NameSource::Config { key, fallback } => match lookup(config, key) {
            None | Some(serde_json::Value::Null) if fallback.is_empty() => {
                Resolved::Unset(key.clone())
            }
            None | Some(serde_json::Value::Null) => Resolved::Names(
                fallback.clone(),
                format!("its default, config `{key}` not being set"),
                false,
            ),
            Some(serde_json::Value::String(name)) => {
                Resolved::Names(vec![name.clone()], format!("from config `{key}`"), true)
            }
            Some(serde_json::Value::Array(items)) => {
                let names: Option<Vec<String>> = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect();
                match names {
                    Some(names) => Resolved::Names(names, format!("from config `{key}`"), true),
                    None => Resolved::Invalid(key.clone()),
                }
            }
            Some(_) => Resolved::Invalid(key.clone()),
        },
    }
}

fn compare_names(
    kind: &Kind<'_>,
    config: &serde_json::Value,
    template: bool,
    findings: &mut Vec<Finding>,
) {
    let noun = kind.noun;
    let grant = kind.key.path();
    let mut used = BTreeSet::new();
    for need in kind.needs {
        match resolve(need, config) {
            Resolved::Names(names, origin, configured) => {
                for name in names {
                    if !kind.granted.contains(&name) {
                        findings.push(if need.required || configured {
                            Finding {
                                severity: Severity::Error,
                                key: kind.key.clone(),
                                message: format!(
                                    "the plugin needs {noun} '{name}' ({origin}), which the stage is not granted: add it to `{grant}`"
                                ),
                            }
                        } else {
                            Finding {
                                severity: Severity::Note,
                                key: kind.key.clone(),
                                message: format!(
                                    "the plugin can use {noun} '{name}' ({origin}); not granted, so it goes without"
                                ),
                            }
                        });
                    }
                    used.insert(name);
                }
            }
            Resolved::Unset(key) if need.required && !template => findings.push(Finding {
                severity: Severity::Error,
                key: GrantKey::Config(key.clone()),
                message: format!(
                    "the plugin needs a {noun} named by config `{key}`, which is not set"
                ),
            }),
            Resolved::Unset(_) => {}
            Resolved::Invalid(key) => findings.push(Finding {
                severity: Severity::Error,
                key: GrantKey::Config(key.clone()),
                message: format!(
                    "config `{key}` should name a {noun}: a string or a list of strings"
                ),
            }),
        }
    }
    for name in kind.granted {
        if !used.contains(name) {
            findings.push(Finding {
                severity: Severity::Warning,
                key: kind.key.clone(),
                message: format!(
                    "the stage is granted {noun} '{name}', which the plugin does not declare it uses"
                ),
            });
        }
    }
}

fn rank(access: WorkspaceAccess) -> u8 {
    match access {
        WorkspaceAccess::None => 0,
        WorkspaceAccess::ReadOnly => 1,
        WorkspaceAccess::ReadWrite => 2,
    }
}

fn compare_workspace(needs: &Needs, granted: WorkspaceAccess, findings: &mut Vec<Finding>) {
    let need = needs.workspace;
    let (wanted, has) = (need.access.as_str(), granted.as_str());
    if rank(need.access) > rank(granted) {
        findings.push(if need.required {
            Finding {
                severity: Severity::Error,
                key: GrantKey::Workspace,
                message: format!(
                    "the plugin needs the workspace {wanted}, but the stage's grant is `workspace = \"{has}\"`"
                ),
            }
        } else {
            Finding {
                severity: Severity::Note,
                key: GrantKey::Workspace,
                message: format!(
                    "the plugin can use the workspace {wanted}; the grant is `{has}`, so it goes without"
                ),
            }
        });
    } else if rank(granted) > rank(need.access) {
        let declared = match need.access {
            WorkspaceAccess::None => "does not declare it uses the workspace".to_string(),
            _ => format!("declares it needs only {wanted}"),
        };
        findings.push(Finding {
            severity: Severity::Warning,
            key: GrantKey::Workspace,
            message: format!("the stage is granted the workspace {has}, but the plugin {declared}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needs::WorkspaceNeed;
    use serde_json::json;

    fn stage(models: &[&str], workspace: WorkspaceAccess, config: serde_json::Value) -> StageSpec {
        // A plugin with a build command need not exist yet.
        let text = "[pipeline]\nname = \"t\"\ntask = \"t\"\n[plugins.x]\nwasm = \"x.wasm\"\nbuild = [\"true\"]\n[[stage]]\nid = \"s\"\nplugin = \"x\"\n".to_string();
        let mut spec = host_manifest::parse(std::path::Path::new("p.toml"), text)
            .unwrap()
            .stages
            .remove(0);
        spec.models = models.iter().map(|m| m.to_string()).collect();
        spec.workspace = workspace;
        spec.config = config;
        spec
    }

    fn needs(models: Vec<Need>, workspace: WorkspaceNeed) -> Needs {
        Needs {
            models,
            sessions: Vec::new(),
            gates: Vec::new(),
            workspace,
        }
    }

    fn from_config(key: &str, fallback: &[&str], required: bool) -> Need {
        Need {
            source: NameSource::Config {
                key: key.into(),
                fallback: fallback.iter().map(|s| s.to_string()).collect(),
            },
            required,
        }
    }

    const NO_WORKSPACE: WorkspaceNeed = WorkspaceNeed {
        access: WorkspaceAccess::None,
        required: false,
    };

    #[test]
    fn matching_grants_say_nothing() {
        let n = needs(vec![from_config("model", &[], true)], NO_WORKSPACE);
        let s = stage(&["small"], WorkspaceAccess::None, json!({"model": "small"}));
        assert_eq!(compare(&n, &s, false), vec![]);
    }

    #[test]
    fn a_missing_alias_is_an_error_and_an_extra_one_a_warning() {
        let n = needs(vec![from_config("model", &[], true)], NO_WORKSPACE);
        let s = stage(&["small"], WorkspaceAccess::None, json!({"model": "large"}));
        let f = compare(&n, &s, false);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(
            (f[0].severity, &f[0].key),
            (Severity::Error, &GrantKey::Models)
        );
        assert!(
            f[0].message.contains("'large' (from config `model`)"),
            "{}",
            f[0].message
        );
        assert_eq!(f[1].severity, Severity::Warning);
        assert!(f[1].message.contains("'small'"), "{}", f[1].message);
    }

    #[test]
    fn an_unset_config_key_uses_the_fallback_or_is_reported() {
        let n = needs(vec![from_config("model", &["small"], true)], NO_WORKSPACE);
        let s = stage(&["small"], WorkspaceAccess::None, json!({}));
        assert_eq!(compare(&n, &s, false), vec![]);

        let n = needs(vec![from_config("model", &[], true)], NO_WORKSPACE);
        let f = compare(&n, &s, false);
        assert_eq!(f[0].key, GrantKey::Config("model".into()));
        assert_eq!(f[0].severity, Severity::Error);
        // A template gets its config when a job is spawned.
        assert!(
            compare(&n, &s, true)
                .iter()
                .all(|f| f.severity != Severity::Error)
        );

        let optional = needs(vec![from_config("model", &[], false)], NO_WORKSPACE);
        let none = stage(&[], WorkspaceAccess::None, json!({}));
        assert_eq!(compare(&optional, &none, false), vec![]);
    }

    #[test]
    fn lists_in_config_and_bad_values() {
        let n = needs(vec![from_config("models", &[], true)], NO_WORKSPACE);
        let s = stage(
            &["small", "large"],
            WorkspaceAccess::None,
            json!({"models": ["small", "large"]}),
        );
        assert_eq!(compare(&n, &s, false), vec![]);
        let s = stage(&["small"], WorkspaceAccess::None, json!({"models": 3}));
        let f = compare(&n, &s, false);
        assert!(
            f.iter()
                .any(|f| f.severity == Severity::Error && f.message.contains("a string or a list")),
            "{f:?}"
        );
    }

    #[test]
    fn workspace_too_little_too_much_or_optional() {
        let rw = WorkspaceNeed {
            access: WorkspaceAccess::ReadWrite,
            required: true,
        };
        let f = compare(
            &needs(vec![], rw),
            &stage(&[], WorkspaceAccess::ReadOnly, json!({})),
            false,
        );
        assert_eq!((f.len(), f[0].severity), (1, Severity::Error));

        let ro_optional = WorkspaceNeed {
            access: WorkspaceAccess::ReadOnly,
            required: false,
        };
        let f = compare(
            &needs(vec![], ro_optional),
            &stage(&[], WorkspaceAccess::None, json!({})),
            false,
        );
        assert_eq!((f.len(), f[0].severity), (1, Severity::Note));

        let f = compare(
            &needs(vec![], NO_WORKSPACE),
            &stage(&[], WorkspaceAccess::ReadWrite, json!({})),
            false,
        );
        assert_eq!((f.len(), f[0].severity), (1, Severity::Warning));
        assert!(
            f[0].message.contains("does not declare"),
            "{}",
            f[0].message
        );
    }
}
