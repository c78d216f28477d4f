//! The run's graph as it evolves: stages become candidates when all their
//! dependencies are finished, spawned jobs join with a parent link, and a
//! loop sends a part of the graph back to be run again. Readiness is tracked
//! with per-node counters, so each finished stage costs work proportional to
//! its own edges, not to the size of the pipeline.

use host_manifest::{Condition, StageSpec};
use std::collections::{BTreeSet, HashMap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Some dependency is not finished yet.
    Waiting,
    /// Every dependency is finished; its fate is not decided yet.
    Candidate,
    /// Decided to run; waiting for a free slot.
    Ready,
    Running,
    Finished,
}

pub struct Node {
    pub spec: StageSpec,
    pub deps: Vec<(usize, Condition)>,
    pub dependants: Vec<usize>,
    unfinished: usize,
    pub state: NodeState,
    /// Which pass of a loop this node is on.
    pub iteration: u32,
    /// What the stage that looped back said, for this node's next run.
    pub feedback: Option<String>,
    /// 0 for declared stages; a spawned job is one deeper than its parent.
    pub depth: u32,
    /// Attempts made in this pass before this process took the run over.
    pub attempts_before: u32,
    /// The last of those never ended (see `StageProgress::interrupted`).
    pub interrupted: bool,
}

#[derive(Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    index: HashMap<String, usize>,
    candidates: VecDeque<usize>,
}

impl Graph {
    /// The declared stages (templates excluded by the caller), in plan order.
    pub fn new(stages: &[StageSpec]) -> Graph {
        let mut g = Graph::default();
        for spec in stages {
            g.insert(spec.clone(), 0);
        }
        for i in 0..g.nodes.len() {
            let deps: Vec<(usize, Condition)> = g.nodes[i]
                .spec
                .after
                .iter()
                .filter_map(|d| Some((*g.index.get(&d.stage)?, d.on)))
                .collect();
            for &(d, _) in &deps {
                g.nodes[d].dependants.push(i);
            }
            g.nodes[i].unfinished = deps.len();
            g.nodes[i].deps = deps;
        }
        for i in 0..g.nodes.len() {
            if g.nodes[i].unfinished == 0 {
                g.nodes[i].state = NodeState::Candidate;
                g.candidates.push_back(i);
            }
        }
        g
    }

    fn insert(&mut self, spec: StageSpec, depth: u32) -> usize {
        let i = self.nodes.len();
        self.index.insert(spec.id.clone(), i);
        self.nodes.push(Node {
            spec,
            deps: Vec::new(),
            dependants: Vec::new(),
            unfinished: 0,
            state: NodeState::Waiting,
            iteration: 0,
            feedback: None,
            depth,
            attempts_before: 0,
            interrupted: false,
        });
        i
    }

    pub fn get(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The next node whose dependencies are all finished, to decide on.
    pub fn next_candidate(&mut self) -> Option<usize> {
        self.candidates.pop_front()
    }

    /// Marks `i` finished; dependants whose last dependency this was become
    /// candidates.
    pub fn finish(&mut self, i: usize) {
        self.nodes[i].state = NodeState::Finished;
        for d in self.nodes[i].dependants.clone() {
            let node = &mut self.nodes[d];
            node.unfinished = node.unfinished.saturating_sub(1);
            if node.unfinished == 0 && node.state == NodeState::Waiting {
                node.state = NodeState::Candidate;
                self.candidates.push_back(d);
            }
        }
    }

    /// Adds a spawned job after `parent` (which must not be finished yet):
    /// it also runs after `extra` stages, and the parent's dependants wait
    /// for it. Returns its index.
    pub fn spawn(&mut self, parent: usize, mut spec: StageSpec, extra: &[usize]) -> usize {
        let depth = self.nodes[parent].depth + 1;
        spec.parent = Some(self.nodes[parent].spec.id.clone());
        let i = self.insert(spec, depth);
        let mut deps = vec![(parent, Condition::Success)];
        deps.extend(extra.iter().map(|&e| (e, Condition::Success)));
        let mut unfinished = 0;
        for &(d, _) in &deps {
            self.nodes[d].dependants.push(i);
            if self.nodes[d].state != NodeState::Finished {
                unfinished += 1;
            }
        }
        self.nodes[i].deps = deps;
        self.nodes[i].unfinished = unfinished;
        for w in self.nodes[parent].dependants.clone() {
            if w == i {
                continue;
            }
            self.nodes[w].deps.push((i, Condition::Success));
            self.nodes[i].dependants.push(w);
            self.nodes[w].unfinished += 1;
        }
        i
    }

    /// Every node reachable from `from` through `next` (its deps, or its
    /// dependants), `from` itself excluded.
    fn reachable(&self, from: usize, next: impl Fn(&Node) -> Vec<usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = next(&self.nodes[from]);
        while let Some(n) = todo.pop() {
            if seen.insert(n) {
                todo.extend(next(&self.nodes[n]));
            }
        }
        seen
    }

    /// Sends the run back to `to` from `from`: every node on a path from
    /// `to` to `from` (both included) runs again, one iteration later, with
    /// `feedback` for `to`. Returns the nodes reset, in index order.
    pub fn loop_back(&mut self, to: usize, from: usize, feedback: String) -> Vec<usize> {
        // On a path from `to` to `from`: below `to` and above `from`.
        let above_from = self.reachable(from, |n| n.deps.iter().map(|&(d, _)| d).collect());
        let below_to = self.reachable(to, |n| n.dependants.clone());
        let body: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| n == from || n == to || (above_from.contains(&n) && below_to.contains(&n)))
            .collect();
        let in_body: BTreeSet<usize> = body.iter().copied().collect();
        for &n in &body {
            // Nodes outside the loop that wait on this one wait again.
            if self.nodes[n].state == NodeState::Finished {
                for w in self.nodes[n].dependants.clone() {
                    if !in_body.contains(&w) && self.nodes[w].state == NodeState::Waiting {
                        self.nodes[w].unfinished += 1;
                    }
                }
            }
        }
        for &n in &body {
            let unfinished = self.nodes[n]
                .deps
                .iter()
                .filter(|(d, _)| in_body.contains(d))
                .count();
            let node = &mut self.nodes[n];
            node.iteration += 1;
            node.attempts_before = 0;
            node.interrupted = false;
            node.unfinished = unfinished;
            node.state = NodeState::Waiting;
            if n == to {
                node.feedback = Some(feedback.clone());
            }
            if unfinished == 0 {
                node.state = NodeState::Candidate;
                self.candidates.push_back(n);
            }
        }
        body
    }

