//! `business-hours`: a warm floor of instances during business hours, plus one
//! instance for every job.
//!
//! `desired = max(warm if within business hours else 0, waiting + running)`,
//! clamped to `[min, max]`. The clock is already in the pool's time zone (its
//! `time_zone` setting), so the hours follow daylight saving. Outside business
//! hours the pool scales with its queue alone, down to `min`.
//!
//! Size `warm` to the jobs that arrive together when the day starts (the
//! first pipeline): with single-task runners each job takes one warm
//! instance, which then leaves, and an instance that gets no job leaves
//! after the runner's idle timeout (the stack's `IdleTimeout`, 5 minutes),
//! to be relaunched on the next tick. On the simulator's weekday trace
//! `warm=4` lowers the median wait of the 08:00–09:00 jobs from 128 s to
//! 79 s for 10% more instance time; the default `warm=1` moves no median.

use runner_scaler_policy::{export, Days, Decision, Hours, Observation, Params};

/// The params, all optional; an unknown one is refused, so that a typo
/// (`wram`) is not silently ignored.
#[derive(Params)]
pub struct Params {
    /// Instances to keep running during business hours.
    #[param(default = "1", example = "2")]
    pub warm: u32,
    /// The business days: `mon-fri`, `sat-sun`, `mon,wed,fri`, `mon-wed,fri`;
    /// `sun-thu` runs past Sunday.
    #[param(default = "mon-fri")]
    pub days: Days,
    /// From the first hour up to, not including, the second, local time:
    /// `08-18` is 08:00 to 17:59, `00-24` all day. Hours across midnight
    /// (`22-06`) are refused: a night shift belongs to two days, so write it as
    /// two pools or widen the hours.
    #[param(default = "08-18")]
    pub hours: Hours,
}

/// The rule.
pub fn decide(observation: &Observation) -> Result<Decision, String> {
    let params: Params = observation.params()?;
    let (queue, clock) = (&observation.queue, &observation.clock);
    let open = params.days.contains(clock.weekday) && params.hours.contains(clock.hour);
    let (floor, hours) = match open {
        true => (
            params.warm,
            format!("within business hours, warm floor {}", params.warm),
        ),
        false => (0, "outside business hours, no warm floor".to_string()),
    };
    let reason = format!("{queue}; {clock} is {hours}");
    Ok(observation.decision(floor.max(queue.jobs()), reason))
}

