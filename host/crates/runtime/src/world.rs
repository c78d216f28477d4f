//! The versions of the `stage` world this host runs, and calling a plugin's
//! `runner` whichever it targets.
//!
//! 0.3 plugins are called through the generated bindings. Older lines differ
//! in `runner` only: their `stage-input` carries each upstream artifact's
//! bytes (0.3 hands references, read through `inputs`), and a 0.1
//! `plugin-info` has no `capabilities`. Component-model types match by
//! structure, so they are called through their exports found by name, with
//! records of their shape declared here; the runtime reads their upstream
//! bytes for them before the call.

use super::StageState;
use super::capability::GrantSet;
use crate::bindings::orchestrator::stage::types::{Artifact, Metric, PluginInfo as InfoV0_3};
use crate::bindings::{Stage, StageError, StageInput, StageOutput, StagePre};
use crate::needs::Needs;
use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::{
    ComponentExportIndex, ComponentType, InstancePre, Lift, Lower, TypedFunc,
};

/// A minor line of orchestrator:stage this host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WitLine {
    /// 0.1.x: no declared capabilities, upstream bytes in the input.
    #[serde(rename = "0.1")]
    V0_1,
    /// 0.2.x: declared capabilities, upstream bytes in the input.
    #[serde(rename = "0.2")]
    V0_2,
    /// 0.3.x: the current line; upstream artifacts read when needed.
    #[serde(rename = "0.3")]
    V0_3,
}

impl WitLine {
    /// The line of a package version ("0.1.0", "0.3.2"), if this host runs it.
    pub fn of(version: &str) -> Option<WitLine> {
        let mut parts = version.split(['.', '-', '+']);
        let major: u64 = parts.next()?.parse().ok()?;
        let minor: u64 = parts.next()?.parse().ok()?;
        match (major, minor) {
            (0, 1) => Some(WitLine::V0_1),
            (0, 2) => Some(WitLine::V0_2),
            (0, 3) => Some(WitLine::V0_3),
            _ => None,
        }
    }

    /// Whether its plugins are handed every upstream artifact's bytes.
    pub fn eager_inputs(self) -> bool {
        self != WitLine::V0_3
    }
}

/// What a plugin says about itself, whichever line it targets.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    /// What it declares it needs; `None` for a 0.1 plugin, which cannot say.
    pub capabilities: Option<Needs>,
}

impl From<InfoV0_3> for PluginInfo {
    fn from(info: InfoV0_3) -> Self {
        PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            capabilities: Some(info.capabilities.into()),
        }
    }
}

/// `plugin-info` as 0.1 has it.
#[derive(ComponentType, Lift)]
#[component(record)]
pub struct InfoV0_1 {
    name: String,
    version: String,
    description: String,
}

/// `upstream` as 0.1 and 0.2 have it: the artifacts with their bytes.
#[derive(ComponentType, Lower, Clone)]
#[component(record)]
pub struct EagerUpstream {
    #[component(name = "stage-id")]
    pub stage_id: String,
    pub summary: String,
    pub decision: Option<String>,
    pub artifacts: Vec<Artifact>,
    pub metrics: Vec<Metric>,
}

/// `stage-input` as 0.1 and 0.2 have it.
#[derive(ComponentType, Lower, Clone)]
#[component(record)]
pub struct EagerInput {
    #[component(name = "run-id")]
    pub run_id: String,
    #[component(name = "stage-id")]
    pub stage_id: String,
    pub task: String,
    #[component(name = "config-json")]
    pub config_json: String,
    pub inputs: Vec<EagerUpstream>,
    pub attempt: u32,
    pub iteration: u32,
    pub feedback: Option<String>,
}

/// What an attempt's input is, as its plugin's line takes it.
pub enum LineInput {
    Current(StageInput),
    Eager(EagerInput),
}

/// A plugin linked and ready to instantiate.
pub enum PluginPre<G: 'static> {
    V0_3(StagePre<StageState<G>>),
    Older {
        pre: InstancePre<StageState<G>>,
        line: WitLine,
        info: ComponentExportIndex,
        run: ComponentExportIndex,
    },
}

type RunFunc<I> = TypedFunc<(I,), (Result<StageOutput, StageError>,)>;

/// `info` of an older line.
pub enum OlderInfo {
    V0_1(TypedFunc<(), (InfoV0_1,)>),
    V0_2(TypedFunc<(), (InfoV0_3,)>),
}

