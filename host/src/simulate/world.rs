//! The simulated world: one Auto Scaling group of single-task runners and
//! the queue of the jobs they run, in one struct, because they share their
//! state (a job is waiting until an instance claims it). It implements both
//! [`Groups`] and [`QueueSource`], so the simulator runs the production
//! [`tick`](crate::tick::tick) against it.
//!
//! Time is whole seconds from the trace's start, and moves only through
//! [`World::advance`]. Within one second things happen in this order: jobs
//! finish (and their runners exit), boots complete, jobs arrive, idle
//! timeouts expire, leave attempts are retried; an idle runner claims the
//! oldest waiting job as soon as both exist. A tick at that second sees the
//! result.
//!
//! The group follows EC2 Auto Scaling's documented behaviour (rule 9 of the
//! design), not the local test endpoint's:
//! - A desired capacity outside the group's bounds is refused, as AWS
//!   refuses it (`ValidationError`).
//! - Desired above the instance count launches instances at once.
//! - Desired below the instance count terminates the difference, chosen
//!   among the instances *not protected from scale-in* by the default
//!   termination policy (closest to the next billing hour; ties, which AWS
//!   breaks at random, go to the instance launched first) — whether or not
//!   they run a job. Protected instances are never terminated by scale-in:
//!   the group runs above its desired capacity until they leave on their own
//!   ("Use instance scale-in protection", EC2 Auto Scaling User Guide).
//!   [`Protection::All`] (every instance protected, as the CloudFormation
//!   stack in `examples/cloudformation/` sets up) makes a lower desired
//!   capacity terminate nothing. In the simulator an instance is protected
//!   from launch: on AWS protection starts once the instance is `InService`,
//!   seconds after launch, long before its runner's boot is done.
//! - An instance leaves on its own when its runner exits: its job is done,
//!   or its idle timeout passes with no job. With [`Exit::Decrement`] (the
//!   user data in `userdata/`) it calls `TerminateInstanceInAutoScalingGroup`
//!   with `ShouldDecrementDesiredCapacity`, which AWS refuses while desired
//!   equals the group's minimum ("Currently, desiredSize equals minSize");
//!   the user data then retries [`LEAVE_RETRY_DELAYS`] apart and, refused
//!   every time, powers off — and the group, now below its desired
//!   capacity, launches a replacement. Together with the scaler that is the
//!   *double decrement*: a scaler that lowered desired for an instance that
//!   then also decrements leaves desired one lower each time, down to the
//!   minimum, where the next decrements are refused.
//! - With [`Exit::Poweroff`] (the original tool's script) an instance only
//!   terminates, and the group launches a replacement at once while desired
//!   is above the instance count.
//! - A job whose instance scale-in terminates is lost (killed), not queued
//!   again.
//! - With a [`WarmPool`] ("Warm pools for Amazon EC2 Auto Scaling"), the
//!   group keeps that many instances launched, initialised by the user data
//!   and stopped (`Warmed:Stopped`) outside its desired capacity. A launch
//!   takes a warmed instance when there is one: it starts in
//!   [`WarmPool::start`] instead of a full boot. The pool refills at once by
//!   launching an instance into it, which runs (and bills) for a full boot,
//!   then stops and bills only its volume. The pool is full when the run
//!   starts (the stack was created earlier); instances never return to it
//!   (`ReuseOnScaleIn` false: a used runner is never reused).

use super::trace::Job;
use crate::groups::{GroupError, GroupId, GroupState, Groups, Write};
use crate::observation::Queue;
use crate::sources::{QueueId, QueueSource, SourceError};
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

/// Which instances the group protects from scale-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protection {
    /// Every instance: a lower desired capacity terminates nothing, and
    /// instances leave only on their own (the shipped CloudFormation stack).
    All,
    /// None: a lower desired capacity terminates instances the termination
    /// policy picks, busy ones too.
    None,
}

