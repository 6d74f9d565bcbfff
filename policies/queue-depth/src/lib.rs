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
