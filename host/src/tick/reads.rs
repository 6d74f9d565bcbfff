//! The tick's reads: each queue once and each region's groups in one
//! describe, made concurrently and shared by every pool that needs them;
//! what was read so far when a tick is cut.

use super::Pool;
use crate::groups::{GroupState, Groups};
use crate::observation::Queue;
use crate::sources::{QueueId, QueueSource, SourceError};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;

/// Pools decided (and written) at once: enough to hide API latency, few
/// enough to stay under Auto Scaling's request rate.
pub const PARALLEL_POOLS: usize = 32;

/// What a read gave: the value, or why there is none.
pub(super) type Read<T> = Result<T, String>;

/// A read every pool that needs it awaits, made once.
pub(super) type SharedRead<'a, T> = Shared<BoxFuture<'a, Arc<Read<T>>>>;

/// The tick's reads: each queue (source and name) once, and each region's
/// groups in one describe (batched by the adapter), made by
/// [`Reads::make_all`] and awaited by every pool that needs them.
pub(super) struct Reads<'a> {
    queues: HashMap<&'a QueueId, SharedRead<'a, Queue>>,
    /// The queues in the order of the pools.
    order: Vec<&'a QueueId>,
    regions: HashMap<&'a str, SharedRead<'a, HashMap<String, GroupState>>>,
}

impl<'a> Reads<'a> {
    pub(super) fn new<Q: QueueSource, G: Groups>(
        pools: &'a [Pool],
        queues: &'a Q,
        groups: &'a G,
    ) -> Self {
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
    pub(super) async fn make_all(&self) {
        let queues = stream::iter(&self.order)
            .map(|queue| self.queues[queue].clone())
            .buffer_unordered(PARALLEL_POOLS)
            .for_each(|_| async {});
        let regions = futures::future::join_all(self.regions.values().cloned());
        futures::join!(queues, regions);
    }

    pub(super) async fn queue(&self, pool: &Pool) -> Result<Queue, String> {
        let read = self.queues[&pool.queue].clone().await;
        (*read).clone()
    }

    pub(super) async fn group(&self, pool: &Pool) -> Result<GroupState, String> {
        let read = self.regions[pool.group.region.as_str()].clone().await;
        group_of(pool, &read)
    }

    /// The pool's queue and group, each if it was read by now.
    pub(super) fn read_so_far(
        &self,
        pool: &Pool,
    ) -> (Option<Read<Queue>>, Option<Read<GroupState>>) {
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

/// A queue source for reads that need no queue.
pub(super) struct NoQueues;

impl QueueSource for NoQueues {
    async fn queue(&self, _queue: &QueueId) -> Result<Queue, SourceError> {
        unreachable!("read_groups reads no queue")
    }
}
