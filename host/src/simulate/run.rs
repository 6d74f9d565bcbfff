//! The event loop: move the world from tick to tick and run the production
//! [`tick`] at each, with the simulated time as its clock.
//!
//! Ticks are at `tick`, `2 × tick`, ... seconds from the trace's start (the
//! scaler starts with the trace; its first tick is one interval in), each
//! after everything due at that second happened. The run ends at the first
//! tick after the last submission where every job is done and the group is
//! empty — or, if instances stay (a min, a policy that keeps a floor),
//! [`DRAIN`] after the first tick that saw every job done; jobs that can never run (a policy that
//! never scales out) stop it [`GIVE_UP`] after the last submission.

use super::trace::Trace;
use super::world::{
    self, Counts, Exit, InstanceRecord, JobRecord, PoolRecord, Protection, World, WorldSettings,
};
use crate::plan::Bounds;
use crate::policy::{BuiltinRule, Policy};
use crate::sources::{QueueId, SourceKind};
use crate::tick::{tick, Pool, Shadow, TickOptions};

/// How long past the last job an instance floor is still counted.
pub const DRAIN: u64 = 3600;
/// How long past the last submission a run waits for jobs that do not run.
pub const GIVE_UP: u64 = 24 * 3600;

/// One policy under one exit behaviour, over one trace.
#[derive(Clone)]
pub struct Scenario {
    /// Names the run in the table and the chart.
    pub label: String,
    pub policy: Policy,
    pub params: Vec<(String, String)>,
    /// Decides a tick on which the policy fails (as in production).
    pub fallback: BuiltinRule,
    /// Seconds between ticks.
    pub tick: u64,
    pub time_zone: jiff::tz::TimeZone,
    /// The pool's `allow_unprotected_scale_in`: whether the scaler lowers
    /// desired capacity when unprotected instances could be terminated.
    pub allow_unprotected_scale_in: bool,
    pub world: WorldSettings,
    /// A shadow policy and its params: it decides beside the policy on
    /// every tick's observation, never applied; the run counts the ticks
    /// on which it would have set another desired capacity.
    pub shadow: Option<(Policy, Vec<(String, String)>)>,
}

/// The state right after one tick, for the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Seconds from the trace's start.
    pub at: u64,
    pub counts: Counts,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Run {
    pub label: String,
    pub exit: Exit,
    pub protection: Protection,
    /// The second the run stopped at; instances still there count up to it.
    pub end: u64,
    pub ticks: u64,
    pub jobs: Vec<JobRecord>,
    pub instances: Vec<InstanceRecord>,
    /// Every instance ever in the warm pool.
    pub pool: Vec<PoolRecord>,
    pub samples: Vec<Sample>,
    pub peak: u32,
    /// Ticks on which the policy failed and the fallback decided, and the
    /// first such failure.
    pub policy_errors: u64,
    pub first_policy_error: Option<String>,
    /// Ticks on which the shadow decided, and on which its desired capacity
    /// differed from the one applied.
    pub shadow_decisions: u64,
    pub shadow_disagreements: u64,
    pub decrements_refused: u64,
}

/// Run `scenario` over `trace`; `on_tick` is called after every tick (a
/// progress bar).
pub async fn run(trace: &Trace, scenario: &Scenario, on_tick: &mut dyn FnMut()) -> Run {
    assert!(scenario.tick > 0, "a tick interval of 0 never advances");
    let world = World::new(&trace.jobs, scenario.world);
    let pools = [Pool {
        name: scenario.label.clone(),
        queue: QueueId::new(SourceKind::CircleCi, world::RESOURCE_CLASS),
        group: world::group_id(),
        policy: scenario.policy.clone(),
        fallback: scenario.fallback,
        bounds: Bounds {
            min: scenario.world.min,
            max: scenario.world.max,
            allow_unprotected_scale_in: scenario.allow_unprotected_scale_in,
            warm_max: scenario.world.max,
        },
        time_zone: scenario.time_zone.clone(),
        params: scenario.params.clone(),
        shadow: scenario
            .shadow
            .clone()
            .map(|(policy, params)| Shadow::new(policy, params)),
    }];
    let last_submit = trace.last_submit();
    let mut samples = Vec::new();
    let mut policy_errors = 0;
    let (mut shadow_decisions, mut shadow_disagreements) = (0, 0);
    let mut first_policy_error = None;
    let mut last_done: Option<u64> = None;
    let mut at = 0;
    loop {
        at += scenario.tick;
        world.advance(at);
        let now = trace.start + jiff::SignedDuration::from_secs(at as i64);
        let reports = tick(&pools, &world, &world, now, TickOptions::default()).await;
        for report in reports {
            if let Some(err) = report.policy_error {
                policy_errors += 1;
                first_policy_error.get_or_insert(err);
            }
            if let Some(shadow) = report.shadow.as_ref().and_then(|s| s.desired) {
                shadow_decisions += 1;
                shadow_disagreements += u64::from(Some(shadow) != report.desired);
            }
        }
        let counts = world.counts();
        samples.push(Sample { at, counts });
        on_tick();

        if at < last_submit {
            continue;
        }
        if world.all_jobs_done() {
            let done = *last_done.get_or_insert(at);
            if counts.instances == 0 || at >= done + DRAIN {
                break;
            }
        } else if at >= last_submit + GIVE_UP {
            break;
        }
    }
    Run {
        label: scenario.label.clone(),
        exit: scenario.world.exit,
        protection: scenario.world.protection,
        end: at,
        ticks: samples.len() as u64,
        jobs: world.jobs(),
        instances: world.instances(),
        pool: world.pool(),
        samples,
        peak: world.peak(),
        policy_errors,
        first_policy_error,
        shadow_decisions,
        shadow_disagreements,
        decrements_refused: world.decrements_refused(),
    }
}
