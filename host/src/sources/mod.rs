//! Queue sources: how many jobs wait for, and run on, a pool's runners, as
//! each CI tells it. The seam every CI comes through: a source is one file
//! here (its API, read through the shared client in [`http`]), one arm of
//! [`SourceKind`] and of [`Source`], and one section of the configuration
//! (`[circleci]`, `[buildkite]`). Nothing outside this folder and that
//! section names a CI. [`MemoryQueue`] is the in-memory source the tests,
//! the benchmarks and the simulator use.

pub mod buildkite;
pub mod circleci;
#[cfg(test)]
pub(crate) mod fixed;
pub mod http;
mod memory;

pub use memory::MemoryQueue;

use crate::observation::Queue;
use crate::token_secret::SecretFormat;
use serde::Serialize;
use std::future::Future;

/// The CIs a pool's queue can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// CircleCI's runner API: a queue is a resource class, `namespace/name`.
    CircleCi,
    /// Buildkite's agent metrics API: a queue is an agent queue.
    Buildkite,
    /// A source of fixed counts, for the tests that prove the seam.
    #[cfg(test)]
    Fixed,
}

impl SourceKind {
    /// Every kind, in the order the configuration documents them.
    pub const ALL: &[SourceKind] = &[
        SourceKind::CircleCi,
        SourceKind::Buildkite,
        #[cfg(test)]
        SourceKind::Fixed,
    ];

    /// Its name in the configuration (`source = "circleci"`) and in reports.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::CircleCi => "circleci",
            SourceKind::Buildkite => "buildkite",
            #[cfg(test)]
            SourceKind::Fixed => "fixed",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<SourceKind> {
        SourceKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// How many API requests one reading of a queue takes: what the
    /// interval is paced by.
    pub fn requests_per_reading(self) -> u64 {
        match self {
            SourceKind::CircleCi => 2,
            SourceKind::Buildkite => 1,
            #[cfg(test)]
            SourceKind::Fixed => 0,
        }
    }

    /// Its API's base URL by default.
    pub fn default_base_url(self) -> &'static str {
        match self {
            SourceKind::CircleCi => circleci::DEFAULT_BASE_URL,
            SourceKind::Buildkite => buildkite::DEFAULT_BASE_URL,
            #[cfg(test)]
            SourceKind::Fixed => "http://fixed.invalid",
        }
    }

