//! `hostile-refuses`: a policy whose `decide` returns an error, the way a
//! policy answers a malformed param.
//!
//! It exists to prove that the host reports the policy's own message to the
//! operator, applies the pool's fallback, and does not mistake the error for
//! a crash.

wit_bindgen::generate!({ path: "../../../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct Refuses;

impl Guest for Refuses {
    fn decide(_observation: Observation) -> Result<Decision, String> {
        Err("param `warm`: expected a number, got \"lots\"".to_string())
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(Refuses);
