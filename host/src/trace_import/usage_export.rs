//! CircleCI's usage export, read into jobs of a trace.
//!
//! What CircleCI documents about the export (the Usage API reference,
//! "Usage" in <https://circleci.com/docs/api/v2/>, and the support article
//! "How to use the CircleCI v2 API to create and retrieve usage reports"):
//! - it is "at the job run level": one row per job run, with organization,
//!   project, pipeline, workflow and job columns, and credits;
//! - the columns this import reads, by name: `resource_class`,
//!   `job_run_queued_at`, `job_run_started_at`, `job_run_stopped_at`
//!   (required); `job_build_status`, `parallelism` and `job_id` (used when
//!   present). Every other column is ignored;
//! - a result of at most 100 MB, delivered as one or more CSV files "that
//!   need to be merged after download".
//!
//! What it does not document, and so is read leniently (as exports are
//! found in the wild, and as CircleCI's own MCP server reads them):
//! - column names in any order and any case (`JOB_RUN_QUEUED_AT` is
//!   usual), surrounding spaces and a byte-order mark ignored;
//! - times as `2026-11-23 09:00:03.123` (no offset: UTC, the warehouse's
//!   form) or RFC 3339 with an offset; an empty cell, `\N`, `null` or
//!   `None` is no time;
//! - the downloads are gzip: a file is gunzipped when it starts with
//!   gzip's magic bytes, whatever its name.
//!
//! What marks a row:
//! - a self-hosted runner's resource class is `namespace/name` (CircleCI's
//!   runner docs: `resource_class: <namespace>/<resource-class>`);
//!   CircleCI's own classes (`medium`, `arm.large`, `macos.m1.medium.gen1`)
//!   have no slash, and are skipped;
//! - a job cancelled before it started has a queued time and no start
//!   (`job_build_status` `canceled`); one with no start and another status
//!   (`not_run`, `unauthorized`) never ran either;
//! - `parallelism` N: the job run took N runner tasks, so N jobs of the
//!   trace, at the run's times.
//!
//! A job of the trace: submitted at the queued time, running for
//! stopped − started, and its recorded wait started − queued (what
//! calibration compares the simulator with). Rows that cannot be used are
//! counted by reason and named (file, line, column); they stop the import
//! only when nothing at all is usable. Every file is bounded: bytes
//! ([`MAX_FILE_BYTES`], after gunzip), line length ([`MAX_LINE_BYTES`]) and
//! rows in all ([`MAX_ROWS`]).

use super::cut;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

/// The most CSV bytes read from one file (after gunzip): five times the
/// 100 MB CircleCI caps an export at.
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// The longest line (a row, or a line of a quoted cell).
pub const MAX_LINE_BYTES: u64 = 1024 * 1024;
/// The most rows read from all the files of one import.
pub const MAX_ROWS: u64 = 5_000_000;
/// The most parallel tasks a row may claim.
pub const MAX_PARALLELISM: u32 = 1000;
/// The longest wait or run a job may have: a year.
pub const MAX_SECONDS: i64 = 366 * 86_400;

/// Rows named for each reason they were skipped.
const EXAMPLES: usize = 3;
/// Malformed rows named with their message.
const MALFORMED_NAMED: usize = 10;
/// Messages quote at most this many characters of a cell.
const QUOTE: usize = 60;

/// The columns read, as CircleCI names them (lower case).
pub const RESOURCE_CLASS: &str = "resource_class";
pub const QUEUED_AT: &str = "job_run_queued_at";
pub const STARTED_AT: &str = "job_run_started_at";
pub const STOPPED_AT: &str = "job_run_stopped_at";
pub const BUILD_STATUS: &str = "job_build_status";
pub const PARALLELISM: &str = "parallelism";
pub const JOB_ID: &str = "job_id";

/// The import cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    // The I/O error is in the message, and so not also the `source`.
    #[error("cannot read {file}: {error}")]
    Read { file: String, error: io::Error },
    #[error(
        "{file}: not a CircleCI usage export: it has no {missing} column (its columns: {found}); \
         export one with `runner-scaler trace fetch` or the Usage API"
    )]
    MissingColumns {
        file: String,
        missing: String,
        found: String,
    },
    #[error(
        "{file}: more than {MAX_ROWS} rows in all: more than a year of exports; \
         import a shorter window"
    )]
    TooManyRows { file: String },
    #[error(
        "nothing usable: no row is a finished job of a self-hosted runner class{wanted}\n{summary}"
    )]
    NothingUsable {
        wanted: String,
        summary: Box<Summary>,
    },
}