    /// Nodes not finished, when nothing can move: the deadlock's members.
    pub fn stuck(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].state != NodeState::Finished)
            .collect()
    }

    /// What a waiting node still waits on.
    pub fn waiting_on(&self, n: usize) -> Vec<&str> {
        self.nodes[n]
            .deps
            .iter()
            .filter(|(d, _)| self.nodes[*d].state != NodeState::Finished)
            .map(|(d, _)| self.nodes[*d].spec.id.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stages from `[[stage]]` tables, each on the same (empty) component.
    fn stages(tables: &str) -> (Vec<StageSpec>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"").unwrap();
        let text = format!("[pipeline]\nname = \"p\"\ntask = \"t\"\n\n{tables}");
        let p = host_manifest::parse(&dir.path().join("p.toml"), text)
            .unwrap_or_else(|d| panic!("{d}"));
        (p.stages, dir)
    }

    fn stage(id: &str, after: &[&str]) -> String {
        let after: Vec<String> = after.iter().map(|a| format!("{a:?}")).collect();
        format!(
            "[[stage]]\nid = \"{id}\"\nplugin = \"a.wasm\"\nafter = [{}]\n\n",
            after.join(", ")
        )
    }

    fn drain(g: &mut Graph) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(n) = g.next_candidate() {
            out.push(g.nodes[n].spec.id.clone());
        }
        out
    }

    #[test]
    fn a_stage_becomes_a_candidate_when_its_last_dependency_finishes() {
        let tables = [
            stage("a", &[]),
            stage("b", &["a"]),
            stage("c", &["a"]),
            stage("d", &["b", "c"]),
        ]
        .concat();
        let (specs, _dir) = stages(&tables);
        let mut g = Graph::new(&specs);
        assert_eq!(drain(&mut g), ["a"]);
        g.finish(g.get("a").unwrap());
        assert_eq!(drain(&mut g), ["b", "c"]);
        g.finish(g.get("b").unwrap());
        assert!(drain(&mut g).is_empty(), "d still waits on c");
        assert_eq!(g.waiting_on(g.get("d").unwrap()), ["c"]);
        g.finish(g.get("c").unwrap());
        assert_eq!(drain(&mut g), ["d"]);
        g.finish(g.get("d").unwrap());
        assert!(g.stuck().is_empty());
    }

    #[test]
    fn a_loop_reruns_the_path_between_target_and_source_one_iteration_later() {
        let tables = [
            stage("plan", &[]),
            stage("build", &["plan"]),
            stage("check", &["build"]),
            stage("ship", &["check"]),
        ]
        .concat();
        let (specs, _dir) = stages(&tables);
        let mut g = Graph::new(&specs);
        for id in ["plan", "build", "check"] {
            drain(&mut g);
            g.finish(g.get(id).unwrap());
        }
        drain(&mut g);
        let (build, check) = (g.get("build").unwrap(), g.get("check").unwrap());
        let body = g.loop_back(build, check, "fix the test".into());
        assert_eq!(body, [build, check]);
        assert_eq!(drain(&mut g), ["build"]);
        assert_eq!(g.nodes[build].iteration, 1);
        assert_eq!(g.nodes[build].feedback.as_deref(), Some("fix the test"));
        assert_eq!(g.nodes[check].state, NodeState::Waiting);
        assert_eq!(
            g.nodes[g.get("plan").unwrap()].iteration,
            0,
            "outside the loop"
        );
        g.finish(build);
        assert_eq!(drain(&mut g), ["check"]);
    }

    #[test]
    fn a_spawned_job_runs_after_its_parent_and_before_the_parents_dependants() {
        let tables = [stage("fan", &[]), stage("join", &["fan"])].concat();
        let (specs, _dir) = stages(&tables);
        let mut g = Graph::new(&specs);
        drain(&mut g);
        let fan = g.get("fan").unwrap();
        let mut job = specs[0].clone();
        job.id = "fan.one".into();
        let j = g.spawn(fan, job, &[]);
        assert_eq!(g.nodes[j].depth, 1);
        assert_eq!(g.nodes[j].spec.parent.as_deref(), Some("fan"));
        g.finish(fan);
        assert_eq!(drain(&mut g), ["fan.one"], "join waits for the job");
        assert_eq!(g.waiting_on(g.get("join").unwrap()), ["fan.one"]);
        g.finish(j);
        assert_eq!(drain(&mut g), ["join"]);
    }

    #[test]
    fn what_cannot_move_is_reported_stuck() {
        let tables = [stage("a", &[]), stage("b", &["a"])].concat();
        let (specs, _dir) = stages(&tables);
        let mut g = Graph::new(&specs);
        drain(&mut g);
        let stuck: Vec<&str> = g
            .stuck()
            .iter()
            .map(|&n| g.nodes[n].spec.id.as_str())
            .collect();
        assert_eq!(stuck, ["a", "b"]);
    }
}
