//! Plan order: the `after` graph sorted, every cycle reported as the cycle it is.

use super::*;

/// Orders stages so that each follows everything in its `after` list;
/// reports each cycle once, naming its stages.
pub(super) fn order_stages(
    c: &mut Checker,
    stages: Vec<(StageSpec, Vec<Range<usize>>)>,
) -> Vec<StageSpec> {
    let index: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (s.id.as_str(), i))
        .collect();
    let mut indegree = vec![0usize; stages.len()];
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for (i, (s, _)) in stages.iter().enumerate() {
        let deps: BTreeSet<usize> = s.deps().filter_map(|d| index.get(d).copied()).collect();
        for d in deps {
            if d != i {
                indegree[i] += 1;
                dependants[d].push(i);
            }
        }
    }
    let mut ready: Vec<usize> = (0..stages.len())
        .filter(|&i| indegree[i] == 0)
        .rev()
        .collect();
    let mut order = Vec::with_capacity(stages.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &d in dependants[i].iter().rev() {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(d);
            }
        }
    }
    if order.len() < stages.len() {
        let stuck: Vec<usize> = (0..stages.len()).filter(|&i| indegree[i] > 0).collect();
        let names: Vec<&str> = stuck.iter().map(|&i| stages[i].0.id.as_str()).collect();
        let span = stuck.first().and_then(|&i| stages[i].1.first()).cloned();
        c.error(
            span,
            format!(
                "the `after` lists form a cycle through stages: {}",
                names.join(" -> ")
            ),
        );
        return Vec::new();
    }
    let mut slots: Vec<Option<StageSpec>> = stages.into_iter().map(|(s, _)| Some(s)).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}
