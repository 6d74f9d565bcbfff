//! `hostile-spin`: a policy whose `decide` never returns.
//!
//! It exists to prove that the host's deadline stops a policy that loops: the
//! call must end in a timeout error, the pool must fall back, and the next
//! tick must run as usual. The counter goes through `black_box` so that the
//! optimiser cannot prove the loop has no effect and remove it.

wit_bindgen::generate!({ path: "../../../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct Spin;

impl Guest for Spin {
    fn decide(_observation: Observation) -> Result<Decision, String> {
        let mut turns = 0u64;
        loop {
            turns = std::hint::black_box(turns.wrapping_add(1));
        }
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(Spin);
