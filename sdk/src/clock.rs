//! Local time: weekdays by name, business days (`mon-fri`) and hours
//! (`08-18`) as params, and the clock as people read it.

use crate::params::Param;
use crate::{Clock, Weekday};
use std::fmt;

/// Day names, Monday first: the order of [`Weekday::index`].
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

impl Weekday {
    /// Monday is 0, Sunday is 6.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The day `index` days after Monday, modulo a week.
    pub fn from_index(index: usize) -> Weekday {
        WEEKDAYS[index % 7]
    }

    /// `mon` .. `sun`.
    pub fn short_name(self) -> &'static str {
        DAY_NAMES[self.index()]
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// The clock as a reason says it: `mon 08:05 Europe/Berlin`.
impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} {:02}:{:02} {}",
            self.weekday, self.hour, self.minute, self.time_zone
        )
    }
}

/// A set of weekdays, written as day names `mon` .. `sun` in ranges and comma
/// lists: `mon-fri`, `sat-sun`, `mon,wed,fri`, `mon-wed,fri`. A range may run
/// past Sunday: `sun-thu` is Sunday to Thursday. Case and spaces do not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days([bool; 7]);

impl Days {
    /// Whether `day` is one of these days.
    pub fn contains(&self, day: Weekday) -> bool {
        self.0[day.index()]
    }
}

impl Param for Days {
    const EXPECTED: &'static str =
        "day names mon..sun in ranges or a comma list, e.g. `mon-fri` or `mon,wed,fri`";

    fn parse(text: &str) -> Option<Days> {
        // Bytes, not chars: day names are ASCII, and byte code is small.
        let mut days = [false; 7];
        for item in text.as_bytes().split(|b| *b == b',') {
            let (first, last) = match item.iter().position(|b| *b == b'-') {
                Some(dash) => item.split_at(dash),
                None => (item, item),
            };
            let last = last.strip_prefix(b"-").unwrap_or(last);
            let (mut day, last) = (day_index(first)?, day_index(last)?);
            // From the first day to the last, past Sunday if need be.
            days[day] = true;
            while day != last {
                day = (day + 1) % 7;
                days[day] = true;
            }
        }
        Some(Days(days))
    }
}

/// The index of the day `name` (`mon`, ` Tue `...), Monday 0.
fn day_index(name: &[u8]) -> Option<usize> {
    let name = name.trim_ascii();
    DAY_NAMES
        .iter()
        .position(|day| day.as_bytes().eq_ignore_ascii_case(name))
}

/// Hours of the day, written `HH-HH`: from the first hour up to, not
/// including, the second, local time. `08-18` is 08:00 to 17:59; `00-24` is
/// all day. Hours that cross midnight (`22-06`) are refused: a night shift
/// belongs to two days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    /// The first hour within, 0 to 23.
    pub start: u8,
    /// The first hour after, `start + 1` to 24.
    pub end: u8,
}

impl Hours {
    /// Whether `hour` (0 to 23) is within these hours.
    pub fn contains(&self, hour: u8) -> bool {
        self.start <= hour && hour < self.end
    }
}

impl Param for Hours {
    const EXPECTED: &'static str =
        "`HH-HH` with hours 00 to 24 and the start before the end, e.g. `08-18` or `00-24`";

    fn parse(text: &str) -> Option<Hours> {
        let dash = text.bytes().position(|b| b == b'-')?;
        let hour = |text: Option<&str>| text?.trim_ascii().parse::<u8>().ok();
        let (start, end) = (hour(text.get(..dash))?, hour(text.get(dash + 1..))?);
        (start < end && end <= 24).then_some(Hours { start, end })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Weekday::*;

    fn days(text: &str) -> Option<Vec<Weekday>> {
        let days = Days::parse(text)?;
        Some(WEEKDAYS.into_iter().filter(|d| days.contains(*d)).collect())
    }

    #[test]
    fn days_in_ranges_and_lists() {
        let cases: [(&str, Option<Vec<Weekday>>); 11] = [
            (
                "mon-fri",
                Some(vec![Monday, Tuesday, Wednesday, Thursday, Friday]),
            ),
            ("sat-sun", Some(vec![Saturday, Sunday])),
            ("mon,wed,fri", Some(vec![Monday, Wednesday, Friday])),
            (
                "Mon - Wed, Fri",
                Some(vec![Monday, Tuesday, Wednesday, Friday]),
            ),
            ("sun-tue", Some(vec![Monday, Tuesday, Sunday])),
            ("thu-thu", Some(vec![Thursday])),
            ("", None),
            ("mon-fry", None),
            ("monday", None),
            ("mon,", None),
            ("mon-tue-wed", None),
        ];
        for (text, want) in cases {
            assert_eq!(days(text), want, "{text:?}");
        }
    }

    #[test]
    fn hours_from_start_to_before_end() {
        let office = Hours::parse("08-18").unwrap();
        assert!(!office.contains(7));
        assert!(office.contains(8));
        assert!(office.contains(17));
        assert!(!office.contains(18));
        assert!(Hours::parse("00-24").unwrap().contains(23));
        assert_eq!(Hours::parse(" 7 - 19 "), Some(Hours { start: 7, end: 19 }));
        for bad in ["8", "22-06", "08-25", "08-08", "a-b", "-1-5", "08-18-20"] {
            assert_eq!(Hours::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn weekdays_by_index_and_name() {
        for (i, day) in WEEKDAYS.into_iter().enumerate() {
            assert_eq!(day.index(), i);
            assert_eq!(Weekday::from_index(i + 7), day);
        }
        assert_eq!(Sunday.to_string(), "sun");
    }
}
