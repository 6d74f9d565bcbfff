//! The sandbox's limits: how long and how much memory a decision may take.

use std::time::Duration;

/// Limits every decision runs under. The defaults suit policies that do
/// arithmetic on a few numbers, which is what a policy should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one decision may take, instantiation included.
    pub deadline: Duration,
    /// Linear memory one decision may use.
    pub memory_bytes: usize,
    /// Log lines (the `log` import, stdout and stderr together) kept per decision.
    pub log_lines: usize,
    /// Bytes kept of one log line, or of stdout/stderr.
    pub log_line_bytes: usize,
    /// Decisions that may run at once (the size of the instance pool).
    pub concurrent_decisions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 * 1024 * 1024,
            log_lines: 64,
            log_line_bytes: 1024,
            concurrent_decisions: 64,
        }
    }
}

/// The longest state a policy may keep: it lives in an Auto Scaling group
/// tag, whose value holds at most 256 characters.
pub const MAX_STATE_BYTES: usize = 256;

/// The longest reason kept; longer ones are cut, not refused.
pub const MAX_REASON_BYTES: usize = 512;