impl Protection {
    /// As written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protection::All => "all",
            Protection::None => "none",
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

/// The group's warm pool: `size` stopped, initialised instances (the
/// stack's `WarmPoolSize`: the pool's `MinSize` and
/// `MaxGroupPreparedCapacity`, so it holds `size` whatever the desired
/// capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmPool {
    pub size: u32,
    /// Seconds from a warmed instance's start to its runner taking jobs.
    pub start: u64,
    /// The group has a warm pool whatever its size, which the policy sets
    /// (`PutWarmPool`): `size` is where it starts.
    pub sized_by_policy: bool,
}

impl WarmPool {
    /// No warm pool: every launch boots in full.
    pub const NONE: WarmPool = WarmPool {
        size: 0,
        start: 0,
        sized_by_policy: false,
    };

    /// Whether the group has a warm pool.
    pub fn exists(&self) -> bool {
        self.size > 0 || self.sized_by_policy
    }
}

/// The group's and its instances' settings.
#[derive(Debug, Clone, Copy)]
pub struct WorldSettings {
    pub boot: Boot,
    pub warm_pool: WarmPool,
    /// Seconds an instance waits for a job before it leaves.
    pub idle_timeout: u64,
    pub exit: Exit,
    pub protection: Protection,
    /// The group's bounds; it starts at `min` instances, all booting.
    pub min: u32,
    pub max: u32,
    /// Seeds the boot-time generator.
    pub seed: u64,
}

/// A stopped instance's price per hour: its 30 GiB gp3 root volume at
/// $0.08 per GiB-month (us-east-1), about $0.0033.
pub const STOPPED_PRICE_PER_HOUR: f64 = 30.0 * 0.08 / 730.0;

/// EC2's least billed time per instance (per-second billing, Linux).
pub const BILLING_MINIMUM: u64 = 60;

/// Seconds between the user data's attempts to leave with a decrement, at
/// its defaults (`LEAVE_ATTEMPTS=5`, `LEAVE_RETRY_DELAY=5`, doubling): five
/// attempts, at 0, 5, 15, 35 and 75 s; refused every time, it powers off
/// right after the last.
pub const LEAVE_RETRY_DELAYS: [u64; 4] = [5, 10, 20, 40];

/// Seconds from a runner's exit to its instance powering off when every
/// decrement is refused (75).
pub const LEAVE_GIVE_UP: u64 = {
    let mut total = 0;
    let mut i = 0;
    while i < LEAVE_RETRY_DELAYS.len() {
        total += LEAVE_RETRY_DELAYS[i];
        i += 1;
    }
    total
};

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
    /// When scale-in terminated its instance before it was done.
    pub killed: Option<u64>,
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
    /// Its runner exited after its job.
    JobDone,
    /// Its runner exited after the idle timeout with no job.
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
    /// When its runner exited (job done or idle timeout), if it did: it
    /// leaves then, or after refused decrements.
    pub runner_exited: Option<u64>,
    pub left: Option<(u64, Leave)>,
    /// Launched to replace an instance that left on its own.
    pub replacement: bool,
    /// Protected from scale-in.
    pub protected: bool,
    /// Decrements AWS refused it (desired was at the group's min).
    pub refused: u32,
    /// It left by powering off after every decrement was refused.
    pub powered_off: bool,
    /// It came from the warm pool (`launched` is when it was started).
    pub from_pool: bool,
}

/// An instance's time in the warm pool: launched into it, running its user
/// data until `warmed`, then stopped until it `left` into the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRecord {
    pub launched: u64,
    pub warmed: u64,
    pub left: Option<u64>,
}

impl PoolRecord {
    /// Seconds EC2 bills it as a running instance while in the pool (a
    /// minute at least, unless it was there before the run).
    pub fn billed_running_seconds(&self, end: u64) -> u64 {
        let until = self.left.unwrap_or(end).min(self.warmed).max(self.launched);
        match until - self.launched {
            0 => 0,
            s => s.max(BILLING_MINIMUM),
        }
    }

