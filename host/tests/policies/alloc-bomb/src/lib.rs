//! `hostile-alloc-bomb`: a policy whose `decide` allocates memory without
//! bound.
//!
//! It exists to prove that the host's memory cap stops a policy before it
//! hurts the host: the linear memory must stop growing at the cap, the call
//! must end in an error (the allocator fails and aborts, which traps), and the
//! host must stay up. Every MiB is written to, one byte per 4 KiB page, and
//! kept, so the memory is really used and nothing can be optimised away.

wit_bindgen::generate!({ path: "../../../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct AllocBomb;

const MIB: usize = 1 << 20;

impl Guest for AllocBomb {
    fn decide(_observation: Observation) -> Result<Decision, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut block = vec![0u8; MIB];
            for page in block.chunks_mut(4096) {
                page[0] = 1;
            }
            hoard.push(std::hint::black_box(block));
        }
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(AllocBomb);
