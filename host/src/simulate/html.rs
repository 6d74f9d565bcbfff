//! The report: one self-contained HTML file (`simulate --report`) — its
//! styles, its script and its data inline, nothing fetched (a Content
//! Security Policy forbids it) — that a browser draws:
//!
//! - per run, the queue over time (jobs running, and those waiting for a
//!   runner stacked on them) and the capacity (instances, desired
//!   capacity, warmed instances of a warm pool), on the pool's local clock
//!   with business hours shaded;
//! - every run's waits as distributions, overlaid (and the export's
//!   recorded waits, when the trace has them), and every run's cost as it
//!   accumulates;
//! - the table the terminal prints, and the calibration table.
//!
//! Data is aggregated here to at most [`MAX_POINTS`] steps per series
//! (each step's mean, and its peak), so a month reads like a day and the
//! file stays small; the script merges steps again when the panel has
//! fewer pixels than steps. The renderer is hand-written SVG (about 400
//! lines of JavaScript in `host/templates/report/`): a chart library would
//! weigh more than the data, and inline is the only way it may load.

use super::report::{self, billed_between, pool_running_between, Summary};
use super::run::Run;
use serde_json::{json, Value};

/// The most steps a series has in the file.
pub const MAX_POINTS: u64 = 1000;
/// Points of each wait distribution.
const CDF_POINTS: usize = 400;

const TEMPLATE: &str = include_str!("../../templates/report/report.html");
const STYLE: &str = include_str!("../../templates/report/report.css");
const SCRIPT: &str = include_str!("../../templates/report/report.js");

/// What the report shows.
pub struct ReportInput<'a> {
    /// The trace's name.
    pub title: &'a str,
    /// The table's heading: the trace, the settings, the window.
    pub heading: &'a str,
    pub runs: &'a [Run],
    pub summaries: &'a [Summary],
    pub slow_wait: u64,
    /// Seconds between ticks.
    pub tick: u64,
    pub start: jiff::Timestamp,
    pub time_zone: &'a jiff::tz::TimeZone,
    /// The first second counted (`--report-from`; 0 for the whole run).
    pub from: u64,
    /// The recorded waits of the jobs counted, when the trace has them,
    /// and the calibration table's rows.
    pub recorded: Option<Vec<u64>>,
    pub calibration: Option<report::Calibration>,
    pub price_per_hour: f64,
    pub stopped_price_per_hour: f64,
}

/// The report's HTML.
pub fn html(input: &ReportInput) -> String {
    let data = data(input);
    // In a <script> element only `</` could end it early; in JSON `<`
    // appears only inside strings, where `\u003c` means the same.
    let json = serde_json::to_string(&data)
        .expect("plain values serialize")
        .replace('<', "\\u003c");
    fill(
        TEMPLATE,
        &[
            ("{{title}}", &escape_html(input.title)),
            ("{{style}}", STYLE),
            ("{{data}}", &json),
            ("{{script}}", SCRIPT),
        ],
    )
}

/// `template` with each placeholder replaced, in one pass: what a value
/// holds (a policy's label) is never taken for a placeholder.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some((at, (name, value))) = values
        .iter()
        .filter_map(|pair| rest.find(pair.0).map(|at| (at, pair)))
        .min_by_key(|(at, _)| *at)
    {
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + name.len()..];
    }
    out.push_str(rest);
    out
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report's data, as the script reads it.
fn data(input: &ReportInput) -> Value {
    let from = input.from;
    let end = input
        .runs
        .iter()
        .map(|r| r.end)
        .max()
        .unwrap_or(from)
        .max(from + input.tick);
    let tick = input.tick.max(1);
    let step = step_for(end - from, tick);
    let buckets = (end - from).div_ceil(step);
    let runs: Vec<Value> = input
        .runs
        .iter()
        .zip(input.summaries)
        .map(|(run, summary)| {
            let mut value = run_data(run, input, from, step, buckets);
            value["figures"] = json!({
                "p50": summary.wait_p50,
                "p95": summary.wait_p95,
                "max": summary.wait_max,
                "cost": round2(summary.cost),
            });
            value
        })
        .collect();
    let zone = input.time_zone.iana_name().unwrap_or("UTC").to_string();
    json!({
        "title": input.title,
        "heading": input.heading,
        "zone": zone,
        "from": from,
        "end": end,
        "step": step,
        "tick": tick,
        "aggregated": step > tick,
        "startLocal": local(input, from).strftime("%a %Y-%m-%d %H:%M %Z").to_string(),
        "warmup": from > 0,
        "axis": axis(input, from, end),
        "business": business_hours(input, from, end),
        "runs": runs,
        "recorded": input.recorded.as_ref().map(|w| cdf(w)),
        "table": table(input.summaries, input.slow_wait),
        "calibration": input.calibration.as_ref().map(|c| {
            let rows: Vec<Vec<String>> = c
                .rows()
                .into_iter()
                .map(|(name, cells)| std::iter::once(name).chain(cells).collect())
                .collect();
            json!({ "jobs": c.jobs, "columns": c.labels(), "rows": rows })
        }),
    })
}

