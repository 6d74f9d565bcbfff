//! One tick: for every pool, concurrently, read the queue and the group,
//! build the observation, ask the policy, plan (clamp + safety rules) and
//! apply — then record what happened. A pool whose inputs could not be read
//! is held: nothing is written, and missing data never scales anything down.
//! One pool's failure never touches another pool.
//!
//! A tick is bounded as a whole: when its deadline passes (or the daemon's
//! stop grace), pools still at work are cut and reported — held where
//! nothing was written, [`Action::Unknown`] where a write was under way —
//! and so is a write whose answer was lost. Reports say only what is known.

use crate::groups::{GroupError, GroupId, GroupState, Groups};
use crate::observation::{Capacity, Clock, Observation, Queue, WarmPool};
use crate::plan::{self, Bounds};
use crate::policy::{BuiltinRule, Policy};
use crate::report;
use crate::sources::{QueueId, QueueSource, SourceError};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::report::{Action, HeldBecause, PoolReport};

/// A pool, ready to tick: its configuration with the policy loaded and the
/// queue known.
#[derive(Clone)]
pub struct Pool {
    pub name: String,
    /// The queue whose jobs its group runs.
    pub queue: QueueId,
    pub group: GroupId,
    pub policy: Policy,
    pub fallback: BuiltinRule,
    pub bounds: Bounds,
    pub time_zone: jiff::tz::TimeZone,
    pub params: Vec<(String, String)>,
    /// A policy that decides beside this one, never applied.
    pub shadow: Option<Shadow>,
}

/// A shadow policy: each tick, after the pool's own policy, it decides on
/// the same observation (with its own params and state) in the same
/// sandbox. Its answer is reported beside the live one and never applied;
/// its failure is reported and changes nothing.
#[derive(Clone)]
pub struct Shadow {
    pub policy: Policy,
    pub params: Vec<(String, String)>,
    /// Its state, kept apart from the live policy's: in this process, never
    /// in the group's tag (it starts empty after a restart).
    pub state: Arc<Mutex<Option<String>>>,
}

impl Shadow {
    /// `policy` with `params`, no state yet.
    pub fn new(policy: Policy, params: Vec<(String, String)>) -> Shadow {
        Shadow {
            policy,
            params,
            state: Arc::default(),
        }
    }
}

#[cfg(test)]
impl Pool {
    /// A pool as the unit tests use it (as `support::pool` in the
    /// integration tests): CircleCI resource class `acme/NAME`, group `ci-NAME` in
    /// eu-west-1, bounds 0..=10, the `hold` fallback, UTC, no params, no
    /// shadow.
    pub(crate) fn example(name: &str, policy: Policy) -> Pool {
        Pool {
            name: name.into(),
            queue: QueueId::new(crate::sources::SourceKind::CircleCi, format!("acme/{name}")),
            group: GroupId {
                region: "eu-west-1".into(),
                name: format!("ci-{name}"),
            },
            policy,
            fallback: BuiltinRule::Hold,
            bounds: Bounds {
                min: 0,
                max: 10,
                allow_unprotected_scale_in: false,
                warm_max: 10,
            },
            time_zone: jiff::tz::TimeZone::UTC,
            params: vec![],
            shadow: None,
        }
    }
}

/// How a tick runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct TickOptions {
    /// Decide and report, write nothing.
    pub dry_run: bool,
    /// The longest the whole tick may take. Pools still at work when it
    /// passes are cut: reported held (nothing was written) or with an
    /// unknown outcome (a write was under way), never dropped. `None`: no
    /// deadline (the simulator, whose clock is not the wall clock).
    pub deadline: Option<Duration>,
}

/// Why a tick was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The tick's own deadline passed.
    Deadline(Duration),
    /// The process is stopping (SIGTERM) and its grace passed.
    Stopping { grace: Duration },
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::Deadline(limit) => write!(f, "the tick's deadline of {}", seconds(*limit)),
            Cut::Stopping { grace } => {
                write!(f, "the stop grace of {} after SIGTERM", seconds(*grace))
            }
        }
    }
}

/// Run one tick over `pools` at `now`, within `options.deadline`.
pub async fn tick<Q: QueueSource, G: Groups>(
    pools: &[Pool],
    queues: &Q,
    groups: &G,
    now: jiff::Timestamp,
    options: TickOptions,
) -> Vec<PoolReport> {
    tick_until(pools, queues, groups, now, options, std::future::pending()).await
}

