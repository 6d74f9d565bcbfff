//! `buffered`: the knobs of buildkite-agent-scaler: runners per instance, a
//! buffer of spare instances, and damped scaling in both directions.
//!
//! Jobs are `waiting + running`. The target is
//! `ceil(jobs / runners_per_instance) + buffer`, with no buffer when there are
//! no jobs so that an idle pool can go down to `min`. The policy then moves
//! from the group's current desired capacity towards the target:
//!
//! - out: `desired + ceil(gap × scale_out_factor)`; any factor adds at least
//!   one instance.
//! - in: `desired - floor(gap × scale_in_factor)`, but at least one instance
//!   when the factor is above 0, so that a factor below 1 still closes a gap
//!   of 1 instead of rounding it away forever. A factor of 0 turns scale-in
//!   off.
//!
//! With both factors 1 the group goes straight to the target; with
//! `scale_in_factor = 0.5` it closes half the gap on every tick. The result is
//! clamped to `[min, max]`.
//!
//! Params (all optional):
//!
//! - `runners_per_instance` (default `1`, at least 1): jobs one instance runs
//!   at once.
//! - `buffer` (default `0`): spare instances while there are jobs.
//! - `scale_out_factor` (default `1.0`, above 0): share of the gap to add per
//!   tick; above 1 overshoots the target.
//! - `scale_in_factor` (default `1.0`, 0 to 1): share of the gap to remove
//!   per tick.
//!
//! An unknown param is refused, so that a typo (`bufer`) is not silently
//! ignored.

