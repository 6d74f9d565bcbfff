//! The built-in rules: usable as a pool's policy, and as the fallback when a
//! pool's WebAssembly policy fails.

use crate::observation::{Decision, Observation};
use serde::{Deserialize, Serialize};

/// A rule compiled into the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuiltinRule {
    /// Keep the current desired capacity: change nothing.
    Hold,
    /// The original tool's rule: one instance per waiting or running job,
    /// at most `max`.
    Queue,
}

impl BuiltinRule {
    /// Every rule, by name.
    pub const ALL: [BuiltinRule; 2] = [BuiltinRule::Hold, BuiltinRule::Queue];

    pub fn name(self) -> &'static str {
        match self {
            BuiltinRule::Hold => "hold",
            BuiltinRule::Queue => "queue",
        }
    }

    /// The rule named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<BuiltinRule> {
        BuiltinRule::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Decide. A built-in rule keeps the policy's state untouched, so a pool
    /// that falls back for a tick loses nothing its policy remembered.
    pub fn decide(self, observation: &Observation) -> Decision {
        let capacity = &observation.capacity;
        let (desired, reason) = match self {
            BuiltinRule::Hold => (
                capacity.desired,
                format!("hold: keep desired at {}", capacity.desired),
            ),
            BuiltinRule::Queue => {
                let queue = &observation.queue;
                (
                    queue.jobs().min(capacity.max),
                    format!(
                        "queue: {} waiting + {} running, at most {}",
                        queue.waiting, queue.running, capacity.max
                    ),
                )
            }
        };
        Decision {
            desired,
            reason,
            state: observation.state.clone(),
            warm: None,
        }
    }
}

impl std::fmt::Display for BuiltinRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::observation::{Capacity, Clock, Queue, Weekday};

    pub(crate) fn observation(waiting: u32, running: u32, desired: u32, max: u32) -> Observation {
        Observation {
            pool: "test".into(),
            queue: Queue {
                waiting,
                running,
                blocked: None,
            },
            capacity: Capacity {
                desired,
                max,
                ..Capacity::default()
            },
            clock: Clock {
                unix_seconds: 1_795_000_000,
                year: 2026,
                month: 11,
                day: 16,
                hour: 9,
                minute: 0,
                weekday: Weekday::Monday,
                utc_offset_seconds: 0,
                time_zone: "UTC".into(),
            },
            params: vec![],
            state: Some("kept".into()),
        }
    }

    #[test]
    fn built_in_rules() {
        // (name, rule, waiting, running, desired now, max, expected desired)
        let cases = [
            (
                "queue counts waiting and running",
                BuiltinRule::Queue,
                2,
                3,
                0,
                10,
                5,
            ),
            ("queue stops at max", BuiltinRule::Queue, 8, 4, 0, 10, 10),
            (
                "queue scales to zero on an empty queue",
                BuiltinRule::Queue,
                0,
                0,
                4,
                10,
                0,
            ),
            (
                "queue saturates instead of overflowing",
                BuiltinRule::Queue,
                u32::MAX,
                1,
                0,
                7,
                7,
            ),
            ("hold keeps desired", BuiltinRule::Hold, 9, 9, 3, 10, 3),
            (
                "hold keeps desired on an empty queue",
                BuiltinRule::Hold,
                0,
                0,
                3,
                10,
                3,
            ),
        ];
        for (name, rule, waiting, running, desired, max, expected) in cases {
            let d = rule.decide(&observation(waiting, running, desired, max));
            assert_eq!(d.desired, expected, "{name}");
            assert_eq!(d.state.as_deref(), Some("kept"), "{name}: state is kept");
        }
    }

    #[test]
    fn names_round_trip() {
        for rule in BuiltinRule::ALL {
            assert_eq!(BuiltinRule::from_name(rule.name()), Some(rule));
        }
        assert_eq!(BuiltinRule::from_name("queue-depth"), None);
    }
}