/// [`tick`], also cut short when `stop` resolves (the daemon's SIGTERM
/// and its grace). The reports come in the order of `pools`.
pub async fn tick_until<Q: QueueSource, G: Groups>(
    pools: &[Pool],
    queues: &Q,
    groups: &G,
    now: jiff::Timestamp,
    options: TickOptions,
    stop: impl Future<Output = Cut>,
) -> Vec<PoolReport> {
    let started = Instant::now();
    let reads = Reads::new(pools, queues, groups);
    // Where each pool's work stands, so that a cut tick still reports every
    // pool, with what was known when it was cut.
    let stages: Vec<Mutex<Stage>> = pools.iter().map(|_| Mutex::new(Stage::Reading)).collect();
    let decisions = stream::iter(pools.iter().zip(&stages)).for_each_concurrent(
        PARALLEL_POOLS,
        |(pool, stage)| async {
            // Each pool goes on as soon as its own inputs are in: a read
            // that hangs holds only the pools that need it.
            let (queue, group) = futures::join!(reads.queue(pool), reads.group(pool));
            let report = decide_and_apply(pool, &queue, &group, groups, now, options, stage).await;
            *stage.lock().unwrap() = Stage::Done(finish(report, started, now));
        },
    );
    let work = async {
        futures::join!(reads.make_all(), decisions);
    };
    let deadline = async {
        match options.deadline {
            Some(limit) => {
                tokio::time::sleep(limit).await;
                Cut::Deadline(limit)
            }
            None => std::future::pending().await,
        }
    };
    let cut = tokio::select! {
        () = work => None,
        cut = deadline => Some(cut),
        cut = stop => Some(cut),
    };
    if let Some(cut) = cut {
        tracing::warn!(
            pools = pools.len(),
            unfinished = stages
                .iter()
                .filter(|s| !matches!(*s.lock().unwrap(), Stage::Done(_)))
                .count(),
            "{cut} passed: the tick is cut short; pools still at work are reported held, or unknown where a write was under way"
        );
    }
    pools
        .iter()
        .zip(stages)
        .map(|(pool, stage)| match (stage.into_inner().unwrap(), cut) {
            (Stage::Done(report), _) => report,
            (stage, Some(cut)) => finish(cut_short(pool, stage, &reads, cut), started, now),
            (_, None) => unreachable!("a tick that was not cut finished every pool"),
        })
        .collect()
}

/// Pools decided (and written) at once: enough to hide API latency, few
/// enough to stay under Auto Scaling's request rate.
pub const PARALLEL_POOLS: usize = 32;

/// What a read gave: the value, or why there is none.
type Read<T> = Result<T, String>;

/// A read every pool that needs it awaits, made once.
type SharedRead<'a, T> = Shared<BoxFuture<'a, Arc<Read<T>>>>;

/// The tick's reads: each queue (source and name) once, and each region's
/// groups in one describe (batched by the adapter), made by
/// [`Reads::make_all`] and awaited by every pool that needs them.
struct Reads<'a> {
    queues: HashMap<&'a QueueId, SharedRead<'a, Queue>>,
    /// The queues in the order of the pools.
    order: Vec<&'a QueueId>,
    regions: HashMap<&'a str, SharedRead<'a, HashMap<String, GroupState>>>,
}

impl<'a> Reads<'a> {
    fn new<Q: QueueSource, G: Groups>(pools: &'a [Pool], queues: &'a Q, groups: &'a G) -> Self {
        let mut by_region: HashMap<&str, Vec<String>> = HashMap::new();
        for pool in pools {
            let names = by_region.entry(&pool.group.region).or_default();
            if !names.contains(&pool.group.name) {
                names.push(pool.group.name.clone());
            }
        }
        let regions = by_region
            .into_iter()
            .map(|(region, names)| {
                let read = async move {
                    let answer = groups.describe(region, &names).await;
                    Arc::new(answer.map_err(|err| err.to_string()))
                };
                (region, read.boxed().shared())
            })
            .collect();
        let mut order: Vec<&QueueId> = Vec::new();
        let mut reads = HashMap::new();
        for pool in pools {
            let queue = &pool.queue;
            reads.entry(queue).or_insert_with(|| {
                order.push(queue);
                let read = async move {
                    let read = queues.queue(queue).await;
                    Arc::new(read.map_err(|err: SourceError| err.to_string()))
                };
                read.boxed().shared()
            });
        }
        Reads {
            queues: reads,
            order,
            regions,
        }
    }

