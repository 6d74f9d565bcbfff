//! Job history into traces for `simulate`: CircleCI's usage export (the
//! Usage API's CSV files) read into the trace format of
//! `examples/traces/README.md`, and the export fetched end to end.
//!
//! - [`usage_export`]: the CSV files (plain or gzip), row by row, into
//!   jobs, with a summary of what was kept and what was skipped and why;
//! - [`fetch`]: the Usage API's export job (create, poll, download), with
//!   a small HTTP client of its own;
//! - [`open_input`]: how every file here is opened (bounded, never
//!   blocking).

pub mod fetch;
pub mod usage_export;

use std::fs::File;
use std::io;
use std::path::Path;

/// Open `path` for reading without blocking (a FIFO named by mistake must
/// not stall the import), refusing anything but a regular file. Every read
/// of this module starts here; the readers bound what they read.
pub fn open_input(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file; name an export file (.csv or .csv.gz)",
        ));
    }
    Ok(file)
}

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
    fn only_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_input(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Opening a FIFO with no writer would block without O_NONBLOCK.
        let err = open_input(&fifo).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let file = dir.path().join("a.csv");
        std::fs::write(&file, "x").unwrap();
        assert!(open_input(&file).is_ok());
    }

    #[test]
    fn cut_escapes_and_shortens() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("a\nb", 10), "a\\nb");
    }
}