    /// Seconds it was stopped in the pool (only its volume is billed).
    pub fn stopped_seconds(&self, end: u64) -> u64 {
        self.left.unwrap_or(end).max(self.warmed) - self.warmed
    }
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
    /// Instances in the group: booting, idle, busy or leaving.
    pub instances: u32,
    /// Warmed (stopped, ready to start) instances in the warm pool.
    pub warmed: u32,
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
    /// The user data tries again to leave with a decrement.
    LeaveAgain,
    /// An instance launched into the warm pool is initialised and stops
    /// (the id is its index among the pool's records).
    Warmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Booting,
    Idle,
    Busy,
    /// Its runner exited (for this reason); the user data is trying to
    /// leave with a decrement, this many attempts refused so far.
    Leaving(Leave, usize),
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
    /// Every instance ever in the warm pool, and the warmed ones (by
    /// index), longest warmed first.
    pool: Vec<PoolRecord>,
    warmed: VecDeque<usize>,
    /// The pool's instances now, initialising or warmed (by index).
    pooled: BTreeSet<usize>,
    /// The warm pool's size now (its `MinSize`).
    warm_size: u32,
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
                    killed: None,
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
            pool: Vec::new(),
            warmed: VecDeque::new(),
            pooled: BTreeSet::new(),
            warm_size: settings.warm_pool.size,
        };
        for id in 0..settings.warm_pool.size as usize {
            state.pool.push(PoolRecord {
                launched: 0,
                warmed: 0,
                left: None,
            });
            state.warmed.push_back(id);
            state.pooled.insert(id);
        }
        state.reconcile(false);
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
            warmed: s.warmed.len() as u32,
        }
    }

    /// Every job has arrived and finished (or was killed).
    pub fn all_jobs_done(&self) -> bool {
        let s = self.state();
        s.next_arrival == s.jobs.len() && s.waiting.is_empty() && s.running == 0
    }

    /// The most instances the group ever had at once.
    pub fn peak(&self) -> u32 {
        self.state().peak
    }

    /// Runner exits whose every decrement EC2 refused because desired was
    /// at the group's min (those instances powered off instead).
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

    /// Every instance ever in the warm pool.
    pub fn pool(&self) -> Vec<PoolRecord> {
        self.state().pool.clone()
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
        if phase == Phase::Warmed {
            // Unless the pool shrank and terminated it meanwhile.
            if self.pool[id].left.is_none() {
                self.warmed.push_back(id);
            }
            return;
        }
        match (phase, self.status[id]) {
            (Phase::Finish, Status::Busy) => {
                self.running -= 1;
                self.runner_exits(id, Leave::JobDone);
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
                self.runner_exits(id, Leave::IdleTimeout);
            }
            (Phase::LeaveAgain, Status::Leaving(why, refused)) => {
                self.try_to_leave(id, why, refused)
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

    /// The runner of `id` exited: the instance leaves as its exit behaviour
    /// says.
    fn runner_exits(&mut self, id: usize, why: Leave) {
        self.instances[id].runner_exited = Some(self.now);
        match self.settings.exit {
            Exit::Decrement => self.try_to_leave(id, why, 0),
            Exit::Poweroff => {
                self.remove(id, why);
                self.reconcile(true);
            }
        }
    }

    /// `TerminateInstanceInAutoScalingGroup` with a decrement, attempt
    /// `refused + 1`: AWS refuses it while desired equals the group's min.
    fn try_to_leave(&mut self, id: usize, why: Leave, refused: usize) {
        if self.desired > self.min {
            self.desired -= 1;
            self.remove(id, why);
        } else if let Some(delay) = LEAVE_RETRY_DELAYS.get(refused) {
            self.instances[id].refused += 1;
            self.status[id] = Status::Leaving(why, refused + 1);
            let again = self.now + delay;
            self.events.push(Reverse((again, Phase::LeaveAgain, id)));
            return;
        } else {
            // The last attempt was refused too: the user data powers off,
            // and the group, below its desired capacity, replaces it.
            self.instances[id].refused += 1;
            self.instances[id].powered_off = true;
            self.decrements_refused += 1;
            self.remove(id, why);
        }
        self.reconcile(true);
    }

    fn remove(&mut self, id: usize, why: Leave) {
        self.status[id] = Status::Gone;
        self.instances[id].left = Some((self.now, why));
        self.alive.remove(&id);
    }

    /// What the group does to match its desired capacity: launch up to it,
    /// or terminate unprotected instances down to it. `replacement` marks
    /// launches made because an instance left on its own.
    fn reconcile(&mut self, replacement: bool) {
        while (self.alive.len() as u32) < self.desired.min(self.max) {
            let id = self.instances.len();
            let from_pool = self.warmed.pop_front();
            let boot = match from_pool {
                Some(index) => {
                    self.pool[index].left = Some(self.now);
                    self.pooled.remove(&index);
                    self.refill_pool();
                    self.settings.warm_pool.start
                }
                None => self.boot_time(),
            };
            self.instances.push(InstanceRecord {
                launched: self.now,
                ready: None,
                job: None,
                runner_exited: None,
                left: None,
                replacement,
                protected: self.settings.protection == Protection::All,
                refused: 0,
                powered_off: false,
                from_pool: from_pool.is_some(),
            });
            self.status.push(Status::Booting);
            self.alive.insert(id);
            self.events
                .push(Reverse((self.now + boot, Phase::Ready, id)));
            self.peak = self.peak.max(self.alive.len() as u32);
        }
        self.scale_in();
    }

    fn boot_time(&mut self) -> u64 {
        match self.settings.boot {
            Boot::Fixed(seconds) => seconds,
            Boot::Uniform { low, high } => self.rng.random_range(low..=high),
        }
    }

    /// Launch into the warm pool until it holds its size again: each new
    /// instance runs its user data for a full boot, then stops.
    fn refill_pool(&mut self) {
        for _ in self.pooled.len() as u32..self.warm_size {
            let boot = self.boot_time();
            let index = self.pool.len();
            self.pooled.insert(index);
            self.pool.push(PoolRecord {
                launched: self.now,
                warmed: self.now + boot,
                left: None,
            });
            self.events
                .push(Reverse((self.now + boot, Phase::Warmed, index)));
        }
    }

    /// Terminate the pool's instances above its size, the newest first (those
    /// still being initialised, which bill as running, before the stopped
    /// ones).
    fn shrink_pool(&mut self) {
        while self.pooled.len() as u32 > self.warm_size {
            let index = self.pooled.pop_last().expect("more than the size");
            self.pool[index].left = Some(self.now);
            self.warmed.retain(|&warmed| warmed != index);
        }
    }

    /// `PutWarmPool`: the pool keeps `size` instances from now on.
    fn size_pool(&mut self, size: u32) {
        self.warm_size = size;
        self.refill_pool();
        self.shrink_pool();
    }

    /// Terminate instances down to desired, among the unprotected ones, the
    /// default termination policy's way: closest to the next billing hour
    /// first (ties: launched first), whatever they run.
    fn scale_in(&mut self) {
        let excess = (self.alive.len() as u32).saturating_sub(self.desired) as usize;
        if excess == 0 {
            return;
        }
        let now = self.now;
        let mut candidates: Vec<usize> = self
            .alive
            .iter()
            .copied()
            .filter(|&id| !self.instances[id].protected)
            .collect();
        candidates.sort_by_key(|&id| (Reverse((now - self.instances[id].launched) % 3600), id));
        for id in candidates.into_iter().take(excess) {
            match self.status[id] {
                Status::Idle => {
                    let since = self.instances[id].ready.expect("idle means booted");
                    self.idle.remove(&(since, id));
                }
                Status::Busy => {
                    let job = self.instances[id].job.expect("busy means a job");
                    self.jobs[job].killed = Some(now);
                    self.running -= 1;
                }
                Status::Booting | Status::Leaving(..) | Status::Gone => {}
            }
            self.remove(id, Leave::ScaleIn);
        }
    }

    /// Set desired capacity and bounds, which AWS validated.
    fn set_desired(&mut self, desired: u32, min: u32, max: u32) {
        (self.desired, self.min, self.max) = (desired, min, max);
        self.reconcile(false);
    }

    fn group_state(&self) -> GroupState {
        let count =
            |what: &dyn Fn(usize) -> bool| self.alive.iter().filter(|&&id| what(id)).count() as u32;
        let booting = count(&|id| self.status[id] == Status::Booting);
        let protected = count(&|id| self.instances[id].protected);
        GroupState {
            desired: self.desired,
            min_size: self.min,
            max_size: self.max,
            pending: booting,
            in_service: self.alive.len() as u32 - booting,
            terminating: 0,
            protected,
            unprotected: self.alive.len() as u32 - protected,
            new_instances_protected: self.settings.protection == Protection::All,
            policy_state: self.policy_state.clone(),
            warm_pool: self
                .settings
                .warm_pool
                .exists()
                .then(|| crate::groups::WarmPoolState {
                    instances: Some(self.pooled.len() as u32),
                    min_size: self.warm_size,
                    max_prepared: Some(self.warm_size),
                    pool_state: Some("Stopped".into()),
                    reuse_on_scale_in: Some(false),
                    deleting: false,
                }),
        }
    }
}

impl QueueSource for World {
    async fn queue(&self, queue: &QueueId) -> Result<Queue, SourceError> {
        if queue.name != RESOURCE_CLASS {
            return Err(SourceError::Refused {
                source_name: "simulated queue",
                message: format!("no queue {queue}, only {RESOURCE_CLASS:?}"),
            });
        }
        let s = self.state();
        Ok(Queue {
            waiting: s.waiting.len() as u32,
            running: s.running,
            blocked: None,
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
        let failed = |message: String| GroupError::Apply {
            group: group.clone(),
            message,
        };
        if *group != group_id() {
            return Err(failed("not the simulated group".into()));
        }
        let mut s = self.state();
        // What AWS refuses (a ValidationError), in its words.
        match *write {
            Write::Desired(desired) if desired < s.min => Err(failed(format!(
                "ValidationError: New SetDesiredCapacity value {desired} is below min value {} for the AutoScalingGroup.",
                s.min
            ))),
            Write::Desired(desired) if desired > s.max => Err(failed(format!(
                "ValidationError: New SetDesiredCapacity value {desired} is above max value {} for the AutoScalingGroup.",
                s.max
            ))),
            Write::Desired(desired) => {
                let (min, max) = (s.min, s.max);
                s.set_desired(desired, min, max);
                Ok(())
            }
            Write::DesiredAndBounds { desired, min, max } if desired < min || desired > max => {
                Err(failed(format!(
                    "ValidationError: Desired capacity:{desired} must be between the specified min size:{min} and max size:{max}"
                )))
            }
            Write::DesiredAndBounds { desired, min, max } => {
                s.set_desired(desired, min, max);
                Ok(())
            }
            Write::State(ref kept) => {
                s.policy_state = kept.clone();
                Ok(())
            }
            Write::WarmPool { .. } if !s.settings.warm_pool.exists() => Err(failed(
                "the simulated group has no warm pool (--warm-pool policy gives it one)".into(),
            )),
            Write::WarmPool { size, .. } => {
                s.size_pool(size);
                Ok(())
            }
        }
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
            wait: None,
            line: 0,
        }
    }

    fn settings(exit: Exit, protection: Protection) -> WorldSettings {
        WorldSettings {
            boot: Boot::Fixed(90),
            warm_pool: WarmPool::NONE,
            idle_timeout: 300,
            exit,
            protection,
            min: 0,
            max: 3,
            seed: 1,
        }
    }

    fn set(world: &World, desired: u32) {
        futures::executor::block_on(world.apply(&group_id(), &Write::Desired(desired))).unwrap();
    }

    fn left(w: &World) -> Vec<Option<(u64, Leave)>> {
        w.instances().iter().map(|i| i.left).collect()
    }

    #[test]
    fn a_launched_instance_boots_claims_runs_and_leaves() {
        let w = World::new(&[job(0, 600)], settings(Exit::Decrement, Protection::All));
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
        assert_eq!(
            (i.runner_exited, i.refused, i.powered_off),
            (Some(750), 0, false)
        );
        assert_eq!(w.jobs()[0].wait(750), 150);
        assert!(w.all_jobs_done());
    }

    /// `--warm-pool policy`: the pool starts empty; `PutWarmPool` fills it
    /// (each instance billed as running for its initialisation, then
    /// stopped), launches take from it, and a smaller size terminates the
    /// newest of its instances first.
    #[test]
    fn a_pool_the_policy_sizes_fills_serves_and_shrinks() {
        let w = World::new(
            &[job(500, 600)],
            WorldSettings {
                warm_pool: WarmPool {
                    size: 0,
                    start: 25,
                    sized_by_policy: true,
                },
                ..settings(Exit::Decrement, Protection::All)
            },
        );
        let put = |size| {
            futures::executor::block_on(w.apply(
                &group_id(),
                &Write::WarmPool {
                    size,
                    pool_state: None,
                    reuse_on_scale_in: None,
                },
            ))
            .unwrap()
        };
        let described = || {
            let groups = futures::executor::block_on(w.describe(REGION, &[GROUP.into()])).unwrap();
            groups[GROUP].warm_pool.clone().expect("a warm pool")
        };
        assert_eq!((described().min_size, described().instances), (0, Some(0)));
        w.advance(10);
        put(3);
        assert_eq!((described().min_size, described().instances), (3, Some(3)));
        assert_eq!(w.counts().warmed, 0, "initialising");
        w.advance(100);
        assert_eq!(w.counts().warmed, 3, "warmed after a full boot");
        w.advance(500);
        set(&w, 1);
        assert!(w.instances()[0].from_pool);
        w.advance(525);
        assert_eq!(w.counts().running, 1, "started in 25 s");
        // Its replacement in the pool initialises; a smaller pool then
        // terminates it first, the newest.
        put(2);
        let pool = w.pool();
        assert_eq!(pool.len(), 4);
        assert_eq!(pool[3].left, Some(525), "{pool:?}");
        assert_eq!(
            pool[3].billed_running_seconds(2000),
            60,
            "a minute at least"
        );
        assert_eq!(w.counts().warmed, 2);
        put(0);
        assert_eq!(w.counts().warmed, 0);
        assert_eq!(described().instances, Some(0));
        // A group without a pool refuses the write, as the simulator's user
        // is told.
        let none = World::new(&[], settings(Exit::Decrement, Protection::All));
        let err = futures::executor::block_on(none.apply(
            &group_id(),
            &Write::WarmPool {
                size: 1,
                pool_state: None,
                reuse_on_scale_in: None,
            },
        ))
        .unwrap_err();
        assert!(err.to_string().contains("--warm-pool policy"), "{err}");
        assert_eq!(
            futures::executor::block_on(none.describe(REGION, &[GROUP.into()])).unwrap()[GROUP]
                .warm_pool,
            None
        );
    }

    #[test]
    fn a_launch_starts_a_warmed_instance_and_the_pool_refills_with_a_full_boot() {
        let w = World::new(
            &[job(0, 600), job(0, 600)],
            WorldSettings {
                warm_pool: WarmPool {
                    size: 1,
                    start: 25,
                    sized_by_policy: false,
                },
                ..settings(Exit::Decrement, Protection::All)
            },
        );
        assert_eq!(w.counts().warmed, 1, "the pool is full from the start");
        w.advance(10);
        set(&w, 2);
        // One instance came from the pool, one booted in full: the pool's
        // replacement is still initialising, so it could not serve.
        let instances = w.instances();
        assert_eq!(
            instances.iter().map(|i| i.from_pool).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(w.counts().warmed, 0);
        w.advance(35);
        assert_eq!(w.counts().running, 1, "the warmed one runs a job at 35 s");
        assert_eq!(w.jobs()[0].claimed, Some(35));
        w.advance(100);
        assert_eq!(w.counts().running, 2, "the cold one at 100 s");
        assert_eq!(w.counts().warmed, 1, "the replacement stopped at 100 s");
        let pool = w.pool();
        assert_eq!(pool.len(), 2);
        assert_eq!(
            (pool[0].launched, pool[0].warmed, pool[0].left),
            (0, 0, Some(10))
        );
        assert_eq!(
            (pool[1].launched, pool[1].warmed, pool[1].left),
            (10, 100, None)
        );
        // Billed: the replacement ran 90 s to initialise, then stopped; the
        // one there before the run bills nothing while in the pool.
        assert_eq!(pool[1].billed_running_seconds(1000), 90);
        assert_eq!(pool[1].stopped_seconds(1000), 900);
        assert_eq!(pool[0].billed_running_seconds(1000), 0);
        assert_eq!(pool[0].stopped_seconds(1000), 10);
        // Instances never return to the pool: the busy ones leave after
        // their jobs with a decrement, the pool keeps its one.
        w.advance(2000);
        let c = w.counts();
        assert_eq!((c.instances, c.desired, c.warmed), (0, 0, 1));
        assert_eq!(w.pool().len(), 2);
    }

    #[test]
    fn poweroff_leaves_desired_and_the_group_replaces_at_once() {
        let w = World::new(&[job(0, 100)], settings(Exit::Poweroff, Protection::All));
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
        let w = World::new(&[], settings(Exit::Decrement, Protection::All));
        set(&w, 2);
        w.advance(389);
        assert_eq!(w.counts().instances, 2);
        w.advance(390);
        let c = w.counts();
        assert_eq!((c.instances, c.desired), (0, 0));
    }

    // Protected instances: a lower desired capacity terminates none, busy,
    // idle or booting; the group runs above desired until they leave.
    #[test]
    fn lowering_desired_on_a_protected_group_terminates_nothing() {
        let w = World::new(&[job(0, 1000)], settings(Exit::Decrement, Protection::All));
        set(&w, 1); // 0: claims the job at 90.
        w.advance(100);
        set(&w, 3); // 1 and 2 boot until 190.
        w.advance(150);
        set(&w, 0);
        assert_eq!((w.counts().instances, w.counts().desired), (3, 0));
        assert_eq!(left(&w), vec![None, None, None]);
        // 1 and 2 boot, idle, and time out at 490: desired is 0 = min, so
        // each decrement is refused, retried at 495, 505, 525 and 565, and
        // they power off at 565; desired 0 is below the count, so no
        // replacement.
        w.advance(564);
        assert_eq!(w.counts().instances, 3);
        assert_eq!(w.instances()[1].refused, 4);
        w.advance(565);
        assert_eq!(
            left(&w),
            vec![
                None,
                Some((565, Leave::IdleTimeout)),
                Some((565, Leave::IdleTimeout))
            ]
        );
        let i = &w.instances()[1];
        assert_eq!(
            (i.runner_exited, i.refused, i.powered_off),
            (Some(490), 5, true)
        );
        assert_eq!(w.decrements_refused(), 2);
        // The busy one finishes at 1090: refused too, gone at 1165.
        w.advance(1165);
        assert_eq!(w.instances()[0].left, Some((1165, Leave::JobDone)));
        assert_eq!((w.decrements_refused(), w.instances().len()), (3, 3));
    }

    // The double decrement: the scaler lowers desired for instances that
    // also decrement when they leave. Three busy instances, desired lowered
    // from 3 to 1: the first to finish takes desired to 0, the other two are
    // refused (0 = min) and power off 75 s later.
    #[test]
    fn the_double_decrement() {
        let jobs = [job(0, 300), job(0, 400), job(0, 500)];
        let w = World::new(&jobs, settings(Exit::Decrement, Protection::All));
        set(&w, 3); // all three claim at 90.
        w.advance(100);
        set(&w, 1);
        w.advance(390);
        assert_eq!((w.counts().instances, w.counts().desired), (2, 0));
        w.advance(600);
        let gone: Vec<_> = w
            .instances()
            .iter()
            .map(|i| (i.left, i.powered_off))
            .collect();
        assert_eq!(
            gone,
            vec![
                (Some((390, Leave::JobDone)), false),
                (Some((490 + LEAVE_GIVE_UP, Leave::JobDone)), true),
                (None, false),
            ]
        );
        w.advance(665);
        assert_eq!(w.instances()[2].left, Some((665, Leave::JobDone)));
        assert_eq!(w.decrements_refused(), 2);
    }

    // At a min of 1, a leaving instance's decrement is refused; it powers
    // off, and the group launches a replacement to stay at its min.
    #[test]
    fn a_refused_decrement_at_min_powers_off_and_is_replaced() {
        let w = World::new(
            &[],
            WorldSettings {
                min: 1,
                ..settings(Exit::Decrement, Protection::All)
            },
        );
        w.advance(390); // booted at 90, idle until 390.
        assert_eq!(w.instances()[0].refused, 1);
        w.advance(464);
        assert_eq!(w.instances().len(), 1);
        w.advance(465);
        let i = w.instances();
        assert_eq!(i[0].left, Some((465, Leave::IdleTimeout)));
        assert_eq!((i[1].launched, i[1].replacement), (465, true));
        assert_eq!(w.counts().desired, 1);
    }

    // A decrement refused at first succeeds on a retry once desired is
    // above the min again (the scaler raised it for a new job): that
    // decrement then cancels one of the scaler's launches.
    #[test]
    fn a_retry_succeeds_once_desired_is_above_min() {
        let w = World::new(
            &[],
            WorldSettings {
                min: 1,
                ..settings(Exit::Decrement, Protection::All)
            },
        );
        w.advance(390); // idle since 90: refused, desired 1 = min 1.
        set(&w, 3); // two launches at 390.
        assert_eq!(w.counts().instances, 3);
        w.advance(395); // the retry is accepted: desired 2, instance 0 gone.
        let c = w.counts();
        assert_eq!((c.desired, c.instances), (2, 2));
        assert_eq!(w.instances()[0].left, Some((395, Leave::IdleTimeout)));
        assert_eq!((w.instances()[0].refused, w.decrements_refused()), (1, 0));
    }

    // Unprotected instances: scale-in terminates the difference, closest to
    // the next billing hour first — busy ones too, whose jobs are lost.
    #[test]
    fn scale_in_on_an_unprotected_group_takes_any_instance() {
        let w = World::new(&[job(0, 1000)], settings(Exit::Decrement, Protection::None));
        set(&w, 1); // 0: launched at 0, claims the job at 90.
        w.advance(100);
        set(&w, 3); // 1 and 2, launched at 100.
        w.advance(200);
        set(&w, 1);
        // Instance 0 is 200 s into its hour, 1 and 2 only 100 s: 0 goes
        // first, with its job; then 1 (launched first of the tie).
        assert_eq!(
            left(&w),
            vec![
                Some((200, Leave::ScaleIn)),
                Some((200, Leave::ScaleIn)),
                None
            ]
        );
        assert_eq!(w.jobs()[0].killed, Some(200));
        assert_eq!(w.counts().running, 0);
        assert!(w.all_jobs_done());
    }

    #[test]
    fn desired_outside_the_bounds_is_refused_as_aws_refuses_it() {
        let w = World::new(
            &[],
            WorldSettings {
                min: 1,
                ..settings(Exit::Decrement, Protection::All)
            },
        );
        let apply = |write| futures::executor::block_on(w.apply(&group_id(), &write));
        let err = apply(Write::Desired(0)).unwrap_err().to_string();
        assert!(err.contains("value 0 is below min value 1"), "{err}");
        let err = apply(Write::Desired(4)).unwrap_err().to_string();
        assert!(err.contains("value 4 is above max value 3"), "{err}");
        let err = apply(Write::DesiredAndBounds {
            desired: 5,
            min: 0,
            max: 4,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("Desired capacity:5 must be between"), "{err}");
        assert_eq!(w.counts().desired, 1, "nothing changed");
        apply(Write::DesiredAndBounds {
            desired: 0,
            min: 0,
            max: 4,
        })
        .unwrap();
        assert_eq!(w.counts().desired, 0);
    }

    #[test]
    fn launches_stop_at_max() {
        let w = World::new(
            &[],
            WorldSettings {
                max: 10,
                ..settings(Exit::Decrement, Protection::All)
            },
        );
        set(&w, 10);
        assert_eq!(w.counts().instances, 10);
        assert_eq!(w.peak(), 10);
    }

    #[test]
    fn uniform_boot_is_seeded() {
        let boots = |seed| {
            let settings = WorldSettings {
                boot: Boot::Uniform { low: 60, high: 120 },
                seed,
                max: 20,
                ..settings(Exit::Decrement, Protection::All)
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

    #[test]
    fn the_user_data_gives_up_after_75_seconds() {
        assert_eq!(LEAVE_GIVE_UP, 75);
    }
}
