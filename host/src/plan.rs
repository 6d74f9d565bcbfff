//! From a policy's decision to the writes a group gets: clamp to the pool's
//! bounds, apply the safety rules, and write only what changed. Pure
//! functions over plain structs, so every rule is a row in a table test.

use crate::groups::{GroupState, Write};
use crate::observation::Decision;

/// The pool's side of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
    /// Lower desired capacity even when the group's new instances are not
    /// protected from scale-in (which lets EC2 terminate an instance that
    /// runs a job).
    pub allow_unprotected_scale_in: bool,
}

/// What to do with a group, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The desired capacity after clamping and the safety rules.
    pub desired: u32,
    /// The writes to make, in order; empty when nothing changed.
    pub writes: Vec<Write>,
    /// Why `desired` differs from the policy's answer, if it does.
    pub adjusted: Option<String>,
}

/// Plan the writes for `decision` on a group now in `group`.
pub fn plan(decision: &Decision, group: &GroupState, bounds: Bounds) -> Plan {
    let mut desired = decision.desired.clamp(bounds.min, bounds.max);
    let mut adjusted = (desired != decision.desired).then(|| {
        format!(
            "clamped {} to the pool's bounds [{}, {}]",
            decision.desired, bounds.min, bounds.max
        )
    });
    if desired < group.desired
        && !group.new_instances_protected
        && !bounds.allow_unprotected_scale_in
    {
        adjusted = Some(format!(
            "kept {} instead of scaling in to {desired}: the group does not protect new instances from \
             scale-in, so EC2 could terminate one that runs a job; enable \"new instances protected from \
             scale-in\" on the group, or set allow_unprotected_scale_in = true for the pool",
            group.desired
        ));
        desired = group.desired;
    }

    let mut writes = Vec::new();
    if desired != group.desired {
        // EC2 refuses a desired capacity outside the group's own bounds: widen
        // them to the pool's in the same call.
        if desired < group.min || desired > group.max {
            writes.push(Write::DesiredAndBounds {
                desired,
                min: group.min.min(bounds.min),
                max: group.max.max(bounds.max),
            });
        } else {
            writes.push(Write::Desired(desired));
        }
    }
    if decision.state != group.policy_state {
        writes.push(Write::State(decision.state.clone()));
    }
    Plan {
        desired,
        writes,
        adjusted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(desired: u32, min: u32, max: u32, protected: bool) -> GroupState {
        GroupState {
            desired,
            min,
            max,
            new_instances_protected: protected,
            ..GroupState::default()
        }
    }

    fn decision(desired: u32) -> Decision {
        Decision {
            desired,
            reason: String::new(),
            state: None,
        }
    }

    const POOL: Bounds = Bounds {
        min: 0,
        max: 10,
        allow_unprotected_scale_in: false,
    };

    #[test]
    fn plans() {
        // (name, policy's desired, group, bounds, expected desired, expected writes, adjusted)
        type Case = (&'static str, u32, GroupState, Bounds, u32, Vec<Write>, bool);
        let cases: Vec<Case> = vec![
            (
                "unchanged writes nothing",
                3,
                group(3, 0, 10, true),
                POOL,
                3,
                vec![],
                false,
            ),
            (
                "scale out",
                5,
                group(3, 0, 10, true),
                POOL,
                5,
                vec![Write::Desired(5)],
                false,
            ),
            (
                "protected scale in",
                1,
                group(3, 0, 10, true),
                POOL,
                1,
                vec![Write::Desired(1)],
                false,
            ),
            (
                "clamped to max",
                50,
                group(3, 0, 10, true),
                POOL,
                10,
                vec![Write::Desired(10)],
                true,
            ),
            (
                "clamped to min",
                0,
                group(3, 0, 10, true),
                Bounds { min: 2, ..POOL },
                2,
                vec![Write::Desired(2)],
                true,
            ),
            (
                "unprotected scale in is refused",
                1,
                group(3, 0, 10, false),
                POOL,
                3,
                vec![],
                true,
            ),
            (
                "unprotected scale in when allowed",
                1,
                group(3, 0, 10, false),
                Bounds {
                    allow_unprotected_scale_in: true,
                    ..POOL
                },
                1,
                vec![Write::Desired(1)],
                false,
            ),
            (
                "unprotected scale out is fine",
                5,
                group(3, 0, 10, false),
                POOL,
                5,
                vec![Write::Desired(5)],
                false,
            ),
            (
                "group max below the pool's widens the group",
                6,
                group(0, 0, 0, true),
                POOL,
                6,
                vec![Write::DesiredAndBounds {
                    desired: 6,
                    min: 0,
                    max: 10,
                }],
                false,
            ),
            (
                "group min above the pool's widens the group",
                1,
                group(4, 4, 10, true),
                POOL,
                1,
                vec![Write::DesiredAndBounds {
                    desired: 1,
                    min: 0,
                    max: 10,
                }],
                false,
            ),
        ];
        for (name, wanted, group, bounds, desired, writes, adjusted) in cases {
            let plan = plan(&decision(wanted), &group, bounds);
            assert_eq!(plan.desired, desired, "{name}");
            assert_eq!(plan.writes, writes, "{name}");
            assert_eq!(
                plan.adjusted.is_some(),
                adjusted,
                "{name}: {:?}",
                plan.adjusted
            );
        }
    }

    #[test]
    fn state_is_written_only_when_it_changes() {
        let mut g = group(3, 0, 10, true);
        g.policy_state = Some("empty_since=100".into());
        let mut d = decision(3);
        d.state = Some("empty_since=100".into());
        assert_eq!(plan(&d, &g, POOL).writes, vec![]);
        d.state = Some("empty_since=200".into());
        assert_eq!(
            plan(&d, &g, POOL).writes,
            vec![Write::State(Some("empty_since=200".into()))]
        );
        d.state = None;
        assert_eq!(plan(&d, &g, POOL).writes, vec![Write::State(None)]);
    }

    #[test]
    fn the_refusal_says_how_to_enable_protection() {
        let plan = plan(&decision(0), &group(2, 0, 10, false), POOL);
        let why = plan.adjusted.unwrap();
        assert!(
            why.contains("protected from scale-in") && why.contains("allow_unprotected_scale_in"),
            "{why}"
        );
    }
}
