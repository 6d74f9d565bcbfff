//! Reading a file the scaler was pointed at — a configuration, a policy, an
//! observation, a trace, compiled code — so that no file can stall or
//! exhaust it: the file is opened without blocking (a FIFO with no writer
//! would otherwise block the open forever), must be a regular file (not a
//! FIFO, a device such as `/dev/zero`, a socket or a directory), and is
//! read up to a cap, which the error names. Every such read goes through
//! [`read`] or [`read_text`].

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest configuration file read: a thousand pools take ~300 KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// The largest sample observation or case file read (`policy eval`, `policy
/// test`): an observation is a few hundred bytes, a case file a few KiB.
pub const MAX_SAMPLE_BYTES: u64 = 4 * 1024 * 1024;

/// The largest job trace read by `simulate`: ~30 bytes a job, so about four
/// million jobs, more than a year of a large organisation's runner jobs.
pub const MAX_TRACE_BYTES: u64 = 128 * 1024 * 1024;

/// The largest time zone file read (they are a few KiB).
pub const MAX_TIME_ZONE_BYTES: u64 = 1024 * 1024;

/// The largest small text file of a policy's project read by `policy new`
/// and `policy build` (a manifest, `policy.toml`).
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// A file that could not be read, and why. It prints as `cannot read
/// PATH: REASON`; callers that say what the file is ("cannot read the
/// configuration PATH: ...") use [`ReadError::path`] and
/// [`ReadError::reason`].
#[derive(Debug)]
pub enum ReadError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    NotRegular {
        path: PathBuf,
        kind: &'static str,
    },
    TooLarge {
        path: PathBuf,
        limit: u64,
    },
    NotText {
        path: PathBuf,
        at: usize,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot read {}: {}",
            self.path().display(),
            self.reason()
        )
    }
}

impl std::error::Error for ReadError {}

impl ReadError {
    /// The file it names.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::NotRegular { path, .. }
            | ReadError::TooLarge { path, .. }
            | ReadError::NotText { path, .. } => path,
        }
    }

    /// Why, and what to do, without the file's name.
    pub fn reason(&self) -> String {
        match self {
            // The I/O error is part of the message, and so not also a
            // `source`: the error chain would print it twice.
            ReadError::Io { error, .. } => error.to_string(),
            ReadError::NotRegular { kind, .. } => format!(
                "it is {kind}, not a regular file: point to the file itself (a FIFO or a device \
                 could block the scaler or never end)"
            ),
            ReadError::TooLarge { limit, .. } => format!(
                "it is larger than {}, the most read of such a file: is it the file you meant?",
                size(*limit)
            ),
            ReadError::NotText { at, .. } => {
                format!("it is not UTF-8 text (at byte {at}): save it as UTF-8")
            }
        }
    }
}

/// The regular file at `path`, opened as [`read`] opens it, for a reader
/// that streams it and bounds what it reads itself (`trace import`'s usage
/// exports, hundreds of MiB).
pub fn open_regular(path: &Path) -> Result<std::fs::File, ReadError> {
    let io = |error| ReadError::Io {
        path: path.into(),
        error,
    };
    let file = open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(ReadError::NotRegular {
            path: path.into(),
            kind: kind(&metadata.file_type()),
        });
    }
    Ok(file)
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |error| ReadError::Io {
        path: path.into(),
        error,
    };
    let file = open_regular(path)?;
    let metadata = file.metadata().map_err(io)?;
    let too_large = || ReadError::TooLarge {
        path: path.into(),
        limit,
    };
    if metadata.len() > limit {
        return Err(too_large());
    }
    // The size may change while it is read: the cap holds whatever it says.
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The UTF-8 text of the regular file at `path`, at most `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    String::from_utf8(read(path, limit)?).map_err(|err| ReadError::NotText {
        path: path.into(),
        at: err.utf8_error().valid_up_to(),
    })
}

/// `path` opened for reading without waiting for a writer (a FIFO) or a
/// carrier (a terminal line), and without becoming the process's
/// controlling terminal.
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    options.open(path)
}

/// What a file that is not a regular file is, for the message.
fn kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// A size for people: "64 MiB", "512 KiB", "100 bytes".
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_regular_file_is_read_whole_up_to_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "interval = \"10s\"\n").unwrap();
        assert_eq!(read_text(&file, 100).unwrap(), "interval = \"10s\"\n");
        assert_eq!(
            read(&file, 17).unwrap().len(),
            17,
            "exactly the cap is fine"
        );
        let err = read(&file, 16).unwrap_err();
        assert!(
            matches!(err, ReadError::TooLarge { limit: 16, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with("c.toml: it is larger than 16 bytes, the most read of such a file: is it the file you meant?"),
            "{err}"
        );
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p.wasm");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        let cases = [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ];
        for (path, kind) in cases {
            let err = read(path, MAX_CONFIG_BYTES).unwrap_err();
            assert!(
                err.to_string().contains(kind) && err.to_string().contains("not a regular file"),
                "{}: {err}",
                path.display()
            );
            assert_eq!(err.path(), path);
        }
        // Nothing waited for a writer.
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_file_and_text_that_is_not_utf8_say_which_file() {
        let err = read(Path::new("/nonexistent/c.toml"), 10).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/c.toml: "),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(&file, b"0,60\n\xff").unwrap();
        let err = read_text(&file, 100).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("t.csv: it is not UTF-8 text (at byte 5): save it as UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(64 * 1024 * 1024), "64 MiB");
        assert_eq!(size(4096), "4 KiB");
        assert_eq!(size(100), "100 bytes");
    }
}
