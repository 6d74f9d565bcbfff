//! The tick over the in-memory queue and groups: every rule of the data
//! path, one named case at a time.

use crate::support;

use runner_scaler::groups::{GroupState, MemoryGroups, Write};
use runner_scaler::policy::{BuiltinRule, Limits, Policy, PolicyEngine};
use runner_scaler::sources::MemoryQueue;
use runner_scaler::tick::{tick, Action, HeldBecause, Pool, PoolReport, TickOptions};
use runner_scaler::Queue;
use std::time::Duration;

fn group(desired: u32) -> GroupState {
    GroupState {
        desired,
        min_size: 0,
        max_size: 10,
        in_service: desired,
        protected: desired,
        new_instances_protected: true,
        ..GroupState::default()
    }
}

/// Pools over the in-memory queue and groups, ticked at a fixed time.
struct InMemory {
    pools: Vec<Pool>,
    queues: MemoryQueue,
    groups: MemoryGroups,
}

impl InMemory {
    fn new(pools: Vec<Pool>) -> InMemory {
        InMemory {
            pools,
            queues: MemoryQueue::new(),
            groups: MemoryGroups::new(),
        }
    }

    fn set(&self, pool: usize, waiting: u32, running: u32, state: GroupState) {
        let p = &self.pools[pool];
        self.queues.set(
            &p.queue.name,
            Queue {
                waiting,
                running,
                blocked: None,
            },
        );
        self.groups.insert(p.group.clone(), state);
    }

    async fn tick(&self, dry_run: bool) -> Vec<runner_scaler::tick::PoolReport> {
        let mut reports = tick(
            &self.pools,
            &self.queues,
            &self.groups,
            "2026-11-23T09:00:00Z".parse().unwrap(),
            TickOptions {
                dry_run,
                deadline: None,
            },
        )
        .await;
        reports.sort_by(|a, b| a.pool.cmp(&b.pool));
        reports
    }

    fn desired(&self, pool: usize) -> u32 {
        self.groups.get(&self.pools[pool].group).unwrap().desired
    }
}

const QUEUE: Policy = Policy::Builtin(BuiltinRule::Queue);

#[tokio::test]
async fn scales_out_to_the_queue_and_writes_once() {
    let w = InMemory::new(vec![support::pool("a", QUEUE)]);
    w.set(0, 3, 1, group(1));
    let r = w.tick(false).await;
    assert_eq!((r[0].action, r[0].desired), (Action::Applied, Some(4)));
    assert_eq!(w.desired(0), 4);
    assert_eq!(w.groups.writes().len(), 1);
    assert_eq!(w.groups.describe_calls(), 1);
}

#[tokio::test]
async fn an_unchanged_decision_writes_nothing() {
    let w = InMemory::new(vec![support::pool("a", QUEUE)]);
    w.set(0, 2, 2, group(4));
    let r = w.tick(false).await;
    assert_eq!(r[0].action, Action::Unchanged);
    assert!(w.groups.writes().is_empty());
}

#[tokio::test]
async fn dry_run_reads_real_state_and_writes_nothing() {
    let w = InMemory::new(vec![support::pool("a", QUEUE)]);
    w.set(0, 7, 0, group(2));
    let r = w.tick(true).await;
    assert_eq!((r[0].action, r[0].desired), (Action::WouldApply, Some(7)));
    assert_eq!(r[0].capacity.unwrap().desired, 2, "read the real group");
    assert!(w.groups.writes().is_empty());
    assert_eq!(w.desired(0), 2);
}

#[tokio::test]
async fn a_pool_whose_queue_cannot_be_read_is_held_and_others_go_on() {
    let w = InMemory::new(vec![support::pool("a", QUEUE), support::pool("b", QUEUE)]);
    w.set(0, 0, 0, group(5));
    w.set(1, 2, 0, group(0));
    w.queues.fail(&w.pools[0].queue.name, "HTTP 500");
    let r = w.tick(false).await;
    assert_eq!(r[0].action, Action::Held, "{:?}", r[0].why);
    assert!(r[0].why.as_deref().unwrap().contains("HTTP 500"));
    assert_eq!(w.desired(0), 5, "missing data never scales in");
    assert_eq!((r[1].action, w.desired(1)), (Action::Applied, 2));
}

