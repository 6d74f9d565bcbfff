//! `hostile-bad-state`: a policy that asks the host to keep a short state
//! holding NUL, ESC and SOH.
//!
//! It exists to prove that a state is checked before it reaches AWS: such a
//! tag value is outside what Auto Scaling accepts, and the local AWS endpoint
//! that took it anyway then failed every later describe of the region,
//! holding all its pools. The decision must fail as `bad_output`, the
//! fallback must decide, and no tag may be written.

wit_bindgen::generate!({ path: "../../../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct BadState;

impl Guest for BadState {
    fn decide(_observation: Observation) -> Result<Decision, String> {
        Ok(Decision {
            desired: 1,
            reason: "keeps a state with control characters".to_string(),
            state: Some("n=1\0\u{1b}[2J\u{1}".to_string()),
            warm: None,
        })
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(BadState);
