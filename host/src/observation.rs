//! What a policy sees ([`Observation`]) and what it answers ([`Decision`]):
//! the host's own types, mirrored by the WIT contract in `wit/policy.wit`.
//! The engine converts them at the boundary; nothing outside `policy/` sees
//! the generated bindings.

use serde::{Deserialize, Serialize};

/// Everything a policy sees on one tick for one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    /// The pool's name from the configuration.
    pub pool: String,
    pub queue: Queue,
    pub capacity: Capacity,
    pub clock: Clock,
    /// The pool's params, in the order they were configured.
    #[serde(default, with = "crate::params::as_strings")]
    pub params: Vec<(String, String)>,
    /// What the policy kept from its previous decision for this pool.
    #[serde(default)]
    pub state: Option<String>,
}

/// Jobs for the pool's resource class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// Tasks no runner has claimed yet.
    pub waiting: u32,
    /// Tasks a runner is running.
    pub running: u32,
    /// Jobs held back by what they depend on, when the source can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<u32>,
}

/// The Auto Scaling group's capacity and its instances by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    pub desired: u32,
    /// The lowest desired capacity the host applies.
    pub min: u32,
    /// The highest desired capacity the host applies.
    pub max: u32,
    #[serde(default)]
    pub pending: u32,
    #[serde(default)]
    pub in_service: u32,
    #[serde(default)]
    pub terminating: u32,
    /// Instances protected from scale-in.
    #[serde(default)]
    pub protected: u32,
    /// The group's warm pool, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPool>,
}

/// The group's warm pool, as a policy sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmPool {
    /// Instances in the pool now (ready or being initialised), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// How many instances the pool keeps (its `MinSize`).
    pub size: u32,
    /// The most the host will set it to (the pool's `warm_max`).
    pub max: u32,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// The time of a tick in the pool's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clock {
    pub unix_seconds: i64,
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub weekday: Weekday,
    pub utc_offset_seconds: i32,
    pub time_zone: String,
}

/// A policy's answer, before the host clamps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The desired capacity the policy wants.
    pub desired: u32,
    /// Why, in one line.
    pub reason: String,
    /// What to remember until the next tick.
    pub state: Option<String>,
    /// How many instances the warm pool should keep, if the policy says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<u32>,
}

impl Queue {
    /// Jobs that need an instance: waiting plus running.
    pub fn jobs(&self) -> u32 {
        self.waiting.saturating_add(self.running)
    }
}

impl Clock {
    /// The clock at `at` in the time zone `tz`.
    pub fn at(at: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Clock {
        let local = at.to_zoned(tz.clone());
        let offset = tz.to_offset(at);
        Clock {
            unix_seconds: at.as_second(),
            year: u16::try_from(local.year()).unwrap_or(0),
            month: local.month() as u8,
            day: local.day() as u8,
            hour: local.hour() as u8,
            minute: local.minute() as u8,
            weekday: local.weekday().into(),
            utc_offset_seconds: offset.seconds(),
            time_zone: tz.iana_name().unwrap_or("UTC").to_string(),
        }
    }
}

impl From<jiff::civil::Weekday> for Weekday {
    fn from(day: jiff::civil::Weekday) -> Self {
        use jiff::civil::Weekday as J;
        match day {
            J::Monday => Weekday::Monday,
            J::Tuesday => Weekday::Tuesday,
            J::Wednesday => Weekday::Wednesday,
            J::Thursday => Weekday::Thursday,
            J::Friday => Weekday::Friday,
            J::Saturday => Weekday::Saturday,
            J::Sunday => Weekday::Sunday,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_local_to_the_pool_and_follows_daylight_saving() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        // 2026-03-29 is the spring-forward day in Berlin: 01:00 UTC = 03:00 CEST.
        let before: jiff::Timestamp = "2026-03-29T00:59:00Z".parse().unwrap();
        let after: jiff::Timestamp = "2026-03-29T01:00:00Z".parse().unwrap();
        let c = Clock::at(before, &berlin);
        assert_eq!((c.hour, c.minute, c.utc_offset_seconds), (1, 59, 3600));
        let c = Clock::at(after, &berlin);
        assert_eq!((c.hour, c.minute, c.utc_offset_seconds), (3, 0, 7200));
        assert_eq!(c.weekday, Weekday::Sunday);
        assert_eq!(c.time_zone, "Europe/Berlin");
        assert_eq!((c.year, c.month, c.day), (2026, 3, 29));
    }

    #[test]
    fn params_keep_the_order_they_were_written_in() {
        let json = r#"{"pool":"p","queue":{"waiting":1,"running":0},
            "capacity":{"desired":0,"min":0,"max":5},
            "clock":{"unix_seconds":0,"year":1970,"month":1,"day":1,"hour":0,"minute":0,
                     "weekday":"thursday","utc_offset_seconds":0,"time_zone":"UTC"},
            "params":{"zeta":"1","alpha":"2"}}"#;
        let o: Observation = serde_json::from_str(json).unwrap();
        assert_eq!(
            o.params,
            vec![("zeta".into(), "1".into()), ("alpha".into(), "2".into())]
        );
    }
}
