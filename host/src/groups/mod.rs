//! Capacity targets: the groups whose desired capacity the scaler sets. The
//! EC2 Auto Scaling group is the real one ([`asg`]); [`MemoryGroups`] is the
//! in-memory one the tests, the benchmark and the simulator use.

pub mod asg;
mod memory;
mod write_outcome;

pub use memory::MemoryGroups;

use std::collections::HashMap;
use std::future::Future;

/// Group names per `DescribeAutoScalingGroups` call: the API's limit when
/// `MaxRecords` is raised to its maximum, 100, as the adapter does (50
/// without it), so a page holds the whole batch.
pub const DESCRIBE_BATCH: usize = 100;

/// Names a group: its region and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId {
    pub region: String,
    pub name: String,
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.region)
    }
}

/// What the tick needs to know of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    pub desired: u32,
    /// The group's own bounds (`MinSize`, `MaxSize`); the host widens them
    /// to the pool's when it must. Named apart from a pool's `min`/`max`.
    pub min_size: u32,
    pub max_size: u32,
    /// Instances launching (`Pending*`).
    pub pending: u32,
    /// Instances in service (`InService`).
    pub in_service: u32,
    /// Instances leaving (`Terminating*`, `Detaching`, `Standby`, ...).
    pub terminating: u32,
    /// Instances protected from scale-in.
    pub protected: u32,
    /// Instances launching or in service that are *not* protected from
    /// scale-in, judged per instance: a lower desired capacity lets Auto
    /// Scaling terminate any of them ([`crate::plan::scale_in_limit`]).
    /// Instances launched before the group's flag was switched on stay
    /// unprotected while the flag is on.
    pub unprotected: u32,
    /// Whether the group protects the instances it launches from scale-in.
    pub new_instances_protected: bool,
    /// The policy's state from the [`STATE_TAG`](crate::state::STATE_TAG) tag.
    pub policy_state: Option<String>,
    /// The group's warm pool, when it has one.
    pub warm_pool: Option<WarmPoolState>,
}

/// A group's warm pool as `DescribeAutoScalingGroups` tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmPoolState {
    /// Instances in the pool (`WarmPoolSize`), when the answer says.
    pub instances: Option<u32>,
    /// Its `MinSize` (0 when unset).
    pub min_size: u32,
    /// Its `MaxGroupPreparedCapacity`, when set: with `MinSize` equal to
    /// it, the pool holds that many whatever the desired capacity.
    pub max_prepared: Option<u32>,
    /// Its `PoolState` (`Stopped`, `Hibernated`, `Running`), which a write
    /// keeps as it is.
    pub pool_state: Option<String>,
    /// Its `InstanceReusePolicy`'s `ReuseOnScaleIn`, kept as it is too.
    pub reuse_on_scale_in: Option<bool>,
    /// The pool is being deleted (`Status` `PendingDelete`): it is not
    /// sized.
    pub deleting: bool,
}

impl WarmPoolState {
    /// How many instances the pool keeps, when that is a fixed number.
    pub fn size(&self) -> u32 {
        self.min_size
    }
}

/// One write to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set the desired capacity (`SetDesiredCapacity`).
    Desired(u32),
    /// Set the desired capacity and the group's own bounds, when the desired
    /// capacity lies outside them (`UpdateAutoScalingGroup`).
    DesiredAndBounds { desired: u32, min: u32, max: u32 },
    /// Keep the policy's state in the group's tag, or remove the tag.
    State(Option<String>),
    /// Make the group's warm pool keep `size` instances (`PutWarmPool` with
    /// `MinSize` and `MaxGroupPreparedCapacity` both `size`), its pool state
    /// and reuse policy as they were.
    WarmPool {
        size: u32,
        pool_state: Option<String>,
        reuse_on_scale_in: Option<bool>,
    },
}

/// Reads and writes groups.
pub trait Groups: Send + Sync {
    /// Describe the groups `names` of `region` in as few calls as the API
    /// allows. A name missing from the answer is a group that does not exist.
    fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> impl Future<Output = Result<HashMap<String, GroupState>, GroupError>> + Send;

    /// Make one write.
    fn apply(
        &self,
        group: &GroupId,
        write: &Write,
    ) -> impl Future<Output = Result<(), GroupError>> + Send;
}

/// A group could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("cannot describe the Auto Scaling groups of {region}: {message}")]
    Describe { region: String, message: String },
    /// The write was refused, or never sent: the group did not change.
    #[error("cannot update the Auto Scaling group {group}: {message}")]
    Apply { group: GroupId, message: String },
    /// The write was sent and no answer says what became of it (a timeout,
    /// a connection dropped after sending, an answer that could not be
    /// read): the group may or may not have changed.
    #[error(
        "the update of the Auto Scaling group {group} may or may not have been made: {message}"
    )]
    Unknown { group: GroupId, message: String },
}

impl GroupError {
    /// Whether the write may have been made although it failed.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, GroupError::Unknown { .. })
    }
}
