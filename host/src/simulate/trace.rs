//! Job traces: the CSV format (`submit,duration[,resource_class[,wait]]`, see
//! `examples/traces/README.md`) and the traces embedded in the binary.

use crate::text::quoted;
use std::path::Path;

/// One job of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// When the job was submitted, in seconds from the trace's start.
    pub submit: u64,
    /// How long it runs once a runner claims it, in seconds.
    pub duration: u64,
    /// Its resource class, when the trace says.
    pub resource_class: Option<String>,
    /// How long it waited for a runner in reality, in seconds, when the
    /// trace records it (an imported export): what calibration compares.
    pub wait: Option<u64>,
    /// The line of the trace it came from (1-based), for messages.
    pub line: usize,
}

/// A trace: jobs in submit order (ties keep the file's order), and the
/// moment its second 0 is.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The file or embedded trace it came from.
    pub origin: String,
    pub start: jiff::Timestamp,
    pub jobs: Vec<Job>,
}

/// A trace compiled into the binary.
pub struct Embedded {
    pub name: &'static str,
    /// One line, for the help text.
    pub about: &'static str,
    /// What second 0 is: these traces are days that start at midnight UTC,
    /// on the weekday their shape is for (business-hours policies see it).
    pub start: &'static str,
    pub csv: &'static str,
}

/// The embedded traces; `weekday` is the default.
pub const EMBEDDED: &[Embedded] = &[
    Embedded {
        name: "weekday",
        about: "a Monday: morning and afternoon peaks, a nightly batch (478 jobs)",
        start: "2026-11-23T00:00:00Z",
        csv: include_str!("../../../examples/traces/weekday.csv"),
    },
    Embedded {
        name: "release-day",
        about: "a Thursday with a release at 15:00: 12 test matrices in 40 minutes (636 jobs)",
        start: "2026-11-26T00:00:00Z",
        csv: include_str!("../../../examples/traces/release-day.csv"),
    },
    Embedded {
        name: "weekend",
        about: "a quiet Saturday: the nightly batch and a few pipelines (17 jobs)",
        start: "2026-11-28T00:00:00Z",
        csv: include_str!("../../../examples/traces/weekend.csv"),
    },
    Embedded {
        name: "bursty",
        about: "a monorepo's Tuesday: bursts of 6-12 jobs every 4 to 20 minutes, 08-18 (449 jobs)",
        start: "2026-11-24T00:00:00Z",
        csv: include_str!("../../../examples/traces/bursty.csv"),
    },
];

/// Second 0 of a trace whose submit times are offsets, unless `--start`
/// says otherwise: a Monday, midnight UTC.
pub const DEFAULT_START: &str = "2026-11-23T00:00:00Z";

/// The longest span a trace may cover, and the longest job: a year (366
/// days). Past that a value is a mistake (or an attack: a simulation of
/// centuries would run for hours and fill memory), refused naming its line.
pub const MAX_SPAN_SECONDS: u64 = 366 * 24 * 3600;

/// A trace that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read the trace {}: {}", .0.path().display(), .0.reason())]
    Read(crate::input_file::ReadError),
    #[error("{origin}:{line}: {message}")]
    Line {
        origin: String,
        line: usize,
        message: String,
    },
    #[error(
        "{origin}: no jobs; a trace is CSV lines `submit,duration[,resource_class[,wait]]` \
         (see examples/traces/README.md)"
    )]
    Empty { origin: String },
    #[error("{} is neither a trace file nor an embedded trace ({names})", quoted(.0), names = embedded_names())]
    Unknown(String),
    #[error(
        "{origin}: has jobs for {} resource classes ({}); pick one with --resource-class",
        classes.len(),
        classes.join(", ")
    )]
    SeveralClasses {
        origin: String,
        classes: Vec<String>,
    },
    #[error("{origin}: no job of resource class {}; its classes are {}", quoted(class), classes.join(", "))]
    NoSuchClass {
        origin: String,
        class: String,
        classes: Vec<String>,
    },
    #[error(
        "--start {start} is after the trace's first job ({first}): the start must come \
         first, or leave --start out"
    )]
    StartAfterFirstJob {
        start: jiff::Timestamp,
        first: jiff::Timestamp,
    },
}

