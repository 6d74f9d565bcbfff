//! An in-memory queue source: set the numbers, read them back, count the reads.

use super::{QueueSource, SourceError};
use crate::observation::Queue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Queues by resource class, set by the test or the simulator. A resource
/// class that was never set, or was set to fail, reads as an error.
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

    pub fn set(&self, resource_class: &str, queue: Queue) {
        self.queues
            .lock()
            .unwrap()
            .insert(resource_class.into(), Ok(queue));
    }

    /// Make reads of `resource_class` fail with `message`.
    pub fn fail(&self, resource_class: &str, message: &str) {
        self.queues
            .lock()
            .unwrap()
            .insert(resource_class.into(), Err(message.into()));
    }

    /// Make reads of `resource_class` hang, never answering.
    pub fn hang(&self, resource_class: &str) {
        self.hanging.lock().unwrap().push(resource_class.into());
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

impl QueueSource for MemoryQueue {
    async fn queue(&self, resource_class: &str) -> Result<Queue, SourceError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let hang = self
            .hanging
            .lock()
            .unwrap()
            .iter()
            .any(|c| c == resource_class);
        if hang {
            std::future::pending::<()>().await;
        }
        match self.queues.lock().unwrap().get(resource_class) {
            Some(Ok(queue)) => Ok(*queue),
            Some(Err(message)) => Err(SourceError::Unavailable {
                source_name: "memory queue",
                attempts: 1,
                last: message.clone(),
            }),
            None => Err(SourceError::Refused {
                source_name: "memory queue",
                message: format!("no queue for resource class {resource_class:?}"),
            }),
        }
    }
}
