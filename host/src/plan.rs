//! From a policy's decision to the writes a group gets: clamp to the pool's
//! bounds, apply the safety rules, and write only what changed. Pure
//! functions over plain structs, so every rule is a row in a table test.

pub use crate::bounds::Bounds;
use crate::groups::{GroupState, WarmPoolState, Write};
use crate::observation::Decision;

/// What to do with a group, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The desired capacity after clamping and the safety rules.
    pub desired: u32,
    /// The writes to make, in order; empty when nothing changed.
    pub writes: Vec<Write>,
    /// Why `desired` differs from the policy's answer, if it does.
    pub adjusted: Option<String>,
    /// How the group's own bounds are widened to hold `desired`, if they
    /// are (`MinSize`/`MaxSize` before → after).
    pub widened: Option<String>,
    /// The size the group's warm pool keeps after the writes, when the
    /// policy asked for one and the group has a warm pool.
    pub warm: Option<u32>,
    /// Why the warm pool is not what the policy asked, if it is not
    /// (clamped, or there is no pool to size).
    pub warm_adjusted: Option<String>,
}

impl Plan {
    /// Everything the decision record's `why` says about this plan: the
    /// adjustment, the widening, then the warm pool's adjustment.
    pub fn why(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.adjusted, &self.widened, &self.warm_adjusted]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
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
    if let Some(limit) = scale_in_limit(group, bounds) {
        if desired < group.desired && desired < limit.floor {
            let kept = limit.floor.min(group.desired);
            adjusted = Some(format!(
                "kept {kept} instead of scaling in to {desired}: {}",
                limit.advice()
            ));
            desired = kept;
        }
    }

    let mut writes = Vec::new();
    let mut widened = None;
    if desired != group.desired {
        // EC2 refuses a desired capacity outside the group's own bounds: widen
        // them to the pool's in the same call.
        if desired < group.min_size || desired > group.max_size {
            let (min, max) = (
                group.min_size.min(bounds.min),
                group.max_size.max(bounds.max),
            );
            widened = Some(widening(group, min, max, desired));
            writes.push(Write::DesiredAndBounds { desired, min, max });
        } else {
            writes.push(Write::Desired(desired));
        }
    }
    let (warm, warm_adjusted) = match decision.warm {
        None => (None, None),
        Some(wanted) => plan_warm(wanted, group.warm_pool.as_ref(), bounds.warm_max),
    };
    if let (Some(size), Some(pool)) = (warm, &group.warm_pool) {
        // The pool holds exactly `size` only when both settings say so.
        if pool.min_size != size || pool.max_prepared != Some(size) {
            writes.push(Write::WarmPool {
                size,
                pool_state: pool.pool_state.clone(),
                reuse_on_scale_in: pool.reuse_on_scale_in,
            });
        }
    }
    if decision.state != group.policy_state {
        writes.push(Write::State(decision.state.clone()));
    }
    Plan {
        desired,
        writes,
        adjusted,
        widened,
        warm,
        warm_adjusted,
    }
}

/// The warm pool size for a policy that wants `wanted`: within
/// `[0, warm_max]`, and only for a group with a warm pool that is not being
/// deleted. A warm pool holds no job (its instances start their runner only
/// once in service), so sizing it, up or down, risks none.
fn plan_warm(
    wanted: u32,
    pool: Option<&WarmPoolState>,
    warm_max: u32,
) -> (Option<u32>, Option<String>) {
    match pool {
        None => (
            None,
            Some(format!(
                "the policy asked for a warm pool of {wanted}, but the group has none; add one \
                 (the stack's WarmPoolSize) to let the policy size it"
            )),
        ),
        Some(pool) if pool.deleting => (
            None,
            Some(format!(
                "the policy asked for a warm pool of {wanted}, but the group's is being deleted"
            )),
        ),
        Some(_) if wanted > warm_max => (
            Some(warm_max),
            Some(format!(
                "warm pool clamped {wanted} to the pool's warm_max {warm_max}"
            )),
        ),
        Some(_) => (Some(wanted), None),
    }
}

