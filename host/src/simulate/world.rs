//! The simulated world: one Auto Scaling group of single-task runners and
//! the queue of the jobs they run, in one struct, because they share their
//! state (a job is waiting until an instance claims it). It implements both
//! [`Groups`] and [`QueueSource`], so the simulator runs the production
//! [`tick`](crate::tick::tick) against it.
//!
//! Time is whole seconds from the trace's start, and moves only through
//! [`World::advance`]. Within one second things happen in this order: jobs
//! finish (and their instances leave), boots complete, jobs arrive, idle
//! timeouts expire; an idle runner claims the oldest waiting job as soon as
//! both exist. A tick at that second sees the result.
//!
//! The group, as EC2 Auto Scaling would run it:
//! - desired above the instance count launches instances at once (never
//!   above the group's max);
//! - desired below the instance count terminates instances that run no job
//!   (booting or idle), youngest launch first, and never a busy one: that is
//!   scale-in protection, modelled as held by an instance while it runs a job;
//! - an instance leaves on its own when its job is done or when its idle
//!   timeout passes with no job. With [`Exit::Decrement`] it also lowers
//!   desired by one — unless desired is at the group's min, where EC2
//!   refuses the decrement and the user data falls back to powering off;
//!   with [`Exit::Poweroff`] it only terminates, and the group launches a
//!   replacement at once while desired is above the instance count.

use super::trace::Job;
use crate::groups::{GroupError, GroupId, GroupState, Groups, Write};
use crate::observation::Queue;
use crate::sources::{QueueSource, SourceError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Mutex;

/// How an instance leaves its group when its runner exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// Terminate itself and lower desired by one (runner-scaler's user data).
    Decrement,
    /// Only terminate; the group replaces it while desired is above the
    /// instance count (the original tool's script).
    Poweroff,
}

impl Exit {
    /// As written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Exit::Decrement => "decrement",
            Exit::Poweroff => "poweroff",
        }
    }
}

/// How long an instance boots before its runner can claim a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// Always this many seconds.
    Fixed(u64),
    /// Uniformly between `low` and `high` seconds (inclusive), drawn from
    /// the seeded generator.
    Uniform { low: u64, high: u64 },
}

impl std::fmt::Display for Boot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Boot::Fixed(s) => write!(f, "{s}s"),
            Boot::Uniform { low, high } => write!(f, "{low}s..{high}s"),
        }
    }
}

/// The group's and its instances' settings.
#[derive(Debug, Clone, Copy)]
pub struct WorldSettings {
    pub boot: Boot,
    /// Seconds an instance waits for a job before it leaves.
    pub idle_timeout: u64,
    pub exit: Exit,
    /// The group's bounds; it starts at `min` instances, all booting.
    pub min: u32,
    pub max: u32,
    /// Seeds the boot-time generator.
    pub seed: u64,
}

/// EC2's least billed time per instance (per-second billing, Linux).
pub const BILLING_MINIMUM: u64 = 60;

/// The resource class and group the simulated pool has.
pub const RESOURCE_CLASS: &str = "simulated";
/// The simulated group's region.
pub const REGION: &str = "simulated";
/// The simulated group's name.
pub const GROUP: &str = "simulated";

/// The group's id.
pub fn group_id() -> GroupId {
    GroupId {
        region: REGION.into(),
        name: GROUP.into(),
    }
}

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub submit: u64,
    pub duration: u64,
    /// When a runner claimed it; `None` if none did.
    pub claimed: Option<u64>,
    /// The instance that ran it.
    pub instance: Option<usize>,
}

impl JobRecord {
    /// Seconds from submit to claim; for a job never claimed, to `end`.
    pub fn wait(&self, end: u64) -> u64 {
        self.claimed.unwrap_or(end.max(self.submit)) - self.submit
    }
}

/// Why an instance left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// Its job was done.
    JobDone,
    /// No job came within the idle timeout.
    IdleTimeout,
    /// Desired was lowered below the instance count and the group chose it.
    ScaleIn,
}

/// What became of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub launched: u64,
    /// When its boot completed, if it did.
    pub ready: Option<u64>,
    /// The job it ran (its index in the trace's order).
    pub job: Option<usize>,
    pub left: Option<(u64, Leave)>,
    /// Launched to replace an instance that left on its own.
    pub replacement: bool,
}

impl InstanceRecord {
    /// Seconds it existed, up to `end` if it is still there.
    pub fn seconds(&self, end: u64) -> u64 {
        self.left.map_or(end, |(at, _)| at).max(self.launched) - self.launched
    }

    /// Seconds EC2 bills for it: per second, with a one-minute minimum.
    pub fn billed_seconds(&self, end: u64) -> u64 {
        self.seconds(end).max(BILLING_MINIMUM)
    }
}

