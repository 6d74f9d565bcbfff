//! A policy's state: what it keeps from one decision to the next, in a tag
//! on its pool's group, and so what a state may be.

/// The tag that keeps a policy's state on its group between ticks (and
/// across restarts and Lambda cold starts).
pub const STATE_TAG: &str = "runner-scaler:state";

/// The longest state a policy may keep: it lives in an Auto Scaling group
/// tag, whose value holds at most 256 characters.
pub const MAX_STATE_BYTES: usize = 256;

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
