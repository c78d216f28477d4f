//! Why an attempt is running, as the plugin is told (`attempt.kind`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptKind {
    /// The stage's first attempt in the run.
    #[default]
    First,
    /// The previous attempt of this pass failed.
    Retry,
    /// The previous attempt of this pass never ended: its host stopped.
    Resume,
    /// The first attempt of a pass a loop sent the run back to.
    LoopPass,
}

impl AttemptKind {
    /// The kind of attempt `tries` of this process in pass `iteration`,
    /// after `before` attempts of the pass by processes that stopped, the
    /// last of which never ended if `interrupted`.
    pub fn of(tries: u32, before: u32, interrupted: bool, iteration: u32) -> AttemptKind {
        match (tries, before) {
            (t, _) if t > 1 => AttemptKind::Retry,
            (_, b) if b > 0 && interrupted => AttemptKind::Resume,
            (_, b) if b > 0 => AttemptKind::Retry,
            _ if iteration > 0 => AttemptKind::LoopPass,
            _ => AttemptKind::First,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_came_before_decides() {
        assert_eq!(AttemptKind::of(1, 0, false, 0), AttemptKind::First);
        assert_eq!(AttemptKind::of(2, 0, false, 0), AttemptKind::Retry);
        assert_eq!(AttemptKind::of(1, 1, true, 0), AttemptKind::Resume);
        assert_eq!(
            AttemptKind::of(1, 2, false, 0),
            AttemptKind::Retry,
            "a failed run resumed"
        );
        assert_eq!(AttemptKind::of(2, 1, true, 0), AttemptKind::Retry);
        assert_eq!(AttemptKind::of(1, 0, false, 1), AttemptKind::LoopPass);
        assert_eq!(
            AttemptKind::of(1, 1, true, 1),
            AttemptKind::Resume,
            "a loop pass resumed"
        );
    }
}
