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
        for cycle in cycles(&stages, &index, &indegree) {
            let names: Vec<&str> = cycle.iter().map(|&i| stages[i].0.id.as_str()).collect();
            // At the `after` entry of the first stage that names the next.
            let (first, next) = (cycle[0], cycle[1 % cycle.len()]);
            let span = stages[first]
                .0
                .deps()
                .position(|d| d == stages[next].0.id)
                .and_then(|at| stages[first].1.get(at))
                .or_else(|| stages[first].1.first())
                .cloned();
            c.error(
                span,
                format!(
                    "the `after` lists form a cycle: {} -> {} (each runs after the next)",
                    names.join(" -> "),
                    names[0]
                ),
            );
        }
        return Vec::new();
    }
    let mut slots: Vec<Option<StageSpec>> = stages.into_iter().map(|(s, _)| Some(s)).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The cycles among the stages a sort could not place (`indegree` > 0),
/// each once, as the stages in it in `after` order. A stage left over only
/// because it waits on a cycle is in none. Walks, not recursion: a
/// pipeline may have thousands of stages.
fn cycles(
    stages: &[(StageSpec, Vec<Range<usize>>)],
    index: &HashMap<&str, usize>,
    indegree: &[usize],
) -> Vec<Vec<usize>> {
    let stuck = |i: usize| indegree[i] > 0;
    // A stuck stage always waits on another stuck one: follow the first.
    let next = |i: usize| {
        stages[i]
            .0
            .deps()
            .filter_map(|d| index.get(d).copied())
            .find(|&d| d != i && stuck(d))
    };
    // Which walk reached each stage, and where on that walk's path.
    let mut reached: Vec<Option<(usize, usize)>> = vec![None; stages.len()];
    let mut found = Vec::new();
    for start in (0..stages.len()).filter(|&i| stuck(i)) {
        let mut path: Vec<usize> = Vec::new();
        let mut at = Some(start);
        while let Some(i) = at {
            match reached[i] {
                // Back on this walk's own path: the rest of it is a cycle.
                Some((walk, pos)) if walk == start => {
                    found.push(path[pos..].to_vec());
                    break;
                }
                Some(_) => break,
                None => {}
            }
            reached[i] = Some((start, path.len()));
            path.push(i);
            at = next(i);
        }
    }
    found
}
