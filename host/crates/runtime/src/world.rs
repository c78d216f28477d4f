//! The versions of the `stage` world this host runs, and calling a plugin's
//! `runner` whichever it targets.
//!
//! 0.2 plugins are called through the generated bindings. A 0.1 plugin's
//! `runner` differs only in `info()` (a `plugin-info` without
//! `capabilities`); `run` has the same signature, and component-model types
//! match by structure, so it is called with the 0.2 types through its export
//! found by name.

use super::StageState;
use super::capability::GrantSet;
use crate::bindings::{Stage, StageError, StageInput, StageOutput, StagePre};
use crate::needs::Needs;
use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, ComponentType, InstancePre, Lift, TypedFunc};

/// A minor line of orchestrator:stage this host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WitLine {
    /// 0.1.x: no declared capabilities.
    #[serde(rename = "0.1")]
    V0_1,
    /// 0.2.x: the current line.
    #[serde(rename = "0.2")]
    V0_2,
}

impl WitLine {
    /// The line of a package version ("0.1.0", "0.2.3"), if this host runs it.
    pub fn of(version: &str) -> Option<WitLine> {
        let mut parts = version.split(['.', '-', '+']);
        let major: u64 = parts.next()?.parse().ok()?;
        let minor: u64 = parts.next()?.parse().ok()?;
        match (major, minor) {
            (0, 1) => Some(WitLine::V0_1),
            (0, 2) => Some(WitLine::V0_2),
            _ => None,
        }
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

/// `plugin-info` as 0.1 has it.
#[derive(ComponentType, Lift)]
#[component(record)]
pub struct InfoV0_1 {
    name: String,
    version: String,
    description: String,
}

/// A plugin linked and ready to instantiate.
pub enum PluginPre<G: 'static> {
    V0_2(StagePre<StageState<G>>),
    V0_1 {
        pre: InstancePre<StageState<G>>,
        info: ComponentExportIndex,
        run: ComponentExportIndex,
    },
}

/// One instance of a plugin.
pub enum PluginInstance {
    V0_2(Stage),
    V0_1 {
        info: TypedFunc<(), (InfoV0_1,)>,
        run: TypedFunc<(StageInput,), (Result<StageOutput, StageError>,)>,
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
        Ok(match line {
            WitLine::V0_2 => PluginPre::V0_2(StagePre::new(pre)?),
            WitLine::V0_1 => {
                let component = pre.component();
                let find = |parent: Option<&ComponentExportIndex>, name: &str| {
                    component
                        .get_export_index(parent, name)
                        .ok_or_else(|| wasmtime::format_err!("no export `{name}` in {runner}"))
                };
                let runner_index = find(None, runner)?;
                let info = find(Some(&runner_index), "info")?;
                let run = find(Some(&runner_index), "run")?;
                PluginPre::V0_1 { pre, info, run }
            }
        })
    }

    pub async fn instantiate(
        &self,
        store: &mut Store<StageState<G>>,
    ) -> wasmtime::Result<PluginInstance> {
        Ok(match self {
            PluginPre::V0_2(pre) => PluginInstance::V0_2(pre.instantiate_async(&mut *store).await?),
            PluginPre::V0_1 { pre, info, run } => {
                let instance = pre.instantiate_async(&mut *store).await?;
                PluginInstance::V0_1 {
                    info: instance.get_typed_func(&mut *store, info)?,
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
            PluginInstance::V0_2(stage) => {
                let info = stage
                    .orchestrator_stage_runner()
                    .call_info(&mut *store)
                    .await?;
                PluginInfo {
                    name: info.name,
                    version: info.version,
                    description: info.description,
                    capabilities: Some(info.capabilities.into()),
                }
            }
            PluginInstance::V0_1 { info, .. } => {
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
        input: &StageInput,
    ) -> wasmtime::Result<Result<StageOutput, StageError>> {
        match self {
            PluginInstance::V0_2(stage) => {
                stage
                    .orchestrator_stage_runner()
                    .call_run(&mut *store, input)
                    .await
            }
            PluginInstance::V0_1 { run, .. } => {
                let (result,) = run.call_async(&mut *store, (input.clone(),)).await?;
                Ok(result)
            }
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
        assert_eq!(WitLine::of("0.3.0"), None);
        assert_eq!(WitLine::of("1.0.0"), None);
        assert_eq!(WitLine::of("x"), None);
    }
}
