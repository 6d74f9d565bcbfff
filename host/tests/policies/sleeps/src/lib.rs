//! `hostile-sleeps`: a policy that waits in a host call. It subscribes to
//! WASI's monotonic clock for an hour (or for the param `ms`) and blocks on
//! the pollable, as `std::thread::sleep` does on wasm32-wasip2, then decides;
//! its reason reports the monotonic clock before and after the sleep and a
//! random number from WASI.
//!
//! It exists to prove that the deadline covers host calls: epoch
//! interruption stops only guest code, so before the host timed the whole
//! call, this policy held `decide` (and with it `policy eval`, `once` and
//! every tick of `run`) for an hour. The decision must end as `deadline`.
//! With a short `ms`, it shows what the clocks and random give a policy.
//!
//! It imports WASI 0.2 as any component would; only the functions it calls
//! are declared below, with the names and types of `wasi:io@0.2.0`,
//! `wasi:clocks@0.2.0` and `wasi:random@0.2.0`, so the crate carries no copy
//! of WASI's WIT.

wit_bindgen::generate!({
    path: "../../../../wit",
    inline: r#"
        package hostile:sleeps;

        world policy {
            include runner-scaler:policy/policy@0.2.0;
            import wasi:clocks/monotonic-clock@0.2.0;
            import wasi:random/random@0.2.0;
        }

        package wasi:io@0.2.0 {
            interface poll {
                resource pollable {
                    block: func();
                }
            }
        }

        package wasi:clocks@0.2.0 {
            interface monotonic-clock {
                use wasi:io/poll@0.2.0.{pollable};
                type instant = u64;
                type duration = u64;
                now: func() -> instant;
                subscribe-duration: func(when: duration) -> pollable;
            }
        }

        package wasi:random@0.2.0 {
            interface random {
                get-random-u64: func() -> u64;
            }
        }
    "#,
    world: "hostile:sleeps/policy",
    generate_all,
});

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};
use wasi::clocks::monotonic_clock::{now, subscribe_duration};
use wasi::random::random::get_random_u64;

struct Sleeps;

/// An hour, in milliseconds.
const HOUR_MS: u64 = 3600 * 1000;

impl Guest for Sleeps {
    fn decide(observation: Observation) -> Result<Decision, String> {
        let ms = match observation.params.iter().find(|(name, _)| name == "ms") {
            Some((_, value)) => value
                .parse::<u64>()
                .map_err(|_| format!("param `ms`: expected milliseconds, got {value:?}"))?,
            None => HOUR_MS,
        };
        let before = now();
        subscribe_duration(ms * 1_000_000).block();
        let after = now();
        Ok(Decision {
            desired: 1,
            reason: format!(
                "slept {ms} ms: clock {before} -> {after}, random {}",
                get_random_u64()
            ),
            state: None,
            warm: None,
        })
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(Sleeps);