/// One instance of a plugin.
pub enum PluginInstance {
    V0_3(Stage),
    Older {
        info: OlderInfo,
        run: RunFunc<EagerInput>,
    },
}

impl<G: GrantSet> PluginPre<G> {
    /// `runner` is the name of the component's runner export, whose version
    /// says the line.
    pub fn new(
        pre: InstancePre<StageState<G>>,
        line: WitLine,
        runner: &str,
    ) -> wasmtime::Result<PluginPre<G>> {
        if line == WitLine::V0_3 {
            return Ok(PluginPre::V0_3(StagePre::new(pre)?));
        }
        let component = pre.component();
        let find = |parent: Option<&ComponentExportIndex>, name: &str| {
            component
                .get_export_index(parent, name)
                .ok_or_else(|| wasmtime::format_err!("no export `{name}` in {runner}"))
        };
        let runner_index = find(None, runner)?;
        let info = find(Some(&runner_index), "info")?;
        let run = find(Some(&runner_index), "run")?;
        Ok(PluginPre::Older {
            pre,
            line,
            info,
            run,
        })
    }

    /// The line the plugin targets.
    pub fn line(&self) -> WitLine {
        match self {
            PluginPre::V0_3(_) => WitLine::V0_3,
            PluginPre::Older { line, .. } => *line,
        }
    }

    pub async fn instantiate(
        &self,
        store: &mut Store<StageState<G>>,
    ) -> wasmtime::Result<PluginInstance> {
        Ok(match self {
            PluginPre::V0_3(pre) => PluginInstance::V0_3(pre.instantiate_async(&mut *store).await?),
            PluginPre::Older {
                pre,
                line,
                info,
                run,
            } => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let info = match line {
                    WitLine::V0_1 => OlderInfo::V0_1(instance.get_typed_func(&mut *store, info)?),
                    _ => OlderInfo::V0_2(instance.get_typed_func(&mut *store, info)?),
                };
                PluginInstance::Older {
                    info,
                    run: instance.get_typed_func(&mut *store, run)?,
                }
            }
        })
    }
}

impl PluginInstance {
    pub async fn call_info<G: GrantSet>(
        &self,
        store: &mut Store<StageState<G>>,
    ) -> wasmtime::Result<PluginInfo> {
        Ok(match self {
            PluginInstance::V0_3(stage) => stage
                .orchestrator_stage_runner()
                .call_info(&mut *store)
                .await?
                .into(),
            PluginInstance::Older {
                info: OlderInfo::V0_2(info),
                ..
            } => info.call_async(&mut *store, ()).await?.0.into(),
            PluginInstance::Older {
                info: OlderInfo::V0_1(info),
                ..
            } => {
                let (info,) = info.call_async(&mut *store, ()).await?;
                PluginInfo {
                    name: info.name,
                    version: info.version,
                    description: info.description,
                    capabilities: None,
                }
            }
        })
    }

    pub async fn call_run<G: GrantSet>(
        &self,
        store: &mut Store<StageState<G>>,
        input: LineInput,
    ) -> wasmtime::Result<Result<StageOutput, StageError>> {
        match (self, input) {
            (PluginInstance::V0_3(stage), LineInput::Current(input)) => {
                stage
                    .orchestrator_stage_runner()
                    .call_run(&mut *store, &input)
                    .await
            }
            (PluginInstance::Older { run, .. }, LineInput::Eager(input)) => {
                let (result,) = run.call_async(&mut *store, (input,)).await?;
                Ok(result)
            }
            _ => Err(wasmtime::format_err!(
                "internal error: an input of another line than the plugin's"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_by_version() {
        assert_eq!(WitLine::of("0.1.0"), Some(WitLine::V0_1));
        assert_eq!(WitLine::of("0.1.7"), Some(WitLine::V0_1));
        assert_eq!(WitLine::of("0.2.0"), Some(WitLine::V0_2));
        assert_eq!(WitLine::of("0.2.5-rc1"), Some(WitLine::V0_2));
        assert_eq!(WitLine::of("0.3.0"), Some(WitLine::V0_3));
        assert_eq!(WitLine::of("0.4.0"), None);
        assert_eq!(WitLine::of("1.0.0"), None);
        assert_eq!(WitLine::of("x"), None);
    }
}
