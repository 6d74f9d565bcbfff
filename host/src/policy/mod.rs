//! Scaling policies: WebAssembly components behind the WIT contract, and the
//! built-in rules. A pool's policy is a [`Policy`]; [`Policy::decide_or_fallback`]
//! is what the tick calls, and it never fails: a policy that errs, traps,
//! overruns its deadline or its memory is logged and replaced, for that
//! decision, by the pool's fallback rule.

mod bindings;
mod builtin;
mod cache;
mod compile;
mod engine;
mod error;
mod limits;
mod load;
mod output;
mod reference;
mod wasi;

pub use bindings::{CONTRACT, CONTRACTS, DECIDER_EXPORT};
pub use builtin::BuiltinRule;
pub use cache::CompileCache;
pub use engine::{linux_target, sha256_hex, EngineOptions, PolicyEngine, WasmPolicy};
pub use error::PolicyError;
pub use limits::{
    Limits, PoolShare, DEFAULT_DEADLINE_MS, DEFAULT_MEMORY_MIB, MAX_DEADLINE_MS, MAX_MEMORY_MIB,
    MAX_POLICY_FILE_BYTES, PER_DECISION,
};
pub use load::{read_policy_file, to_component};
pub use output::{Level, PolicyLog};
pub use reference::{Pin, PolicyLoader, PolicyRef};

use crate::observation::{Decision, Observation};
use std::time::{Duration, Instant};

/// A pool's policy.
#[derive(Clone)]
pub enum Policy {
    Wasm(WasmPolicy),
    Builtin(BuiltinRule),
}

/// One evaluation of a policy: its answer, what it logged, how long it took.
pub struct Evaluation {
    pub result: Result<Decision, PolicyError>,
    pub log: PolicyLog,
    pub elapsed: Duration,
}

/// The decision a pool acts on, and whether it came from the fallback.
pub struct Outcome {
    pub decision: Decision,
    /// The policy or rule whose decision this is.
    pub decided_by: String,
    /// Why the pool's policy was not used, if it was not.
    pub error: Option<PolicyError>,
    pub elapsed: Duration,
}

impl Policy {
    pub fn name(&self) -> &str {
        match self {
            Policy::Wasm(policy) => policy.name(),
            Policy::Builtin(rule) => rule.name(),
        }
    }

    /// The SHA-256 of the file a WebAssembly policy was loaded from (what
    /// `policy_sha256` pins); `None` for a built-in rule.
    pub fn sha256(&self) -> Option<&str> {
        match self {
            Policy::Wasm(policy) => Some(policy.sha256()),
            Policy::Builtin(_) => None,
        }
    }

    /// Ask the policy, and keep what it logged.
    pub async fn evaluate(&self, observation: &Observation) -> Evaluation {
        let started = Instant::now();
        let (result, log) = match self {
            Policy::Wasm(policy) => policy.decide(observation).await,
            Policy::Builtin(rule) => (Ok(rule.decide(observation)), PolicyLog::default()),
        };
        Evaluation {
            result,
            log,
            elapsed: started.elapsed(),
        }
    }

    /// Ask the policy; if it fails, log why and decide with `fallback`.
    pub async fn decide_or_fallback(
        &self,
        observation: &Observation,
        fallback: BuiltinRule,
    ) -> Outcome {
        let evaluation = self.evaluate(observation).await;
        evaluation.log.emit(&observation.pool, self.name());
        match evaluation.result {
            Ok(decision) => Outcome {
                decision,
                decided_by: self.name().to_string(),
                error: None,
                elapsed: evaluation.elapsed,
            },
            Err(error) => {
                tracing::error!(
                    pool = %observation.pool,
                    policy = self.name(),
                    kind = error.kind(),
                    fallback = %fallback,
                    "{error}; deciding with the fallback rule"
                );
                if let PolicyError::Trap {
                    backtrace: Some(backtrace),
                    ..
                } = &error
                {
                    tracing::debug!(pool = %observation.pool, policy = self.name(), %backtrace, "where the policy crashed");
                }
                Outcome {
                    decision: fallback.decide(observation),
                    decided_by: format!("{} (fallback for {})", fallback, self.name()),
                    error: Some(error),
                    elapsed: evaluation.elapsed,
                }
            }
        }
    }
}
