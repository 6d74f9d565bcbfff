//! `hostile-big-state`: a policy that returns a state of 300 bytes, where the
//! contract allows at most 256.
//!
//! It exists to prove that the host refuses an over-long state as a policy
//! error (it could not store it in the Auto Scaling group's tag) rather than
//! cutting it or failing to write the tag later.

wit_bindgen::generate!({ path: "../../../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct BigState;

/// The contract's limit is 256 bytes.
const STATE_BYTES: usize = 300;

impl Guest for BigState {
    fn decide(_observation: Observation) -> Result<Decision, String> {
        Ok(Decision {
            desired: 1,
            reason: format!("returns a state of {STATE_BYTES} bytes"),
            state: Some("s".repeat(STATE_BYTES)),
            warm: None,
        })
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(BigState);
