//! `cooldown`: keep a few instances warm while jobs come, and for a while
//! after, so the next burst starts on booted runners instead of waiting for
//! boots.
//!
//! `desired = waiting + running + warm` while there are jobs and for
//! `minutes` after the queue empties, then `waiting + running`; clamped to
//! `[min, max]`. With single-task runners (the shipped stack) an instance
//! that ran a job leaves after it, so holding desired capacity keeps nothing:
//! the warm instances are extra capacity that waits, booted, for the next job.
//!
//! Mind the runner's idle timeout (the stack's `IdleTimeout`, 5 minutes by
//! default): a warm instance that gets no job within it leaves, and the next
//! tick launches a replacement, which costs a boot. Fit `minutes` to the gaps
//! between your bursts, and the idle timeout too if the gaps are longer.
//!
//! Its state is since when the queue is empty: written once when it empties,
//! cleared when jobs come. Without one (the queue just emptied, or a new
//! pool) it counts from now; a state it cannot read, or in the future, counts
//! from now too (the safe side: the warm instances stay), and the reason
//! says so.

use runner_scaler_policy::{export, Decision, Observation, Params, Quoted, State};

/// The params; an unknown one is refused.
#[derive(Params)]
pub struct Params {
    /// Instances kept ready beyond the jobs.
    #[param(default = "4", example = "4")]
    pub warm: u32,
    /// Minutes the warm instances stay after the queue empties; `0` lets
    /// them go at once.
    #[param(default = "20", example = "20")]
    pub minutes: u32,
}

/// What the policy keeps between ticks.
#[derive(State)]
pub struct Idle {
    /// Since when no job waits or runs, in unix seconds.
    pub empty_since: i64,
}