/// The step of the series: the tick, or, when a span has more than
/// [`MAX_POINTS`] ticks, the least multiple of the tick that leaves at most
/// that many — rounded up to a round duration (two minutes, fifteen, an
/// hour...) when one is a multiple of the tick and not three times longer.
fn step_for(span: u64, tick: u64) -> u64 {
    let least = tick * span.div_ceil(tick).div_ceil(MAX_POINTS);
    if least == tick {
        return tick;
    }
    const ROUND: [u64; 17] = [
        20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400,
        172_800, 604_800,
    ];
    ROUND
        .iter()
        .copied()
        .find(|&step| step >= least && step % tick == 0 && step <= 3 * least)
        .unwrap_or(least)
}

fn run_data(run: &Run, input: &ReportInput, from: u64, step: u64, buckets: u64) -> Value {
    // Per step: the mean and the peak of each count over its ticks.
    #[derive(Default, Clone, Copy)]
    struct Acc {
        n: u32,
        sum: [u64; 5],
        max: [u32; 5],
    }
    let mut acc = vec![Acc::default(); buckets as usize];
    for sample in run.samples.iter().filter(|s| s.at >= from) {
        let b = ((sample.at - from) / step).min(buckets - 1) as usize;
        let c = sample.counts;
        let values = [c.waiting, c.running, c.instances, c.desired, c.warmed];
        let a = &mut acc[b];
        a.n += 1;
        for (i, v) in values.iter().enumerate() {
            a.sum[i] += u64::from(*v);
            a.max[i] = a.max[i].max(*v);
        }
    }
    let mean = |i: usize| -> Vec<Value> {
        acc.iter()
            .map(|a| match a.n {
                0 => Value::Null,
                n => json!(round2(a.sum[i] as f64 / f64::from(n))),
            })
            .collect()
    };
    let peak = |i: usize| -> Vec<Value> {
        acc.iter()
            .map(|a| match a.n {
                0 => Value::Null,
                _ => json!(a.max[i]),
            })
            .collect()
    };
    // Cost as it accumulates, at the end of each step the run reached.
    let cost: Vec<Value> = (0..buckets)
        .map(|b| {
            let to = from + (b + 1) * step;
            if to - step >= run.end {
                return Value::Null;
            }
            let to = to.min(run.end);
            let running: u64 = run
                .instances
                .iter()
                .map(|i| billed_between(i, from, to, run.end))
                .sum::<u64>()
                + run
                    .pool
                    .iter()
                    .map(|p| pool_running_between(p, from, to))
                    .sum::<u64>();
            let stopped: u64 = run
                .pool
                .iter()
                .map(|p| {
                    let left = p.left.unwrap_or(run.end);
                    left.min(to).saturating_sub(p.warmed.max(from))
                })
                .sum();
            json!(round2(
                running as f64 / 3600.0 * input.price_per_hour
                    + stopped as f64 / 3600.0 * input.stopped_price_per_hour
            ))
        })
        .collect();
    let mut waits: Vec<u64> = run
        .jobs
        .iter()
        .filter(|j| j.submit >= from)
        .map(|j| j.wait(run.end))
        .collect();
    waits.sort_unstable();
    let aggregated = step > input.tick.max(1);
    json!({
        "label": run.label,
        "end": run.end,
        "waiting": mean(0),
        "running": mean(1),
        "instances": mean(2),
        "desired": mean(3),
        "warmed": if run.pool.is_empty() { Value::Null } else { json!(mean(4)) },
        // The peaks only when a step holds several ticks.
        "queuePeak": if aggregated {
            json!(acc.iter().map(|a| match a.n {
                0 => Value::Null,
                _ => json!(a.max[0] + a.max[1]),
            }).collect::<Vec<_>>())
        } else { Value::Null },
        "instancesPeak": if aggregated { json!(peak(2)) } else { Value::Null },
        "cost": cost,
        "waits": cdf(&waits),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A distribution's points: sorted `waits` sampled at up to
/// [`CDF_POINTS`] ranks, as `[[seconds...], [fraction...]]`.
fn cdf(waits: &[u64]) -> Value {
    let mut sorted = waits.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return json!([[], []]);
    }
    let points = n.min(CDF_POINTS);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for k in 0..points {
        // The last job of each slice of ranks.
        let rank = ((k + 1) * n).div_ceil(points);
        xs.push(sorted[rank - 1]);
        ys.push(round4(rank as f64 / n as f64));
    }
    json!([xs, ys])
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn local(input: &ReportInput, second: u64) -> jiff::Zoned {
    (input.start + jiff::SignedDuration::from_secs(second as i64)).to_zoned(input.time_zone.clone())
}

/// Marks for the time axis on the pool's local clock: every whole hour
/// (every midnight for spans over two weeks), as `[second, "HH:MM",
/// "Mon 23", midnight]`; the script picks the ones that fit.
fn axis(input: &ReportInput, from: u64, end: u64) -> Value {
    let days_only = end - from > 14 * 86_400;
    let first = local(input, from);
    let Ok(mut at) = first
        .with()
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .build()
    else {
        return json!([]);
    };
    if days_only {
        if let Ok(midnight) = at.start_of_day() {
            at = midnight;
        }
    }
    let mut marks = Vec::new();
    let step = if days_only {
        jiff::Span::new().days(1)
    } else {
        jiff::Span::new().hours(1)
    };
    while marks.len() < 5000 {
        let second = at.timestamp().as_second() - input.start.as_second();
        if second > end as i64 {
            break;
        }
        if second >= from as i64 {
            let midnight = (at.hour(), at.minute()) == (0, 0);
            marks.push(json!([
                second,
                at.strftime("%H:%M").to_string(),
                at.strftime("%a %d %b").to_string(),
                midnight,
            ]));
        }
        match at.checked_add(step) {
            Ok(next) => at = next,
            Err(_) => break,
        }
    }
    json!(marks)
}

/// Monday to Friday, 08:00 to 18:00 on the pool's local clock, as
/// `[from, to]` seconds of the run.
fn business_hours(input: &ReportInput, from: u64, end: u64) -> Value {
    let Ok(mut day) = local(input, from).start_of_day() else {
        return json!([]);
    };
    let mut bands = Vec::new();
    let seconds = |z: &jiff::Zoned| z.timestamp().as_second() - input.start.as_second();
    while seconds(&day) <= end as i64 && bands.len() < 1000 {
        let weekday = day.weekday().to_monday_one_offset();
        if weekday <= 5 {
            let at = |hour: i8| day.with().hour(hour).build().ok();
            if let (Some(open), Some(close)) = (at(8), at(18)) {
                let (a, b) = (
                    seconds(&open).max(from as i64),
                    seconds(&close).min(end as i64),
                );
                if a < b {
                    bands.push(json!([a, b]));
                }
            }
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    json!(bands)
}

fn table(summaries: &[Summary], slow_wait: u64) -> Value {
    let rows: Vec<Value> = report::rows(summaries, slow_wait)
        .into_iter()
        .map(|(name, cells)| {
            let mut row = vec![name];
            row.extend(cells);
            json!(row)
        })
        .collect();
    json!({
        "columns": summaries.iter().map(|s| s.label.clone()).collect::<Vec<_>>(),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_multiples_of_the_tick() {
        assert_eq!(
            step_for(86_400, 60),
            120,
            "a day of minutes: two-minute steps"
        );
        assert_eq!(step_for(600 * 60, 60), 60, "under the cap: every tick");
        assert_eq!(
            step_for(7 * 86_400, 10),
            900,
            "a week of 10 s ticks: 15 minutes"
        );
        assert_eq!(step_for(28 * 86_400, 10), 3600);
        assert_eq!(
            step_for(86_400, 7),
            91,
            "no round multiple of 7 s near 91 s"
        );
    }

    #[test]
    fn placeholders_are_filled_once() {
        let filled = fill("<{{a}}|{{b}}>", &[("{{a}}", "{{b}}"), ("{{b}}", "x")]);
        assert_eq!(filled, "<{{b}}|x>");
    }

    #[test]
    fn distributions_keep_their_ends() {
        let waits: Vec<u64> = (1..=1000).collect();
        let value = cdf(&waits);
        let xs = value[0].as_array().unwrap();
        let ys = value[1].as_array().unwrap();
        assert_eq!(xs.len(), CDF_POINTS);
        assert_eq!(xs.last().unwrap(), 1000);
        assert_eq!(ys.last().unwrap(), 1.0);
        assert_eq!(cdf(&[5, 1]), json!([[1, 5], [0.5, 1.0]]));
        assert_eq!(cdf(&[]), json!([[], []]));
    }

    #[test]
    fn html_text_is_escaped_and_data_cannot_end_its_script() {
        assert_eq!(
            escape_html("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
        let json = serde_json::to_string(&json!({"t": "</script><b>"}))
            .unwrap()
            .replace('<', "\\u003c");
        assert!(!json.contains('<'));
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["t"], "</script><b>");
    }
}