fn embedded_names() -> String {
    EMBEDDED
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A line as parsed: submit, duration, resource class, recorded wait, line.
type Row = (Submit, u64, Option<String>, Option<u64>, usize);

/// A submit time as written: an offset or a moment.
enum Submit {
    Offset(u64),
    At(jiff::Timestamp),
}

impl Trace {
    /// The trace `name_or_path`: a file if one exists there, else an
    /// embedded trace. `start` overrides second 0.
    pub fn find(name_or_path: &str, start: Option<jiff::Timestamp>) -> Result<Trace, TraceError> {
        let path = Path::new(name_or_path);
        if let Some(embedded) = EMBEDDED.iter().find(|e| e.name == name_or_path) {
            if !path.exists() {
                return Ok(embedded.trace(start));
            }
        }
        if path.symlink_metadata().is_ok() {
            // Whatever is there: a file is read, anything else refused.
            return Trace::load(path, start);
        }
        Err(TraceError::Unknown(name_or_path.into()))
    }

    /// Read the CSV file at `path`.
    pub fn load(path: &Path, start: Option<jiff::Timestamp>) -> Result<Trace, TraceError> {
        let text = crate::input_file::read_text(path, crate::input_file::MAX_TRACE_BYTES)
            .map_err(TraceError::Read)?;
        Trace::parse(&text, &path.display().to_string(), start)
    }

    /// Parse CSV `text`; `origin` names it in messages. Submit times are
    /// all offsets in seconds (second 0 is `start`, else [`DEFAULT_START`])
    /// or all RFC 3339 times (second 0 is `start`, else the first job's).
    pub fn parse(
        text: &str,
        origin: &str,
        start: Option<jiff::Timestamp>,
    ) -> Result<Trace, TraceError> {
        let at = |line: usize, message: String| TraceError::Line {
            origin: origin.into(),
            line,
            message,
        };
        let mut rows: Vec<Row> = Vec::new();
        let mut seen_data = false;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = content.split(',').map(str::trim).collect();
            if !seen_data && fields[0].eq_ignore_ascii_case("submit") {
                seen_data = true;
                continue; // The header.
            }
            seen_data = true;
            if !(2..=4).contains(&fields.len()) {
                return Err(at(
                    line,
                    format!(
                        "{} fields; a line is `submit,duration[,resource_class[,wait]]`, e.g. `3600,420,acme/linux`",
                        fields.len()
                    ),
                ));
            }
            let submit = if let Ok(seconds) = fields[0].parse::<u64>() {
                if seconds > MAX_SPAN_SECONDS {
                    return Err(at(
                        line,
                        format!(
                            "submit {seconds} is more than a year ({MAX_SPAN_SECONDS} s) after the \
                             trace's start; a trace covers at most a year"
                        ),
                    ));
                }
                Submit::Offset(seconds)
            } else if let Ok(moment) = fields[0].parse::<jiff::Timestamp>() {
                Submit::At(moment)
            } else {
                return Err(at(
                    line,
                    format!(
                        "submit {} is neither whole seconds from the trace's start (e.g. 3600) \
                         nor an RFC 3339 time (e.g. 2026-11-23T09:00:00Z)",
                        quoted(fields[0])
                    ),
                ));
            };
            if let (Some((first, ..)), this) = (rows.first(), &submit) {
                if matches!(first, Submit::Offset(_)) != matches!(this, Submit::Offset(_)) {
                    return Err(at(
                        line,
                        format!(
                            "submit {} mixes forms: write every submit time as seconds, or every one as RFC 3339",
                            quoted(fields[0])
                        ),
                    ));
                }
            }
            let duration = fields[1]
                .parse::<u64>()
                .ok()
                .filter(|d| *d <= MAX_SPAN_SECONDS)
                .ok_or_else(|| {
                    at(
                        line,
                        format!(
                            "duration {} is not a whole number of seconds up to a year \
                             ({MAX_SPAN_SECONDS}), e.g. 420",
                            quoted(fields[1])
                        ),
                    )
                })?;
            let class = fields
                .get(2)
                .filter(|c| !c.is_empty())
                .map(|c| c.to_string());
            if let Some(class) = &class {
                if class.chars().count() > crate::config::MAX_QUEUE_CHARS {
                    return Err(at(
                        line,
                        format!(
                            "resource class {} is longer than {} characters",
                            quoted(class),
                            crate::config::MAX_QUEUE_CHARS
                        ),
                    ));
                }
            }
            let wait = match fields.get(3).filter(|w| !w.is_empty()) {
                None => None,
                Some(w) => Some(
                    w.parse::<u64>()
                        .ok()
                        .filter(|w| *w <= MAX_SPAN_SECONDS)
                        .ok_or_else(|| {
                            at(
                                line,
                                format!(
                                    "wait {} is not a whole number of seconds up to a year \
                                     ({MAX_SPAN_SECONDS}), e.g. 41",
                                    quoted(w)
                                ),
                            )
                        })?,
                ),
            };
            rows.push((submit, duration, class, wait, line));
        }
        if rows.is_empty() {
            return Err(TraceError::Empty {
                origin: origin.into(),
            });
        }

        let first_moment = rows
            .iter()
            .filter_map(|(s, ..)| match s {
                Submit::At(t) => Some(*t),
                Submit::Offset(_) => None,
            })
            .min();
        let start = match (start, first_moment) {
            (Some(start), Some(first)) if start > first => {
                return Err(TraceError::StartAfterFirstJob { start, first })
            }
            (Some(start), _) => start,
            (None, Some(first)) => first,
            (None, None) => DEFAULT_START.parse().expect("a valid constant"),
        };
        // RFC 3339 times: every one within a year of second 0.
        let span = jiff::SignedDuration::from_secs(MAX_SPAN_SECONDS as i64);
        if let Some((_, line)) = rows
            .iter()
            .find_map(|(submit, _, _, _, line)| match submit {
                Submit::At(t) if t.duration_since(start) > span => Some((t, *line)),
                _ => None,
            })
        {
            return Err(at(
                line,
                format!(
                    "submit is more than a year ({MAX_SPAN_SECONDS} s) after the trace's start \
                     ({start}); a trace covers at most a year"
                ),
            ));
        }
        let mut jobs: Vec<Job> = rows
            .into_iter()
            .map(|(submit, duration, resource_class, wait, line)| Job {
                submit: match submit {
                    Submit::Offset(seconds) => seconds,
                    // Not negative: start is at or before every moment.
                    Submit::At(t) => t.duration_since(start).as_secs().max(0) as u64,
                },
                duration,
                resource_class,
                wait,
                line,
            })
            .collect();
        jobs.sort_by_key(|j| j.submit);
        Ok(Trace {
            origin: origin.into(),
            start,
            jobs,
        })
    }

    /// The resource classes the trace names, sorted.
    pub fn classes(&self) -> Vec<String> {
        let mut classes: Vec<String> = self
            .jobs
            .iter()
            .filter_map(|j| j.resource_class.clone())
            .collect();
        classes.sort();
        classes.dedup();
        classes
    }

    /// Keep the jobs of one resource class: `class`, or the only one the
    /// trace has. Jobs without a class belong to every class.
    pub fn for_class(mut self, class: Option<&str>) -> Result<Trace, TraceError> {
        let classes = self.classes();
        let wanted = match class {
            Some(class) if !classes.iter().any(|c| c == class) => {
                return Err(TraceError::NoSuchClass {
                    origin: self.origin,
                    class: class.into(),
                    classes,
                })
            }
            Some(class) => class.to_string(),
            None if classes.len() > 1 => {
                return Err(TraceError::SeveralClasses {
                    origin: self.origin,
                    classes,
                })
            }
            None => return Ok(self),
        };
        self.jobs
            .retain(|j| j.resource_class.as_deref().is_none_or(|c| c == wanted));
        Ok(self)
    }

    /// The last submit time, in seconds from the start.
    pub fn last_submit(&self) -> u64 {
        self.jobs.iter().map(|j| j.submit).max().unwrap_or(0)
    }

    /// The warm pool this trace needs, by the documented rule: the 95th
    /// percentile, over its jobs, of how many jobs arrived in the `window`
    /// seconds up to each (the job included). With the window one full boot
    /// and one tick, that many warmed instances cover 95% of the bursts the
    /// pool must serve before its refills are ready.
    pub fn warm_pool_for(&self, window: u64) -> u32 {
        let mut submits: Vec<u64> = self.jobs.iter().map(|j| j.submit).collect();
        submits.sort_unstable();
        let mut first = 0;
        let mut bursts: Vec<u64> = Vec::with_capacity(submits.len());
        for (i, &at) in submits.iter().enumerate() {
            while at - submits[first] >= window {
                first += 1;
            }
            bursts.push((i - first + 1) as u64);
        }
        bursts.sort_unstable();
        super::stats::percentile(&bursts, 95) as u32
    }
}