#[tokio::test]
async fn a_region_whose_groups_cannot_be_read_is_held() {
    let mut other = support::pool("b", QUEUE);
    other.group.region = "us-east-1".into();
    let w = InMemory::new(vec![support::pool("a", QUEUE), other]);
    w.set(0, 0, 0, group(5));
    w.set(1, 1, 0, group(0));
    w.groups.fail_describe("eu-west-1");
    let r = w.tick(false).await;
    assert_eq!(r[0].action, Action::Held);
    assert_eq!((r[1].action, w.desired(1)), (Action::Applied, 1));
}

#[tokio::test]
async fn a_missing_group_is_held_with_a_message_naming_it() {
    let w = InMemory::new(vec![support::pool("a", QUEUE)]);
    w.queues.set(
        "acme/a",
        Queue {
            waiting: 1,
            running: 0,
            blocked: None,
        },
    );
    let r = w.tick(false).await;
    assert_eq!(r[0].action, Action::Held);
    let why = r[0].why.as_deref().unwrap();
    assert!(why.contains("ci-a") && why.contains("eu-west-1"), "{why}");
}

#[tokio::test]
async fn a_failed_write_holds_only_that_pool() {
    let w = InMemory::new(vec![support::pool("a", QUEUE), support::pool("b", QUEUE)]);
    w.set(0, 3, 0, group(0));
    w.set(1, 3, 0, group(0));
    w.groups.fail_writes(&w.pools[0].group);
    let r = w.tick(false).await;
    assert_eq!(r[0].action, Action::Held);
    assert_eq!((r[1].action, w.desired(1)), (Action::Applied, 3));
}

#[tokio::test]
async fn scale_in_is_refused_on_an_unprotected_group() {
    let w = InMemory::new(vec![support::pool("a", QUEUE)]);
    w.set(
        0,
        0,
        0,
        GroupState {
            protected: 0,
            unprotected: 3,
            new_instances_protected: false,
            ..group(3)
        },
    );
    let r = w.tick(false).await;
    assert_eq!((r[0].action, r[0].desired), (Action::Unchanged, Some(3)));
    assert!(r[0]
        .why
        .as_deref()
        .unwrap()
        .contains("allow_unprotected_scale_in"));
    assert_eq!(w.desired(0), 3);
}

// Regression (issue 13): the group protects new instances, but two of its
// instances were launched before that flag was switched on. The rule looked
// at the flag only and lowered desired to 0; on AWS that lets scale-in
// terminate the two unprotected ones, whatever they run. It now judges per
// instance and holds.
#[tokio::test]
async fn instances_launched_before_the_flag_hold_scale_in_though_the_flag_is_on() {
    let w = InMemory::new(vec![support::pool("a", QUEUE)]);
    let mixed = GroupState {
        protected: 2,
        unprotected: 2,
        new_instances_protected: true,
        ..group(4)
    };
    w.set(0, 0, 0, mixed.clone());
    let r = w.tick(false).await;
    assert_eq!((r[0].action, r[0].desired), (Action::Unchanged, Some(4)));
    let why = r[0].why.as_deref().unwrap();
    assert!(
        why.contains("2 instances are not protected from scale-in"),
        "{why}"
    );
    assert_eq!(w.groups.terminated_in_service(&w.pools[0].group), 0);

    // With the pool's permission it scales in, and the in-memory group, as
    // AWS, terminates the two unprotected instances (in service: any of them
    // could have run a job) and keeps the protected ones.
    let mut allowed = support::pool("a", QUEUE);
    allowed.bounds.allow_unprotected_scale_in = true;
    let w = InMemory::new(vec![allowed]);
    w.set(0, 0, 0, mixed);
    let r = w.tick(false).await;
    assert_eq!((r[0].action, r[0].desired), (Action::Applied, Some(0)));
    let after = w.groups.get(&w.pools[0].group).unwrap();
    assert_eq!(
        (after.in_service, after.terminating, after.unprotected),
        (2, 2, 0)
    );
    assert_eq!(w.groups.terminated_in_service(&w.pools[0].group), 2);
}

