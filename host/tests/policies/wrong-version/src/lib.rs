//! `hostile-wrong-version`: a policy built for version 9.9.0 of the contract,
//! which the host (0.2.0, and 0.1.0 before it) does not speak.
//!
//! It exists to prove that the host refuses such a policy when it loads it,
//! with an error that names the versions it knows, and never calls it on a
//! tick. Its WIT in `wit/policy.wit` is a copy of the real one with only the
//! package version changed, so its imports and exports differ from the
//! host's only in `@9.9.0`.

wit_bindgen::generate!({ path: "wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct WrongVersion;

impl Guest for WrongVersion {
    fn decide(_observation: Observation) -> Result<Decision, String> {
        Ok(Decision {
            desired: 1,
            reason: "a decision the host should never ask for".to_string(),
            state: None,
            warm: None,
        })
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(WrongVersion);
