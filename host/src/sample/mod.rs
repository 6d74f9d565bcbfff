//! Sample observations: an [`Observation`] written by hand, where anything not
//! given takes a documented default. `policy eval` reads one from a file and
//! every case of a case file is one (see `docs/writing-a-policy.md`).
//!
//! The defaults:
//!
//! | field | default |
//! | --- | --- |
//! | `pool` | `"sample"` |
//! | `queue` | `{ waiting = 0, running = 0 }`, `blocked` none |
//! | `capacity` | `{ desired = 0, min = 0, max = 10 }` (`max` is `desired` when that is larger), `in_service` = `desired`, `pending`, `terminating`, `protected` = 0, no `warm_pool` (`warm_pool = { size = 2 }` gives one: `max` is the capacity's `max`, `instances` = `size`) |
//! | `at` | `"2026-11-23T09:00:00"` (a Monday), local time in `time_zone` |
//! | `time_zone` | `"UTC"` |
//! | `params` | `{}` |
//! | `state` | none |
//!
//! `clock` may be given whole instead of `at` and `time_zone`, so the full
//! observation (as JSON) is a sample observation too.

pub(crate) mod error;
mod file;

pub use error::InputError;
pub(crate) use file::{field, parse_toml, read, resolve};
pub use file::{load_observation, Fields};

use crate::observation::{Capacity, Clock, Observation, Queue, WarmPool};
use serde::Deserialize;

/// The default pool name.
pub const DEFAULT_POOL: &str = "sample";
/// The default local time of the tick: a Monday morning.
pub const DEFAULT_AT: &str = "2026-11-23T09:00:00";
/// The default time zone.
pub const DEFAULT_TIME_ZONE: &str = "UTC";
/// The default `capacity.max`.
pub const DEFAULT_MAX: u32 = 10;

/// The top-level fields of a sample observation.
pub const FIELDS: &[&str] = &[
    "pool",
    "queue",
    "capacity",
    "at",
    "time_zone",
    "clock",
    "params",
    "state",
];

/// An observation with every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleObservation {
    pub pool: Option<String>,
    pub queue: Option<SampleQueue>,
    pub capacity: Option<SampleCapacity>,
    /// The tick's time: local time in `time_zone` (`2026-11-23T09:00:00`), or
    /// an instant with an offset (`2026-11-23T08:00:00Z`).
    pub at: Option<String>,
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    pub time_zone: Option<String>,
    /// The whole clock, instead of `at` and `time_zone`.
    pub clock: Option<Clock>,
    /// Params, in the order written. Numbers and booleans are taken as their text.
    #[serde(default, deserialize_with = "crate::params::written")]
    pub params: Vec<(String, String)>,
    /// The state the policy kept on the previous tick.
    pub state: Option<String>,
}

/// [`Queue`] with every field optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleQueue {
    pub waiting: Option<u32>,
    pub running: Option<u32>,
    pub blocked: Option<u32>,
}

/// [`Capacity`] with every field optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleCapacity {
    pub desired: Option<u32>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub pending: Option<u32>,
    pub in_service: Option<u32>,
    pub terminating: Option<u32>,
    pub protected: Option<u32>,
    pub warm_pool: Option<SampleWarmPool>,
}

/// [`WarmPool`] with every field but its size optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleWarmPool {
    pub size: u32,
    pub instances: Option<u32>,
    pub max: Option<u32>,
}

/// A sample observation that cannot be made into an observation, because of
/// one of its top-level fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct FieldError {
    /// The top-level field at fault (`at`, `time_zone`, `capacity`...).
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

