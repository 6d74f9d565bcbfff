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

mod decide;
mod reads;

use crate::groups::{GroupId, GroupState, Groups};
use crate::plan::Bounds;
use crate::policy::{BuiltinRule, Policy};
use crate::report;
use crate::sources::{QueueId, QueueSource};
use decide::{capacity, decide_and_apply, empty_report};
use futures::stream::{self, StreamExt};
use reads::{NoQueues, Reads};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::report::{Action, HeldBecause, PoolReport};
pub use reads::PARALLEL_POOLS;

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
            let passed = |before: String| format!("{cut} passed {before}; nothing was written");
            match (queue, group) {
                (Some(Err(err)), _) => report.hold(HeldBecause::Queue, unread("queue", err)),
                (_, Some(Err(err))) => report.hold(HeldBecause::Group, unread("group", err)),
                (None, None) => report.hold(
                    held_because,
                    passed("before its queue and its group could be read".into()),
                ),
                (None, _) => report.hold(
                    held_because,
                    passed(format!(
                        "before its queue ({}) could be read",
                        pool.queue.name
                    )),
                ),
                (_, None) => report.hold(
                    held_because,
                    passed("before its group could be read".into()),
                ),
                (Some(Ok(_)), Some(Ok(_))) => report.hold(
                    held_because,
                    passed("before the pool's turn to be decided".into()),
                ),
            }
            report
        }
        Stage::Deciding(mut report) => {
            report.hold(
                held_because,
                format!("{cut} passed while the policy was deciding; nothing was written"),
            );
            report
        }
        Stage::Writing { mut report, made } => {
            let earlier = match made {
                0 => String::new(),
                n => format!(", {n} write(s) made before the one under way"),
            };
            report.unknown(format!("{cut} passed while writing the group{earlier}"));
            report
        }
        // The live decision stands; only the shadow's is missing.
        Stage::Shadowing(mut report) => {
            let name = pool.shadow.as_ref().map(|s| s.policy.name().to_string());
            report.shadow = Some(report::ShadowReport {
                policy: name.unwrap_or_default(),
                error: Some(format!("{cut} passed while the shadow was deciding")),
                error_kind: Some("deadline"),
                ..Default::default()
            });
            report
        }
    }
}

/// Why a pool is held when its `input` ("queue", "group") could not be read.
fn unread(input: &str, err: String) -> String {
    format!("the {input} could not be read: {err}")
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

/// Stamp the record's time (the tick's) and duration, and log it.
fn finish(mut report: PoolReport, started: Instant, now: jiff::Timestamp) -> PoolReport {
    report.time = now;
    report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    report::log(&report);
    report
}

/// A duration for people: "60 s", "1.5 s", "300 ms".
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}