/// What a widening of the group's bounds changes, e.g. `widened the group's
/// MaxSize 0 → 5 to hold desired 5`.
fn widening(group: &GroupState, min: u32, max: u32, desired: u32) -> String {
    let mut changes = Vec::new();
    if min != group.min_size {
        changes.push(format!("MinSize {} → {min}", group.min_size));
    }
    if max != group.max_size {
        changes.push(format!("MaxSize {} → {max}", group.max_size));
    }
    format!(
        "widened the group's {} to hold desired {desired}",
        changes.join(" and ")
    )
}

/// Rule 3 of the design, the one place it is written: never lower desired
/// capacity so that Auto Scaling could terminate an instance that runs a job.
///
/// What AWS does when desired capacity drops below the instances that count
/// toward it (`Pending*` and `InService`): it terminates the difference,
/// chosen by the group's termination policy among the instances that are
/// *not* protected from scale-in; protected instances stay, and the group
/// simply runs above its desired capacity until they leave on their own
/// ("Use instance scale-in protection" and "Configure termination policies",
/// EC2 Auto Scaling User Guide:
/// <https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-instance-protection.html>,
/// <https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-termination-policies.html>).
/// Protection is per instance: an instance launched before the group's
/// "protect new instances" flag was switched on stays unprotected.
///
/// The host cannot tell which instance runs a job, only count instances by
/// state and protection. So:
/// - With no unprotected instance, any desired capacity is safe: scale-in
///   terminates nothing that could run a job.
/// - With one or more, the only safe lower desired capacity is one that
///   terminates nothing: the count of instances (`pending + in_service`),
///   or the current desired capacity if that is lower already. Lowering
///   "only by as many as there are unprotected instances not in service"
///   would not do: the termination policy (zone balance, oldest launch
///   template, closest to the billing hour, then at random) does not prefer
///   pending instances, so it may pick an in-service one instead. And a
///   pending instance is not proof of idleness either: in a launch lifecycle
///   hook (`Pending:Wait`) its user data, and so a runner, may already run.
///   Holding costs only the instances the policy wanted gone, which leave on
///   their own (idle timeout) anyway.
///
/// `None` when nothing limits scale-in: the pool allows unprotected scale-in,
/// or every instance is protected and the group protects new ones. A group
/// that does not protect new instances gets a limit (with a floor of 0 while
/// it has no unprotected instance) so that its start-up warning comes from
/// here too.
pub fn scale_in_limit(group: &GroupState, bounds: Bounds) -> Option<ScaleInLimit> {
    if bounds.allow_unprotected_scale_in
        || (group.unprotected == 0 && group.new_instances_protected)
    {
        return None;
    }
    Some(ScaleInLimit {
        floor: if group.unprotected > 0 {
            group.pending + group.in_service
        } else {
            0
        },
        unprotected: group.unprotected,
        new_instances_unprotected: !group.new_instances_protected,
    })
}

/// How far a group may scale in without risking a job: see [`scale_in_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleInLimit {
    /// The least desired capacity that terminates no unprotected instance.
    pub floor: u32,
    /// Instances launching or in service that are not protected.
    pub unprotected: u32,
    /// The group launches new instances unprotected.
    pub new_instances_unprotected: bool,
}

