//! `cooldown`: scale out at once, scale in only after the queue has been empty
//! for a while.
//!
//! Jobs are `waiting + running`, one instance each. When jobs wait, or there
//! are at least as many jobs as instances, the group grows to fit them at once:
//! `desired = max(current desired, jobs)`. When nothing waits and instances
//! are idle, the policy keeps them until the queue has had no waiting jobs for
//! `minutes`, then scales in to the jobs that run. Short gaps between bursts
//! of jobs so cost no new instance boots.
//!
//! The policy remembers since when the queue is empty in its state, as
//! `empty_since=<unix seconds>`. A state it cannot read, or a time in the
//! future, is not an error: it starts counting again and says so in the reason.
//!
//! Params (all optional):
//!
//! - `minutes` (default `10`): how long idle instances are kept. `0` scales
//!   in as soon as the queue is empty.
//!
//! An unknown param is refused, so that a typo (`minute`) is not silently
//! ignored.

wit_bindgen::generate!({ path: "../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation};

struct Cooldown;

impl Guest for Cooldown {
    fn decide(observation: Observation) -> Result<Decision, String> {
        decide(&observation)
    }
}

/// The prefix of the state, which goes on with unix seconds.
const STATE_PREFIX: &str = "empty_since=";

/// The rule, as a plain function so native tests can call it.
pub fn decide(observation: &Observation) -> Result<Decision, String> {
    let minutes = parse_minutes(&observation.params)?;
    let queue = &observation.queue;
    let capacity = &observation.capacity;
    let now = observation.clock.unix_seconds;
    let jobs = queue.waiting.saturating_add(queue.running);
    let mut reason = format!("{} waiting + {} running", queue.waiting, queue.running);

    // Work for every instance, or more: grow at once, forget the cooldown.
    if queue.waiting > 0 || jobs >= capacity.desired {
        let wanted = capacity.desired.max(jobs);
        return Ok(decision(wanted, reason, None, observation));
    }

    // Idle instances: keep them until the queue has been empty for `minutes`.
    let empty_since = match observation.state.as_deref() {
        None => now,
        Some(state) => match parse_state(state) {
            Some(since) if since <= now => since,
            _ => {
                reason += &format!(
                    "; ignored state {state:?}, not a past `{STATE_PREFIX}<unix seconds>`, counting from now"
                );
                now
            }
        },
    };
    let idle_seconds = now.saturating_sub(empty_since);
    let cooldown_seconds = i64::from(minutes) * 60;
    if idle_seconds >= cooldown_seconds {
        reason += &format!("; queue empty for {minutes} min or more, scaling in");
        Ok(decision(jobs, reason, None, observation))
    } else {
        let left = cooldown_seconds - idle_seconds; // Both in 0..cooldown_seconds.
        reason += &format!(
            "; {} idle, kept for {left} s more of the {minutes} min cooldown",
            capacity.desired - jobs
        );
        let state = format!("{STATE_PREFIX}{empty_since}");
        Ok(decision(capacity.desired, reason, Some(state), observation))
    }
}

/// Clamps `wanted` to the group's bounds and notes in the reason when that
/// changed it.
fn decision(
    wanted: u32,
    mut reason: String,
    state: Option<String>,
    observation: &Observation,
) -> Decision {
    let capacity = &observation.capacity;
    let desired = wanted.clamp(capacity.min, capacity.max);
    if desired != wanted {
        reason += &format!("; {wanted} clamped to [{}, {}]", capacity.min, capacity.max);
    }
    Decision {
        desired,
        reason,
        state,
    }
}

/// Reads `empty_since=<unix seconds>`, or `None` if the state is not that.
fn parse_state(state: &str) -> Option<i64> {
    state.strip_prefix(STATE_PREFIX)?.parse().ok()
}

/// Parses the param `minutes`, 10 if the pool does not set it.
pub fn parse_minutes(params: &[(String, String)]) -> Result<u32, String> {
    let mut minutes = 10;
    for (name, value) in params {
        match name.as_str() {
            "minutes" => minutes = parse(name, value, "a whole number, e.g. `10`", |_| true)?,
            _ => {
                return Err(format!(
                    "param `{name}`: unknown; this policy takes `minutes`"
                ))
            }
        }
    }
    Ok(minutes)
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
export!(Cooldown);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_scaler::policy::types::{Capacity, Clock, Queue, Weekday};

    /// Tick times: the first empty tick and some seconds after it.
    const T0: i64 = 1_772_437_800;
    const MIN: i64 = 60;

    /// An observation at `now` for a group of `[1, 10]` whose desired capacity
    /// is `desired`, with `minutes=5`.
    fn observation(
        now: i64,
        (waiting, running): (u32, u32),
        desired: u32,
        state: Option<&str>,
    ) -> Observation {
        Observation {
            pool: "linux-large".to_string(),
            queue: Queue { waiting, running },
            capacity: Capacity {
                desired,
                min: 1,
                max: 10,
                pending: 0,
                in_service: desired,
                terminating: 0,
                protected: 0,
            },
            clock: Clock {
                unix_seconds: now,
                year: 2026,
                month: 3,
                day: 2,
                hour: 8,
                minute: 30,
                weekday: Weekday::Monday,
                utc_offset_seconds: 0,
                time_zone: "UTC".to_string(),
            },
            params: vec![("minutes".to_string(), "5".to_string())],
            state: state.map(str::to_string),
        }
    }

    #[test]
    fn decisions() {
        struct Case {
            name: &'static str,
            now: i64,
            jobs: (u32, u32),
            desired: u32,
            state: Option<&'static str>,
            want: (u32, Option<String>),
        }
        let since = |t: i64| Some(format!("empty_since={t}"));
        let cases = [
            Case {
                name: "waiting jobs scale out at once",
                now: T0,
                jobs: (3, 2),
                desired: 2,
                state: None,
                want: (5, None),
            },
            Case {
                name: "busy instances, nothing waiting: hold",
                now: T0,
                jobs: (0, 4),
                desired: 4,
                state: None,
                want: (4, None),
            },
            Case {
                name: "first empty tick starts the cooldown",
                now: T0,
                jobs: (0, 1),
                desired: 4,
                state: None,
                want: (4, since(T0)),
            },
            Case {
                name: "before expiry: hold, keep the first time",
                now: T0 + 5 * MIN - 1,
                jobs: (0, 1),
                desired: 4,
                state: Some("empty_since=1772437800"),
                want: (4, since(T0)),
            },
            Case {
                name: "exactly at expiry: scale in to the running jobs",
                now: T0 + 5 * MIN,
                jobs: (0, 2),
                desired: 4,
                state: Some("empty_since=1772437800"),
                want: (2, None),
            },
            Case {
                name: "long after expiry: scale in, not below min",
                now: T0 + 60 * MIN,
                jobs: (0, 0),
                desired: 4,
                state: Some("empty_since=1772437800"),
                want: (1, None),
            },
            Case {
                name: "new work during the cooldown resets it",
                now: T0 + 3 * MIN,
                jobs: (1, 0),
                desired: 4,
                state: Some("empty_since=1772437800"),
                want: (4, None),
            },
            Case {
                name: "work for every instance resets it",
                now: T0 + 3 * MIN,
                jobs: (0, 4),
                desired: 4,
                state: Some("empty_since=1772437800"),
                want: (4, None),
            },
            Case {
                name: "unreadable state restarts the count",
                now: T0 + 60 * MIN,
                jobs: (0, 0),
                desired: 4,
                state: Some("since yesterday"),
                want: (4, since(T0 + 60 * MIN)),
            },
            Case {
                name: "a time in the future restarts the count",
                now: T0,
                jobs: (0, 0),
                desired: 4,
                state: Some("empty_since=9223372036854775807"),
                want: (4, since(T0)),
            },
            Case {
                name: "more jobs than max: clamped",
                now: T0,
                jobs: (20, 0),
                desired: 4,
                state: None,
                want: (10, None),
            },
        ];
        for case in cases {
            let observation = observation(case.now, case.jobs, case.desired, case.state);
            let decision = decide(&observation).unwrap();
            assert_eq!(
                (decision.desired, decision.state),
                case.want,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn a_whole_cooldown() {
        // Tick every minute: 4 instances, then the queue empties.
        let mut state = None;
        for minute in 0..5 {
            let decision =
                decide(&observation(T0 + minute * MIN, (0, 0), 4, state.as_deref())).unwrap();
            assert_eq!(decision.desired, 4, "minute {minute}: {}", decision.reason);
            state = decision.state;
        }
        let decision = decide(&observation(T0 + 5 * MIN, (0, 0), 4, state.as_deref())).unwrap();
        assert_eq!(decision.desired, 1, "{}", decision.reason);
        assert_eq!(decision.state, None);
    }

    #[test]
    fn minutes_zero_scales_in_at_once() {
        let mut observation = observation(T0, (0, 1), 4, None);
        observation.params = vec![("minutes".to_string(), "0".to_string())];
        let decision = decide(&observation).unwrap();
        assert_eq!((decision.desired, decision.state), (1, None));
    }

    #[test]
    fn default_is_ten_minutes() {
        assert_eq!(parse_minutes(&[]), Ok(10));
    }

    #[test]
    fn reasons() {
        let decision = decide(&observation(
            T0 + MIN,
            (0, 1),
            4,
            Some("empty_since=1772437800"),
        ))
        .unwrap();
        assert_eq!(
            decision.reason,
            "0 waiting + 1 running; 3 idle, kept for 240 s more of the 5 min cooldown"
        );
        let decision = decide(&observation(T0, (0, 1), 4, Some("garbage"))).unwrap();
        assert_eq!(
            decision.reason,
            "0 waiting + 1 running; ignored state \"garbage\", not a past \
             `empty_since=<unix seconds>`, counting from now; 3 idle, kept for 300 s more of the 5 min cooldown"
        );
    }

    #[test]
    fn bad_params() {
        let cases = [
            (
                "minutes not a number",
                ("minutes", "ten"),
                "param `minutes`: expected a whole number, e.g. `10`, got \"ten\"",
            ),
            (
                "minutes negative",
                ("minutes", "-5"),
                "param `minutes`: expected a whole number, e.g. `10`, got \"-5\"",
            ),
            (
                "minutes with a unit",
                ("minutes", "10m"),
                "param `minutes`: expected a whole number, e.g. `10`, got \"10m\"",
            ),
            (
                "unknown param",
                ("minute", "5"),
                "param `minute`: unknown; this policy takes `minutes`",
            ),
        ];
        for (name, (param, value), want) in cases {
            let params = [(param.to_string(), value.to_string())];
            assert_eq!(parse_minutes(&params), Err(want.to_string()), "{name}");
        }
    }
}