/// The rule.
pub fn decide(observation: &Observation) -> Result<Decision, String> {
    let Params { warm, minutes } = observation.params()?;
    let queue = &observation.queue;
    let (now, jobs) = (observation.clock.unix_seconds, queue.jobs());
    let mut reason = format!("{queue}");
    if jobs > 0 {
        reason += &format!("; {warm} warm beside the jobs");
        return Ok(observation.decision(jobs.saturating_add(warm), reason));
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
    let (idle, window) = (now - empty_since, i64::from(minutes) * 60);
    if idle >= window {
        reason += &format!("; queue empty for {minutes} min or more, no warm instances");
        // The state stays (unchanged, so not written again) until jobs come.
        return Ok(observation.decision(0, reason).keep(&Idle { empty_since }));
    }
    let left = window - idle; // In 1..=window.
    reason +=
        &format!("; {warm} warm for {left} s more of the {minutes} min after the queue emptied");
    Ok(observation
        .decision(warm, reason)
        .keep(&Idle { empty_since }))
}

export!(decide);

#[cfg(test)]
mod tests {
    use super::*;

    /// The tick at which the queue empties, and a minute.
    const T0: i64 = 1_772_437_800;
    const MIN: i64 = 60;

    /// An observation at `now` for a group of `[0, 10]` that runs `desired`,
    /// with `warm=2` and `minutes=5`.
    fn observation(
        now: i64,
        (waiting, running): (u32, u32),
        desired: u32,
        state: Option<&str>,
    ) -> Observation {
        Observation::sample()
            .with_unix_seconds(now)
            .with_queue(waiting, running)
            .with_capacity(desired, 0, 10)
            .with_param("warm", "2")
            .with_param("minutes", "5")
            .with_state(state)
    }

    /// The params, parsed.
    fn params(params: &[(&str, &str)]) -> Result<(u32, u32), String> {
        let mut observation = Observation::sample();
        for (name, value) in params {
            observation = observation.with_param(name, value);
        }
        observation
            .params()
            .map(|Params { warm, minutes }| (warm, minutes))
    }

    #[test]
    fn decisions() {
        struct Case {
            name: &'static str,
            now: i64,
            jobs: (u32, u32),
            state: Option<&'static str>,
            want: (u32, Option<String>),
        }
        let since = |t: i64| Some(format!("empty_since={t}"));
        let cases = [
            Case {
                name: "jobs: one instance each, and the warm ones",
                now: T0,
                jobs: (3, 2),
                state: None,
                want: (7, None),
            },
            Case {
                name: "jobs clear the state",
                now: T0 + 3 * MIN,
                jobs: (0, 1),
                state: Some("empty_since=1772437800"),
                want: (3, None),
            },
            Case {
                name: "the queue empties: the warm ones stay, the time is kept",
                now: T0,
                jobs: (0, 0),
                state: None,
                want: (2, since(T0)),
            },
            Case {
                name: "one second before the end: still warm",
                now: T0 + 5 * MIN - 1,
                jobs: (0, 0),
                state: Some("empty_since=1772437800"),
                want: (2, since(T0)),
            },
            Case {
                name: "at the end: none warm, the time still kept",
                now: T0 + 5 * MIN,
                jobs: (0, 0),
                state: Some("empty_since=1772437800"),
                want: (0, since(T0)),
            },
            Case {
                name: "long after: none warm",
                now: T0 + 600 * MIN,
                jobs: (0, 0),
                state: Some("empty_since=1772437800"),
                want: (0, since(T0)),
            },
            Case {
                name: "an unreadable state counts from now",
                now: T0 + 60 * MIN,
                jobs: (0, 0),
                state: Some("since yesterday"),
                want: (2, since(T0 + 60 * MIN)),
            },
            Case {
                name: "a time in the future counts from now",
                now: T0,
                jobs: (0, 0),
                state: Some("empty_since=9223372036854775807"),
                want: (2, since(T0)),
            },
            Case {
                name: "more than max: clamped",
                now: T0,
                jobs: (20, 0),
                state: None,
                want: (10, None),
            },
        ];
        for case in cases {
            let decision = decide(&observation(case.now, case.jobs, 4, case.state)).unwrap();
            assert_eq!(
                (decision.desired, decision.state),
                case.want,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn a_burst_and_the_quiet_after_it() {
        // Tick every minute: a burst of 6 jobs for 3 minutes, then nothing.
        let mut state = None;
        let mut desired = Vec::new();
        for minute in 0..10 {
            let jobs = if minute < 3 { (0, 6) } else { (0, 0) };
            let decision =
                decide(&observation(T0 + minute * MIN, jobs, 8, state.as_deref())).unwrap();
            desired.push(decision.desired);
            state = decision.state;
        }
        assert_eq!(desired, [8, 8, 8, 2, 2, 2, 2, 2, 0, 0]);
    }

    #[test]
    fn minutes_zero_keeps_none_once_the_queue_is_empty() {
        let observation = observation(T0, (0, 0), 4, None).with_param("minutes", "0");
        assert_eq!(decide(&observation).unwrap().desired, 0);
    }

    #[test]
    fn defaults() {
        assert_eq!(params(&[]), Ok((4, 20)));
    }

    #[test]
    fn reasons() {
        let decision = decide(&observation(
            T0 + MIN,
            (0, 0),
            4,
            Some("empty_since=1772437800"),
        ))
        .unwrap();
        assert_eq!(
            decision.reason,
            "0 waiting + 0 running; 2 warm for 240 s more of the 5 min after the queue emptied"
        );
        let decision = decide(&observation(T0, (1, 2), 4, None)).unwrap();
        assert_eq!(
            decision.reason,
            "1 waiting + 2 running; 2 warm beside the jobs"
        );
        let decision = decide(&observation(
            T0 + 5 * MIN,
            (0, 0),
            4,
            Some("empty_since=1772437800"),
        ))
        .unwrap();
        assert_eq!(
            decision.reason,
            "0 waiting + 0 running; queue empty for 5 min or more, no warm instances"
        );
        let decision = decide(&observation(T0, (0, 0), 4, Some("garbage"))).unwrap();
        assert_eq!(
            decision.reason,
            "0 waiting + 0 running; ignored state \"garbage\", not a past \
             `empty_since=<unix seconds>`, counting from now; 2 warm for 300 s more of the 5 min after the queue emptied"
        );
    }

    #[test]
    fn bad_params() {
        let cases = [
            (
                "minutes not a number",
                ("minutes", "ten"),
                "param `minutes`: expected a whole number, e.g. `20`, got \"ten\"",
            ),
            (
                "warm negative",
                ("warm", "-1"),
                "param `warm`: expected a whole number, e.g. `4`, got \"-1\"",
            ),
            (
                "unknown param",
                ("minute", "5"),
                "param `minute`: unknown; this policy takes `warm` and `minutes`",
            ),
        ];
        for (name, (param, value), want) in cases {
            assert_eq!(params(&[(param, value)]), Err(want.to_string()), "{name}");
        }
    }
}