impl Embedded {
    /// The embedded trace, parsed; `start` overrides its own.
    pub fn trace(&self, start: Option<jiff::Timestamp>) -> Trace {
        let start = start.unwrap_or_else(|| self.start.parse().expect("a valid constant"));
        Trace::parse(
            self.csv,
            &format!("embedded trace {}", self.name),
            Some(start),
        )
        .expect("the embedded traces parse (tested)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Trace, TraceError> {
        Trace::parse(text, "t.csv", None)
    }

    #[test]
    fn the_warm_pool_rule_counts_the_jobs_arriving_within_the_window() {
        // Bursts of 1, 2, 3 at 0 s, 1000 s, 2000 s: each job's count of
        // jobs in the 100 s up to it, 1 1 2 1 2 3, 95th percentile 3.
        let trace = parse("0,5\n1000,5\n1050,5\n2000,5\n2010,5\n2099,5\n").unwrap();
        assert_eq!(trace.warm_pool_for(100), 3);
        assert_eq!(trace.warm_pool_for(10), 1, "2099 is 89 s after 2010");
    }

    #[test]
    fn offsets_with_header_comments_and_classes() {
        let t =
            parse("# a trace\nsubmit,duration,resource_class\n60,30,acme/a\n\n0, 90\n").unwrap();
        assert_eq!(t.start, DEFAULT_START.parse::<jiff::Timestamp>().unwrap());
        let got: Vec<(u64, u64, Option<&str>, usize)> = t
            .jobs
            .iter()
            .map(|j| (j.submit, j.duration, j.resource_class.as_deref(), j.line))
            .collect();
        assert_eq!(got, vec![(0, 90, None, 5), (60, 30, Some("acme/a"), 3)]);
    }

    #[test]
    fn rfc3339_times_start_at_the_first_job() {
        let t = parse("2026-11-23T09:01:00Z,60\n2026-11-23T09:00:00Z,30\n").unwrap();
        assert_eq!(t.start.to_string(), "2026-11-23T09:00:00Z");
        assert_eq!(t.jobs[0].submit, 0);
        assert_eq!(t.jobs[1].submit, 60);
        let early = "2026-11-23T08:00:00Z".parse().unwrap();
        let t = Trace::parse("2026-11-23T09:00:00Z,30\n", "t.csv", Some(early)).unwrap();
        assert_eq!(t.jobs[0].submit, 3600);
        let late = "2026-11-23T10:00:00Z".parse().unwrap();
        let err = Trace::parse("2026-11-23T09:00:00Z,30\n", "t.csv", Some(late)).unwrap_err();
        assert!(err.to_string().contains("--start"), "{err}");
    }

    #[test]
    fn malformed_lines_are_named_with_the_fix() {
        let cases = [
            (
                "0,60\n60\n",
                "t.csv:2: 1 fields; a line is `submit,duration",
            ),
            (
                "0,60\nsoon,60\n",
                "t.csv:2: submit \"soon\" is neither whole seconds",
            ),
            (
                "0,sixty\n",
                "t.csv:1: duration \"sixty\" is not a whole number of seconds",
            ),
            (
                "0,60\n2026-11-23T09:00:00Z,60\n",
                "t.csv:2: submit \"2026-11-23T09:00:00Z\" mixes forms",
            ),
            ("0,-5\n", "t.csv:1: duration \"-5\""),
            ("# nothing\nsubmit,duration\n", "t.csv: no jobs"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_fourth_column_records_the_wait() {
        let t = parse("submit,duration,resource_class,wait\n0,60,a,41\n5,60,a,\n").unwrap();
        let waits: Vec<Option<u64>> = t.jobs.iter().map(|j| j.wait).collect();
        assert_eq!(waits, vec![Some(41), None]);
        let err = parse("0,60,a,soon\n").unwrap_err().to_string();
        assert!(
            err.starts_with("t.csv:1: wait \"soon\" is not a whole number"),
            "{err}"
        );
        let err = parse("0,60,a,1,2\n").unwrap_err().to_string();
        assert!(err.starts_with("t.csv:1: 5 fields"), "{err}");
    }

    #[test]
    fn one_class_is_kept_and_several_need_a_choice() {
        let t = parse("0,60,a\n0,60,b\n0,60\n").unwrap();
        let err = t.clone().for_class(None).unwrap_err().to_string();
        assert!(
            err.contains("2 resource classes (a, b); pick one with --resource-class"),
            "{err}"
        );
        let only_a = t.clone().for_class(Some("a")).unwrap();
        assert_eq!(only_a.jobs.len(), 2, "a's job and the classless one");
        let err = t.for_class(Some("c")).unwrap_err().to_string();
        assert!(err.contains("no job of resource class \"c\""), "{err}");
    }

    #[test]
    fn embedded_traces_parse_and_start_on_their_weekday() {
        let weekdays = [
            ("weekday", jiff::civil::Weekday::Monday),
            ("release-day", jiff::civil::Weekday::Thursday),
            ("weekend", jiff::civil::Weekday::Saturday),
            ("bursty", jiff::civil::Weekday::Tuesday),
        ];
        for (name, weekday) in weekdays {
            let t = Trace::find(name, None).unwrap();
            assert!(!t.jobs.is_empty(), "{name}");
            assert_eq!(t.classes(), vec!["acme/linux".to_string()], "{name}");
            assert!(t.last_submit() < 86_400, "{name} is one day");
            let zoned = t.start.to_zoned(jiff::tz::TimeZone::UTC);
            assert_eq!(zoned.weekday(), weekday, "{name}");
            let about = EMBEDDED.iter().find(|e| e.name == name).unwrap().about;
            assert!(
                about.contains(&format!("({} jobs)", t.jobs.len())),
                "{name}: {about}"
            );
        }
        let err = Trace::find("no-such-trace", None).unwrap_err().to_string();
        assert!(
            err.contains("weekday, release-day, weekend, bursty"),
            "{err}"
        );
    }
}
