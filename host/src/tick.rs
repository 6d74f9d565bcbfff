//! One tick: for every pool, concurrently, read the queue and the group,
//! build the observation, ask the policy, plan (clamp + safety rules) and
//! apply — then record what happened. A pool whose inputs could not be read
//! is held: nothing is written, and missing data never scales anything down.
//! One pool's failure never touches another pool.

use crate::groups::{GroupError, GroupId, GroupState, Groups};
use crate::observation::{Capacity, Clock, Observation, Queue};
use crate::plan::{self, Bounds};
use crate::policy::{BuiltinRule, Policy};
use crate::sources::{QueueSource, SourceError};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// A pool, ready to tick: its configuration with the policy loaded and the
/// resource class known.
#[derive(Clone)]
pub struct Pool {
    pub name: String,
    pub resource_class: String,
    pub group: GroupId,
    pub policy: Policy,
    pub fallback: BuiltinRule,
    pub bounds: Bounds,
    pub time_zone: jiff::tz::TimeZone,
    pub params: Vec<(String, String)>,
}

/// How a tick runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct TickOptions {
    /// Decide and report, write nothing.
    pub dry_run: bool,
}

/// What happened to one pool on one tick: the decision record.
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    pub pool: String,
    pub group: String,
    pub region: String,
    /// The inputs, when they could be read.
    pub queue: Option<Queue>,
    pub capacity: Option<Capacity>,
    /// The policy (or fallback) that decided, its answer and its reason.
    pub decided_by: Option<String>,
    pub policy_desired: Option<u32>,
    pub reason: Option<String>,
    /// Why the pool's policy failed, if it did (the fallback decided).
    pub policy_error: Option<String>,
    pub policy_error_kind: Option<&'static str>,
    /// The desired capacity after clamping and the safety rules.
    pub desired: Option<u32>,
    pub action: Action,
    /// What kept the pool from being decided, when it was held.
    pub held_because: Option<HeldBecause>,
    /// Why the action: what was clamped or refused, what failed.
    pub why: Option<String>,
    /// Time the policy (or fallback) took to decide.
    pub policy_ms: Option<f64>,
    pub duration_ms: f64,
}

/// Which input or output failed for a held pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldBecause {
    /// The queue could not be read.
    Queue,
    /// The group could not be read (or does not exist).
    Group,
    /// The decision could not be written.
    Apply,
}

/// What the tick did to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Wrote the change.
    Applied,
    /// Nothing changed, nothing written.
    Unchanged,
    /// Dry run: would have written the change.
    WouldApply,
    /// Inputs missing or a write failed: the pool was not decided.
    Held,
}

impl PoolReport {
    /// Whether the pool got a decision (the tick's exit code counts these).
    pub fn decided(&self) -> bool {
        self.action != Action::Held
    }
}

/// Run one tick over `pools` at `now`.
pub async fn tick<Q: QueueSource, G: Groups>(
    pools: &[Pool],
    queues: &Q,
    groups: &G,
    now: jiff::Timestamp,
    options: TickOptions,
) -> Vec<PoolReport> {
    let started = Instant::now();
    let (queue_by_class, group_by_id) =
        futures::join!(read_queues(pools, queues), read_groups(pools, groups));
    stream::iter(pools)
        .map(|pool| {
            let queue = &queue_by_class[&pool.resource_class];
            let group = &group_by_id[&pool.group];
            decide_and_apply(pool, queue, group, groups, now, options, started)
        })
        .buffer_unordered(PARALLEL_POOLS)
        .collect()
        .await
}

/// Pools decided (and written) at once: enough to hide API latency, few
/// enough to stay under Auto Scaling's request rate.
const PARALLEL_POOLS: usize = 32;

