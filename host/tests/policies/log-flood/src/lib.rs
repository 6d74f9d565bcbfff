//! `hostile-log-flood`: a policy that calls the host's `log` 10,000 times
//! with long lines, then returns a normal decision (desired 1).
//!
//! It exists to prove that the host bounds what one call can log: it must keep
//! at most its per-call budget of lines, drop the rest with one notice, cut
//! over-long lines, and still apply the decision.

wit_bindgen::generate!({ path: "../../../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::host::log;
use runner_scaler::policy::types::{Decision, Level, Observation};

struct LogFlood;

/// How many lines to log.
const LINES: usize = 10_000;
/// How long each line is, in bytes.
const LINE_BYTES: usize = 2048;

impl Guest for LogFlood {
    fn decide(_observation: Observation) -> Result<Decision, String> {
        let padding = "x".repeat(LINE_BYTES);
        for line in 0..LINES {
            let mut message = format!("flood line {line} of {LINES}: {padding}");
            message.truncate(LINE_BYTES);
            log(Level::Info, &message);
        }
        Ok(Decision {
            desired: 1,
            reason: format!("logged {LINES} lines of {LINE_BYTES} bytes"),
            state: None,
            warm: None,
        })
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(LogFlood);