// Only the flag is off; every instance now in the group is protected (by
// hand): lowering desired terminates nothing, so it is done.
#[tokio::test]
async fn a_group_whose_instances_are_all_protected_scales_in_though_its_flag_is_off() {
    let w = InMemory::new(vec![support::pool("a", QUEUE)]);
    w.set(
        0,
        0,
        0,
        GroupState {
            new_instances_protected: false,
            ..group(3)
        },
    );
    let r = w.tick(false).await;
    assert_eq!((r[0].action, r[0].desired), (Action::Applied, Some(0)));
    assert_eq!(w.groups.terminated_in_service(&w.pools[0].group), 0);
}

#[tokio::test]
async fn the_group_is_widened_when_the_pool_allows_more() {
    let w = InMemory::new(vec![support::pool("a", QUEUE)]);
    w.set(
        0,
        4,
        0,
        GroupState {
            max_size: 0,
            ..group(0)
        },
    );
    w.tick(false).await;
    assert_eq!(
        w.groups.writes()[0].1,
        Write::DesiredAndBounds {
            desired: 4,
            min: 0,
            max: 10
        }
    );
}

#[tokio::test]
async fn state_goes_to_the_group_tag_and_comes_back_next_tick() {
    let policies = support::policies_dir();
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let cooldown = engine
        .load(&policies.join("cooldown.wasm"))
        .expect("build the policies with `cargo xtask policies`");
    let w = InMemory::new(vec![support::pool("a", Policy::Wasm(cooldown))]);
    w.set(0, 0, 0, group(3));
    let r = w.tick(false).await;
    assert_eq!(w.desired(0), 4, "its 4 warm instances: {:?}", r[0].reason);
    let kept = w.groups.get(&w.pools[0].group).unwrap().policy_state;
    assert!(
        kept.as_deref().unwrap().starts_with("empty_since="),
        "{kept:?}"
    );
    // The same tick again: same state, nothing written.
    let writes = w.groups.writes().len();
    w.tick(false).await;
    assert_eq!(w.groups.writes().len(), writes);
}

#[tokio::test]
async fn a_failing_policy_falls_back_and_says_why() {
    let policies = support::policies_dir();
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let refuses = engine.load(&policies.join("refuses.wasm")).unwrap();
    let mut p = support::pool("a", Policy::Wasm(refuses));
    p.fallback = BuiltinRule::Queue;
    let w = InMemory::new(vec![p]);
    w.set(0, 2, 0, group(0));
    let r = w.tick(false).await;
    assert_eq!((r[0].action, w.desired(0)), (Action::Applied, 2));
    assert_eq!(r[0].policy_error_kind, Some("refused"));
    assert!(r[0].decided_by.as_deref().unwrap().contains("fallback"));
}

#[tokio::test]
async fn many_pools_share_one_describe_per_hundred_groups() {
    let pools: Vec<Pool> = (0..120)
        .map(|i| support::pool(&format!("p{i:03}"), QUEUE))
        .collect();
    let w = InMemory::new(pools);
    for i in 0..120 {
        w.set(i, (i % 3) as u32, 0, group(1));
    }
    let r = w.tick(false).await;
    assert!(r.iter().all(|r| r.decided()));
    assert_eq!(w.groups.describe_calls(), 2);
    assert_eq!(w.queues.reads(), 120);
    // Only pools whose desired changed were written: i % 3 == 1 stays at 1.
    assert_eq!(w.groups.writes().len(), 80);
}

/// One tick of `w` in the order of its pools, within `deadline`.
async fn tick_within(w: &InMemory, deadline: Duration) -> Vec<PoolReport> {
    tick(
        &w.pools,
        &w.queues,
        &w.groups,
        "2026-11-23T09:00:00Z".parse().unwrap(),
        TickOptions {
            dry_run: false,
            deadline: Some(deadline),
        },
    )
    .await
}