/// Why a row was not made a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    NotRunnerClass,
    NotAsked,
    NoQueuedTime,
    CancelledBeforeStart,
    NeverStarted,
    NotFinished,
    Duplicate,
    Malformed,
}

impl Skip {
    fn describe(self) -> &'static str {
        match self {
            Skip::NotRunnerClass => "not a self-hosted runner class",
            Skip::NotAsked => "another runner class than --resource-class",
            Skip::NoQueuedTime => "no queued time",
            Skip::CancelledBeforeStart => "cancelled before it started",
            Skip::NeverStarted => "never started",
            Skip::NotFinished => "no stop time (running when exported)",
            Skip::Duplicate => "the same job run twice (overlapping exports)",
            Skip::Malformed => "malformed",
        }
    }
}

/// The rows skipped for one reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub rows: u64,
    /// The first few, as `file:line` (and, for malformed rows, the
    /// column and the problem).
    pub named: Vec<String>,
    /// Per value: the classes that are not runner classes, the statuses
    /// of jobs that never started.
    pub by_value: BTreeMap<String, u64>,
}

/// One file read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    pub name: String,
    pub rows: u64,
    pub gzip: bool,
}

/// What an import read, kept and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: Vec<FileRead>,
    pub rows: u64,
    /// Jobs kept per resource class.
    pub kept: BTreeMap<String, u64>,
    /// Rows with parallelism above 1, and the jobs they became.
    pub parallel_rows: u64,
    pub parallel_jobs: u64,
    pub skipped: BTreeMap<Skip, Skipped>,
    /// The first and last queued times kept (Unix seconds).
    pub first: Option<i64>,
    pub last: Option<i64>,
}

impl Summary {
    /// Jobs kept in all.
    pub fn jobs(&self) -> u64 {
        self.kept.values().sum()
    }

    fn skip(&mut self, reason: Skip, at: &str, value: Option<&str>) {
        let entry = self.skipped.entry(reason).or_default();
        entry.rows += 1;
        let limit = if reason == Skip::Malformed {
            MALFORMED_NAMED
        } else {
            EXAMPLES
        };
        if entry.named.len() < limit {
            entry.named.push(at.to_string());
        }
        if let Some(value) = value {
            // A hostile file could name a million classes: count the first few.
            let value = cut(value, QUOTE);
            if entry.by_value.len() < 20 || entry.by_value.contains_key(&value) {
                *entry.by_value.entry(value).or_default() += 1;
            }
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|file| {
                let gzip = if file.gzip { "gzip, " } else { "" };
                format!("{} ({gzip}{} rows)", file.name, file.rows)
            })
            .collect();
        writeln!(
            f,
            "read {} rows from {} file{}: {}",
            self.rows,
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" },
            files.join(", ")
        )?;
        let range = match (self.first, self.last) {
            (Some(first), Some(last)) => format!(", queued {} to {}", moment(first), moment(last)),
            _ => String::new(),
        };
        let kept_rows = self.jobs() - self.parallel_jobs + self.parallel_rows;
        writeln!(
            f,
            "kept {} jobs from {kept_rows} rows of self-hosted runner classes{range}",
            self.jobs()
        )?;
        let width = self.kept.keys().map(|c| c.len()).max().unwrap_or(0);
        for (class, jobs) in &self.kept {
            writeln!(f, "  {class:width$}  {jobs}")?;
        }
        if self.parallel_rows > 0 {
            let rows = match self.parallel_rows {
                1 => "1 row".to_string(),
                n => format!("{n} rows"),
            };
            writeln!(
                f,
                "  ({rows} with parallelism above 1 became {} jobs, one per parallel task)",
                self.parallel_jobs
            )?;
        }
        let skipped: u64 = self.skipped.values().map(|s| s.rows).sum();
        if skipped == 0 {
            return writeln!(f, "skipped no row");
        }
        writeln!(f, "skipped {skipped} rows:")?;
        for (reason, skip) in &self.skipped {
            let mut line = format!("  {:>6}  {}", skip.rows, reason.describe());
            if !skip.by_value.is_empty() {
                let values: Vec<String> = skip
                    .by_value
                    .iter()
                    .map(|(value, n)| format!("{value} {n}"))
                    .collect();
                line += &format!(" ({})", values.join(", "));
            }
            if *reason == Skip::Malformed {
                writeln!(f, "{line}:")?;
                for named in &skip.named {
                    writeln!(f, "          {named}")?;
                }
                let more = skip.rows - skip.named.len() as u64;
                if more > 0 {
                    writeln!(f, "          and {more} more")?;
                }
            } else {
                let more = if skip.rows > skip.named.len() as u64 {
                    ", ..."
                } else {
                    ""
                };
                writeln!(f, "{line}: {}{more}", skip.named.join(", "))?;
            }
        }
        Ok(())
    }
}