/// Counts at the current second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub waiting: u32,
    pub running: u32,
    pub desired: u32,
    /// Instances in the group: booting, idle or busy.
    pub instances: u32,
}

/// The simulated group and queue.
pub struct World {
    inner: Mutex<State>,
}

/// Kinds of event, in the order they happen within one second. Arrivals
/// (between `Ready` and `IdleTimeout`) come from the trace, not the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Finish,
    Ready,
    Arrival,
    IdleTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Booting,
    Idle,
    Busy,
    Gone,
}

struct State {
    settings: WorldSettings,
    now: u64,
    rng: StdRng,
    jobs: Vec<JobRecord>,
    next_arrival: usize,
    waiting: VecDeque<usize>,
    running: u32,
    instances: Vec<InstanceRecord>,
    status: Vec<Status>,
    /// Instances in the group, by id (= launch order).
    alive: BTreeSet<usize>,
    /// Idle instances by (idle since, id): the longest idle claims first.
    idle: BTreeSet<(u64, usize)>,
    /// (time, phase, instance), earliest first; stale entries are skipped.
    events: BinaryHeap<Reverse<(u64, Phase, usize)>>,
    desired: u32,
    min: u32,
    max: u32,
    policy_state: Option<String>,
    peak: u32,
    decrements_refused: u64,
}

impl World {
    /// A group at `settings.min` instances (booting at second 0) and the
    /// `jobs`, which must be in submit order.
    pub fn new(jobs: &[Job], settings: WorldSettings) -> World {
        debug_assert!(jobs.windows(2).all(|w| w[0].submit <= w[1].submit));
        let mut state = State {
            settings,
            now: 0,
            rng: StdRng::seed_from_u64(settings.seed),
            jobs: jobs
                .iter()
                .map(|j| JobRecord {
                    submit: j.submit,
                    duration: j.duration,
                    claimed: None,
                    instance: None,
                })
                .collect(),
            next_arrival: 0,
            waiting: VecDeque::new(),
            running: 0,
            instances: Vec::new(),
            status: Vec::new(),
            alive: BTreeSet::new(),
            idle: BTreeSet::new(),
            events: BinaryHeap::new(),
            desired: settings.min,
            min: settings.min,
            max: settings.max,
            policy_state: None,
            peak: 0,
            decrements_refused: 0,
        };
        state.launch_up_to_desired(false);
        World {
            inner: Mutex::new(state),
        }
    }

    /// Let everything due up to and including second `to` happen.
    pub fn advance(&self, to: u64) {
        self.state().advance(to);
    }

    /// The current second.
    pub fn now(&self) -> u64 {
        self.state().now
    }

    /// The queue and the group now.
    pub fn counts(&self) -> Counts {
        let s = self.state();
        Counts {
            waiting: s.waiting.len() as u32,
            running: s.running,
            desired: s.desired,
            instances: s.alive.len() as u32,
        }
    }

    /// Every job has arrived and finished.
    pub fn all_jobs_done(&self) -> bool {
        let s = self.state();
        s.next_arrival == s.jobs.len() && s.waiting.is_empty() && s.running == 0
    }

    /// The most instances the group ever had at once.
    pub fn peak(&self) -> u32 {
        self.state().peak
    }

    /// Decrements EC2 refused because desired was at the group's min (those
    /// instances powered off instead).
    pub fn decrements_refused(&self) -> u64 {
        self.state().decrements_refused
    }

