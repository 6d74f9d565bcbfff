//! Sample observations for native tests, with the defaults of runner-scaler's
//! sample files (`policy test` case files and `policy eval` observations), so
//! a unit test and a case say the same with the same fields.

use crate::{Capacity, Clock, Observation, Queue, WarmPool, Weekday};

/// `2026-11-23T09:00:00Z`, a Monday: the sample files' default time.
const DEFAULT_UNIX_SECONDS: i64 = 1_795_424_400;

impl Observation {
    /// The observation a sample file means when it gives no field: pool
    /// `sample`, an empty queue, capacity `desired = 0` in `[0, 10]` (no
    /// instance in any state), Monday 2026-11-23 09:00 UTC, no params, no
    /// state. Change it with the `with_*` methods and [`at`](Observation::at).
    pub fn sample() -> Observation {
        Observation {
            pool: "sample".to_string(),
            queue: Queue {
                waiting: 0,
                running: 0,
                blocked: None,
            },
            capacity: Capacity {
                desired: 0,
                min: 0,
                max: 10,
                pending: 0,
                in_service: 0,
                terminating: 0,
                protected: 0,
                warm_pool: None,
            },
            clock: clock(DEFAULT_UNIX_SECONDS, 0, "UTC".to_string()),
            params: Vec::new(),
            state: None,
        }
    }

    /// With this pool name.
    pub fn with_pool(mut self, pool: &str) -> Observation {
        self.pool = pool.to_string();
        self
    }

    /// With `waiting` and `running` jobs.
    pub fn with_queue(mut self, waiting: u32, running: u32) -> Observation {
        self.queue = Queue {
            waiting,
            running,
            ..self.queue
        };
        self
    }

    /// With a warm pool that keeps `size` instances (all of them in it now),
    /// of at most the capacity's `max`, as a sample file's `warm_pool = {
    /// size = N }`.
    pub fn with_warm_pool(mut self, size: u32) -> Observation {
        self.capacity.warm_pool = Some(WarmPool {
            instances: Some(size),
            size,
            max: self.capacity.max,
        });
        self
    }

    /// With a group whose desired capacity is `desired`, all of it in service,
    /// within `[min, max]`. Set the other counts on `capacity` directly.
    pub fn with_capacity(mut self, desired: u32, min: u32, max: u32) -> Observation {
        self.capacity = Capacity {
            desired,
            min,
            max,
            in_service: desired,
            ..self.capacity
        };
        self
    }

    /// At `local`, a local time `YYYY-MM-DDTHH:MM[:SS]` in the clock's time
    /// zone (see [`in_time_zone`](Observation::in_time_zone)); the weekday and
    /// `unix_seconds` follow.
    ///
    /// # Panics
    ///
    /// On a malformed time: this is for tests.
    pub fn at(mut self, local: &str) -> Observation {
        let seconds = parse_local(local).unwrap_or_else(|| {
            panic!("{local:?} is not a local time: write it like \"2026-11-23T09:00:00\"")
        });
        let offset = self.clock.utc_offset_seconds;
        self.clock = clock(seconds - i64::from(offset), offset, self.clock.time_zone);
        self
    }

    /// In the time zone `name`, `utc_offset_seconds` ahead of UTC (3600 for
    /// CET), at the same local time: `unix_seconds` follows. The name is only
    /// a label here: no time zone database is consulted.
    pub fn in_time_zone(mut self, name: &str, utc_offset_seconds: i32) -> Observation {
        let local = self.clock.unix_seconds + i64::from(self.clock.utc_offset_seconds);
        self.clock = clock(
            local - i64::from(utc_offset_seconds),
            utc_offset_seconds,
            name.to_string(),
        );
        self
    }

    /// At the instant `unix_seconds`, in the same time zone: the local time
    /// follows.
    pub fn with_unix_seconds(mut self, unix_seconds: i64) -> Observation {
        let offset = self.clock.utc_offset_seconds;
        self.clock = clock(unix_seconds, offset, self.clock.time_zone);
        self
    }

    /// With the param `name` set to `value`, replacing an earlier value of
    /// `name` in place, like a case file's `params`.
    pub fn with_param(mut self, name: &str, value: &str) -> Observation {
        match self.params.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value.to_string(),
            None => self.params.push((name.to_string(), value.to_string())),
        }
        self
    }

    /// With the state kept on the previous tick (`None` for none).
    pub fn with_state<'a>(mut self, state: impl Into<Option<&'a str>>) -> Observation {
        self.state = state.into().map(str::to_string);
        self
    }
}

/// The clock at `unix_seconds` in a zone `offset` seconds ahead of UTC.
fn clock(unix_seconds: i64, offset: i32, time_zone: String) -> Clock {
    let local = unix_seconds + i64::from(offset);
    let days = local.div_euclid(86_400);
    let second_of_day = local.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Clock {
        unix_seconds,
        year: u16::try_from(year).expect("a year from 0 to 65535"),
        month: month as u8,
        day: day as u8,
        hour: (second_of_day / 3600) as u8,
        minute: (second_of_day % 3600 / 60) as u8,
        // 1970-01-01 was a Thursday, 3 days after a Monday.
        weekday: Weekday::from_index((days + 3).rem_euclid(7) as usize),
        utc_offset_seconds: offset,
        time_zone,
    }
}

/// Seconds from 1970-01-01T00:00:00 to `YYYY-MM-DDTHH:MM[:SS]`, both local.
fn parse_local(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut time = time.splitn(3, ':').map(|part| part.parse::<i64>().ok());
    let (hour, minute) = (time.next()??, time.next()??);
    let second = time.next().unwrap_or(Some(0))?;
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..60).contains(&second);
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March is 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_a_monday_morning_in_utc() {
        let clock = Observation::sample().clock;
        assert_eq!(
            (clock.year, clock.month, clock.day, clock.hour, clock.minute),
            (2026, 11, 23, 9, 0)
        );
        assert_eq!(clock.weekday, Weekday::Monday);
        assert_eq!(
            Observation::sample().at("2026-11-23T09:00:00").clock,
            clock,
            "at() agrees with the default"
        );
    }

    #[test]
    fn local_times_in_a_zone() {
        // 03:00 CEST on the day Berlin springs forward is 01:00 UTC.
        let o = Observation::sample()
            .in_time_zone("Europe/Berlin", 7200)
            .at("2026-03-29T03:00");
        assert_eq!(o.clock.unix_seconds, 1_774_746_000);
        assert_eq!(o.clock.to_string(), "sun 03:00 Europe/Berlin");
        // The other order gives the same clock.
        let o2 = Observation::sample()
            .at("2026-03-29T03:00")
            .in_time_zone("Europe/Berlin", 7200);
        assert_eq!(o2.clock, o.clock);
        let later = o.with_unix_seconds(1_774_746_000 + 22 * 3600);
        assert_eq!(later.clock.to_string(), "mon 01:00 Europe/Berlin");
    }

    #[test]
    fn dates_round_trip_across_leap_years_and_eras() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            assert!((1..=days_in_month(y, m)).contains(&d));
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2028, 2, 29)), (2028, 2, 29));
    }

    #[test]
    fn malformed_local_times_are_refused() {
        for bad in [
            "2026-11-23",
            "2026-11-23T9",
            "2026-13-01T00:00",
            "2026-02-29T00:00",
            "2026-11-23T24:00",
            "2026-11-23T09:60",
            "2026-11-23T09:00Z",
            "monday",
        ] {
            assert_eq!(parse_local(bad), None, "{bad}");
        }
        assert!(parse_local("2028-02-29T23:59:59").is_some());
    }
}