    /// Make every read: each region's describe at once, the queues
    /// [`PARALLEL_POOLS`] at a time in the order of the pools, so that each
    /// pool's inputs are in as early as they can be.
    async fn make_all(&self) {
        let queues = stream::iter(&self.order)
            .map(|queue| self.queues[queue].clone())
            .buffer_unordered(PARALLEL_POOLS)
            .for_each(|_| async {});
        let regions = futures::future::join_all(self.regions.values().cloned());
        futures::join!(queues, regions);
    }

    async fn queue(&self, pool: &Pool) -> Result<Queue, String> {
        let read = self.queues[&pool.queue].clone().await;
        (*read).clone()
    }

    async fn group(&self, pool: &Pool) -> Result<GroupState, String> {
        let read = self.regions[pool.group.region.as_str()].clone().await;
        group_of(pool, &read)
    }

    /// The pool's queue and group, each if it was read by now.
    fn read_so_far(&self, pool: &Pool) -> (Option<Read<Queue>>, Option<Read<GroupState>>) {
        let queue = self.queues[&pool.queue].peek().map(|read| (**read).clone());
        let group = self.regions[pool.group.region.as_str()]
            .peek()
            .map(|read| group_of(pool, read));
        (queue, group)
    }
}

/// The pool's group in its region's describe.
fn group_of(
    pool: &Pool,
    described: &Result<HashMap<String, GroupState>, String>,
) -> Result<GroupState, String> {
    let (name, region) = (&pool.group.name, &pool.group.region);
    match described {
        Ok(found) => found.get(name).cloned().ok_or_else(|| {
            format!("the Auto Scaling group {name} does not exist in {region}; check the pool's group and region")
        }),
        Err(err) => Err(err.clone()),
    }
}

/// Where one pool's work stands.
enum Stage {
    /// Its inputs are being read.
    Reading,
    /// The policy is deciding; the record so far.
    Deciding(PoolReport),
    /// The writes are under way, `made` of them done; the record so far.
    Writing { report: PoolReport, made: usize },
    /// The live decision is done; the shadow policy is deciding.
    Shadowing(PoolReport),
    /// Finished, the record logged.
    Done(PoolReport),
}

/// The record of a pool whose work was cut at `stage`.
fn cut_short(pool: &Pool, stage: Stage, reads: &Reads, cut: Cut) -> PoolReport {
    let held_because = match cut {
        Cut::Deadline(_) => HeldBecause::Deadline,
        Cut::Stopping { .. } => HeldBecause::Stopped,
    };
    match stage {
        Stage::Done(report) => report,
        Stage::Reading => {
            let (queue, group) = reads.read_so_far(pool);
            let mut report = empty_report(pool, queue.clone().and_then(Result::ok));
            report.capacity = group
                .clone()
                .and_then(Result::ok)
                .map(|g| capacity(pool, &g));
            let (because, why) = match (queue, group) {
                (Some(Err(err)), _) => (
                    HeldBecause::Queue,
                    format!("held: the queue could not be read: {err}"),
                ),
                (_, Some(Err(err))) => (
                    HeldBecause::Group,
                    format!("held: the group could not be read: {err}"),
                ),
                (None, None) => (
                    held_because,
                    format!("held: {cut} passed before its queue and its group could be read; nothing was written"),
                ),
                (None, _) => (
                    held_because,
                    format!("held: {cut} passed before its queue ({}) could be read; nothing was written", pool.queue.name),
                ),
                (_, None) => (
                    held_because,
                    format!("held: {cut} passed before its group could be read; nothing was written"),
                ),
                (Some(Ok(_)), Some(Ok(_))) => (
                    held_because,
                    format!("held: {cut} passed before the pool's turn to be decided; nothing was written"),
                ),
            };
            report.held_because = Some(because);
            report.why = Some(why);
            report
        }
        Stage::Deciding(mut report) => {
            report.held_because = Some(held_because);
            report.why = Some(format!(
                "held: {cut} passed while the policy was deciding; nothing was written"
            ));
            report
        }
        Stage::Writing { mut report, made } => {
            let earlier = match made {
                0 => String::new(),
                n => format!(", {n} write(s) made before the one under way"),
            };
            report.action = Action::Unknown;
            report.why = Some(format!(
                "unknown outcome: {cut} passed while writing the group{earlier}; the next tick reads the group again before deciding"
            ));
            report
        }
        // The live decision stands; only the shadow's is missing.
        Stage::Shadowing(mut report) => {
            report.shadow_error = Some(format!("{cut} passed while the shadow was deciding"));
            report.shadow_error_kind = Some("deadline");
            report
        }
    }
}