    /// What became of every job, in the trace's order.
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.state().jobs.clone()
    }

    /// Every instance ever launched, in launch order.
    pub fn instances(&self) -> Vec<InstanceRecord> {
        self.state().instances.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock is a bug already being reported.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn advance(&mut self, to: u64) {
        loop {
            let event = self.events.peek().map(|Reverse(e)| *e);
            let arrival = self
                .jobs
                .get(self.next_arrival)
                .map(|j| (j.submit, Phase::Arrival, self.next_arrival));
            let next = match (event, arrival) {
                (Some(e), Some(a)) => e.min(a),
                (Some(e), None) => e,
                (None, Some(a)) => a,
                (None, None) => break,
            };
            if next.0 > to {
                break;
            }
            self.now = next.0;
            match next.1 {
                Phase::Arrival => {
                    self.waiting.push_back(self.next_arrival);
                    self.next_arrival += 1;
                }
                phase => {
                    self.events.pop();
                    self.handle(phase, next.2);
                }
            }
            self.claim();
        }
        self.now = self.now.max(to);
    }

    fn handle(&mut self, phase: Phase, id: usize) {
        let now = self.now;
        match (phase, self.status[id]) {
            (Phase::Finish, Status::Busy) => {
                self.running -= 1;
                self.leave_on_its_own(id, Leave::JobDone);
            }
            (Phase::Ready, Status::Booting) => {
                self.status[id] = Status::Idle;
                self.instances[id].ready = Some(now);
                self.idle.insert((now, id));
                let timeout = now + self.settings.idle_timeout;
                self.events.push(Reverse((timeout, Phase::IdleTimeout, id)));
            }
            // An instance is idle at most once (single task), so an idle
            // instance's timeout event is always its own.
            (Phase::IdleTimeout, Status::Idle) => {
                let since = self.instances[id].ready.expect("idle means booted");
                self.idle.remove(&(since, id));
                self.leave_on_its_own(id, Leave::IdleTimeout);
            }
            // The instance was scaled in (or claimed a job) since: stale.
            _ => {}
        }
    }

    /// Idle runners claim waiting jobs, oldest job first.
    fn claim(&mut self) {
        while !self.waiting.is_empty() {
            let Some(&(since, id)) = self.idle.first() else {
                return;
            };
            let job = self.waiting.pop_front().expect("not empty");
            self.idle.remove(&(since, id));
            self.status[id] = Status::Busy;
            self.instances[id].job = Some(job);
            self.jobs[job].claimed = Some(self.now);
            self.jobs[job].instance = Some(id);
            self.running += 1;
            let done = self.now + self.jobs[job].duration;
            self.events.push(Reverse((done, Phase::Finish, id)));
        }
    }

    fn leave_on_its_own(&mut self, id: usize, why: Leave) {
        self.remove(id, why);
        match self.settings.exit {
            Exit::Decrement if self.desired > self.min => self.desired -= 1,
            Exit::Decrement => self.decrements_refused += 1,
            Exit::Poweroff => {}
        }
        self.launch_up_to_desired(true);
    }

    fn remove(&mut self, id: usize, why: Leave) {
        self.status[id] = Status::Gone;
        self.instances[id].left = Some((self.now, why));
        self.alive.remove(&id);
    }

    fn launch_up_to_desired(&mut self, replacement: bool) {
        while (self.alive.len() as u32) < self.desired.min(self.max) {
            let id = self.instances.len();
            let boot = match self.settings.boot {
                Boot::Fixed(seconds) => seconds,
                Boot::Uniform { low, high } => self.rng.random_range(low..=high),
            };
            self.instances.push(InstanceRecord {
                launched: self.now,
                ready: None,
                job: None,
                left: None,
                replacement,
            });
            self.status.push(Status::Booting);
            self.alive.insert(id);
            self.events
                .push(Reverse((self.now + boot, Phase::Ready, id)));
            self.peak = self.peak.max(self.alive.len() as u32);
        }
    }

    /// Terminate instances that run no job, youngest first, down to desired.
    fn scale_in(&mut self) {
        let excess = (self.alive.len() as u32).saturating_sub(self.desired);
        let chosen: Vec<usize> = self
            .alive
            .iter()
            .rev()
            .copied()
            .filter(|&id| self.status[id] != Status::Busy)
            .take(excess as usize)
            .collect();
        for id in chosen {
            if self.status[id] == Status::Idle {
                let since = self.instances[id].ready.expect("idle means booted");
                self.idle.remove(&(since, id));
            }
            self.remove(id, Leave::ScaleIn);
        }
    }

    fn set_desired(&mut self, desired: u32) {
        self.desired = desired;
        self.launch_up_to_desired(false);
        self.scale_in();
    }

    fn group_state(&self) -> GroupState {
        let booting = self
            .alive
            .iter()
            .filter(|&&id| self.status[id] == Status::Booting)
            .count() as u32;
        GroupState {
            desired: self.desired,
            min: self.min,
            max: self.max,
            pending: booting,
            in_service: self.alive.len() as u32 - booting,
            terminating: 0,
            protected: self.running,
            new_instances_protected: true,
            policy_state: self.policy_state.clone(),
        }
    }
}

impl QueueSource for World {
    async fn queue(&self, resource_class: &str) -> Result<Queue, SourceError> {
        if resource_class != RESOURCE_CLASS {
            return Err(SourceError::Refused {
                source_name: "simulated queue",
                message: format!("no resource class {resource_class:?}, only {RESOURCE_CLASS:?}"),
            });
        }
        let s = self.state();
        Ok(Queue {
            waiting: s.waiting.len() as u32,
            running: s.running,
        })
    }
}

impl Groups for World {
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, GroupState>, GroupError> {
        let s = self.state();
        Ok(names
            .iter()
            .filter(|name| region == REGION && name.as_str() == GROUP)
            .map(|name| (name.clone(), s.group_state()))
            .collect())
    }