export!(decide);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_scaler_policy::Weekday::{self, *};

    /// An observation at `weekday hour:minute` in Europe/Berlin (in the week
    /// of Monday 2026-11-23), with a group of `[0, 10]` that runs 1 instance.
    fn observation(
        weekday: Weekday,
        (hour, minute): (u8, u8),
        (waiting, running): (u32, u32),
        params: &[(&str, &str)],
    ) -> Observation {
        let day = 23 + weekday.index();
        let mut observation = Observation::sample()
            .in_time_zone("Europe/Berlin", 3600)
            .at(&format!("2026-11-{day}T{hour:02}:{minute:02}"))
            .with_queue(waiting, running)
            .with_capacity(1, 0, 10);
        for (name, value) in params {
            observation = observation.with_param(name, value);
        }
        observation
    }

    #[test]
    fn desired_capacity() {
        struct Case {
            name: &'static str,
            weekday: Weekday,
            time: (u8, u8),
            jobs: (u32, u32),
            params: &'static [(&'static str, &'static str)],
            want: u32,
        }
        let cases = [
            Case {
                name: "monday morning, empty queue: warm floor",
                weekday: Monday,
                time: (9, 30),
                jobs: (0, 0),
                params: &[("warm", "3")],
                want: 3,
            },
            Case {
                name: "07:59 is before business hours",
                weekday: Monday,
                time: (7, 59),
                jobs: (0, 0),
                params: &[("warm", "3")],
                want: 0,
            },
            Case {
                name: "08:00 opens business hours",
                weekday: Monday,
                time: (8, 0),
                jobs: (0, 0),
                params: &[("warm", "3")],
                want: 3,
            },
            Case {
                name: "17:59 is still within business hours",
                weekday: Friday,
                time: (17, 59),
                jobs: (0, 0),
                params: &[("warm", "3")],
                want: 3,
            },
            Case {
                name: "18:00 closes business hours",
                weekday: Friday,
                time: (18, 0),
                jobs: (0, 0),
                params: &[("warm", "3")],
                want: 0,
            },
            Case {
                name: "saturday is not a business day by default",
                weekday: Saturday,
                time: (10, 0),
                jobs: (0, 0),
                params: &[("warm", "3")],
                want: 0,
            },
            Case {
                name: "saturday with days=sat-sun",
                weekday: Saturday,
                time: (10, 0),
                jobs: (0, 0),
                params: &[("warm", "2"), ("days", "sat-sun")],
                want: 2,
            },
            Case {
                name: "tuesday with days=mon,wed,fri",
                weekday: Tuesday,
                time: (10, 0),
                jobs: (0, 0),
                params: &[("days", "mon,wed,fri")],
                want: 0,
            },
            Case {
                name: "wednesday with days=mon,wed,fri",
                weekday: Wednesday,
                time: (10, 0),
                jobs: (0, 0),
                params: &[("days", "mon,wed,fri")],
                want: 1,
            },
            Case {
                name: "sunday with days=sun-thu, a range past sunday",
                weekday: Sunday,
                time: (10, 0),
                jobs: (0, 0),
                params: &[("days", "sun-thu")],
                want: 1,
            },
            Case {
                name: "23:59 with hours=00-24",
                weekday: Monday,
                time: (23, 59),
                jobs: (0, 0),
                params: &[("hours", "00-24")],
                want: 1,
            },
            Case {
                name: "more jobs than the floor",
                weekday: Monday,
                time: (9, 0),
                jobs: (4, 2),
                params: &[("warm", "3")],
                want: 6,
            },
            Case {
                name: "jobs at night, no floor",
                weekday: Monday,
                time: (2, 0),
                jobs: (1, 1),
                params: &[("warm", "3")],
                want: 2,
            },
            Case {
                name: "more jobs than max: clamped",
                weekday: Monday,
                time: (9, 0),
                jobs: (20, 0),
                params: &[],
                want: 10,
            },
            Case {
                name: "defaults: warm 1 on a weekday morning",
                weekday: Thursday,
                time: (8, 0),
                jobs: (0, 0),
                params: &[],
                want: 1,
            },
        ];
        for case in cases {
            let observation = observation(case.weekday, case.time, case.jobs, case.params);
            let decision = decide(&observation).unwrap();
            assert_eq!(decision.desired, case.want, "{}", case.name);
            assert_eq!(decision.state, None, "{}", case.name);
        }
    }

    #[test]
    fn min_raises_the_night() {
        let mut observation = observation(Sunday, (3, 0), (0, 0), &[]);
        observation.capacity.min = 2;
        let decision = decide(&observation).unwrap();
        assert_eq!(decision.desired, 2);
        assert!(
            decision.reason.contains("clamped to [2, 10]"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn reason_says_why() {
        let decision = decide(&observation(Monday, (8, 5), (0, 1), &[("warm", "2")])).unwrap();
        assert_eq!(
            decision.reason,
            "0 waiting + 1 running; mon 08:05 Europe/Berlin is within business hours, warm floor 2"
        );
        let decision = decide(&observation(Saturday, (8, 5), (0, 1), &[])).unwrap();
        assert_eq!(
            decision.reason,
            "0 waiting + 1 running; sat 08:05 Europe/Berlin is outside business hours, no warm floor"
        );
    }

    #[test]
    fn bad_params() {
        let cases: [(&str, (&str, &str), &str); 10] = [
            ("warm not a number", ("warm", "lots"), "param `warm`: expected a whole number, e.g. `2`, got \"lots\""),
            ("warm negative", ("warm", "-1"), "param `warm`"),
            ("days empty", ("days", ""), "param `days`: expected day names mon..sun in ranges or a comma list, e.g. `mon-fri` or `mon,wed,fri`, got \"\""),
            ("days misspelt", ("days", "mon-fry"), "param `days`"),
            ("days full names", ("days", "monday"), "param `days`"),
            ("days trailing comma", ("days", "mon,"), "param `days`"),
            ("hours without a dash", ("hours", "8"), "param `hours`: expected `HH-HH` with hours 00 to 24 and the start before the end, e.g. `08-18` or `00-24`, got \"8\""),
            ("hours across midnight", ("hours", "22-06"), "param `hours`"),
            ("hours past 24", ("hours", "08-25"), "param `hours`"),
            ("unknown param", ("wram", "2"), "param `wram`: unknown; this policy takes `warm`, `days` and `hours`"),
        ];
        for (name, param, want) in cases {
            let error = decide(&observation(Monday, (9, 0), (0, 0), &[param])).unwrap_err();
            assert!(error.starts_with(want), "{name}: {error}");
        }
    }

    #[test]
    fn params_allow_spaces_and_capitals() {
        let params: Params = Observation::sample()
            .with_param("days", "Mon - Wed, Fri")
            .with_param("hours", "7-19")
            .params()
            .unwrap();
        assert_eq!(params.warm, 1);
        let week = [
            Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
        ];
        assert_eq!(
            week.map(|day| params.days.contains(day)),
            [true, true, true, false, true, false, false]
        );
        assert_eq!(params.hours, Hours { start: 7, end: 19 });
    }
}