/// Every pool's group, described in one batch per region (what `run` checks
/// at start).
pub(crate) async fn read_groups<G: Groups>(
    pools: &[Pool],
    groups: &G,
) -> HashMap<GroupId, Result<GroupState, String>> {
    let reads = Reads::new(pools, &NoQueues, groups);
    futures::future::join_all(
        pools
            .iter()
            .map(|pool| async { (pool.group.clone(), reads.group(pool).await) }),
    )
    .await
    .into_iter()
    .collect()
}

/// A queue source for reads that need no queue.
struct NoQueues;

impl QueueSource for NoQueues {
    async fn queue(&self, _queue: &QueueId) -> Result<Queue, SourceError> {
        unreachable!("read_groups reads no queue")
    }
}

/// A record of `pool` with only its identity (and its queue, if known).
fn empty_report(pool: &Pool, jobs: Option<Queue>) -> PoolReport {
    PoolReport {
        jobs,
        policy_sha256: pool.policy.sha256().map(String::from),
        shadow_sha256: (pool.shadow.as_ref()).and_then(|s| s.policy.sha256().map(String::from)),
        ..PoolReport::new(
            &pool.name,
            &pool.group.name,
            &pool.group.region,
            &pool.queue,
            pool.bounds.min,
            pool.bounds.max,
        )
    }
}

/// The capacity the policy sees: the group's counts, the pool's bounds.
fn capacity(pool: &Pool, group: &GroupState) -> Capacity {
    Capacity {
        desired: group.desired,
        min: pool.bounds.min,
        max: pool.bounds.max,
        pending: group.pending,
        in_service: group.in_service,
        terminating: group.terminating,
        protected: group.protected,
        warm_pool: group
            .warm_pool
            .as_ref()
            .filter(|warm| !warm.deleting)
            .map(|warm| WarmPool {
                instances: warm.instances,
                size: warm.size(),
                max: pool.bounds.warm_max,
            }),
    }
}

/// Stamp the record's time (the tick's) and duration, and log it.
fn finish(mut report: PoolReport, started: Instant, now: jiff::Timestamp) -> PoolReport {
    report.time = now;
    report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    report::log(&report);
    report
}

