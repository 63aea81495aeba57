//! The order of a deployment's work as a pure plan: which new replicas
//! start (and pass the health gate) together, and when old replicas
//! retire. `deploy::execute` walks the plan; the plan alone decides the
//! batches, so it is tested without an engine.

use std::ops::Range;

use berth_config::Strategy;

/// One step of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every old replica drains and goes (the `recreate` strategy, before
    /// any new one starts).
    RetireAll,
    /// These new replicas (by index) start, then pass the health gate.
    Start(Range<u32>),
    /// The new replicas ready so far serve beside the old ones, and this
    /// many old ones drain and go.
    Retire(usize),
}

/// The steps that take an app to `replicas` new replicas, `batch_size`
/// (at least 1; `None`: all at once) at a time. After each batch but the
/// last, as many old replicas retire as the batch started; the last
/// batch's switch (and the removal of what is left) is the commit's.
pub fn plan(replicas: u32, batch_size: Option<u32>, strategy: Strategy) -> Vec<Step> {
    let mut steps = Vec::new();
    if strategy == Strategy::Recreate {
        steps.push(Step::RetireAll);
    }
    let batch = batch_size.unwrap_or(replicas).max(1);
    let mut next = 0;
    while next < replicas {
        let end = next.saturating_add(batch).min(replicas);
        steps.push(Step::Start(next..end));
        if end < replicas {
            steps.push(Step::Retire((end - next) as usize));
        }
        next = end;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_at_once_is_one_batch_and_no_retirement_before_the_switch() {
        assert_eq!(plan(3, None, Strategy::Rolling), [Step::Start(0..3)]);
        assert_eq!(plan(3, Some(5), Strategy::Rolling), [Step::Start(0..3)]);
    }

    #[test]
    fn batches_retire_as_many_old_replicas_as_they_started() {
        assert_eq!(
            plan(5, Some(2), Strategy::Rolling),
            [
                Step::Start(0..2),
                Step::Retire(2),
                Step::Start(2..4),
                Step::Retire(2),
                Step::Start(4..5),
            ]
        );
    }

    #[test]
    fn a_zero_batch_counts_as_one() {
        assert_eq!(
            plan(2, Some(0), Strategy::Rolling),
            [Step::Start(0..1), Step::Retire(1), Step::Start(1..2)]
        );
    }

    #[test]
    fn recreate_retires_everything_first() {
        assert_eq!(
            plan(2, None, Strategy::Recreate),
            [Step::RetireAll, Step::Start(0..2)]
        );
    }

    #[test]
    fn no_replicas_no_steps() {
        assert!(plan(0, None, Strategy::Rolling).is_empty());
    }
}
