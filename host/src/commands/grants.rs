//! The second half of `host validate`: each stage's grants against what its
//! plugin declares it needs, reported at the stage's lines.

use host::capabilities::LoadedPlugin;
use host::manifest::{Pipeline, Source, StageSpec, locate};
use host::runtime::needs::{self, Severity};
use std::collections::HashMap;
use std::sync::Arc;

/// How many findings of each kind were printed.
#[derive(Debug, Default)]
pub struct Tally {
    pub errors: usize,
    pub warnings: usize,
}

/// Prints, stage by stage, what is missing from its grants and what it is
/// granted but does not use.
pub fn report(pipeline: &Pipeline, plugins: &HashMap<String, Arc<LoadedPlugin>>) -> Tally {
    let text = std::fs::read_to_string(&pipeline.manifest).unwrap_or_default();
    let source = Source::new(pipeline.manifest.clone(), text);
    let stages = pipeline
        .stages
        .iter()
        .map(|s| (s, false))
        .chain(pipeline.templates.values().map(|s| (s, true)));
    let mut tally = Tally::default();
    for (stage, template) in stages {
        let Some(plugin) = plugins.get(&stage.plugin) else {
            continue;
        };
        stage_report(&source, stage, template, plugin, &mut tally);
    }
    tally
}

fn stage_report(
    source: &Source,
    stage: &StageSpec,
    template: bool,
    plugin: &LoadedPlugin,
    tally: &mut Tally,
) {
    let what = format!(
        "{} '{}' (plugin '{}')",
        if template { "template" } else { "stage" },
        stage.id,
        stage.plugin
    );
    let Some(declared) = &plugin.info.capabilities else {
        println!(
            "{what}: capabilities undeclared (built against orchestrator:stage@{}, which cannot declare them)",
            plugin.wit_version
        );
        return;
    };
    let findings = needs::compare(declared, stage, template);
    if findings.is_empty() {
        println!("{what}: grants match what the plugin declares");
        return;
    }
    for f in findings {
        let label = match f.severity {
            Severity::Error => {
                tally.errors += 1;
                "error"
            }
            Severity::Warning => {
                tally.warnings += 1;
                "warning"
            }
            Severity::Note => "note",
        };
        let d = locate::at_stage_key(
            source,
            &stage.id,
            &f.key.path(),
            format!("{what}: {}", f.message),
        );
        println!("{label}: {d}");
    }
}