impl SampleObservation {
    /// `self` with the fields given in `over` replacing its own. `queue` and
    /// `capacity` merge field by field, `params` name by name (a new name is
    /// added at the end).
    pub fn merge(mut self, over: SampleObservation) -> SampleObservation {
        if over.pool.is_some() {
            self.pool = over.pool;
        }
        self.queue = merge_option(self.queue, over.queue, |base, over| SampleQueue {
            waiting: over.waiting.or(base.waiting),
            running: over.running.or(base.running),
            blocked: over.blocked.or(base.blocked),
        });
        self.capacity = merge_option(self.capacity, over.capacity, |base, over| SampleCapacity {
            desired: over.desired.or(base.desired),
            min: over.min.or(base.min),
            max: over.max.or(base.max),
            pending: over.pending.or(base.pending),
            in_service: over.in_service.or(base.in_service),
            terminating: over.terminating.or(base.terminating),
            protected: over.protected.or(base.protected),
            warm_pool: over.warm_pool.or(base.warm_pool),
        });
        if over.at.is_some() {
            self.at = over.at;
        }
        if over.time_zone.is_some() {
            self.time_zone = over.time_zone;
        }
        if over.clock.is_some() {
            self.clock = over.clock;
        }
        for (name, value) in over.params {
            match self.params.iter_mut().find(|(n, _)| *n == name) {
                Some(pair) => pair.1 = value,
                None => self.params.push((name, value)),
            }
        }
        if over.state.is_some() {
            self.state = over.state;
        }
        self
    }

    /// The observation, with the defaults filled in.
    pub fn resolve(&self) -> Result<Observation, FieldError> {
        let queue = self.queue.unwrap_or_default();
        let queue = Queue {
            waiting: queue.waiting.unwrap_or(0),
            running: queue.running.unwrap_or(0),
            blocked: queue.blocked,
        };
        let capacity = self.capacity()?;
        let clock = self.clock()?;
        Ok(Observation {
            pool: self.pool.clone().unwrap_or_else(|| DEFAULT_POOL.into()),
            queue,
            capacity,
            clock,
            params: self.params.clone(),
            state: self.state.clone(),
        })
    }

    fn capacity(&self) -> Result<Capacity, FieldError> {
        let given = self.capacity.unwrap_or_default();
        let desired = given.desired.unwrap_or(0);
        let max = given.max.unwrap_or(DEFAULT_MAX.max(desired));
        let capacity = Capacity {
            desired,
            min: given.min.unwrap_or(0),
            max,
            pending: given.pending.unwrap_or(0),
            in_service: given.in_service.unwrap_or(desired),
            terminating: given.terminating.unwrap_or(0),
            protected: given.protected.unwrap_or(0),
            warm_pool: given.warm_pool.map(|pool| WarmPool {
                instances: Some(pool.instances.unwrap_or(pool.size)),
                size: pool.size,
                max: pool.max.unwrap_or(max),
            }),
        };
        if capacity.min > capacity.max {
            return Err(FieldError::new(
                "capacity",
                format!(
                    "min {} is above max {}: give a min at or below max",
                    capacity.min, capacity.max
                ),
            ));
        }
        Ok(capacity)
    }

    fn clock(&self) -> Result<Clock, FieldError> {
        if let Some(clock) = &self.clock {
            if self.at.is_some() || self.time_zone.is_some() {
                let field = if self.at.is_some() { "at" } else { "time_zone" };
                return Err(FieldError::new(
                    field,
                    "given together with `clock`: give either `clock` (all of it) or `at` and `time_zone`",
                ));
            }
            return Ok(clock.clone());
        }
        let name = self.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE);
        let tz = crate::time_zone::named(name).map_err(|_| {
            FieldError::new(
                "time_zone",
                format!("{name:?} is not a time zone: give an IANA name such as \"Europe/Berlin\" or \"UTC\""),
            )
        })?;
        let at = self.at.as_deref().unwrap_or(DEFAULT_AT);
        Ok(Clock::at(instant(at, &tz, name)?, &tz))
    }
}