fn moment(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%a %Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// A job of the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// When it was queued, Unix seconds.
    pub queued: i64,
    /// Seconds from its start to its stop.
    pub duration: u64,
    /// Seconds from queued to started: what it waited for a runner.
    pub wait: u64,
    /// Its resource class, an index into [`Import::classes`].
    pub class: usize,
}

/// An import's jobs, in queued order, and its summary.
#[derive(Debug, Clone)]
pub struct Import {
    pub jobs: Vec<Job>,
    pub classes: Vec<String>,
    pub summary: Summary,
}

impl Import {
    /// The trace's CSV (`submit,duration,resource_class,wait`, submit
    /// times in RFC 3339), with a comment naming where it came from.
    pub fn write_trace(&self, out: &mut dyn Write, origin: &str) -> io::Result<()> {
        writeln!(
            out,
            "# {} jobs imported from {} by `runner-scaler trace import`",
            self.jobs.len(),
            crate::text::escape(origin)
        )?;
        writeln!(
            out,
            "# submit: queued at; duration: stopped - started; wait: started - queued (recorded)"
        )?;
        writeln!(out, "submit,duration,resource_class,wait")?;
        for job in &self.jobs {
            let submit = jiff::Timestamp::from_second(job.queued).map_err(io::Error::other)?;
            writeln!(
                out,
                "{submit},{},{},{}",
                job.duration, self.classes[job.class], job.wait
            )?;
        }
        Ok(())
    }
}

/// Reads export files one after another into one set of jobs.
pub struct Importer {
    /// Runner classes to keep; empty keeps every one.
    wanted: Vec<String>,
    jobs: Vec<Job>,
    classes: Vec<String>,
    class_ids: HashMap<String, usize>,
    /// Hashes of the job runs seen (`job_id` and times), to drop the
    /// same run exported twice.
    seen: HashSet<u64>,
    summary: Summary,
}

/// The columns of one file: where each read column is.
struct Columns {
    class: usize,
    queued: usize,
    started: usize,
    stopped: usize,
    status: Option<usize>,
    parallelism: Option<usize>,
    job_id: Option<usize>,
    count: usize,
}

impl Columns {
    fn find(headers: &csv::StringRecord, file: &str) -> Result<Columns, ImportError> {
        let names: Vec<String> = headers
            .iter()
            .map(|h| {
                h.trim_start_matches('\u{feff}')
                    .trim()
                    .to_ascii_lowercase()
                    .replace(' ', "_")
            })
            .collect();
        let position = |name: &str| names.iter().position(|n| n == name);
        let required = [RESOURCE_CLASS, QUEUED_AT, STARTED_AT, STOPPED_AT];
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|name| position(name).is_none())
            .collect();
        if !missing.is_empty() {
            let found: Vec<String> = names.iter().take(12).map(|n| cut(n, 40)).collect();
            let more = if names.len() > 12 { ", ..." } else { "" };
            let found = match found.as_slice() {
                [] | [_] if names.iter().all(|n| n.is_empty()) => "none: it is empty".to_string(),
                _ => format!("{}{more}", found.join(", ")),
            };
            return Err(ImportError::MissingColumns {
                file: file.to_string(),
                missing: missing.join(", "),
                found,
            });
        }
        let at = |name| position(name).expect("checked above");
        Ok(Columns {
            class: at(RESOURCE_CLASS),
            queued: at(QUEUED_AT),
            started: at(STARTED_AT),
            stopped: at(STOPPED_AT),
            status: position(BUILD_STATUS),
            parallelism: position(PARALLELISM),
            job_id: position(JOB_ID),
            count: names.len(),
        })
    }
}

