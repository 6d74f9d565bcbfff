//! Text that others wrote, made inert before it reaches a terminal or a log
//! file: what a policy returns or logs, and what an upstream answers, may
//! hold a newline that forges a log line, an escape sequence the terminal
//! obeys, or a right-to-left override that makes a line read backwards.
//! Every text sink (the log formatter, the `once` table, the `policy`
//! commands, the error printed at exit) writes such text through here.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// `text` with every character that could change how a terminal or a
/// line-based log reader shows it replaced by an escape: `\n`, `\r`, `\t`,
/// `\u{1b}`... Borrowed when there is nothing to escape, which is the usual case.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// [`escape`], keeping line breaks: for messages that are several lines on
/// purpose (an error and its hint) and are printed once, not logged.
pub fn escape_keeping_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && unsafe_char(c)) {
        return Cow::Borrowed(text);
    }
    let lines: Vec<Cow<str>> = text.split('\n').map(escape).collect();
    Cow::Owned(lines.join("\n"))
}

/// JSON text (as `serde_json` writes it) with the characters it leaves raw
/// but a terminal would obey (DEL, C1 controls, bidirectional overrides)
/// written as `\uXXXX` escapes, so it stays the same JSON. Outside strings,
/// JSON holds only ASCII punctuation and spaces, so every such character is
/// inside a string.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(unsafe_char) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        // serde_json already escapes C0 controls; its newlines between
        // fields are layout and stay.
        if unsafe_char(c) && !matches!(c, '\n' | '\r' | '\t') {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The most characters of a value read from input (a file, a variable, an
/// upstream's answer) that a message quotes; the rest is counted, not shown,
/// so a huge value cannot make a huge error.
pub const ECHO_CHARS: usize = 200;

/// `value` as Rust's `{:?}` quotes it (escapes included), cut to
/// [`ECHO_CHARS`] characters with the number cut said.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(ECHO_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!(
            "{:?}… ({} more characters)",
            &value[..end],
            value[end..].chars().count()
        ),
    }
}

/// Each line of `message` cut to [`ECHO_CHARS`] characters, and at most
/// `max_lines` lines: for a parser's message that quotes its input (TOML's
/// shows the offending line).
pub fn cut_lines(message: &str, max_lines: usize) -> String {
    let mut lines: Vec<String> = message
        .lines()
        .take(max_lines)
        .map(|line| match line.char_indices().nth(ECHO_CHARS) {
            None => line.to_string(),
            Some((end, _)) => format!(
                "{}… ({} more characters)",
                &line[..end],
                line[end..].chars().count()
            ),
        })
        .collect();
    let total = message.lines().count();
    if total > max_lines {
        lines.push(format!("… ({} more lines)", total - max_lines));
    }
    lines.join("\n")
}

/// The longest prefix of `s` within `max` bytes that ends on a char boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `text` within `max` bytes, saying how much was cut.
pub fn cut(text: &str, max: usize) -> String {
    let kept = truncate(text, max);
    if kept.len() == text.len() {
        return text.to_string();
    }
    format!("{kept}… [{} more bytes cut]", text.len() - kept.len())
}

/// Whether `c` must not reach a terminal or a log file raw: the control
/// characters (C0, DEL, C1) and the invisible formatting characters that
/// reorder or hide text (bidirectional embeddings, overrides and isolates,
/// zero-width marks, line and paragraph separators, the byte-order mark).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if unsafe_char(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// A `tracing` field formatter for text logs: the message, then
/// `name=value` pairs, every value [`escape`]d. The default formatter
/// escapes only some escape sequences in the message and none in `%`
/// fields, so a policy's newline could forge a whole log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, value);
        } else {
            // Quoted, as the default formatter writes strings.
            self.write(field, &format!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        // `log` records carry their metadata as `log.*` fields, which the
        // line already shows; the default formatter skips them too.
        // A decision's whole record, for the JSON format, is not repeated
        // after its fields.
        if self.result.is_err()
            || field.name().starts_with("log.")
            || field.name() == crate::report::RECORD_FIELD
        {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let value = escape(value);
        self.result = match field.name() {
            "message" => write!(self.writer, "{separator}{value}"),
            name => write!(
                self.writer,
                "{separator}{}={value}",
                name.strip_prefix("r#").unwrap_or(name)
            ),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_every_line_break_and_control_visible() {
        // (name, input, expected)
        let cases = [
            (
                "plain text is borrowed as is",
                "3 jobs waiting, 1 running",
                "3 jobs waiting, 1 running",
            ),
            ("non-ASCII letters stay", "Grüße, 東京", "Grüße, 東京"),
            (
                "a newline cannot start a line",
                "ok\nINFO forged",
                "ok\\nINFO forged",
            ),
            ("carriage return and tab", "a\rb\tc", "a\\rb\\tc"),
            (
                "ESC cannot start a sequence",
                "\u{1b}[31mred",
                "\\u{1b}[31mred",
            ),
            ("NUL, DEL and C1", "\0\u{7f}\u{9b}", "\\u{0}\\u{7f}\\u{9b}"),
            (
                "right-to-left override",
                "abc\u{202e}fed",
                "abc\\u{202e}fed",
            ),
            (
                "isolates and zero-width marks",
                "\u{2066}\u{200b}",
                "\\u{2066}\\u{200b}",
            ),
            ("line separator", "a\u{2028}b", "a\\u{2028}b"),
        ];
        for (name, input, expected) in cases {
            assert_eq!(escape(input), expected, "{name}");
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn echoed_values_are_cut_and_say_how_much() {
        assert_eq!(quoted("ci-linux"), "\"ci-linux\"");
        let huge = "x".repeat(10_000);
        let echo = quoted(&huge);
        assert!(echo.len() < 300, "{echo}");
        assert!(echo.ends_with("\"… (9800 more characters)"), "{echo}");
        // Characters, not bytes: a cut never splits one.
        assert!(quoted(&"é".repeat(300)).ends_with("(100 more characters)"));
        let message = format!("line 1\n{huge}\n3\n4");
        let cut = cut_lines(&message, 3);
        assert_eq!(cut.lines().count(), 4, "{cut}");
        assert!(
            cut.len() < 400 && cut.ends_with("… (1 more lines)"),
            "{cut}"
        );
    }

    #[test]
    fn escape_keeping_lines_keeps_only_newlines() {
        assert_eq!(
            escape_keeping_lines("error: bad\nhint: \u{1b}[2Jfix\r"),
            "error: bad\nhint: \\u{1b}[2Jfix\\r"
        );
    }

    #[test]
    fn escape_json_stays_the_same_json() {
        let value = serde_json::json!({ "reason": "a\u{202e}b\u{7f}\u{9b}\n\u{1b}", "n": 1 });
        let json = serde_json::to_string_pretty(&value).unwrap();
        let escaped = escape_json(&json);
        assert!(
            escaped.chars().all(|c| !unsafe_char(c) || c == '\n'),
            "{escaped}"
        );
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
    }
}
