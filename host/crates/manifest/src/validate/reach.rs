//! References that must point to an ancestor: `when` and `loop` may only
//! name stages that have finished before this one.

use super::*;

/// A reference that must point to an ancestor: the stage it names has to be
/// finished before this one may look at it or loop back to it.
pub(super) struct Reach {
    pub(super) stage: String,
    pub(super) ancestor: String,
    pub(super) span: Range<usize>,
    pub(super) what: &'static str,
}

/// Reports each reference to a stage that is not an ancestor.
pub(super) fn check_reach(
    c: &mut Checker,
    stages: &[StageSpec],
    templates: &BTreeMap<String, StageSpec>,
    checks: Vec<Reach>,
) {
    let by_id: HashMap<&str, &StageSpec> = stages.iter().map(|s| (s.id.as_str(), s)).collect();
    for check in checks {
        if !by_id.contains_key(check.ancestor.as_str()) {
            let why = if templates.contains_key(&check.ancestor) {
                "is a template, which runs only as spawned jobs, never by itself"
            } else if check.what == "when" {
                continue; // an unknown stage in `when` is reported as it is parsed
            } else {
                "is not a stage of this pipeline"
            };
            c.error(
                Some(check.span),
                format!(
                    "stage '{}' {}: '{}' {why}",
                    check.stage, check.what, check.ancestor
                ),
            );
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = by_id
            .get(check.stage.as_str())
            .map(|s| s.deps().collect())
            .unwrap_or_default();
        let mut found = false;
        while let Some(id) = todo.pop() {
            if id == check.ancestor {
                found = true;
                break;
            }
            if seen.insert(id)
                && let Some(s) = by_id.get(id)
            {
                todo.extend(s.deps());
            }
        }
        if !found && by_id.contains_key(check.ancestor.as_str()) {
            c.error(
                Some(check.span),
                format!(
                    "stage '{}' {}: '{}' is not among the stages it runs after (directly or not), so it may not have run yet",
                    check.stage, check.what, check.ancestor
                ),
            );
        }
    }
}