/// A malformed cell: its column and what is wrong.
struct Bad(String);

impl Importer {
    /// An importer keeping the runner classes `wanted` (all when empty).
    pub fn new(wanted: Vec<String>) -> Importer {
        Importer {
            wanted,
            jobs: Vec::new(),
            classes: Vec::new(),
            class_ids: HashMap::new(),
            seen: HashSet::new(),
            summary: Summary::default(),
        }
    }

    /// Read the export file at `path`.
    pub fn read_file(&mut self, path: &Path) -> Result<(), ImportError> {
        let name = path.display().to_string();
        let file = crate::input_file::open_regular(path).map_err(|err| ImportError::Read {
            file: name.clone(),
            error: io::Error::other(err.reason()),
        })?;
        self.read(&name, file)
    }

    /// Read one export from `input` (plain or gzip CSV); `name` names it in
    /// messages.
    pub fn read(&mut self, name: &str, input: impl Read) -> Result<(), ImportError> {
        let read_error = |error| ImportError::Read {
            file: name.to_string(),
            error,
        };
        let mut buffered = BufReader::new(input);
        let gzip = buffered
            .fill_buf()
            .map_err(read_error)?
            .starts_with(&[0x1f, 0x8b]);
        let decoded: Box<dyn Read + '_> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(Bounded::new(decoded));
        let columns = match reader.headers() {
            Ok(headers) => Columns::find(headers, name)?,
            Err(err) => return Err(read_error(csv_io(err))),
        };
        let first_file = self.summary.files.len();
        self.summary.files.push(FileRead {
            name: name.to_string(),
            rows: 0,
            gzip,
        });
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(err) => match err.kind() {
                    csv::ErrorKind::Io(_) => return Err(read_error(csv_io(err))),
                    // Invalid UTF-8 and the like: this row only.
                    _ => {
                        let line = err.position().map_or(0, |p| p.line());
                        self.count_row(first_file, name)?;
                        self.summary.skip(
                            Skip::Malformed,
                            &format!("{name}:{line}: {}", cut(&err.to_string(), 120)),
                            None,
                        );
                        continue;
                    }
                },
            }
            self.count_row(first_file, name)?;
            let line = record.position().map_or(0, |p| p.line());
            self.row(&record, &columns, name, line);
        }
        Ok(())
    }

    fn count_row(&mut self, file: usize, name: &str) -> Result<(), ImportError> {
        self.summary.rows += 1;
        self.summary.files[file].rows += 1;
        if self.summary.rows > MAX_ROWS {
            return Err(ImportError::TooManyRows {
                file: name.to_string(),
            });
        }
        Ok(())
    }

    /// Make `record` jobs, or count why not.
    fn row(&mut self, record: &csv::StringRecord, columns: &Columns, file: &str, line: u64) {
        let at = format!("{file}:{line}");
        if record.len() != columns.count {
            let message = format!(
                "{at}: {} fields, the header has {}",
                record.len(),
                columns.count
            );
            return self.summary.skip(Skip::Malformed, &message, None);
        }
        let cell = |index: usize| record.get(index).unwrap_or("").trim();
        let class = cell(columns.class);
        if !class.contains('/') {
            let shown = if class.is_empty() { "(none)" } else { class };
            return self.summary.skip(Skip::NotRunnerClass, &at, Some(shown));
        }
        if !self.wanted.is_empty() && !self.wanted.iter().any(|w| w == class) {
            return self.summary.skip(Skip::NotAsked, &at, Some(class));
        }
        match self.times(record, columns) {
            Err(Bad(message)) => {
                self.summary
                    .skip(Skip::Malformed, &format!("{at}: {message}"), None);
            }
            Ok(Times::Skipped(reason, value)) => {
                self.summary.skip(reason, &at, value.as_deref());
            }
            Ok(Times::Job {
                queued,
                started,
                stopped,
                parallelism,
            }) => {
                if let Some(id) = columns.job_id.map(cell).filter(|id| !id.is_empty()) {
                    let mut hasher = std::hash::DefaultHasher::new();
                    (id, class, queued, started, stopped).hash(&mut hasher);
                    if !self.seen.insert(hasher.finish()) {
                        return self.summary.skip(Skip::Duplicate, &at, None);
                    }
                }
                let class = match self.class_ids.get(class) {
                    Some(&id) => id,
                    None => {
                        self.classes.push(class.to_string());
                        self.class_ids
                            .insert(class.to_string(), self.classes.len() - 1);
                        self.classes.len() - 1
                    }
                };
                let queued_second = queued.div_euclid(1000);
                let job = Job {
                    queued: queued_second,
                    duration: rounded_seconds(stopped - started),
                    wait: rounded_seconds(started - queued),
                    class,
                };
                for _ in 0..parallelism {
                    self.jobs.push(job);
                }
                if parallelism > 1 {
                    self.summary.parallel_rows += 1;
                    self.summary.parallel_jobs += u64::from(parallelism);
                }
                *self
                    .summary
                    .kept
                    .entry(self.classes[class].clone())
                    .or_default() += u64::from(parallelism);
                self.summary.first = Some(
                    self.summary
                        .first
                        .map_or(queued_second, |f| f.min(queued_second)),
                );
                self.summary.last = Some(
                    self.summary
                        .last
                        .map_or(queued_second, |l| l.max(queued_second)),
                );
            }
        }
    }

    /// The row's times (milliseconds), checked, or why it is no job.
    fn times(&self, record: &csv::StringRecord, columns: &Columns) -> Result<Times, Bad> {
        let cell = |index: usize| record.get(index).unwrap_or("").trim();
        let time = |index: usize, name: &str| -> Result<Option<i64>, Bad> {
            parse_time(cell(index)).map_err(|NotATime| {
                Bad(format!(
                    "{} {:?} is not a time; expected e.g. 2026-11-23 09:00:03.123 (UTC) \
                     or 2026-11-23T09:00:03Z",
                    name.to_ascii_uppercase(),
                    cut(cell(index), QUOTE)
                ))
            })
        };
        let Some(queued) = time(columns.queued, QUEUED_AT)? else {
            return Ok(Times::Skipped(Skip::NoQueuedTime, None));
        };
        let Some(started) = time(columns.started, STARTED_AT)? else {
            let status = columns.status.map(cell).unwrap_or("");
            let cancelled = status.to_ascii_lowercase().starts_with("cancel");
            return Ok(if cancelled {
                Times::Skipped(Skip::CancelledBeforeStart, None)
            } else {
                let status = if status.is_empty() {
                    "no status"
                } else {
                    status
                };
                Times::Skipped(Skip::NeverStarted, Some(status.to_string()))
            });
        };
        let Some(stopped) = time(columns.stopped, STOPPED_AT)? else {
            return Ok(Times::Skipped(Skip::NotFinished, None));
        };
        if started < queued {
            return Err(Bad(format!(
                "{} {:?} is before {} {:?}",
                STARTED_AT.to_ascii_uppercase(),
                cut(cell(columns.started), QUOTE),
                QUEUED_AT.to_ascii_uppercase(),
                cut(cell(columns.queued), QUOTE)
            )));
        }
        if stopped < started {
            return Err(Bad(format!(
                "{} {:?} is before {} {:?}",
                STOPPED_AT.to_ascii_uppercase(),
                cut(cell(columns.stopped), QUOTE),
                STARTED_AT.to_ascii_uppercase(),
                cut(cell(columns.started), QUOTE)
            )));
        }
        for (span, what) in [(started - queued, "waited"), (stopped - started, "ran")] {
            if span / 1000 > MAX_SECONDS {
                return Err(Bad(format!(
                    "it {what} {} days, more than a year",
                    span / 86_400_000
                )));
            }
        }
        let parallelism = match columns.parallelism.map(cell) {
            None | Some("") => 1,
            Some(text) if is_null(text) => 1,
            Some(text) => match text.parse::<f64>() {
                Ok(n) if n.fract() == 0.0 && (1.0..=f64::from(MAX_PARALLELISM)).contains(&n) => {
                    n as u32
                }
                _ => {
                    return Err(Bad(format!(
                        "{} {:?} is not a whole number from 1 to {MAX_PARALLELISM}",
                        PARALLELISM.to_ascii_uppercase(),
                        cut(text, QUOTE)
                    )))
                }
            },
        };
        Ok(Times::Job {
            queued,
            started,
            stopped,
            parallelism,
        })
    }

    /// The jobs in queued order (ties in the files' order), or an error
    /// when no row gave one.
    pub fn finish(self) -> Result<Import, ImportError> {
        if self.jobs.is_empty() {
            let wanted = if self.wanted.is_empty() {
                String::new()
            } else {
                format!(" named by --resource-class ({})", self.wanted.join(", "))
            };
            return Err(ImportError::NothingUsable {
                wanted,
                summary: Box::new(self.summary),
            });
        }
        let mut jobs = self.jobs;
        jobs.sort_by_key(|j| j.queued);
        Ok(Import {
            jobs,
            classes: self.classes,
            summary: self.summary,
        })
    }
}

