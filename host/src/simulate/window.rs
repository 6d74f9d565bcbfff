//! The part of a run a report counts (`simulate --report-from`): the jobs
//! submitted from a moment on, while the simulation runs from the trace's
//! start, so the policies' state and the fleet are warmed up.

use super::trace::Trace;

/// Second `from` of `trace`, as written: an RFC 3339 time, or an offset
/// from the trace's start (`21d`, `36h`, `90m`, `3600`).
pub fn parse_from(text: &str, trace: &Trace) -> Result<u64, String> {
    let text = text.trim();
    let from = if let Ok(moment) = text.parse::<jiff::Timestamp>() {
        let offset = moment.duration_since(trace.start).as_secs();
        if offset < 0 {
            return Err(format!(
                "--report-from {text} is before the trace's start ({}); give a later time, or an \
                 offset such as 21d",
                trace.start
            ));
        }
        offset as u64
    } else {
        offset_seconds(text).ok_or_else(|| {
            format!(
                "--report-from {text:?} is neither an RFC 3339 time (2026-12-14T00:00:00Z) nor \
                 an offset from the trace's start (21d, 36h, 90m)"
            )
        })?
    };
    let last = trace.last_submit();
    if from > last {
        return Err(format!(
            "--report-from {text} leaves no job: the trace's last job is submitted {} after \
             its start",
            super::report::duration(last)
        ));
    }
    Ok(from)
}

/// `21d`, `36h`, `1d 12h`, `90m`, `3600` as seconds (days of 24 hours).
pub fn offset_seconds(text: &str) -> Option<u64> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(seconds);
    }
    let span: jiff::Span = text.parse().ok()?;
    let seconds = span
        .total((
            jiff::Unit::Second,
            jiff::SpanRelativeTo::days_are_24_hours(),
        ))
        .ok()?;
    (seconds >= 0.0 && seconds.fract() == 0.0).then_some(seconds as u64)
}

/// The window in words, for the table's heading.
pub fn describe(trace: &Trace, from: u64, time_zone: &jiff::tz::TimeZone) -> String {
    let at = (trace.start + jiff::SignedDuration::from_secs(from as i64))
        .to_zoned(time_zone.clone())
        .strftime("%a %Y-%m-%d %H:%M %Z");
    let counted = trace.jobs.iter().filter(|j| j.submit >= from).count();
    format!(
        "counted from {at} on ({counted} jobs submitted from then; the run starts {} earlier, \
         at the trace's start, to warm up)",
        days(from)
    )
}

/// Seconds as `21d`, `1d 12h00m`, or a duration under a day as the
/// table writes it.
fn days(seconds: u64) -> String {
    let rest = seconds % 86_400;
    match (seconds / 86_400, rest) {
        (0, _) => super::report::duration(seconds),
        (d, 0) => format!("{d}d"),
        (d, _) => format!("{d}d {}", super::report::duration(rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_read_as_days() {
        assert_eq!(days(90), "1m30s");
        assert_eq!(days(21 * 86_400), "21d");
        assert_eq!(days(36 * 3600), "1d 12h00m");
    }

    #[test]
    fn offsets_and_moments() {
        let trace = Trace::parse(
            "2026-11-01T00:00:00Z,60\n2026-11-29T00:00:00Z,60\n",
            "t.csv",
            None,
        )
        .unwrap();
        assert_eq!(parse_from("21d", &trace), Ok(21 * 86_400));
        assert_eq!(parse_from("1d 12h", &trace), Ok(36 * 3600));
        assert_eq!(parse_from("3600", &trace), Ok(3600));
        assert_eq!(parse_from("2026-11-22T00:00:00Z", &trace), Ok(21 * 86_400));
        assert!(parse_from("2026-10-01T00:00:00Z", &trace)
            .unwrap_err()
            .contains("before the trace's start"));
        assert!(parse_from("29d", &trace)
            .unwrap_err()
            .contains("leaves no job"));
        assert!(parse_from("soon", &trace)
            .unwrap_err()
            .contains("neither an RFC 3339"));
        let text = describe(&trace, 21 * 86_400, &jiff::tz::TimeZone::UTC);
        assert_eq!(
            text,
            "counted from Sun 2026-11-22 00:00 UTC on (1 jobs submitted from then; the run \
             starts 21d earlier, at the trace's start, to warm up)"
        );
    }
}
