//! Job history into traces for `simulate`: CircleCI's usage export (the
//! Usage API's CSV files) read into the trace format of
//! `examples/traces/README.md`, and the export fetched end to end.
//!
//! - [`usage_export`]: the CSV files (plain or gzip), row by row, into
//!   jobs, with a summary of what was kept and what was skipped and why;
//! - [`fetch`]: the Usage API's export job (create, poll, download), with
//!   a small HTTP client of its own.
//!
//! Files are opened with [`crate::input_file::open_regular`] (never
//! blocking, regular files only) and bounded as they stream.

pub mod fetch;
pub mod usage_export;

/// Untrusted text (a cell, an upstream's answer) made inert and cut to
/// `max` characters, for messages.
pub fn cut(text: &str, max: usize) -> String {
    let escaped = crate::text::escape(text);
    match escaped.char_indices().nth(max) {
        None => escaped.into_owned(),
        Some((at, _)) => format!("{}…", &escaped[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_escapes_and_shortens() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("a\nb", 10), "a\\nb");
    }
}
