//! Running one case through a policy: [`run_case`] and its [`CaseResult`].

use super::{Case, Mismatch};
use crate::observation::Decision;
use crate::policy::Policy;
use serde::Serialize;
use std::path::PathBuf;

/// How a case went: whether it passed, and everything needed to see why not.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    pub passed: bool,
    /// The parts of the expectation the answer did not meet.
    pub mismatches: Vec<Mismatch>,
    /// The policy's decision, if it made one.
    pub decision: Option<Decision>,
    /// The policy's error, if it failed.
    pub error: Option<String>,
    /// The kind of the error (`refused`, `trap`, `deadline`...).
    pub error_kind: Option<&'static str>,
    /// What the policy logged.
    pub log: Vec<LogLine>,
    /// Log lines dropped over the sandbox's limit.
    pub log_dropped: usize,
    pub elapsed_ms: f64,
}

/// One line the policy logged.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

/// Ask `policy` about `case` and check its answer.
pub async fn run_case(policy: &Policy, case: &Case) -> CaseResult {
    let evaluation = policy.evaluate(&case.observation).await;
    let mismatches = case.expect.check(&evaluation);
    let (decision, error, error_kind) = match &evaluation.result {
        Ok(decision) => (Some(decision.clone()), None, None),
        Err(err) => (None, Some(err.to_string()), Some(err.kind())),
    };
    CaseResult {
        name: case.name.clone(),
        file: case.file.clone(),
        line: case.line,
        passed: mismatches.is_empty(),
        mismatches,
        decision,
        error,
        error_kind,
        log: evaluation
            .log
            .lines
            .iter()
            .map(|(level, message)| LogLine {
                level: format!("{level:?}").to_lowercase(),
                message: message.clone(),
            })
            .collect(),
        log_dropped: evaluation.log.dropped,
        elapsed_ms: evaluation.elapsed.as_secs_f64() * 1000.0,
    }
}
