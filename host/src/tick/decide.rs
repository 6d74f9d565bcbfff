//! One pool's work once its inputs are in: the observation, the policy's
//! decision (or the fallback's), the plan (clamp and safety rules), the
//! writes, and the shadow's decision beside it.

use super::{Pool, Shadow, Stage, TickOptions};
use crate::groups::{GroupError, GroupId, GroupState, Groups};
use crate::observation::{Capacity, Clock, Observation, Queue, WarmPool};
use crate::plan;
use crate::report::{Action, HeldBecause, PoolReport, ShadowReport};
use std::sync::Mutex;

/// A record of `pool` with only its identity (and its queue, if known).
pub(super) fn empty_report(pool: &Pool, jobs: Option<Queue>) -> PoolReport {
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
pub(super) fn capacity(pool: &Pool, group: &GroupState) -> Capacity {
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

/// One pool's tick from its inputs on, `stage` kept up to date.
pub(super) async fn decide_and_apply<G: Groups>(
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
            report.hold(HeldBecause::Queue, super::unread("queue", err.clone()));
            return report;
        }
        (_, Err(err)) => {
            report.hold(HeldBecause::Group, super::unread("group", err.clone()));
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
                    report.unknown(format!("{err}{earlier}"));
                } else {
                    report.hold(HeldBecause::Apply, format!("{err}{earlier}"));
                }
                report.action
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
    let mut said = ShadowReport {
        policy: name.to_string(),
        ms: Some(evaluation.elapsed.as_secs_f64() * 1000.0),
        ..Default::default()
    };
    match evaluation.result {
        Ok(decision) => {
            said.desired = Some(plan::plan(&decision, group, pool.bounds).desired);
            said.reason = Some(decision.reason);
            *shadow.state.lock().unwrap() = decision.state;
        }
        Err(error) => {
            tracing::warn!(
                pool = %pool.name,
                shadow = name,
                kind = error.kind(),
                "the shadow policy failed: {error}; the live decision stands"
            );
            said.error = Some(error.to_string());
            said.error_kind = Some(error.kind());
        }
    }
    report.shadow = Some(said);
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