enum Times {
    Job {
        queued: i64,
        started: i64,
        stopped: i64,
        parallelism: u32,
    },
    Skipped(Skip, Option<String>),
}

/// Milliseconds to whole seconds, to the nearest.
fn rounded_seconds(millis: i64) -> u64 {
    ((millis + 500) / 1000).max(0) as u64
}

fn is_null(text: &str) -> bool {
    matches!(
        text,
        "\\N" | "null" | "NULL" | "Null" | "None" | "none" | "NaT"
    )
}

/// A cell that holds something other than a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotATime;

/// A cell's time in milliseconds since the Unix epoch: `Ok(None)` when the
/// cell holds none, `Err` when it holds something else.
pub fn parse_time(text: &str) -> Result<Option<i64>, NotATime> {
    let text = text.trim();
    if text.is_empty() || is_null(text) {
        return Ok(None);
    }
    let text = text.strip_suffix(" UTC").unwrap_or(text);
    if let Ok(moment) = text.parse::<jiff::Timestamp>() {
        return Ok(Some(moment.as_millisecond()));
    }
    // No offset: the warehouse writes UTC.
    let civil: jiff::civil::DateTime = text.parse().map_err(|_| NotATime)?;
    let moment = civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| NotATime)?;
    Ok(Some(moment.timestamp().as_millisecond()))
}

