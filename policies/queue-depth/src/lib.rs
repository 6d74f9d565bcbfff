//! `queue-depth`: one instance for every job that is waiting or running.
//!
//! This is the rule of the original Lambda, `min(waiting + running, max)`:
//! single-task runners take one job each, so the fleet needs exactly as many
//! instances as there are jobs. The host clamps to `max`; the policy does too,
//! so its reason tells the truth.

wit_bindgen::generate!({ path: "../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct QueueDepth;

impl Guest for QueueDepth {
    fn decide(observation: Observation) -> Result<Decision, String> {
        Ok(decide(&observation))
    }
}

/// The rule, as a plain function so native tests can call it.
pub fn decide(observation: &Observation) -> Decision {
    let queue = &observation.queue;
    let jobs = queue.waiting.saturating_add(queue.running);
    let desired = jobs.clamp(observation.capacity.min, observation.capacity.max);
    Decision {
        desired,
        reason: format!("{} waiting + {} running", queue.waiting, queue.running),
        state: None,
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(QueueDepth);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_scaler::policy::types::{Capacity, Clock, Queue, Weekday};

    fn observation(waiting: u32, running: u32, min: u32, max: u32) -> Observation {
        Observation {
            pool: "test".into(),
            queue: Queue { waiting, running },
            capacity: Capacity {
                desired: 0,
                min,
                max,
                pending: 0,
                in_service: 0,
                terminating: 0,
                protected: 0,
            },
            clock: Clock {
                unix_seconds: 0,
                year: 2026,
                month: 11,
                day: 23,
                hour: 9,
                minute: 0,
                weekday: Weekday::Monday,
                utc_offset_seconds: 0,
                time_zone: "UTC".into(),
            },
            params: vec![],
            state: None,
        }
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
            let decision = decide(&observation(waiting, running, min, max));
            assert_eq!(decision.desired, expected, "{name}");
            assert_eq!(decision.state, None, "{name}: keeps no state");
        }
    }

    #[test]
    fn the_reason_gives_both_counts() {
        let decision = decide(&observation(2, 3, 0, 10));
        assert_eq!(decision.reason, "2 waiting + 3 running");
    }
}
