//! An in-memory queue source: set the numbers, read them back, count the reads.

use super::{QueueId, QueueSource, SourceError};
use crate::observation::Queue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Queues by name (a resource class, say), set by the test or the
/// simulator, whatever the source. A queue that was never set, or was set
/// to fail, reads as an error.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    queues: Mutex<HashMap<String, Result<Queue, String>>>,
    hanging: Mutex<Vec<String>>,
    reads: AtomicUsize,
}

impl MemoryQueue {
    pub fn new() -> Self {
        MemoryQueue::default()
    }

    pub fn set(&self, name: &str, queue: Queue) {
        self.queues.lock().unwrap().insert(name.into(), Ok(queue));
    }

    /// Make reads of `name` fail with `message`.
    pub fn fail(&self, name: &str, message: &str) {
        self.queues
            .lock()
            .unwrap()
            .insert(name.into(), Err(message.into()));
    }

    /// Make reads of `name` hang, never answering.
    pub fn hang(&self, name: &str) {
        self.hanging.lock().unwrap().push(name.into());
    }

    /// Make every read answer again.
    pub fn heal(&self) {
        self.hanging.lock().unwrap().clear();
    }

    /// How many times the queue was read.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }
}

/// Queues by name, whatever their source.
impl QueueSource for MemoryQueue {
    async fn queue(&self, queue: &QueueId) -> Result<Queue, SourceError> {
        let name = queue.name.as_str();
        self.reads.fetch_add(1, Ordering::Relaxed);
        let hang = self.hanging.lock().unwrap().iter().any(|n| n == name);
        if hang {
            std::future::pending::<()>().await;
        }
        match self.queues.lock().unwrap().get(name) {
            Some(Ok(queue)) => Ok(*queue),
            Some(Err(message)) => Err(SourceError::Unavailable {
                source_name: "memory queue",
                attempts: 1,
                last: message.clone(),
            }),
            None => Err(SourceError::Refused {
                source_name: "memory queue",
                message: format!("no queue {queue}"),
            }),
        }
    }
}