fn csv_io(err: csv::Error) -> io::Error {
    match err.into_kind() {
        csv::ErrorKind::Io(err) => err,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// A reader that refuses more than [`MAX_FILE_BYTES`] in all or a line of
/// more than [`MAX_LINE_BYTES`]: what a CSV reader buffers stays bounded,
/// whatever the file (or a gzip bomb) holds.
struct Bounded<R> {
    inner: R,
    total: u64,
    line: u64,
}

impl<R> Bounded<R> {
    fn new(inner: R) -> Self {
        Bounded {
            inner,
            total: 0,
            line: 0,
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > MAX_FILE_BYTES {
            return Err(io::Error::other(format!(
                "more than {} MiB of CSV, more than a usage export holds (CircleCI caps \
                 one at 100 MB); export a shorter window",
                MAX_FILE_BYTES / (1024 * 1024)
            )));
        }
        // The line under way continues into this chunk's first segment;
        // each later segment starts a line.
        let mut segments = buf[..n].split(|&b| b == b'\n');
        let mut line = self.line + segments.next().map_or(0, |s| s.len() as u64);
        let mut longest = line;
        for segment in segments {
            line = segment.len() as u64;
            longest = longest.max(line);
        }
        self.line = line;
        if longest > MAX_LINE_BYTES {
            return Err(io::Error::other(format!(
                "a line longer than {} KiB, which no usage export has",
                MAX_LINE_BYTES / 1024
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "JOB_ID,RESOURCE_CLASS,JOB_RUN_QUEUED_AT,JOB_RUN_STARTED_AT,JOB_RUN_STOPPED_AT,JOB_BUILD_STATUS,PARALLELISM";

    fn import(text: &str) -> Result<Import, ImportError> {
        let mut importer = Importer::new(vec![]);
        importer.read("e.csv", text.as_bytes())?;
        importer.finish()
    }

    #[test]
    fn times_in_the_forms_exports_use() {
        let at = |t: &str| parse_time(t).unwrap().unwrap();
        let expected = 1_795_424_403_123; // 2026-11-23T09:00:03.123Z
        assert_eq!(at("2026-11-23 09:00:03.123"), expected);
        assert_eq!(at("2026-11-23T09:00:03.123Z"), expected);
        assert_eq!(at("2026-11-23T10:00:03.123+01:00"), expected);
        assert_eq!(at("2026-11-23 09:00:03.123 UTC"), expected);
        assert_eq!(at(" 2026-11-23 09:00:03 "), expected - 123);
        for none in ["", "\\N", "null", "None"] {
            assert_eq!(parse_time(none), Ok(None), "{none:?}");
        }
        assert_eq!(parse_time("yesterday"), Err(NotATime));
        assert_eq!(parse_time("2026-13-01 00:00:00"), Err(NotATime));
    }

    #[test]
    fn a_row_is_a_job_per_parallel_task_with_its_recorded_wait() {
        let text = format!(
            "{HEADER}\n\
             a,acme/linux,2026-11-23 09:00:00.000,2026-11-23 09:00:41.600,2026-11-23 09:07:41.600,success,1\n\
             b,acme/linux,2026-11-23 08:00:00,2026-11-23 08:00:05,2026-11-23 08:01:05,failed,3\n"
        );
        let import = import(&text).unwrap();
        assert_eq!(import.jobs.len(), 4);
        assert_eq!(
            import.jobs[0].queued, 1_795_420_800,
            "sorted by queued time"
        );
        assert_eq!((import.jobs[0].duration, import.jobs[0].wait), (60, 5));
        assert_eq!((import.jobs[3].duration, import.jobs[3].wait), (420, 42));
        assert_eq!(import.summary.kept["acme/linux"], 4);
        assert_eq!(
            (import.summary.parallel_rows, import.summary.parallel_jobs),
            (1, 3)
        );
        let mut out = Vec::new();
        import.write_trace(&mut out, "e.csv").unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains(
                "\nsubmit,duration,resource_class,wait\n2026-11-23T08:00:00Z,60,acme/linux,5\n"
            ),
            "{out}"
        );
        assert!(
            out.ends_with("2026-11-23T09:00:00Z,420,acme/linux,42\n"),
            "{out}"
        );
    }

    #[test]
    fn skipped_rows_are_counted_by_reason_and_named() {
        let text = format!(
            "{HEADER}\n\
             a,large,2026-11-23 09:00:00,2026-11-23 09:00:01,2026-11-23 09:01:00,success,1\n\
             b,acme/linux,,2026-11-23 09:00:01,2026-11-23 09:01:00,success,1\n\
             c,acme/linux,2026-11-23 09:00:00,\\N,\\N,canceled,1\n\
             d,acme/linux,2026-11-23 09:00:00,,,not_run,1\n\
             e,acme/linux,2026-11-23 09:00:00,2026-11-23 09:00:01,,running,1\n\
             f,acme/linux,2026-11-23 09:00:00,2026-11-23 09:00:01,yesterday,success,1\n\
             g,acme/linux,2026-11-23 09:00:00,2026-11-23 08:00:01,2026-11-23 09:01:00,success,1\n\
             h,acme/linux,2026-11-23 09:00:00\n\
             i,acme/linux,2026-11-23 09:00:00,2026-11-23 09:00:01,2026-11-23 09:01:00,success,x\n\
             j,acme/linux,2026-11-23 09:00:00,2026-11-23 09:00:01,2026-11-23 09:01:00,success,1\n\
             j,acme/linux,2026-11-23 09:00:00,2026-11-23 09:00:01,2026-11-23 09:01:00,success,1\n"
        );
        let import = import(&text).unwrap();
        let s = &import.summary;
        assert_eq!(s.rows, 11);
        assert_eq!(s.jobs(), 1);
        let rows = |reason| s.skipped.get(&reason).map_or(0, |k: &Skipped| k.rows);
        assert_eq!(rows(Skip::NotRunnerClass), 1);
        assert_eq!(rows(Skip::NoQueuedTime), 1);
        assert_eq!(rows(Skip::CancelledBeforeStart), 1);
        assert_eq!(rows(Skip::NeverStarted), 1);
        assert_eq!(rows(Skip::NotFinished), 1);
        assert_eq!(rows(Skip::Malformed), 4);
        assert_eq!(rows(Skip::Duplicate), 1);
        let text = s.to_string();
        for expected in [
            "read 11 rows from 1 file: e.csv (11 rows)",
            "kept 1 jobs from 1 rows of self-hosted runner classes, queued Mon 2026-11-23 09:00 UTC to Mon 2026-11-23 09:00 UTC",
            "1  not a self-hosted runner class (large 1): e.csv:2",
            "1  no queued time: e.csv:3",
            "1  cancelled before it started: e.csv:4",
            "1  never started (not_run 1): e.csv:5",
            "e.csv:7: JOB_RUN_STOPPED_AT \"yesterday\" is not a time",
            "e.csv:8: JOB_RUN_STARTED_AT \"2026-11-23 08:00:01\" is before JOB_RUN_QUEUED_AT",
            "e.csv:9: 3 fields, the header has 7",
            "e.csv:10: PARALLELISM \"x\" is not a whole number from 1 to 1000",
            "1  the same job run twice (overlapping exports): e.csv:12",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
    }

    #[test]
    fn columns_are_found_in_any_order_and_case() {
        let text = "\u{feff}Extra,job_run_stopped_at, Job_Run_Started_At ,RESOURCE_CLASS,job_run_queued_at\n\
                    x,2026-11-23T09:01:00Z,2026-11-23T09:00:10Z,acme/a,2026-11-23T09:00:00Z\n";
        let imported = import(text).unwrap();
        assert_eq!(imported.jobs[0].duration, 50);
        assert_eq!(imported.jobs[0].wait, 10);
        let err = match import("A,B\n1,2\n") {
            Err(err) => err.to_string(),
            Ok(_) => panic!("no columns"),
        };
        assert!(err.contains("e.csv: not a CircleCI usage export: it has no resource_class, job_run_queued_at, job_run_started_at, job_run_stopped_at column (its columns: a, b)"), "{err}");
        let err = import("").unwrap_err().to_string();
        assert!(err.contains("(its columns: none: it is empty)"), "{err}");
    }

    #[test]
    fn classes_can_be_chosen_and_nothing_usable_fails_with_the_summary() {
        let text = format!(
            "{HEADER}\n\
             a,acme/a,2026-11-23 09:00:00,2026-11-23 09:00:01,2026-11-23 09:01:00,success,1\n\
             b,acme/b,2026-11-23 09:00:00,2026-11-23 09:00:01,2026-11-23 09:01:00,success,1\n"
        );
        let mut importer = Importer::new(vec!["acme/b".into()]);
        importer.read("e.csv", text.as_bytes()).unwrap();
        let import = importer.finish().unwrap();
        assert_eq!(import.classes, vec!["acme/b".to_string()]);
        assert_eq!(import.summary.skipped[&Skip::NotAsked].rows, 1);
        let mut importer = Importer::new(vec!["acme/c".into()]);
        importer.read("e.csv", text.as_bytes()).unwrap();
        let err = importer.finish().unwrap_err().to_string();
        assert!(err.starts_with("nothing usable: no row is a finished job of a self-hosted runner class named by --resource-class (acme/c)\nread 2 rows"), "{err}");
    }

    #[test]
    fn gzip_is_read_by_its_magic_and_bombs_are_bounded() {
        use flate2::write::GzEncoder;
        let text = format!(
            "{HEADER}\na,acme/a,2026-11-23 09:00:00,2026-11-23 09:00:01,2026-11-23 09:01:00,success,1\n"
        );
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let mut importer = Importer::new(vec![]);
        importer.read("download-1", gz.as_slice()).unwrap();
        assert!(importer.summary.files[0].gzip);
        assert_eq!(importer.finish().unwrap().jobs.len(), 1);

        // A line that never ends, compressed to almost nothing.
        let mut bomb = GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(format!("{HEADER}\n").as_bytes()).unwrap();
        let zeros = vec![b'a'; 1 << 20];
        for _ in 0..3 {
            bomb.write_all(&zeros).unwrap();
        }
        let bomb = bomb.finish().unwrap();
        assert!(bomb.len() < 20_000);
        let mut importer = Importer::new(vec![]);
        let err = importer.read("bomb.gz", bomb.as_slice()).unwrap_err();
        assert!(
            err.to_string()
                .contains("bomb.gz: a line longer than 1024 KiB"),
            "{err}"
        );
    }

    #[test]
    fn the_bounded_reader_caps_the_total() {
        struct Endless;
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = if i % 100 == 99 { b'\n' } else { b'x' };
                }
                Ok(buf.len())
            }
        }
        let mut bounded = Bounded::new(Endless);
        let err = io::copy(&mut bounded, &mut io::sink()).unwrap_err();
        assert!(
            err.to_string().contains("more than 512 MiB of CSV"),
            "{err}"
        );
    }
}
