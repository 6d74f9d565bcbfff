//! `buffered`: the knobs of buildkite-agent-scaler: runners per instance, a
//! buffer of spare instances, and damped scaling both ways.
//!
//! The target is `ceil(jobs / runners_per_instance) + buffer` (jobs are
//! `waiting + running`; no buffer without jobs, so an idle pool goes down to
//! `min`). From the current desired capacity it moves out by
//! `ceil(gap × scale_out_factor)` or in by `floor(gap × scale_in_factor)`,
//! at least one either way (a factor below 1 must still close a gap of 1),
//! unless `scale_in_factor` is 0. Clamped to `[min, max]`.

use runner_scaler_policy::{export, Decision, Observation, Params};

/// The params, all optional; an unknown one is refused.
#[derive(Params, Debug, PartialEq)]
pub struct Params {
    /// Jobs one instance runs at once.
    #[param(
        default = "1",
        expected = "a whole number of 1 or more, e.g. `2`",
        check = |n| *n >= 1
    )]
    pub runners_per_instance: u32,
    /// Spare instances while there are jobs.
    #[param(default = "0", example = "2")]
    pub buffer: u32,
    /// Share of the gap to add per tick; above 1 overshoots the target.
    #[param(
        default = "1.0",
        expected = "a number above 0, e.g. `1.0` or `0.5`",
        check = |f| *f > 0.0
    )]
    pub scale_out_factor: f64,
    /// Share of the gap to remove per tick, 0 to 1; 0 turns scale-in off.
    #[param(
        default = "1.0",
        expected = "a number from 0 to 1, e.g. `1.0` or `0.5`",
        check = |f| (0.0..=1.0).contains(f)
    )]
    pub scale_in_factor: f64,
}

/// The rule.
pub fn decide(observation: &Observation) -> Result<Decision, String> {
    let params: Params = observation.params()?;
    let (queue, current) = (&observation.queue, observation.capacity.desired);
    let (jobs, per) = (queue.jobs(), params.runners_per_instance);
    let buffer = if jobs > 0 { params.buffer } else { 0 };
    let target = jobs.div_ceil(per).saturating_add(buffer);
    let gap = target.abs_diff(current) as f64;
    let (wanted, step) = if target > current {
        let wanted = current.saturating_add(ceil(gap * params.scale_out_factor));
        (wanted, format!("scale out {current} -> {wanted}"))
    } else if target < current && params.scale_in_factor > 0.0 {
        let wanted = current - floor(gap * params.scale_in_factor).max(1);
        (wanted, format!("scale in {current} -> {wanted}"))
    } else if target < current {
        (current, format!("scale-in is off, keep {current}"))
    } else {
        (current, "at target".into())
    };
    let reason =
        format!("{queue} at {per} per instance + buffer {buffer}: target {target}; {step}");
    Ok(observation.decision(wanted, reason))
}

/// `x` rounded up, with a millionth of slack against floating-point noise:
/// 10 × 1.1 is 11.000000000000002, which must give 11.
fn ceil(x: f64) -> u32 {
    (x - 1e-6).ceil() as u32
}

/// `x` rounded down, with the same slack: 100 × 0.29 is 28.999999999999996,
/// which must give 29.
fn floor(x: f64) -> u32 {
    (x + 1e-6).floor() as u32
}

export!(decide);
#[cfg(test)]
mod tests {
    use super::*;

    /// An observation of `jobs` waiting jobs for a group of `[0, 100]` whose
    /// desired capacity is `desired`.
    fn observation(jobs: u32, desired: u32, params: &[(&str, &str)]) -> Observation {
        let mut observation = Observation::sample()
            .with_queue(jobs, 0)
            .with_capacity(desired, 0, 100);
        for (name, value) in params {
            observation = observation.with_param(name, value);
        }
        observation
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
            Observation::sample().params::<Params>().unwrap(),
            Params {
                runners_per_instance: 1,
                buffer: 0,
                scale_out_factor: 1.0,
                scale_in_factor: 1.0,
            }
        );
    }
}
