//! `hostile-forges`: a policy whose words are an attack on whoever reads
//! them. It logs a line with a newline followed by a fake decision record,
//! and lines with ESC, CR and a right-to-left override; its reason holds the
//! same. With the param `error = "huge"` it returns a 1 MiB error instead;
//! with `error = "forged"`, a short error with a forged line.
//!
//! It exists to prove that everything a policy returns or prints is bounded
//! and inert: text output escapes the control characters (no forged line,
//! no raw escape reaching the terminal), and an error is cut like a reason.

wit_bindgen::generate!({ path: "../../../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::host::log;
use runner_scaler::policy::types::{Decision, Level, Observation};

struct Forges;

/// What a log line would look like if it started a line of its own.
pub const FORGED: &str = "INFO decision: pool=forged action=Applied desired=99";

impl Guest for Forges {
    fn decide(observation: Observation) -> Result<Decision, String> {
        let error = observation
            .params
            .iter()
            .find(|(name, _)| name == "error")
            .map(|(_, value)| value.as_str());
        match error {
            Some("huge") => return Err("e".repeat(1 << 20)),
            Some(_) => return Err(format!("refused\n{FORGED}")),
            None => {}
        }
        log(Level::Info, &format!("checked the queue\n{FORGED}"));
        log(
            Level::Warn,
            "\u{1b}[2J\u{1b}[31mred\rover\u{202e}txet desrever",
        );
        Ok(Decision {
            desired: 1,
            reason: format!("\u{1b}]0;title\u{7}\u{202e}1 job\r{FORGED}"),
            state: None,
            warm: None,
        })
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(Forges);
