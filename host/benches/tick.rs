//! One tick over 1, 100 and 1,000 pools, in one region and spread over two:
//! `cargo bench --bench tick` (after `cargo xtask policies`). The queue and
//! the groups are the in-memory fakes behind a simulated API latency (20 ms
//! per queue read, 50 ms per 50 groups of a describe call of at most 100
//! (a bigger answer takes longer), four of a
//! region at once as the adapter makes them, 30 ms per write), every pool
//! runs the compiled `queue-depth` policy, and a third of the pools change
//! each tick. Prints wall time per tick and the group API calls it made
//! (target for 1,000 pools: ≤ 1 s, ≤ 10 describes and one write per changed
//! pool). `cargo bench --bench tick_moto` measures the same against moto
//! and a fake runner API. The last row gives every pool a shadow (the same
//! policy): the sum of the shadows' decision times is what they add.

use runner_scaler::groups::{
    GroupError, GroupId, GroupState, Groups, MemoryGroups, Write, DESCRIBE_BATCH,
};
use runner_scaler::plan::Bounds;
use runner_scaler::policy::{BuiltinRule, Limits, Policy, PolicyEngine};
use runner_scaler::sources::{MemoryQueue, QueueId, QueueSource, SourceError, SourceKind};
use runner_scaler::tick::{tick, Pool, PoolReport, Shadow, TickOptions};
use runner_scaler::Queue;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Slow<T>(T, Duration);

impl QueueSource for Slow<MemoryQueue> {
    async fn queue(&self, queue: &QueueId) -> Result<Queue, SourceError> {
        tokio::time::sleep(self.1).await;
        self.0.queue(queue).await
    }
}

impl Groups for Slow<MemoryGroups> {
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, GroupState>, GroupError> {
        // One round trip per batch, four at once, as the adapter; its
        // latency grows with the answer: 50 ms per 50 groups.
        let rounds = names
            .len()
            .div_ceil(DESCRIBE_BATCH)
            .div_ceil(runner_scaler::groups::asg::DESCRIBE_PARALLEL);
        let per_round = self.1 * (DESCRIBE_BATCH / 50) as u32;
        for _ in 0..rounds {
            tokio::time::sleep(per_round).await;
        }
        self.0.describe(region, names).await
    }
    async fn apply(&self, group: &GroupId, write: &Write) -> Result<(), GroupError> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.0.apply(group, write).await
    }
}

fn main() {
    let policies = std::env::var_os("RUNNER_SCALER_TEST_POLICIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/policies"));
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = engine
        .load(&policies.join("queue-depth.wasm"))
        .expect("build the policies first: cargo xtask policies");
    let runtime = tokio::runtime::Runtime::new().unwrap();

    println!(
        "{:>6} {:>8} {:>7} {:>12} {:>10} {:>8} {:>14} {:>14} {:>14}",
        "pools",
        "regions",
        "shadow",
        "tick (wall)",
        "describes",
        "writes",
        "changed pools",
        "policies (ms)",
        "shadows (ms)"
    );
    for (n, regions, shadowed) in [
        (1usize, 1usize, false),
        (100, 1, false),
        (1000, 1, false),
        (1000, 2, false),
        (1000, 1, true),
    ] {
        let queues = Slow(MemoryQueue::new(), Duration::from_millis(20));
        let groups = Slow(MemoryGroups::new(), Duration::from_millis(50));
        let pools: Vec<Pool> = (0..n)
            .map(|i| {
                let pool = Pool {
                    name: format!("pool-{i}"),
                    queue: QueueId::new(SourceKind::CircleCi, format!("acme/class-{i}")),
                    group: GroupId {
                        region: ["eu-west-1", "us-east-1"][i % regions].into(),
                        name: format!("ci-{i}"),
                    },
                    policy: Policy::Wasm(policy.clone()),
                    fallback: BuiltinRule::Hold,
                    bounds: Bounds {
                        min: 0,
                        max: 100,
                        allow_unprotected_scale_in: false,
                        warm_max: 100,
                    },
                    time_zone: jiff::tz::TimeZone::UTC,
                    params: vec![],
                    // The same policy as the shadow: what one costs a tick.
                    shadow: shadowed.then(|| Shadow::new(Policy::Wasm(policy.clone()), vec![])),
                };
                // A third of the pools have one more job than instances.
                let jobs = 3 + u32::from(i % 3 == 0);
                queues.0.set(
                    &pool.queue.name,
                    Queue {
                        waiting: jobs,
                        running: 0,
                        blocked: None,
                    },
                );
                groups.0.insert(
                    pool.group.clone(),
                    GroupState {
                        desired: 3,
                        max_size: 100,
                        new_instances_protected: true,
                        ..GroupState::default()
                    },
                );
                pool
            })
            .collect();
        let started = Instant::now();
        let reports = runtime.block_on(tick(
            &pools,
            &queues,
            &groups,
            jiff::Timestamp::now(),
            TickOptions::default(),
        ));
        let wall = started.elapsed();
        assert!(reports.iter().all(|r| r.decided()));
        let changed = reports
            .iter()
            .filter(|r| r.desired != r.capacity.map(|c| c.desired))
            .count();
        let sum = |ms: fn(&PoolReport) -> Option<f64>| -> f64 {
            reports.iter().filter_map(ms).fold(0.0, |a, b| a + b)
        };
        println!(
            "{n:>6} {regions:>8} {shadowed:>7} {:>12.2?} {:>10} {:>8} {:>14} {:>14.1} {:>14.1}",
            wall,
            groups.0.describe_calls(),
            groups.0.writes().len(),
            changed,
            sum(|r| r.policy_ms),
            sum(|r| r.shadow.as_ref().and_then(|s| s.ms)),
        );
    }
}
