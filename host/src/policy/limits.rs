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

/// The default deadline of one decision, in milliseconds.
pub const DEFAULT_DEADLINE_MS: u64 = 100;

/// The default memory of one decision, in MiB.
pub const DEFAULT_MEMORY_MIB: usize = 64;

/// The longest deadline that may be configured: a decision is arithmetic on
/// a few numbers and takes microseconds; ten seconds is already a hung policy.
pub const MAX_DEADLINE_MS: u64 = 10_000;

/// The most memory that may be configured: a policy's memory is a 32-bit
/// WebAssembly memory, which cannot grow past 4 GiB.
pub const MAX_MEMORY_MIB: usize = 4096;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(DEFAULT_DEADLINE_MS),
            memory_bytes: DEFAULT_MEMORY_MIB * 1024 * 1024,
            log_lines: 64,
            log_line_bytes: 1024,
            concurrent_decisions: 64,
        }
    }
}

/// The longest reason kept; longer ones are cut, not refused.
pub const MAX_REASON_BYTES: usize = 512;

/// The longest error message (a policy's `Err(message)`) kept; the rest is cut.
pub const MAX_ERROR_BYTES: usize = 512;

/// The largest policy file read. Rust policies are ~100 KiB; Python and
/// JavaScript components, which carry their interpreter, ~10 to 40 MB. A
/// file beyond this is not a policy (or not the file meant), and reading it
/// whole would cost the host its memory.
pub const MAX_POLICY_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What one decision may hold of the engine's instance pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShare {
    /// Core module instances. A Rust policy is 1; a policy that carries an
    /// interpreter is several modules linked together: CPython through
    /// componentize-py 14, SpiderMonkey through componentize-js 4. The rest
    /// is room for a Python policy's native extension modules.
    pub core_instances: u32,
    /// Linear memories (every policy measured has 1).
    pub memories: u32,
    /// Tables (Rust 1, Python and JavaScript 2).
    pub tables: u32,
    /// Elements of one table: the interpreters' function tables hold 5,700
    /// (CPython) and 7,700 (SpiderMonkey).
    pub table_elements: usize,
}

/// Every decision's share: the pool holds `concurrent_decisions` of them.
/// Core instances only count (a limit, no memory reserved); memories and
/// tables are reserved address space, kept as before interpreters came.
pub const PER_DECISION: PoolShare = PoolShare {
    core_instances: 32,
    memories: 2,
    tables: 4,
    table_elements: 20_000,
};
