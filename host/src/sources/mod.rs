//! Queue-depth sources: how many jobs wait for, and run on, a pool's
//! runners. CircleCI's runner API is the real one; [`MemoryQueue`] is the
//! in-memory one the tests, the benchmark and the simulator use.

pub mod circleci;
mod memory;

pub use memory::MemoryQueue;

use crate::observation::Queue;
use std::future::Future;

/// Reads the queue of one resource class.
pub trait QueueSource: Send + Sync {
    /// The waiting and running jobs of `resource_class`. An error means the
    /// numbers are unknown: the pool is held, never scaled on a guess.
    fn queue(
        &self,
        resource_class: &str,
    ) -> impl Future<Output = Result<Queue, SourceError>> + Send;
}

/// The queue could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source answered, and the answer says no (bad token, unknown
    /// resource class...): retrying will not help.
    #[error("{source_name} refused the request: {message}")]
    Refused {
        source_name: &'static str,
        message: String,
    },
    /// No usable answer after every retry (timeouts, 5xx, 429, malformed bodies).
    #[error("{source_name} gave no usable answer after {attempts} attempts: {last}")]
    Unavailable {
        source_name: &'static str,
        attempts: u32,
        last: String,
    },
}