/// Each distinct resource class's queue, read once.
async fn read_queues<Q: QueueSource>(
    pools: &[Pool],
    queues: &Q,
) -> HashMap<String, Result<Queue, String>> {
    let mut classes: Vec<&str> = pools.iter().map(|p| p.resource_class.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    stream::iter(classes)
        .map(|class| async move {
            let queue = queues
                .queue(class)
                .await
                .map_err(|err: SourceError| err.to_string());
            (class.to_string(), queue)
        })
        .buffer_unordered(PARALLEL_POOLS)
        .collect()
        .await
}

/// Every pool's group, described in one batch per region.
pub(crate) async fn read_groups<G: Groups>(
    pools: &[Pool],
    groups: &G,
) -> HashMap<GroupId, Result<GroupState, String>> {
    let mut by_region: HashMap<&str, Vec<String>> = HashMap::new();
    for pool in pools {
        let names = by_region.entry(&pool.group.region).or_default();
        if !names.contains(&pool.group.name) {
            names.push(pool.group.name.clone());
        }
    }
    let described =
        futures::future::join_all(by_region.into_iter().map(|(region, names)| async move {
            let answer = groups.describe(region, &names).await;
            (region, names, answer)
        }))
        .await;
    let mut result = HashMap::new();
    for (region, names, answer) in described {
        for name in names {
            let state = match &answer {
                Ok(found) => found.get(&name).cloned().ok_or_else(|| {
                    format!("the Auto Scaling group {name} does not exist in {region}; check the pool's group and region")
                }),
                Err(err) => Err(err.to_string()),
            };
            result.insert(
                GroupId {
                    region: region.to_string(),
                    name,
                },
                state,
            );
        }
    }
    result
}

async fn decide_and_apply<G: Groups>(
    pool: &Pool,
    queue: &Result<Queue, String>,
    group: &Result<GroupState, String>,
    groups: &G,
    now: jiff::Timestamp,
    options: TickOptions,
    started: Instant,
) -> PoolReport {
    let mut report = PoolReport {
        pool: pool.name.clone(),
        group: pool.group.name.clone(),
        region: pool.group.region.clone(),
        queue: queue.as_ref().ok().copied(),
        capacity: None,
        decided_by: None,
        policy_desired: None,
        reason: None,
        policy_error: None,
        policy_error_kind: None,
        desired: None,
        action: Action::Held,
        held_because: None,
        why: None,
        policy_ms: None,
        duration_ms: 0.0,
    };
    let finish = |mut report: PoolReport| {
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        log(&report);
        report
    };
    let (queue, group) = match (queue, group) {
        (Ok(queue), Ok(group)) => (*queue, group),
        (Err(err), _) => {
            report.held_because = Some(HeldBecause::Queue);
            report.why = Some(format!("held: the queue could not be read: {err}"));
            return finish(report);
        }
        (_, Err(err)) => {
            report.held_because = Some(HeldBecause::Group);
            report.why = Some(format!("held: the group could not be read: {err}"));
            return finish(report);
        }
    };

    let observation = Observation {
        pool: pool.name.clone(),
        queue,
        capacity: Capacity {
            desired: group.desired,
            min: pool.bounds.min,
            max: pool.bounds.max,
            pending: group.pending,
            in_service: group.in_service,
            terminating: group.terminating,
            protected: group.protected,
        },
        clock: Clock::at(now, &pool.time_zone),
        params: pool.params.clone(),
        state: group.policy_state.clone(),
    };
    report.capacity = Some(observation.capacity);
    let outcome = pool
        .policy
        .decide_or_fallback(&observation, pool.fallback)
        .await;
    report.policy_ms = Some(outcome.elapsed.as_secs_f64() * 1000.0);
    report.decided_by = Some(outcome.decided_by);
    report.policy_desired = Some(outcome.decision.desired);
    report.reason = Some(outcome.decision.reason.clone());
    if let Some(err) = &outcome.error {
        report.policy_error = Some(err.to_string());
        report.policy_error_kind = Some(err.kind());
    }

    let plan = plan::plan(&outcome.decision, group, pool.bounds);
    report.desired = Some(plan.desired);
    report.why = plan.adjusted;
    report.action = if plan.writes.is_empty() {
        Action::Unchanged
    } else if options.dry_run {
        Action::WouldApply
    } else {
        match apply(groups, &pool.group, &plan.writes).await {
            Ok(()) => Action::Applied,
            Err(err) => {
                report.held_because = Some(HeldBecause::Apply);
                report.why = Some(format!("held: {err}"));
                Action::Held
            }
        }
    };
    finish(report)
}

/// Make the writes in order, stopping at the first failure.
async fn apply<G: Groups>(
    groups: &G,
    group: &GroupId,
    writes: &[crate::groups::Write],
) -> Result<(), GroupError> {
    for write in writes {
        groups.apply(group, write).await?;
    }
    Ok(())
}

/// The decision record as one structured log line (JSON fields with
/// `--log-format json`).
fn log(r: &PoolReport) {
    let queue = r.queue.unwrap_or_default();
    let capacity = r.capacity.unwrap_or_default();
    macro_rules! record {
        ($level:ident) => {
            tracing::$level!(
                target: "decision",
                pool = %r.pool,
                group = %r.group,
                waiting = queue.waiting,
                running = queue.running,
                desired_before = capacity.desired,
                decided_by = r.decided_by.as_deref(),
                policy_desired = r.policy_desired,
                desired = r.desired,
                action = ?r.action,
                policy_error = r.policy_error.as_deref(),
                why = r.why.as_deref(),
                duration_ms = r.duration_ms,
                "{}",
                r.reason.as_deref().unwrap_or("no decision")
            )
        };
    }
    if r.action == Action::Held {
        record!(warn);
    } else {
        record!(info);
    }
}