/// The instant `at` names: an instant with an offset as it is, a local time
/// in `tz` if it exists there exactly once.
fn instant(
    at: &str,
    tz: &jiff::tz::TimeZone,
    tz_name: &str,
) -> Result<jiff::Timestamp, FieldError> {
    if let Ok(instant) = at.parse::<jiff::Timestamp>() {
        return Ok(instant);
    }
    let local: jiff::civil::DateTime = at.parse().map_err(|_| {
        FieldError::new(
            "at",
            format!(
                "{at:?} is not a time: write a local time like \"2026-11-23T09:00:00\" \
                 or an instant like \"2026-11-23T08:00:00Z\""
            ),
        )
    })?;
    tz.to_ambiguous_timestamp(local).unambiguous().map_err(|_| {
        FieldError::new(
            "at",
            format!(
                "{at:?} does not exist or exists twice in {tz_name} (a daylight-saving change): \
                 give the instant with its offset or in UTC, e.g. \"2026-03-29T01:30:00Z\""
            ),
        )
    })
}

fn merge_option<T: Copy>(base: Option<T>, over: Option<T>, merge: impl Fn(T, T) -> T) -> Option<T> {
    match (base, over) {
        (Some(base), Some(over)) => Some(merge(base, over)),
        (base, over) => over.or(base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::Weekday;

    fn sample(toml: &str) -> SampleObservation {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn an_empty_sample_takes_every_default() {
        let o = SampleObservation::default().resolve().unwrap();
        assert_eq!(o.pool, "sample");
        assert_eq!(o.queue, Queue::default());
        assert_eq!(
            (o.capacity.desired, o.capacity.min, o.capacity.max),
            (0, 0, 10)
        );
        assert_eq!(
            (o.clock.hour, o.clock.minute, o.clock.weekday),
            (9, 0, Weekday::Monday)
        );
        assert_eq!(o.clock.time_zone, "UTC");
        assert_eq!((o.params, o.state), (vec![], None));
    }

    #[test]
    fn instance_counts_follow_desired() {
        let o = sample("capacity = { desired = 3 }").resolve().unwrap();
        assert_eq!((o.capacity.in_service, o.capacity.pending), (3, 0));
        let o = sample("capacity = { desired = 30 }").resolve().unwrap();
        assert_eq!(
            o.capacity.max, 30,
            "max follows a desired above the default max"
        );
    }

    #[test]
    fn local_time_is_read_in_the_time_zone() {
        let o = sample("at = \"2026-03-29T03:00:00\"\ntime_zone = \"Europe/Berlin\"")
            .resolve()
            .unwrap();
        assert_eq!(o.clock.utc_offset_seconds, 7200);
        assert_eq!(o.clock.unix_seconds, 1_774_746_000); // 01:00 UTC
        let o = sample("at = \"2026-03-29T00:59:00Z\"\ntime_zone = \"Europe/Berlin\"")
            .resolve()
            .unwrap();
        assert_eq!(
            (o.clock.hour, o.clock.minute, o.clock.utc_offset_seconds),
            (1, 59, 3600)
        );
    }

    #[test]
    fn a_local_time_skipped_by_daylight_saving_is_refused() {
        let err = sample("at = \"2026-03-29T02:30:00\"\ntime_zone = \"Europe/Berlin\"")
            .resolve()
            .unwrap_err();
        assert_eq!(err.field, "at");
        assert!(err.message.contains("daylight-saving"), "{err}");
    }

    #[test]
    fn bad_fields_are_named() {
        let err = sample("time_zone = \"Mars/Olympus\"")
            .resolve()
            .unwrap_err();
        assert_eq!(err.field, "time_zone");
        let err = sample("at = \"monday\"").resolve().unwrap_err();
        assert_eq!(err.field, "at");
        let err = sample("capacity = { min = 5, max = 2 }")
            .resolve()
            .unwrap_err();
        assert_eq!(err.field, "capacity");
    }

    #[test]
    fn merge_overrides_field_by_field_and_keeps_param_order() {
        let base = sample("queue = { waiting = 1, running = 2 }\nparams = { b = \"1\", a = 2 }");
        let over = sample("queue = { running = 5 }\nparams = { a = \"3\", c = true }");
        let o = base.merge(over).resolve().unwrap();
        assert_eq!(
            o.queue,
            Queue {
                waiting: 1,
                running: 5,
                blocked: None,
            }
        );
        let names: Vec<_> = o.params.iter().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(names, ["b=1", "a=3", "c=true"]);
    }
}
