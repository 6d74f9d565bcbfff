//! `queue-depth`: one instance for every job that is waiting or running.
//!
//! The original Lambda's rule, `min(waiting + running, max)`: single-task
//! runners take one job each. It takes no params, and ignores any.

use runner_scaler_policy::{export, Decision, Observation};

/// The rule.
pub fn decide(observation: &Observation) -> Result<Decision, String> {
    let queue = &observation.queue;
    Ok(observation.decision(queue.jobs(), format!("{queue}")))
}

export!(decide);

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(waiting: u32, running: u32, min: u32, max: u32) -> Observation {
        Observation::sample()
            .with_queue(waiting, running)
            .with_capacity(0, min, max)
    }

    #[test]
    fn one_instance_per_job_within_bounds() {
        // (name, waiting, running, min, max, expected desired)
        let cases = [
            ("empty queue", 0, 0, 0, 10, 0),
            ("waiting jobs", 3, 0, 0, 10, 3),
            ("running jobs keep their instances", 0, 4, 0, 10, 4),
            ("both count", 2, 3, 0, 10, 5),
            ("never above max", 30, 5, 0, 10, 10),
            ("never below min", 0, 0, 2, 10, 2),
            ("no overflow", u32::MAX, u32::MAX, 0, 10, 10),
        ];
        for (name, waiting, running, min, max, expected) in cases {
            let decision = decide(&observation(waiting, running, min, max)).unwrap();
            assert_eq!(decision.desired, expected, "{name}");
            assert_eq!(decision.state, None, "{name}: keeps no state");
        }
    }

    #[test]
    fn the_reason_gives_both_counts() {
        let decision = decide(&observation(2, 3, 0, 10)).unwrap();
        assert_eq!(decision.reason, "2 waiting + 3 running");
    }
}
