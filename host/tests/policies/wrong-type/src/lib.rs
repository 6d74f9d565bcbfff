//! `hostile-wrong-type`: a policy built against a contract that has every
//! name of the real one, package and version included, but declares
//! `decision.desired` as `s64` instead of `u32`.
//!
//! It exists to prove that the host checks the types of `decide`, not only
//! the names, when it loads a policy: such a component links, and before the
//! check it failed as a trap on every tick. It must be refused at load as
//! `wrong_contract`, with a message naming `decide` and the mismatched type.
//! Its WIT in `wit/policy.wit` is a copy of the real one with that one change.

wit_bindgen::generate!({ path: "wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct WrongType;

impl Guest for WrongType {
    fn decide(_observation: Observation) -> Result<Decision, String> {
        Ok(Decision {
            desired: -1,
            reason: "a decision of the wrong type".to_string(),
            state: None,
        })
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(WrongType);