/// One pool's tick from its inputs on, `stage` kept up to date.
async fn decide_and_apply<G: Groups>(
    pool: &Pool,
    queue: &Result<Queue, String>,
    group: &Result<GroupState, String>,
    groups: &G,
    now: jiff::Timestamp,
    options: TickOptions,
    stage: &Mutex<Stage>,
) -> PoolReport {
    let mut report = empty_report(pool, queue.as_ref().ok().copied());
    // What was read is reported, held or not.
    report.capacity = group.as_ref().ok().map(|g| capacity(pool, g));
    let (queue, group) = match (queue, group) {
        (Ok(queue), Ok(group)) => (*queue, group),
        (Err(err), _) => {
            report.held_because = Some(HeldBecause::Queue);
            report.why = Some(format!("held: the queue could not be read: {err}"));
            return report;
        }
        (_, Err(err)) => {
            report.held_because = Some(HeldBecause::Group);
            report.why = Some(format!("held: the group could not be read: {err}"));
            return report;
        }
    };

    let observation = Observation {
        pool: pool.name.clone(),
        queue,
        capacity: capacity(pool, group),
        clock: Clock::at(now, &pool.time_zone),
        params: pool.params.clone(),
        state: usable_state(pool, group),
    };
    *stage.lock().unwrap() = Stage::Deciding(report.clone());
    let outcome = pool
        .policy
        .decide_or_fallback(&observation, pool.fallback)
        .await;
    report.policy_ms = Some(outcome.elapsed.as_secs_f64() * 1000.0);
    report.decided_by = Some(outcome.decided_by);
    report.policy_desired = Some(outcome.decision.desired);
    report.policy_warm = outcome.decision.warm;
    report.reason = Some(outcome.decision.reason.clone());
    if let Some(err) = &outcome.error {
        report.policy_error = Some(err.to_string());
        report.policy_error_kind = Some(err.kind());
    }

    let plan = plan::plan(&outcome.decision, group, pool.bounds);
    report.desired = Some(plan.desired);
    report.warm = plan.warm;
    report.why = plan.why();
    report.action = if plan.writes.is_empty() {
        Action::Unchanged
    } else if options.dry_run {
        Action::WouldApply
    } else {
        *stage.lock().unwrap() = Stage::Writing {
            report: report.clone(),
            made: 0,
        };
        let made = |n: usize| {
            if let Stage::Writing { made, .. } = &mut *stage.lock().unwrap() {
                *made = n;
            }
        };
        match apply(groups, &pool.group, &plan.writes, made).await {
            Ok(()) => Action::Applied,
            Err((made, err)) => {
                let earlier = match made {
                    0 => String::new(),
                    n => format!(" ({n} of {} writes made before it)", plan.writes.len()),
                };
                if err.outcome_unknown() {
                    report.why = Some(format!(
                        "unknown outcome: {err}{earlier}; the next tick reads the group again before deciding"
                    ));
                    Action::Unknown
                } else {
                    report.held_because = Some(HeldBecause::Apply);
                    report.why = Some(format!("held: {err}{earlier}"));
                    Action::Held
                }
            }
        }
    };
    if let Some(shadow) = &pool.shadow {
        *stage.lock().unwrap() = Stage::Shadowing(report.clone());
        shadow_decides(shadow, pool, &observation, group, &mut report).await;
    }
    report
}

/// The shadow's decision on the live observation, with its own params and
/// state, put in `report` beside the live one: what it would have set
/// (after the same clamp and safety rules), its reason, or its failure.
async fn shadow_decides(
    shadow: &Shadow,
    pool: &Pool,
    live: &Observation,
    group: &GroupState,
    report: &mut PoolReport,
) {
    let observation = Observation {
        params: shadow.params.clone(),
        state: shadow.state.lock().unwrap().clone(),
        ..live.clone()
    };
    let name = shadow.policy.name();
    let evaluation = shadow.policy.evaluate(&observation).await;
    evaluation.log.emit(&pool.name, name);
    report.shadow = Some(name.to_string());
    report.shadow_ms = Some(evaluation.elapsed.as_secs_f64() * 1000.0);
    match evaluation.result {
        Ok(decision) => {
            report.shadow_desired = Some(plan::plan(&decision, group, pool.bounds).desired);
            report.shadow_reason = Some(decision.reason);
            *shadow.state.lock().unwrap() = decision.state;
        }
        Err(error) => {
            tracing::warn!(
                pool = %pool.name,
                shadow = name,
                kind = error.kind(),
                "the shadow policy failed: {error}; the live decision stands"
            );
            report.shadow_error = Some(error.to_string());
            report.shadow_error_kind = Some(error.kind());
        }
    }
}

/// The state in the group's tag, unless it is one the host could not have
/// written (set by hand, too long, corrupt): then the policy decides without
/// state, with a warning, and its decision replaces the tag. A bad tag costs
/// the pool its state, never its decisions.
fn usable_state(pool: &Pool, group: &GroupState) -> Option<String> {
    let state = group.policy_state.as_deref()?;
    match crate::state::state_problem(state) {
        None => Some(state.to_string()),
        Some(problem) => {
            tracing::warn!(
                pool = %pool.name,
                group = %pool.group,
                "the group's {} tag cannot be used ({problem}); the policy decides without state and its decision replaces the tag",
                crate::state::STATE_TAG
            );
            None
        }
    }
}

/// Make the writes in order, stopping at the first failure; `made` hears
/// how many are done. A failure comes with the number made before it.
async fn apply<G: Groups>(
    groups: &G,
    group: &GroupId,
    writes: &[crate::groups::Write],
    made: impl Fn(usize),
) -> Result<(), (usize, GroupError)> {
    for (n, write) in writes.iter().enumerate() {
        groups.apply(group, write).await.map_err(|err| (n, err))?;
        made(n + 1);
    }
    Ok(())
}

/// A duration for people: "60 s", "1.5 s", "300 ms".
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}
