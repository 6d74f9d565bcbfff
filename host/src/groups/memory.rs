//! In-memory groups: state you set, calls you can count, failures you inject.

use super::{GroupError, GroupId, GroupState, Groups, Write, DESCRIBE_BATCH};
use std::collections::HashMap;
use std::sync::Mutex;

/// Groups kept in memory. Writes change the state as EC2 Auto Scaling would
/// (desired, bounds, the state tag) and are recorded.
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

    pub fn describe_calls(&self) -> usize {
        self.inner.lock().unwrap().describe_calls
    }

    /// Every write made, in order.
    pub fn writes(&self) -> Vec<(GroupId, Write)> {
        self.inner.lock().unwrap().writes.clone()
    }
}

impl Groups for MemoryGroups {
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, GroupState>, GroupError> {
        let mut inner = self.inner.lock().unwrap();
        inner.describe_calls += names.len().div_ceil(DESCRIBE_BATCH).max(1);
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
        let mut inner = self.inner.lock().unwrap();
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
        match write {
            Write::Desired(desired) => state.desired = *desired,
            Write::DesiredAndBounds { desired, min, max } => {
                (state.desired, state.min, state.max) = (*desired, *min, *max);
            }
            Write::State(kept) => state.policy_state = kept.clone(),
        }
        Ok(())
    }
}
