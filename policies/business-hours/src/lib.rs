//! `business-hours`: a warm floor of instances during business hours, plus one
//! instance for every job.
//!
//! `desired = max(warm if within business hours else 0, waiting + running)`,
//! clamped to `[min, max]`. The hours are read from the tick's `clock`, which
//! is already in the pool's time zone (its `time_zone` setting), so they follow
//! daylight saving. Outside business hours the pool scales with its queue
//! alone, down to `min`.
//!
//! Params (all optional):
//!
//! - `warm` (default `1`): instances to keep running during business hours.
//! - `days` (default `mon-fri`): the business days, as day names `mon` ..
//!   `sun`, in ranges and comma lists: `mon-fri`, `sat-sun`, `mon,wed,fri`,
//!   `mon-wed,fri`. A range may run past Sunday: `sun-thu` is Sunday to
//!   Thursday.
//! - `hours` (default `08-18`): from the first hour up to, not including, the
//!   second, local time. `08-18` is 08:00 to 17:59; `00-24` is all day. Hours
//!   that cross midnight (`22-06`) are refused: a night shift belongs to two
//!   days, so write it as two pools or widen the hours.
//!
//! An unknown param is refused too, so that a typo (`wram`) is not silently
//! ignored.

wit_bindgen::generate!({ path: "../../wit", world: "policy" });

use exports::runner_scaler::policy::decider::Guest;
use runner_scaler::policy::types::{Decision, Observation, Weekday};

struct BusinessHours;

impl Guest for BusinessHours {
    fn decide(observation: Observation) -> Result<Decision, String> {
        decide(&observation)
    }
}

/// Day names, in the order of `days` below: Monday is 0.
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The params, parsed.
#[derive(Debug, PartialEq)]
pub struct Params {
    /// Instances to keep during business hours.
    pub warm: u32,
    /// Which days are business days, Monday first.
    pub days: [bool; 7],
    /// Business hours are `start <= hour < end`.
    pub start: u8,
    pub end: u8,
}

/// The rule, as a plain function so native tests can call it.
pub fn decide(observation: &Observation) -> Result<Decision, String> {
    let params = parse_params(&observation.params)?;
    let queue = &observation.queue;
    let capacity = &observation.capacity;
    let clock = &observation.clock;

    let day = day_index(clock.weekday);
    let open = params.days[day] && params.start <= clock.hour && clock.hour < params.end;
    let floor = if open { params.warm } else { 0 };
    let jobs = queue.waiting.saturating_add(queue.running);
    let wanted = floor.max(jobs);
    let desired = wanted.clamp(capacity.min, capacity.max);

    let mut reason = format!(
        "{} waiting + {} running; {} {:02}:{:02} {} is {}",
        queue.waiting,
        queue.running,
        DAY_NAMES[day],
        clock.hour,
        clock.minute,
        clock.time_zone,
        if open {
            format!("within business hours, warm floor {}", params.warm)
        } else {
            "outside business hours, no warm floor".to_string()
        },
    );
    if desired != wanted {
        reason += &format!("; {wanted} clamped to [{}, {}]", capacity.min, capacity.max);
    }
    Ok(Decision {
        desired,
        reason,
        state: None,
    })
}

/// Parses `warm`, `days` and `hours`, with their defaults.
pub fn parse_params(params: &[(String, String)]) -> Result<Params, String> {
    let mut parsed = Params {
        warm: 1,
        days: [true, true, true, true, true, false, false], // mon-fri
        start: 8,
        end: 18,
    };
    for (name, value) in params {
        match name.as_str() {
            "warm" => parsed.warm = parse(name, value, "a whole number, e.g. `2`", |_| true)?,
            "days" => parsed.days = parse_days(value)?,
            "hours" => (parsed.start, parsed.end) = parse_hours(value)?,
            _ => {
                return Err(format!(
                    "param `{name}`: unknown; this policy takes `warm`, `days` and `hours`"
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

/// Parses a comma list of days and day ranges, e.g. `mon-wed,fri`.
fn parse_days(value: &str) -> Result<[bool; 7], String> {
    let bad = || {
        format!(
            "param `days`: expected day names mon..sun in ranges or a comma list, \
             e.g. `mon-fri` or `mon,wed,fri`, got {value:?}"
        )
    };
    let name_to_index = |name: &str| {
        DAY_NAMES
            .iter()
            .position(|day| day.eq_ignore_ascii_case(name.trim()))
    };
    let mut days = [false; 7];
    for item in value.split(',') {
        let (first, last) = item.split_once('-').unwrap_or((item, item));
        let (Some(first), Some(last)) = (name_to_index(first), name_to_index(last)) else {
            return Err(bad());
        };
        // Walk from the first day to the last, past Sunday if need be.
        let mut day = first;
        days[day] = true;
        while day != last {
            day = (day + 1) % 7;
            days[day] = true;
        }
    }
    Ok(days)
}

/// Parses `HH-HH`: a start hour 0..=23 and an end hour up to 24 after it.
fn parse_hours(value: &str) -> Result<(u8, u8), String> {
    let bad = || {
        format!(
            "param `hours`: expected `HH-HH` with hours 00 to 24 and the start before the end, \
             e.g. `08-18` or `00-24`, got {value:?}"
        )
    };
    let (start, end) = value.split_once('-').ok_or_else(bad)?;
    let start: u8 = start.trim().parse().map_err(|_| bad())?;
    let end: u8 = end.trim().parse().map_err(|_| bad())?;
    if start < end && end <= 24 {
        Ok((start, end))
    } else {
        Err(bad())
    }
}

/// Monday is 0, Sunday is 6.
fn day_index(weekday: Weekday) -> usize {
    match weekday {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    }
}

// Only the WebAssembly build is a policy; native builds (the unit tests)
// leave the export out, since native linkers cannot take its WIT names.
#[cfg(target_arch = "wasm32")]
export!(BusinessHours);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_scaler::policy::types::{Capacity, Clock, Queue};
    use Weekday::*;

    /// An observation at `weekday hour:minute` in Europe/Berlin, with a group
    /// of `[0, 10]` that runs 1 instance. Only the weekday and the time of day
    /// matter to this policy, so the date stays fixed.
    fn observation(
        weekday: Weekday,
        (hour, minute): (u8, u8),
        (waiting, running): (u32, u32),
        params: &[(&str, &str)],
    ) -> Observation {
        Observation {
            pool: "linux-large".to_string(),
            queue: Queue { waiting, running },
            capacity: Capacity {
                desired: 1,
                min: 0,
                max: 10,
                pending: 0,
                in_service: 1,
                terminating: 0,
                protected: 0,
            },
            clock: Clock {
                unix_seconds: 1_772_437_800,
                year: 2026,
                month: 3,
                day: 2,
                hour,
                minute,
                weekday,
                utc_offset_seconds: 3600,
                time_zone: "Europe/Berlin".to_string(),
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
        let params = [
            ("days".to_string(), "Mon - Wed, Fri".to_string()),
            ("hours".to_string(), "7-19".to_string()),
        ];
        assert_eq!(
            parse_params(&params).unwrap(),
            Params {
                warm: 1,
                days: [true, true, true, false, true, false, false],
                start: 7,
                end: 19,
            }
        );
    }
}
