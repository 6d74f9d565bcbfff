//! In-memory groups: state you set, calls you can count, failures you
//! inject (refusals, hangs, answers lost after the write was made).

use super::{GroupError, GroupId, GroupState, Groups, Write, DESCRIBE_BATCH};
use std::collections::HashMap;
use std::sync::Mutex;

/// Groups kept in memory. Writes change the state as EC2 Auto Scaling would
/// (desired, bounds, the state tag) and are recorded. As on AWS, a desired
/// capacity outside the group's bounds is refused, and a desired capacity
/// below the instance count terminates unprotected instances (protected
/// ones stay): in-service ones first, the worst case, counted in
/// [`MemoryGroups::terminated_in_service`].
#[derive(Debug, Default)]
pub struct MemoryGroups {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<GroupId, GroupState>,
    describe_calls: usize,
    writes: Vec<(GroupId, Write)>,
    failing_regions: Vec<String>,
    failing_writes: Vec<GroupId>,
    hanging_regions: Vec<String>,
    hanging_writes: Vec<GroupId>,
    slow_writes: Vec<(GroupId, std::time::Duration)>,
    lost_answers: Vec<GroupId>,
    terminated_in_service: HashMap<GroupId, u32>,
}

impl MemoryGroups {
    pub fn new() -> Self {
        MemoryGroups::default()
    }

    pub fn insert(&self, id: GroupId, state: GroupState) {
        self.inner.lock().unwrap().groups.insert(id, state);
    }

    pub fn get(&self, id: &GroupId) -> Option<GroupState> {
        self.inner.lock().unwrap().groups.get(id).cloned()
    }

    /// Make every describe of `region` fail.
    pub fn fail_describe(&self, region: &str) {
        self.inner
            .lock()
            .unwrap()
            .failing_regions
            .push(region.into());
    }

    /// Make every write to `id` fail.
    pub fn fail_writes(&self, id: &GroupId) {
        self.inner.lock().unwrap().failing_writes.push(id.clone());
    }

    /// Make every describe of `region` hang, never answering.
    pub fn hang_describe(&self, region: &str) {
        self.inner
            .lock()
            .unwrap()
            .hanging_regions
            .push(region.into());
    }

    /// Make every write to `id` take effect and then hang, never answering
    /// (a request that reached AWS, whose answer never came back).
    pub fn hang_writes(&self, id: &GroupId) {
        self.inner.lock().unwrap().hanging_writes.push(id.clone());
    }

    /// Make every write to `id` take effect and answer after `delay`.
    pub fn slow_writes(&self, id: &GroupId, delay: std::time::Duration) {
        self.inner
            .lock()
            .unwrap()
            .slow_writes
            .push((id.clone(), delay));
    }

    /// Make every write to `id` take effect and then fail as a lost answer
    /// ([`GroupError::Unknown`]: a timeout after AWS made the write).
    pub fn lose_answers(&self, id: &GroupId) {
        self.inner.lock().unwrap().lost_answers.push(id.clone());
    }

    /// Undo every injected failure and hang.
    pub fn heal(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.failing_regions.clear();
        inner.failing_writes.clear();
        inner.hanging_regions.clear();
        inner.hanging_writes.clear();
        inner.slow_writes.clear();
        inner.lost_answers.clear();
    }

    pub fn describe_calls(&self) -> usize {
        self.inner.lock().unwrap().describe_calls
    }

    /// Every write made, in order.
    pub fn writes(&self) -> Vec<(GroupId, Write)> {
        self.inner.lock().unwrap().writes.clone()
    }

    /// In-service instances of `id` that a lower desired capacity
    /// terminated: any of them could have been running a job.
    pub fn terminated_in_service(&self, id: &GroupId) -> u32 {
        let inner = self.inner.lock().unwrap();
        inner.terminated_in_service.get(id).copied().unwrap_or(0)
    }
}

impl Groups for MemoryGroups {
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, GroupState>, GroupError> {
        let hang = {
            let mut inner = self.inner.lock().unwrap();
            inner.describe_calls += names.len().div_ceil(DESCRIBE_BATCH).max(1);
            inner.hanging_regions.iter().any(|r| r == region)
        };
        if hang {
            std::future::pending::<()>().await;
        }
        let inner = self.inner.lock().unwrap();
        if inner.failing_regions.iter().any(|r| r == region) {
            return Err(GroupError::Describe {
                region: region.into(),
                message: "injected failure".into(),
            });
        }
        Ok(names
            .iter()
            .filter_map(|name| {
                let id = GroupId {
                    region: region.into(),
                    name: name.clone(),
                };
                inner
                    .groups
                    .get(&id)
                    .map(|state| (name.clone(), state.clone()))
            })
            .collect())
    }

    async fn apply(&self, group: &GroupId, write: &Write) -> Result<(), GroupError> {
        let (hang, delay, lost) = {
            let mut guard = self.inner.lock().unwrap();
            let inner = &mut *guard;
            if inner.failing_writes.contains(group) {
                return Err(GroupError::Apply {
                    group: group.clone(),
                    message: "injected failure".into(),
                });
            }
            inner.writes.push((group.clone(), write.clone()));
            let state = inner
                .groups
                .get_mut(group)
                .ok_or_else(|| GroupError::Apply {
                    group: group.clone(),
                    message: "no such group".into(),
                })?;
            let bounded = match *write {
                Write::Desired(desired) => Some((desired, state.min_size, state.max_size)),
                Write::DesiredAndBounds { desired, min, max } => Some((desired, min, max)),
                Write::State(ref kept) => {
                    state.policy_state = kept.clone();
                    None
                }
                Write::WarmPool {
                    size,
                    ref pool_state,
                    reuse_on_scale_in,
                } => {
                    // PutWarmPool creates the pool when there is none.
                    let pool = state.warm_pool.get_or_insert_with(Default::default);
                    pool.min_size = size;
                    pool.max_prepared = Some(size);
                    pool.pool_state = pool_state.clone();
                    pool.reuse_on_scale_in = reuse_on_scale_in;
                    pool.instances = Some(size);
                    None
                }
            };
            if let Some((desired, min, max)) = bounded {
                if desired < min || desired > max {
                    return Err(GroupError::Apply {
                        group: group.clone(),
                        message: format!(
                            "ValidationError: desired capacity {desired} is outside the group's bounds [{min}, {max}]"
                        ),
                    });
                }
                (state.desired, state.min_size, state.max_size) = (desired, min, max);
                // Scale-in: the difference, among the unprotected instances.
                let count = state.pending + state.in_service;
                let terminated = count.saturating_sub(desired).min(state.unprotected);
                let from_service = terminated.min(state.in_service);
                state.in_service -= from_service;
                state.pending -= terminated - from_service;
                state.unprotected -= terminated;
                state.terminating += terminated;
                *inner
                    .terminated_in_service
                    .entry(group.clone())
                    .or_default() += from_service;
            }
            (
                inner.hanging_writes.contains(group),
                inner
                    .slow_writes
                    .iter()
                    .find(|(id, _)| id == group)
                    .map(|(_, delay)| *delay),
                inner.lost_answers.contains(group),
            )
        };
        if hang {
            std::future::pending::<()>().await;
        }
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if lost {
            return Err(GroupError::Unknown {
                group: group.clone(),
                message: "injected lost answer".into(),
            });
        }
        Ok(())
    }
}
