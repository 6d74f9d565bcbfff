//! The JSON log format (`--log-format json`, and Lambda's default): one JSON
//! object per line, as `tracing`'s JSON formatter writes it — except a
//! decision record (target `decision`), whose line is the record itself,
//! its keys at the top level as `once --json` prints them
//! (`docs/decision-record.schema.json`), with the line's `level` and
//! `target`. One shape for every route, which `jq` and CloudWatch Logs
//! Insights read field by field.

use crate::report::{RECORD_FIELD, TARGET};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON event formatter: `tracing`'s, with decision records flat.
pub struct JsonLines {
    inner: Format<Json>,
}

impl Default for JsonLines {
    fn default() -> Self {
        JsonLines {
            inner: tracing_subscriber::fmt::format().json(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() == TARGET {
            let mut record = RecordField(None);
            event.record(&mut record);
            if let Some(line) = record.0.as_deref().and_then(|r| flat_line(event, r)) {
                return writeln!(writer, "{line}");
            }
        }
        self.inner.format_event(ctx, writer, event)
    }
}

/// The record `record` (a JSON object) as the event's line: `level` and
/// `target` first, then the record's keys; `None` if it is not an object
/// with keys (the event is then written as any other).
fn flat_line(event: &Event<'_>, record: &str) -> Option<String> {
    let keys = record.strip_prefix('{').filter(|rest| rest.len() > 1)?;
    let level = event.metadata().level();
    Some(format!(
        "{{\"level\":\"{level}\",\"target\":\"{TARGET}\",{}",
        crate::text::escape_json(keys)
    ))
}

/// Finds the record's field in an event.
struct RecordField(Option<String>);

impl Visit for RecordField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == RECORD_FIELD {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Action, PoolReport};
    use std::sync::{Arc, Mutex};

    /// What a subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(json: bool, log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = {
            let buffer = buffer.clone();
            move || buffer.clone()
        };
        let builder = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false);
        if json {
            let subscriber = builder.json().event_format(JsonLines::default()).finish();
            tracing::subscriber::with_default(subscriber, log);
        } else {
            let subscriber = builder.fmt_fields(crate::text::EscapedFields).finish();
            tracing::subscriber::with_default(subscriber, log);
        }
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_decision_line_is_the_record_and_other_lines_are_as_before() {
        let mut report = PoolReport::example("a\u{202e}b");
        report.action = Action::WouldApply;
        report.desired = Some(3);
        report.reason = Some("3 jobs\nINFO forged".into());
        let text = logged(true, || {
            crate::report::log(&report);
            tracing::info!(pools = 1, "ready");
        });
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let mut record = serde_json::to_value(&report).unwrap();
        let object = record.as_object_mut().unwrap();
        object.insert("level".into(), "INFO".into());
        object.insert("target".into(), "decision".into());
        assert_eq!(lines[0], record);
        assert_eq!(lines[0]["action"], "would_apply");
        assert!(
            !text.contains('\u{202e}'),
            "escaped as JSON, as once --json does: {text}"
        );
        assert_eq!(lines[1]["fields"]["message"], "ready", "{text}");

        let text = logged(false, || crate::report::log(&report));
        assert!(text.contains("action=\"would_apply\""), "{text}");
        assert!(text.contains("3 jobs\\nINFO forged"), "{text}");
        assert!(!text.contains("decision_record"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}
