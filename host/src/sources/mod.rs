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
    #[error(
        "{source_name} gave no usable answer after {attempts} attempt{}: {last}",
        if *attempts == 1 { "" } else { "s" }
    )]
    Unavailable {
        source_name: &'static str,
        attempts: u32,
        last: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_attempt_is_singular() {
        let unavailable = |attempts| SourceError::Unavailable {
            source_name: "CircleCI",
            attempts,
            last: "HTTP 500".into(),
        };
        assert_eq!(
            unavailable(1).to_string(),
            "CircleCI gave no usable answer after 1 attempt: HTTP 500"
        );
        assert_eq!(
            unavailable(4).to_string(),
            "CircleCI gave no usable answer after 4 attempts: HTTP 500"
        );
    }
}