wit_bindgen::generate!({ path: "../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct Buffered;

impl Guest for Buffered {
    fn decide(observation: Observation) -> Result<Decision, String> {
        decide(&observation)
    }
}

/// The params, parsed.
#[derive(Debug, PartialEq)]
pub struct Params {
    pub runners_per_instance: u32,
    pub buffer: u32,
    pub scale_out_factor: f64,
    pub scale_in_factor: f64,
}

/// The rule, as a plain function so native tests can call it.
pub fn decide(observation: &Observation) -> Result<Decision, String> {
    let params = parse_params(&observation.params)?;
    let queue = &observation.queue;
    let capacity = &observation.capacity;

    let jobs = queue.waiting.saturating_add(queue.running);
    let buffer = if jobs > 0 { params.buffer } else { 0 };
    let target = jobs
        .div_ceil(params.runners_per_instance)
        .saturating_add(buffer);
    let current = capacity.desired;
    let mut reason = format!(
        "{} waiting + {} running at {} per instance + buffer {buffer}: target {target}",
        queue.waiting, queue.running, params.runners_per_instance,
    );

    let wanted = if target > current {
        let step = ceil((target - current) as f64 * params.scale_out_factor);
        let wanted = current.saturating_add(step);
        reason += &format!("; scale out {current} -> {wanted}");
        wanted
    } else if target < current && params.scale_in_factor > 0.0 {
        // At least one, or a gap of 1 under a factor below 1 would never close.
        let step = floor((current - target) as f64 * params.scale_in_factor).max(1);
        let wanted = current - step;
        reason += &format!("; scale in {current} -> {wanted}");
        wanted
    } else if target < current {
        reason += &format!("; scale-in is off, keep {current}");
        current
    } else {
        reason += "; at target";
        current
    };

    let desired = wanted.clamp(capacity.min, capacity.max);
    if desired != wanted {
        reason += &format!("; {wanted} clamped to [{}, {}]", capacity.min, capacity.max);
    }
    Ok(Decision {
        desired,
        reason,
        state: None,
    })
}

/// `x` rounded up. The millionth of slack keeps floating-point noise out:
/// 10 × 1.1 is 11.000000000000002, which must give 11, not 12.
fn ceil(x: f64) -> u32 {
    (x - 1e-6).ceil() as u32
}

/// `x` rounded down, with the same slack: 100 × 0.29 is 28.999999999999996,
/// which must give 29, not 28.
fn floor(x: f64) -> u32 {
    (x + 1e-6).floor() as u32
}

/// Parses the four params, with their defaults.
pub fn parse_params(params: &[(String, String)]) -> Result<Params, String> {
    let mut parsed = Params {
        runners_per_instance: 1,
        buffer: 0,
        scale_out_factor: 1.0,
        scale_in_factor: 1.0,
    };
    for (name, value) in params {
        match name.as_str() {
            "runners_per_instance" => {
                parsed.runners_per_instance =
                    parse(name, value, "a whole number of 1 or more, e.g. `2`", |n| {
                        *n >= 1
                    })?
            }
            "buffer" => parsed.buffer = parse(name, value, "a whole number, e.g. `2`", |_| true)?,
            "scale_out_factor" => {
                parsed.scale_out_factor = parse(
                    name,
                    value,
                    "a number above 0, e.g. `1.0` or `0.5`",
                    |f: &f64| f.is_finite() && *f > 0.0,
                )?
            }
            "scale_in_factor" => {
                parsed.scale_in_factor = parse(
                    name,
                    value,
                    "a number from 0 to 1, e.g. `1.0` or `0.5`",
                    |f| (0.0..=1.0).contains(f),
                )?
            }
            _ => {
                return Err(format!(
                    "param `{name}`: unknown; this policy takes `runners_per_instance`, \
                     `buffer`, `scale_out_factor` and `scale_in_factor`"
                ))
            }
        }
    }
    Ok(parsed)
}

/// Parses `value` and checks it with `valid`, or says what was `expected`.
fn parse<T: std::str::FromStr>(
    name: &str,
    value: &str,
    expected: &str,
    valid: impl Fn(&T) -> bool,
) -> Result<T, String> {
    match value.trim().parse() {
        Ok(parsed) if valid(&parsed) => Ok(parsed),
        _ => Err(format!(
            "param `{name}`: expected {expected}, got {value:?}"
        )),
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(Buffered);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_scaler::policy::types::{Capacity, Clock, Queue, Weekday};

    /// An observation of `jobs` waiting jobs for a group of `[0, 100]` whose
    /// desired capacity is `desired`.
    fn observation(jobs: u32, desired: u32, params: &[(&str, &str)]) -> Observation {
        Observation {
            pool: "linux-large".to_string(),
            queue: Queue {
                waiting: jobs,
                running: 0,
            },
            capacity: Capacity {
                desired,
                min: 0,
                max: 100,
                pending: 0,
                in_service: desired,
                terminating: 0,
                protected: 0,
            },
            clock: Clock {
                unix_seconds: 1_772_437_800,
                year: 2026,
                month: 3,
                day: 2,
                hour: 8,
                minute: 30,
                weekday: Weekday::Monday,
                utc_offset_seconds: 0,
                time_zone: "UTC".to_string(),
            },
            params: params
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            state: None,
        }
    }

    #[test]
    fn desired_capacity() {
        struct Case {
            name: &'static str,
            jobs: u32,
            desired: u32,
            params: &'static [(&'static str, &'static str)],
            want: u32,
        }
        let cases = [
            Case {
                name: "defaults: one instance per job",
                jobs: 3,
                desired: 1,
                params: &[],
                want: 3,
            },
            Case {
                name: "defaults: idle pool goes to zero",
                jobs: 0,
                desired: 3,
                params: &[],
                want: 0,
            },
            Case {
                name: "at target: no change",
                jobs: 3,
                desired: 3,
                params: &[],
                want: 3,
            },
            Case {
                name: "runners_per_instance rounds up",
                jobs: 9,
                desired: 0,
                params: &[("runners_per_instance", "4")],
                want: 3,
            },
            Case {
                name: "buffer adds spare instances",
                jobs: 3,
                desired: 0,
                params: &[("buffer", "2")],
                want: 5,
            },
            Case {
                name: "no buffer without jobs",
                jobs: 0,
                desired: 5,
                params: &[("buffer", "2")],
                want: 0,
            },
            Case {
                name: "scale_out_factor 0.5 adds half the gap",
                jobs: 10,
                desired: 2,
                params: &[("scale_out_factor", "0.5")],
                want: 6,
            },
            Case {
                name: "scale_out_factor 0.5 still closes a gap of 1",
                jobs: 3,
                desired: 2,
                params: &[("scale_out_factor", "0.5")],
                want: 3,
            },
            Case {
                name: "scale_out_factor 1.1 on a gap of 10 adds 11, not 12",
                jobs: 10,
                desired: 0,
                params: &[("scale_out_factor", "1.1")],
                want: 11,
            },
            Case {
                name: "scale_out_factor 2 overshoots",
                jobs: 4,
                desired: 2,
                params: &[("scale_out_factor", "2")],
                want: 6,
            },
            Case {
                name: "scale_in_factor 0.5 removes half the gap",
                jobs: 2,
                desired: 10,
                params: &[("scale_in_factor", "0.5")],
                want: 6,
            },
            Case {
                name: "scale_in_factor 0.5 still closes a gap of 1",
                jobs: 2,
                desired: 3,
                params: &[("scale_in_factor", "0.5")],
                want: 2,
            },
            Case {
                name: "scale_in_factor 0.29 on a gap of 100 removes 29, not 28",
                jobs: 0,
                desired: 100,
                params: &[("scale_in_factor", "0.29")],
                want: 71,
            },
            Case {
                name: "scale_in_factor 0 turns scale-in off",
                jobs: 0,
                desired: 10,
                params: &[("scale_in_factor", "0")],
                want: 10,
            },
            Case {
                name: "more than max: clamped",
                jobs: 150,
                desired: 10,
                params: &[],
                want: 100,
            },
        ];
        for case in cases {
            let observation = observation(case.jobs, case.desired, case.params);
            let decision = decide(&observation).unwrap();
            assert_eq!(decision.desired, case.want, "{}", case.name);
            assert_eq!(decision.state, None, "{}", case.name);
        }
    }

    #[test]
    fn min_holds_an_idle_pool() {
        let mut observation = observation(0, 3, &[]);
        observation.capacity.min = 2;
        let decision = decide(&observation).unwrap();
        assert_eq!(decision.desired, 2);
        assert_eq!(
            decision.reason,
            "0 waiting + 0 running at 1 per instance + buffer 0: target 0; \
             scale in 3 -> 0; 0 clamped to [2, 100]"
        );
    }

    #[test]
    fn damped_scale_in_reaches_the_target() {
        let params = [("scale_in_factor", "0.5")];
        let mut desired = 9;
        let mut ticks = Vec::new();
        while desired > 0 {
            desired = decide(&observation(0, desired, &params)).unwrap().desired;
            ticks.push(desired);
        }
        assert_eq!(ticks, [5, 3, 2, 1, 0]);
    }

    #[test]
    fn bad_params() {
        let cases = [
            (
                "runners_per_instance",
                "0",
                "a whole number of 1 or more, e.g. `2`",
            ),
            (
                "runners_per_instance",
                "two",
                "a whole number of 1 or more, e.g. `2`",
            ),
            ("buffer", "-1", "a whole number, e.g. `2`"),
            (
                "scale_out_factor",
                "0",
                "a number above 0, e.g. `1.0` or `0.5`",
            ),
            (
                "scale_out_factor",
                "inf",
                "a number above 0, e.g. `1.0` or `0.5`",
            ),
            (
                "scale_out_factor",
                "NaN",
                "a number above 0, e.g. `1.0` or `0.5`",
            ),
            (
                "scale_in_factor",
                "1.5",
                "a number from 0 to 1, e.g. `1.0` or `0.5`",
            ),
            (
                "scale_in_factor",
                "-0.1",
                "a number from 0 to 1, e.g. `1.0` or `0.5`",
            ),
            (
                "scale_in_factor",
                "50%",
                "a number from 0 to 1, e.g. `1.0` or `0.5`",
            ),
        ];
        for (name, value, expected) in cases {
            let error = decide(&observation(1, 1, &[(name, value)])).unwrap_err();
            assert_eq!(
                error,
                format!("param `{name}`: expected {expected}, got \"{value}\""),
                "{name}={value}"
            );
        }
        let error = decide(&observation(1, 1, &[("bufer", "2")])).unwrap_err();
        assert!(error.starts_with("param `bufer`: unknown;"), "{error}");
    }

    #[test]
    fn defaults() {
        assert_eq!(
            parse_params(&[]).unwrap(),
            Params {
                runners_per_instance: 1,
                buffer: 0,
                scale_out_factor: 1.0,
                scale_in_factor: 1.0,
            }
        );
    }
}
