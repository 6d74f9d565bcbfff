//! `hostile-panics`: a policy whose `decide` panics.
//!
//! It exists to prove that the host turns a trap into a policy error for the
//! pool, applies the fallback, and goes on with the next tick. On
//! `wasm32-unknown-unknown` a panic aborts, which is a trap: the message is
//! not seen by the host.

wit_bindgen::generate!({ path: "../../../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct Panics;

impl Guest for Panics {
    fn decide(observation: Observation) -> Result<Decision, String> {
        panic!(
            "policy bug: no rule for pool {:?} with {} waiting",
            observation.pool, observation.queue.waiting
        );
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(Panics);
