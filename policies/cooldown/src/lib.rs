//! `cooldown`: scale out at once, scale in only after the queue has been empty
//! for a while.
//!
//! When jobs wait, or every instance has a job, the group grows at once to fit
//! the jobs (`waiting + running`). When nothing waits and instances are idle,
//! it keeps them until no job has waited for `minutes`, then scales in to the
//! running jobs: short gaps between bursts cost no new boots. Its state is
//! since when the queue is empty; a state it cannot read, or in the future,
//! restarts the count, and the reason says so.

use runner_scaler_policy::{export, Decision, Observation, Params, Quoted, State};

/// The params; an unknown one is refused.
#[derive(Params)]
pub struct Params {
    /// Minutes idle instances are kept; `0` scales in once the queue is empty.
    #[param(default = "10", example = "10")]
    pub minutes: u32,
}

/// What the policy keeps between ticks.
#[derive(State)]
pub struct Idle {
    /// Since when no job waits, in unix seconds.
    pub empty_since: i64,
}

/// The rule.
pub fn decide(observation: &Observation) -> Result<Decision, String> {
    let Params { minutes } = observation.params()?;
    let (queue, capacity) = (&observation.queue, &observation.capacity);
    let (now, jobs) = (observation.clock.unix_seconds, queue.jobs());
    let mut reason = format!("{queue}");
    // Work for every instance, or more: grow at once, forget the cooldown.
    if queue.waiting > 0 || jobs >= capacity.desired {
        return Ok(observation.decision(capacity.desired.max(jobs), reason));
    }
    let empty_since = match observation.previous_state() {
        Ok(None) => now,
        Ok(Some(Idle { empty_since })) if empty_since <= now => empty_since,
        _ => {
            let state = Quoted(observation.state.as_deref().unwrap_or_default());
            reason += &format!("; ignored state {state}, not a past `empty_since=<unix seconds>`, counting from now");
            now
        }
    };
    let (idle, cooldown) = (now.saturating_sub(empty_since), i64::from(minutes) * 60);
    if idle >= cooldown {
        reason += &format!("; queue empty for {minutes} min or more, scaling in");
        return Ok(observation.decision(jobs, reason));
    }
    let left = cooldown - idle; // Both in 0..cooldown.
    let instances = capacity.desired - jobs;
    reason += &format!("; {instances} idle, kept for {left} s more of the {minutes} min cooldown");
    Ok(observation
        .decision(capacity.desired, reason)
        .keep(&Idle { empty_since }))
}

export!(decide);
#[cfg(test)]
mod tests {
    use super::*;

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
        Observation::sample()
            .with_unix_seconds(now)
            .with_queue(waiting, running)
            .with_capacity(desired, 1, 10)
            .with_param("minutes", "5")
            .with_state(state)
    }

    /// The param `minutes`, parsed.
    fn minutes(params: &[(&str, &str)]) -> Result<u32, String> {
        let mut observation = Observation::sample();
        for (name, value) in params {
            observation = observation.with_param(name, value);
        }
        observation.params().map(|Params { minutes }| minutes)
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
        let observation = observation(T0, (0, 1), 4, None).with_param("minutes", "0");
        let decision = decide(&observation).unwrap();
        assert_eq!((decision.desired, decision.state), (1, None));
    }

    #[test]
    fn default_is_ten_minutes() {
        assert_eq!(minutes(&[]), Ok(10));
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
            assert_eq!(minutes(&[(param, value)]), Err(want.to_string()), "{name}");
        }
    }
}