impl ScaleInLimit {
    /// Why scale-in is limited, and the fix.
    pub fn advice(&self) -> String {
        let what = match (self.unprotected, self.new_instances_unprotected) {
            (0, _) => "the group does not protect new instances from scale-in".to_string(),
            (1, false) => "1 instance is not protected from scale-in".to_string(),
            (n, false) => format!("{n} instances are not protected from scale-in"),
            (1, true) => "1 instance is not protected from scale-in, nor are the group's new ones"
                .to_string(),
            (n, true) => format!(
                "{n} instances are not protected from scale-in, nor are the group's new ones"
            ),
        };
        format!(
            "{what}, and Auto Scaling could terminate one that runs a job; protect them \
             (aws autoscaling set-instance-protection --protected-from-scale-in) and enable \
             \"new instances protected from scale-in\" on the group, or set \
             allow_unprotected_scale_in = true for the pool"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A group at `desired` with as many instances in service, every one
    /// protected, and new instances protected.
    fn group(desired: u32, min: u32, max: u32) -> GroupState {
        GroupState {
            desired,
            min_size: min,
            max_size: max,
            in_service: desired,
            protected: desired,
            new_instances_protected: true,
            ..GroupState::default()
        }
    }

    /// `group` with `pending` of its instances launching and `unprotected`
    /// of them not protected, and the group's flag for new instances.
    fn mixed(mut g: GroupState, pending: u32, unprotected: u32, flag: bool) -> GroupState {
        g.pending = pending;
        g.in_service -= pending;
        g.protected -= unprotected;
        g.unprotected = unprotected;
        g.new_instances_protected = flag;
        g
    }

    fn decision(desired: u32) -> Decision {
        Decision {
            desired,
            reason: String::new(),
            state: None,
            warm: None,
        }
    }

    const POOL: Bounds = Bounds {
        min: 0,
        max: 10,
        allow_unprotected_scale_in: false,
        warm_max: 6,
    };
    const ALLOWED: Bounds = Bounds {
        allow_unprotected_scale_in: true,
        ..POOL
    };

    #[test]
    fn plans() {
        struct Case {
            name: &'static str,
            /// The policy's desired capacity.
            wanted: u32,
            group: GroupState,
            bounds: Bounds,
            /// The plan's desired capacity and writes.
            desired: u32,
            writes: Vec<Write>,
            /// Whether the plan says why it differs from the policy.
            adjusted: bool,
        }
        let cases = [
            Case {
                name: "unchanged writes nothing",
                wanted: 3,
                group: group(3, 0, 10),
                bounds: POOL,
                desired: 3,
                writes: vec![],
                adjusted: false,
            },
            Case {
                name: "scale out",
                wanted: 5,
                group: group(3, 0, 10),
                bounds: POOL,
                desired: 5,
                writes: vec![Write::Desired(5)],
                adjusted: false,
            },
            Case {
                name: "protected scale in",
                wanted: 1,
                group: group(3, 0, 10),
                bounds: POOL,
                desired: 1,
                writes: vec![Write::Desired(1)],
                adjusted: false,
            },
            Case {
                name: "clamped to max",
                wanted: 50,
                group: group(3, 0, 10),
                bounds: POOL,
                desired: 10,
                writes: vec![Write::Desired(10)],
                adjusted: true,
            },
            Case {
                name: "clamped to min",
                wanted: 0,
                group: group(3, 0, 10),
                bounds: Bounds { min: 2, ..POOL },
                desired: 2,
                writes: vec![Write::Desired(2)],
                adjusted: true,
            },
            Case {
                name: "unprotected scale in is refused",
                wanted: 1,
                group: mixed(group(3, 0, 10), 0, 3, false),
                bounds: POOL,
                desired: 3,
                writes: vec![],
                adjusted: true,
            },
            Case {
                name: "unprotected scale in when allowed",
                wanted: 1,
                group: mixed(group(3, 0, 10), 0, 3, false),
                bounds: ALLOWED,
                desired: 1,
                writes: vec![Write::Desired(1)],
                adjusted: false,
            },
            Case {
                name: "unprotected scale out is fine",
                wanted: 5,
                group: mixed(group(3, 0, 10), 0, 3, false),
                bounds: POOL,
                desired: 5,
                writes: vec![Write::Desired(5)],
                adjusted: false,
            },
            Case {
                name: "mixed: one unprotected instance among protected ones holds scale-in, though the flag is on",
                wanted: 0,
                group: mixed(group(4, 0, 10), 0, 1, true),
                bounds: POOL,
                desired: 4,
                writes: vec![],
                adjusted: true,
            },
            Case {
                name: "mixed: allowed, it scales in",
                wanted: 0,
                group: mixed(group(4, 0, 10), 0, 1, true),
                bounds: ALLOWED,
                desired: 0,
                writes: vec![Write::Desired(0)],
                adjusted: false,
            },
            Case {
                name: "mixed: an unprotected pending instance holds scale-in too (a lifecycle hook may run its runner)",
                wanted: 1,
                group: mixed(group(3, 0, 10), 1, 1, true),
                bounds: POOL,
                desired: 3,
                writes: vec![],
                adjusted: true,
            },
            Case {
                name: "mixed: lowering desired to the instance count terminates nothing, so it is done",
                wanted: 1,
                // desired 6, but only 4 instances so far, one unprotected.
                group: GroupState {
                    desired: 6,
                    ..mixed(group(4, 0, 10), 0, 1, true)
                },
                bounds: POOL,
                desired: 4,
                writes: vec![Write::Desired(4)],
                adjusted: true,
            },
            Case {
                name: "mixed: a policy answer at or above the instance count is not adjusted",
                wanted: 5,
                group: GroupState {
                    desired: 6,
                    ..mixed(group(4, 0, 10), 0, 1, true)
                },
                bounds: POOL,
                desired: 5,
                writes: vec![Write::Desired(5)],
                adjusted: false,
            },
            Case {
                name: "mixed: desired already below the instance count is kept, not raised",
                wanted: 0,
                group: GroupState {
                    desired: 2,
                    ..mixed(group(4, 0, 10), 0, 1, true)
                },
                bounds: POOL,
                desired: 2,
                writes: vec![],
                adjusted: true,
            },
            Case {
                name: "mixed: every instance protected by hand in a group whose flag is off scales in",
                wanted: 0,
                group: mixed(group(3, 0, 10), 0, 0, false),
                bounds: POOL,
                desired: 0,
                writes: vec![Write::Desired(0)],
                adjusted: false,
            },
            Case {
                name: "no instances, flag off: nothing to terminate, so it scales in",
                wanted: 0,
                group: GroupState {
                    desired: 2,
                    ..mixed(group(0, 0, 10), 0, 0, false)
                },
                bounds: POOL,
                desired: 0,
                writes: vec![Write::Desired(0)],
                adjusted: false,
            },
            Case {
                name: "the hold wins over the pool's max: jobs before bounds",
                wanted: 8,
                group: mixed(group(12, 0, 20), 0, 2, true),
                bounds: POOL,
                desired: 12,
                writes: vec![],
                adjusted: true,
            },
            Case {
                name: "group max below the pool's widens the group",
                wanted: 6,
                group: group(0, 0, 0),
                bounds: POOL,
                desired: 6,
                writes: vec![Write::DesiredAndBounds {
                    desired: 6,
                    min: 0,
                    max: 10,
                }],
                adjusted: false,
            },
            Case {
                name: "group min above the pool's widens the group",
                wanted: 1,
                group: group(4, 4, 10),
                bounds: POOL,
                desired: 1,
                writes: vec![Write::DesiredAndBounds {
                    desired: 1,
                    min: 0,
                    max: 10,
                }],
                adjusted: false,
            },
        ];
        for case in cases {
            let plan = plan(&decision(case.wanted), &case.group, case.bounds);
            let name = case.name;
            assert_eq!(plan.desired, case.desired, "{name}");
            assert_eq!(plan.writes, case.writes, "{name}");
            assert_eq!(
                plan.adjusted.is_some(),
                case.adjusted,
                "{name}: {:?}",
                plan.adjusted
            );
        }
    }

    /// A warm pool that keeps `size` (its `MinSize` and
    /// `MaxGroupPreparedCapacity` equal), stopped.
    fn warm(size: u32) -> WarmPoolState {
        WarmPoolState {
            instances: Some(size),
            min_size: size,
            max_prepared: Some(size),
            pool_state: Some("Hibernated".into()),
            reuse_on_scale_in: Some(false),
            deleting: false,
        }
    }

    #[test]
    fn the_warm_pool_is_sized_within_warm_max_only_when_it_differs() {
        let with_pool = |pool: Option<WarmPoolState>| GroupState {
            warm_pool: pool,
            ..group(3, 0, 10)
        };
        let put = |size: u32| Write::WarmPool {
            size,
            // Kept as the group has them: a PutWarmPool without them would
            // reset a hibernated pool to stopped.
            pool_state: Some("Hibernated".into()),
            reuse_on_scale_in: Some(false),
        };
        // (name, the policy's warm, the group's pool, writes, plan's warm, says why)
        let cases = [
            (
                "not asked: nothing",
                None,
                Some(warm(2)),
                vec![],
                None,
                false,
            ),
            (
                "asked, the same: nothing",
                Some(2),
                Some(warm(2)),
                vec![],
                Some(2),
                false,
            ),
            (
                "asked more",
                Some(4),
                Some(warm(2)),
                vec![put(4)],
                Some(4),
                false,
            ),
            (
                "asked none",
                Some(0),
                Some(warm(2)),
                vec![put(0)],
                Some(0),
                false,
            ),
            (
                "clamped to warm_max",
                Some(50),
                Some(warm(2)),
                vec![put(6)],
                Some(6),
                true,
            ),
            ("no pool: ignored, said", Some(3), None, vec![], None, true),
            (
                "a pool being deleted: ignored, said",
                Some(3),
                Some(WarmPoolState {
                    deleting: true,
                    ..warm(2)
                }),
                vec![],
                None,
                true,
            ),
            (
                "the same MinSize but a dynamic size: made fixed",
                Some(2),
                Some(WarmPoolState {
                    max_prepared: None,
                    ..warm(2)
                }),
                vec![put(2)],
                Some(2),
                false,
            ),
        ];
        for (name, wanted, pool, writes, size, says) in cases {
            let mut d = decision(3);
            d.warm = wanted;
            let p = plan(&d, &with_pool(pool), POOL);
            assert_eq!(p.writes, writes, "{name}");
            assert_eq!(p.warm, size, "{name}");
            assert_eq!(
                p.warm_adjusted.is_some(),
                says,
                "{name}: {:?}",
                p.warm_adjusted
            );
            assert_eq!(p.desired, 3, "{name}: the warm pool never moves desired");
        }
        // The warm write comes after the desired capacity's, before the state's.
        let mut d = decision(5);
        d.warm = Some(1);
        d.state = Some("s".into());
        assert_eq!(
            plan(&d, &with_pool(Some(warm(2))), POOL).writes,
            vec![Write::Desired(5), put(1), Write::State(Some("s".into()))]
        );
    }

    #[test]
    fn state_is_written_only_when_it_changes() {
        let mut g = group(3, 0, 10);
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
    fn a_widening_says_which_bound_moved_and_why_joins_it_to_the_adjustment() {
        let widened = plan(&decision(5), &group(0, 0, 0), POOL);
        assert_eq!(widened.adjusted, None);
        assert_eq!(
            widened.why().as_deref(),
            Some("widened the group's MaxSize 0 → 10 to hold desired 5")
        );
        let both = plan(&decision(0), &group(4, 4, 4), POOL);
        assert_eq!(
            both.widened.as_deref(),
            Some("widened the group's MinSize 4 → 0 and MaxSize 4 → 10 to hold desired 0")
        );
        let clamped = plan(&decision(15), &group(0, 0, 0), POOL);
        assert_eq!(
            clamped.why().as_deref(),
            Some(
                "clamped 15 to the pool's bounds [0, 10]; \
                 widened the group's MaxSize 0 → 10 to hold desired 10"
            )
        );
        assert_eq!(plan(&decision(3), &group(3, 0, 10), POOL).why(), None);
    }

    #[test]
    fn the_refusal_says_how_to_enable_protection() {
        let plan = plan(&decision(0), &mixed(group(2, 0, 10), 0, 2, false), POOL);
        let why = plan.adjusted.unwrap();
        assert!(
            why.starts_with("kept 2 instead of scaling in to 0: 2 instances are not protected")
                && why.contains("nor are the group's new ones")
                && why.contains("set-instance-protection")
                && why.contains("protected from scale-in")
                && why.contains("allow_unprotected_scale_in"),
            "{why}"
        );
    }

    #[test]
    fn the_limit_comes_from_the_instances_not_the_flag() {
        let limit = |g: &GroupState, b| scale_in_limit(g, b);
        assert_eq!(limit(&group(3, 0, 10), POOL), None);
        assert_eq!(limit(&mixed(group(3, 0, 10), 0, 1, true), ALLOWED), None);
        assert_eq!(
            limit(&mixed(group(3, 0, 10), 1, 1, true), POOL),
            Some(ScaleInLimit {
                floor: 3,
                unprotected: 1,
                new_instances_unprotected: false
            })
        );
        // Flag off, every instance protected: nothing to hold now, but a
        // limit (floor 0) for the start-up warning.
        let flag_off = limit(&mixed(group(3, 0, 10), 0, 0, false), POOL).unwrap();
        assert_eq!(flag_off.floor, 0);
        assert!(flag_off
            .advice()
            .starts_with("the group does not protect new instances from scale-in"));
    }

    /// Whatever the policy answers and whatever state AWS reports, the plan
    /// sends only requests AWS accepts (a desired capacity within the
    /// group's bounds, or new bounds around it), and never one that lets
    /// Auto Scaling terminate an unprotected instance unless allowed.
    #[test]
    fn every_write_is_one_aws_accepts_and_none_risks_a_job() {
        let mut rng = StdRng::seed_from_u64(13);
        for case in 0..20_000 {
            let group_min = rng.random_range(0..5);
            let group_max = rng.random_range(group_min..12);
            let instances = rng.random_range(0..=group_max + 2);
            let pending = rng.random_range(0..=instances);
            let unprotected = rng.random_range(0..=instances);
            let g = GroupState {
                // AWS keeps desired within the group's bounds.
                desired: rng.random_range(group_min..=group_max),
                min_size: group_min,
                max_size: group_max,
                pending,
                in_service: instances - pending,
                protected: instances - unprotected,
                unprotected,
                new_instances_protected: rng.random_bool(0.5),
                ..GroupState::default()
            };
            let pool_min = rng.random_range(0..6);
            let bounds = Bounds {
                min: pool_min,
                max: rng.random_range(pool_min.max(1)..15),
                allow_unprotected_scale_in: rng.random_bool(0.2),
                warm_max: rng.random_range(0..10),
            };
            let g = GroupState {
                warm_pool: rng.random_bool(0.5).then(|| warm(rng.random_range(0..8))),
                ..g
            };
            let wanted = rng.random_range(0..20);
            let mut d = decision(wanted);
            d.warm = rng.random_bool(0.5).then(|| rng.random_range(0..20));
            let p = plan(&d, &g, bounds);
            let context = format!("case {case}: {g:?} {bounds:?} wanted {wanted}: {p:?}");
            for write in &p.writes {
                match *write {
                    Write::Desired(d) => assert!(g.min_size <= d && d <= g.max_size, "{context}"),
                    Write::DesiredAndBounds { desired, min, max } => {
                        assert!(min <= desired && desired <= max, "{context}")
                    }
                    Write::State(_) => {}
                    // Only a group with a pool gets one, within warm_max.
                    Write::WarmPool { size, .. } => assert!(
                        g.warm_pool.is_some() && size <= bounds.warm_max,
                        "{context}"
                    ),
                }
            }
            let terminated = (g.pending + g.in_service).saturating_sub(p.desired);
            if terminated > 0 && p.desired < g.desired && !bounds.allow_unprotected_scale_in {
                assert_eq!(g.unprotected, 0, "{context}");
            }
        }
    }
}