/// Upstreams that never answer cannot hold the tick past its deadline:
/// every pool is reported — held where nothing was written, unknown where
/// a write was under way — and the healthy pool is decided.
#[tokio::test(start_paused = true)]
async fn a_stuck_upstream_is_cut_at_the_tick_deadline_and_every_pool_is_reported() {
    let mut elsewhere = support::pool("describe", QUEUE);
    elsewhere.group.region = "us-east-1".into();
    let w = InMemory::new(vec![
        support::pool("queue", QUEUE),
        elsewhere,
        support::pool("write", QUEUE),
        support::pool("healthy", QUEUE),
    ]);
    for pool in 0..4 {
        w.set(pool, 3, 0, group(0));
    }
    w.queues.hang("acme/queue");
    w.groups.hang_describe("us-east-1");
    w.groups.hang_writes(&w.pools[2].group);
    let started = tokio::time::Instant::now();
    let r = tick_within(&w, Duration::from_secs(30)).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "cut at the deadline"
    );
    let names: Vec<&str> = r.iter().map(|r| r.pool.as_str()).collect();
    assert_eq!(
        names,
        ["queue", "describe", "write", "healthy"],
        "configuration order"
    );

    let why = |i: usize| r[i].why.as_deref().unwrap_or_default().to_string();
    assert_eq!(
        (r[0].action, r[0].held_because),
        (Action::Held, Some(HeldBecause::Deadline))
    );
    assert!(
        why(0).contains("deadline of 30 s") && why(0).contains("queue (acme/queue)"),
        "{}",
        why(0)
    );
    assert_eq!(r[0].jobs, None, "unknown, not zero");
    assert_eq!(
        (r[1].action, r[1].held_because),
        (Action::Held, Some(HeldBecause::Deadline))
    );
    assert!(why(1).contains("its group"), "{}", why(1));
    assert_eq!(r[1].capacity, None);
    assert_eq!(r[2].action, Action::Unknown, "{}", why(2));
    assert!(!r[2].decided(), "an unknown outcome is not a decision");
    assert!(why(2).contains("unknown outcome"), "{}", why(2));
    assert_eq!((r[3].action, w.desired(3)), (Action::Applied, 3));
    assert_eq!(
        w.desired(1),
        0,
        "nothing written where the group was not read"
    );

    // The write reached the group; the next tick reads it again and has
    // nothing to write.
    assert_eq!(w.desired(2), 3);
    w.groups.heal();
    w.queues.heal();
    let writes = w.groups.writes().len();
    let r = tick_within(&w, Duration::from_secs(30)).await;
    assert_eq!(
        (r[2].action, r[2].capacity.unwrap().desired),
        (Action::Unchanged, 3)
    );
    assert_eq!(
        w.groups.writes().len() - writes,
        2,
        "only the two pools held before are written"
    );
}

/// A write whose answer was lost after the group changed is reported as an
/// unknown outcome — not applied, not held — and the next tick re-reads
/// the group before deciding, so it writes nothing more.
#[tokio::test]
async fn a_write_with_a_lost_answer_is_unknown_and_read_again_next_tick() {
    let w = InMemory::new(vec![support::pool("a", QUEUE)]);
    w.set(0, 5, 0, group(1));
    w.groups.lose_answers(&w.pools[0].group);
    let r = w.tick(false).await;
    assert_eq!(r[0].action, Action::Unknown, "{:?}", r[0].why);
    assert_eq!(r[0].held_because, None, "not a hold");
    assert!(r[0]
        .why
        .as_deref()
        .unwrap()
        .contains("reads the group again"));
    assert_eq!(w.desired(0), 5, "the write was made");
    w.groups.heal();
    let r = w.tick(false).await;
    assert_eq!(r[0].capacity.unwrap().desired, 5, "read again");
    assert_eq!(r[0].action, Action::Unchanged);
    assert_eq!(w.groups.writes().len(), 1, "no second write");
}

/// The records come in the order of the pools, however long each takes.
#[tokio::test(start_paused = true)]
async fn reports_come_in_configuration_order_whatever_finishes_first() {
    let pools: Vec<Pool> = (0..6)
        .map(|i| support::pool(&format!("p{i}"), QUEUE))
        .collect();
    let w = InMemory::new(pools);
    for i in 0..6 {
        w.set(i, 1, 0, group(0));
        // The first pool's write answers last, the last pool's first.
        w.groups
            .slow_writes(&w.pools[i].group, Duration::from_secs(10 - i as u64));
    }
    let r = tick(
        &w.pools,
        &w.queues,
        &w.groups,
        "2026-11-23T09:00:00Z".parse().unwrap(),
        TickOptions::default(),
    )
    .await;
    let names: Vec<&str> = r.iter().map(|r| r.pool.as_str()).collect();
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5"]);
}