    async fn apply(&self, group: &GroupId, write: &Write) -> Result<(), GroupError> {
        if *group != group_id() {
            return Err(GroupError::Apply {
                group: group.clone(),
                message: "not the simulated group".into(),
            });
        }
        let mut s = self.state();
        match write {
            Write::Desired(desired) => s.set_desired(*desired),
            Write::DesiredAndBounds { desired, min, max } => {
                (s.min, s.max) = (*min, *max);
                s.set_desired(*desired);
            }
            Write::State(kept) => s.policy_state = kept.clone(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(submit: u64, duration: u64) -> Job {
        Job {
            submit,
            duration,
            resource_class: None,
            line: 0,
        }
    }

    fn settings(exit: Exit) -> WorldSettings {
        WorldSettings {
            boot: Boot::Fixed(90),
            idle_timeout: 300,
            exit,
            min: 0,
            max: 3,
            seed: 1,
        }
    }

    fn set(world: &World, desired: u32) {
        futures::executor::block_on(world.apply(&group_id(), &Write::Desired(desired))).unwrap();
    }

    #[test]
    fn a_launched_instance_boots_claims_runs_and_leaves() {
        let w = World::new(&[job(0, 600)], settings(Exit::Decrement));
        w.advance(60);
        assert_eq!(w.counts().waiting, 1);
        set(&w, 1);
        w.advance(149);
        assert_eq!(w.counts().running, 0, "still booting");
        w.advance(150);
        assert_eq!((w.counts().waiting, w.counts().running), (0, 1));
        w.advance(750);
        let c = w.counts();
        assert_eq!(
            (c.running, c.instances, c.desired),
            (0, 0, 0),
            "left with a decrement"
        );
        let i = &w.instances()[0];
        assert_eq!((i.launched, i.ready, i.job), (60, Some(150), Some(0)));
        assert_eq!(i.left, Some((750, Leave::JobDone)));
        assert_eq!(w.jobs()[0].wait(750), 150);
        assert!(w.all_jobs_done());
    }

    #[test]
    fn poweroff_leaves_desired_and_the_group_replaces_at_once() {
        let w = World::new(&[job(0, 100)], settings(Exit::Poweroff));
        set(&w, 1);
        w.advance(190);
        let c = w.counts();
        assert_eq!((c.instances, c.desired), (1, 1));
        let instances = w.instances();
        assert_eq!(instances.len(), 2);
        assert_eq!(
            (instances[1].launched, instances[1].replacement),
            (190, true)
        );
        // The replacement finds no job and leaves after its idle timeout:
        // and is replaced again.
        w.advance(190 + 90 + 300);
        assert_eq!(w.instances()[1].left, Some((580, Leave::IdleTimeout)));
        assert_eq!(w.instances().len(), 3);
    }

    #[test]
    fn idle_timeout_with_decrement_shrinks_the_group() {
        let w = World::new(&[], settings(Exit::Decrement));
        set(&w, 2);
        w.advance(389);
        assert_eq!(w.counts().instances, 2);
        w.advance(390);
        let c = w.counts();
        assert_eq!((c.instances, c.desired), (0, 0));
    }

    #[test]
    fn scale_in_takes_the_youngest_instances_that_run_no_job() {
        let w = World::new(&[job(0, 1000)], settings(Exit::Decrement));
        set(&w, 1); // 0: claims the job at 90.
        w.advance(100);
        set(&w, 3); // 1 and 2 boot until 190.
        w.advance(200);
        set(&w, 0);
        let instances = w.instances();
        assert_eq!(instances[0].left, None, "busy: protected");
        assert_eq!(instances[1].left, Some((200, Leave::ScaleIn)));
        assert_eq!(instances[2].left, Some((200, Leave::ScaleIn)));
        assert_eq!((w.counts().instances, w.counts().desired), (1, 0));
        // Leaving at desired 0 = min: EC2 refuses the decrement; it powers
        // off, and desired (0) is not above the count, so no replacement.
        w.advance(1090);
        assert_eq!(w.decrements_refused(), 1);
        assert_eq!(w.instances().len(), 3);
    }

    #[test]
    fn launches_stop_at_max() {
        let w = World::new(&[], settings(Exit::Decrement));
        set(&w, 10);
        assert_eq!(w.counts().instances, 3);
        assert_eq!(w.peak(), 3);
    }

    #[test]
    fn uniform_boot_is_seeded() {
        let boots = |seed| {
            let settings = WorldSettings {
                boot: Boot::Uniform { low: 60, high: 120 },
                seed,
                max: 20,
                ..settings(Exit::Decrement)
            };
            let w = World::new(&[], settings);
            set(&w, 20);
            w.advance(200);
            w.instances()
                .iter()
                .map(|i| i.ready.unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(boots(7), boots(7));
        assert_ne!(boots(7), boots(8));
        assert!(boots(7).iter().all(|b| (60..=120).contains(b)));
    }
}
