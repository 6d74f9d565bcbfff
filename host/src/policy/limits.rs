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

/// The longest state a policy may keep: it lives in an Auto Scaling group
/// tag, whose value holds at most 256 characters.
pub const MAX_STATE_BYTES: usize = 256;

/// The longest reason kept; longer ones are cut, not refused.
pub const MAX_REASON_BYTES: usize = 512;

/// The longest error message (a policy's `Err(message)`) kept; the rest is cut.
pub const MAX_ERROR_BYTES: usize = 512;

/// The largest policy file read. Rust policies are ~100 KiB; Python and
/// JavaScript components, which carry their interpreter, ~10 to 40 MB. A
/// file beyond this is not a policy (or not the file meant), and reading it
/// whole would cost the host its memory.
pub const MAX_POLICY_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Why `state` cannot be kept in the group's tag, or `None` when it can.
///
/// The tag's value must be what EC2 Auto Scaling accepts in a tag value —
/// its API reference gives "Length Constraints: Minimum length of 0. Maximum
/// length of 256. Pattern: `[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\r\n\t]*`"
/// — and what the host can show and read back safely, so the host is
/// stricter: at most [`MAX_STATE_BYTES`] bytes (not characters), no control
/// characters at all (tab and line breaks included, and DEL and the C1
/// range, which AWS would take), no U+FFFE/U+FFFF, and not the `aws:` prefix,
/// which AWS reserves for its own tags.
pub fn state_problem(state: &str) -> Option<String> {
    if state.len() > MAX_STATE_BYTES {
        return Some(format!(
            "it is {} bytes, more than the {MAX_STATE_BYTES} bytes a state may be (it is kept in an \
             Auto Scaling group tag); keep less",
            state.len()
        ));
    }
    if let Some((at, c)) = state
        .char_indices()
        .find(|&(_, c)| c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}'))
    {
        return Some(format!(
            "it holds the character U+{:04X} at byte {at}, which an Auto Scaling group tag cannot \
             hold; keep to printable text, e.g. `empty_since=1795424400`",
            c as u32
        ));
    }
    if state
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("aws:"))
    {
        return Some("it starts with `aws:`, a prefix AWS reserves for its own tags".to_string());
    }
    None
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_must_fit_a_tag_and_hold_no_control_characters() {
        // (name, state, problem mentions)
        let cases = [
            ("key=value", "empty_since=1795424400", None),
            ("JSON", r#"{"streak":2,"since":"09:00"}"#, None),
            ("letters of any script", "état=прогрев 東京", None),
            ("256 bytes", &*"x".repeat(256), None),
            ("257 bytes", &*"x".repeat(257), Some("257 bytes")),
            (
                "129 two-byte letters are 258 bytes",
                &*"é".repeat(129),
                Some("258 bytes"),
            ),
            ("NUL", "a\0b", Some("U+0000 at byte 1")),
            ("ESC", "\u{1b}[31m", Some("U+001B at byte 0")),
            ("SOH", "\u{1}", Some("U+0001")),
            ("newline", "a\nb", Some("U+000A")),
            ("tab", "a\tb", Some("U+0009")),
            ("DEL", "\u{7f}", Some("U+007F")),
            ("C1", "\u{85}", Some("U+0085")),
            ("noncharacter", "\u{ffff}", Some("U+FFFF")),
            ("reserved prefix", "AWS:x", Some("aws:")),
        ];
        for (name, state, expected) in cases {
            let problem = state_problem(state);
            match (expected, &problem) {
                (None, None) => {}
                (Some(words), Some(problem)) => {
                    assert!(
                        problem.contains(words),
                        "{name}: {problem:?} should say {words:?}"
                    )
                }
                _ => panic!("{name}: got {problem:?}, expected {expected:?}"),
            }
        }
    }
}