    /// The variable the token is read from when the section names no other
    /// way.
    pub fn default_token_env(self) -> &'static str {
        match self {
            SourceKind::CircleCi => "CIRCLECI_TOKEN",
            SourceKind::Buildkite => "BUILDKITE_AGENT_TOKEN",
            #[cfg(test)]
            SourceKind::Fixed => "FIXED_TOKEN",
        }
    }

    /// What the token is, for messages: "a CircleCI personal API token".
    pub fn token_kind(self) -> &'static str {
        match self {
            SourceKind::CircleCi => "a CircleCI personal API token",
            SourceKind::Buildkite => "a Buildkite agent token",
            #[cfg(test)]
            SourceKind::Fixed => "any token",
        }
    }

    /// How its token's Secrets Manager secret holds the token.
    pub fn secret_format(self) -> &'static SecretFormat {
        match self {
            SourceKind::CircleCi => &circleci::SECRET,
            SourceKind::Buildkite => &buildkite::SECRET,
            #[cfg(test)]
            SourceKind::Fixed => &buildkite::SECRET,
        }
    }

    /// Checks `url` as the base URL of its API.
    pub fn check_base_url(self, url: &str) -> Result<(), http::BuildError> {
        match self {
            SourceKind::CircleCi => circleci::parse_base_url(url).map(|_| ()),
            SourceKind::Buildkite => buildkite::parse_base_url(url).map(|_| ()),
            #[cfg(test)]
            SourceKind::Fixed => Ok(()),
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A queue: which CI, and its name there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId {
    pub source: SourceKind,
    pub name: String,
}

impl QueueId {
    pub fn new(source: SourceKind, name: impl Into<String>) -> QueueId {
        QueueId {
            source,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.source, crate::text::quoted(&self.name))
    }
}

/// Reads queues.
pub trait QueueSource: Send + Sync {
    /// The waiting and running jobs of `queue`. An error means the numbers
    /// are unknown: the pool is held, never scaled on a guess.
    fn queue(&self, queue: &QueueId) -> impl Future<Output = Result<Queue, SourceError>> + Send;
}

/// A source read alone (a test's, or a benchmark's): its queues by name.
impl QueueSource for circleci::CircleCi {
    async fn queue(&self, queue: &QueueId) -> Result<Queue, SourceError> {
        circleci::CircleCi::queue(self, &queue.name).await
    }
}

impl QueueSource for buildkite::Buildkite {
    async fn queue(&self, queue: &QueueId) -> Result<Queue, SourceError> {
        buildkite::Buildkite::queue(self, &queue.name).await
    }
}

/// One CI's source, built from its section of the configuration.
#[derive(Debug)]
pub enum Source {
    CircleCi(circleci::CircleCi),
    Buildkite(buildkite::Buildkite),
    #[cfg(test)]
    Fixed(fixed::Fixed),
}

impl Source {
    /// The source of `kind` at `base_url`, authenticated with `token`.
    pub fn build(
        kind: SourceKind,
        base_url: &str,
        token: crate::secret::Secret,
        options: http::HttpOptions,
    ) -> Result<Source, http::BuildError> {
        Ok(match kind {
            SourceKind::CircleCi => {
                Source::CircleCi(circleci::CircleCi::new(base_url, token, options)?)
            }
            SourceKind::Buildkite => {
                Source::Buildkite(buildkite::Buildkite::new(base_url, token, options)?)
            }
            #[cfg(test)]
            SourceKind::Fixed => Source::Fixed(fixed::Fixed),
        })
    }

    /// Its kind.
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::CircleCi(_) => SourceKind::CircleCi,
            Source::Buildkite(_) => SourceKind::Buildkite,
            #[cfg(test)]
            Source::Fixed(_) => SourceKind::Fixed,
        }
    }

    /// The queue named `name` there.
    pub async fn queue(&self, name: &str) -> Result<Queue, SourceError> {
        match self {
            Source::CircleCi(source) => source.queue(name).await,
            Source::Buildkite(source) => source.queue(name).await,
            #[cfg(test)]
            Source::Fixed(source) => source.queue(name).await,
        }
    }
}

/// The sources a configuration's pools read, one per kind: the production
/// [`QueueSource`].
#[derive(Debug, Default)]
pub struct Sources {
    sources: Vec<Source>,
}

impl Sources {
    pub fn new(sources: Vec<Source>) -> Sources {
        Sources { sources }
    }

    /// The source of `kind`, if there is one.
    pub fn get(&self, kind: SourceKind) -> Option<&Source> {
        self.sources.iter().find(|s| s.kind() == kind)
    }
}

impl QueueSource for Sources {
    async fn queue(&self, queue: &QueueId) -> Result<Queue, SourceError> {
        match self.get(queue.source) {
            Some(source) => source.queue(&queue.name).await,
            None => Err(SourceError::Refused {
                source_name: queue.source.name(),
                message: format!(
                    "no [{}] source is set up for queue {}",
                    queue.source,
                    crate::text::quoted(&queue.name)
                ),
            }),
        }
    }
}

/// The queue could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source answered, and the answer says no (bad token, unknown
    /// queue...): retrying will not help.
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

    #[test]
    fn kinds_are_named_as_the_configuration_writes_them() {
        for kind in SourceKind::ALL {
            assert_eq!(SourceKind::from_name(kind.name()), Some(*kind));
        }
        assert_eq!(SourceKind::from_name("jenkins"), None);
    }
}