/// A pool's shadow: `live` decides and is applied; `shadow` decides on the
/// same observation and is only reported.
fn shadowed(live: Policy, shadow: Policy) -> Pool {
    let mut pool = support::pool("a", live);
    pool.shadow = Some(runner_scaler::tick::Shadow::new(shadow, vec![]));
    pool
}

#[tokio::test]
async fn a_shadow_decides_beside_the_live_policy_and_is_never_applied() {
    let w = InMemory::new(vec![shadowed(QUEUE, Policy::Builtin(BuiltinRule::Hold))]);
    w.set(0, 3, 1, group(1));
    let r = w.tick(false).await;
    assert_eq!((r[0].action, w.desired(0)), (Action::Applied, 4));
    let shadow = r[0].shadow.as_ref().unwrap();
    assert_eq!(shadow.policy, "hold");
    assert_eq!(shadow.desired, Some(1), "hold keeps what the group had");
    assert!(shadow.reason.is_some());
    assert_eq!(w.groups.writes().len(), 1, "the live write only");
    // The record says both, in JSON.
    let json = serde_json::to_value(&r[0]).unwrap();
    println!("{json}");
    assert_eq!(
        (json["desired"].as_u64(), json["shadow_desired"].as_u64()),
        (Some(4), Some(1))
    );
}

/// A shadow that traps, spins past its deadline or allocates without bound
/// changes nothing in the live decision: the record says what it did.
#[tokio::test]
async fn a_failing_shadow_changes_nothing_and_is_reported() {
    let policies = support::policies_dir();
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    for (file, kind) in [
        ("panics.wasm", "trap"),
        ("spin.wasm", "deadline"),
        ("alloc-bomb.wasm", "out_of_memory"),
    ] {
        let hostile = engine
            .load(&policies.join(file))
            .expect("build the policies with `cargo xtask policies`");
        let w = InMemory::new(vec![shadowed(QUEUE, Policy::Wasm(hostile))]);
        w.set(0, 3, 1, group(1));
        let r = w.tick(false).await;
        assert_eq!(
            (r[0].action, r[0].desired, w.desired(0)),
            (Action::Applied, Some(4), 4),
            "{file}"
        );
        assert_eq!(r[0].decided_by.as_deref(), Some("queue"), "{file}");
        assert_eq!(r[0].policy_error, None, "{file}");
        let shadow = r[0].shadow.as_ref().unwrap();
        assert_eq!(shadow.error_kind, Some(kind), "{file}: {:?}", shadow.error);
        assert_eq!(shadow.desired, None, "{file}");
    }
}

/// A stateful shadow keeps its state apart: the group's tag holds only the
/// live policy's (here none), and the shadow finds its own next tick.
#[tokio::test]
async fn a_shadows_state_never_reaches_the_group() {
    let policies = support::policies_dir();
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let cooldown = engine
        .load(&policies.join("cooldown.wasm"))
        .expect("build the policies with `cargo xtask policies`");
    let w = InMemory::new(vec![shadowed(QUEUE, Policy::Wasm(cooldown))]);
    w.set(0, 0, 0, group(3));
    let r = w.tick(false).await;
    assert_eq!(w.desired(0), 0, "queue decided: {:?}", r[0].reason);
    let shadow = r[0].shadow.as_ref().unwrap();
    assert_eq!(shadow.desired, Some(4), "{:?}", shadow.reason);
    let tag = w.groups.get(&w.pools[0].group).unwrap().policy_state;
    assert_eq!(tag, None, "the shadow's state went to the group's tag");
    assert!(
        w.groups
            .writes()
            .iter()
            .all(|(_, write)| !matches!(write, Write::State(_))),
        "{:?}",
        w.groups.writes()
    );
    let shadow = w.pools[0].shadow.as_ref().unwrap();
    let kept = shadow.state.lock().unwrap().clone();
    assert!(
        kept.as_deref()
            .is_some_and(|s| s.starts_with("empty_since=")),
        "{kept:?}"
    );
}
