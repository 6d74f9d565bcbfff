//! The chart: an SVG with one panel per run — jobs in the queue (running,
//! and waiting stacked on them), desired capacity and instances (and the
//! warm pool's warmed instances, when there is one), sampled at every
//! tick, over the trace's local time. Text is written as SVG `<text>` (no
//! font files). Same runs → same bytes.

use super::run::{Run, Sample};
use plotters::prelude::*;

/// Pixels.
const WIDTH: u32 = 1200;
const PANEL_HEIGHT: u32 = 300;

/// The chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

/// A series: its name, colour, stroke width and value.
type Series = (&'static str, RGBColor, u32, fn(&Sample) -> u32);
/// The queue, drawn as filled areas behind the lines: the jobs waiting
/// for a runner stacked on those running.
const JOBS: Series = ("jobs waiting for a runner", RGBColor(230, 85, 40), 1, |s| {
    s.counts.waiting + s.counts.running
});
const RUNNING: Series = ("jobs running", RGBColor(150, 150, 150), 1, |s| {
    s.counts.running
});
/// Instances as a broad light band under a thin desired line: the two
/// often coincide, and both stay visible.
const LINES: [Series; 2] = [
    ("instances", RGBColor(245, 150, 70), 4, |s| {
        s.counts.instances
    }),
    ("desired capacity", RGBColor(20, 70, 180), 1, |s| {
        s.counts.desired
    }),
];
/// Warmed instances in the warm pool, for runs that have one.
const POOL: Series = ("warmed in the pool", RGBColor(40, 160, 90), 2, |s| {
    s.counts.warmed
});

/// Draw `runs` (which share `start`), the x axis in `time_zone`; `title`
/// heads each panel after the run's label.
pub fn svg(
    runs: &[Run],
    title: &str,
    start: jiff::Timestamp,
    time_zone: &jiff::tz::TimeZone,
) -> Result<String, ChartError> {
    svg_from(runs, title, start, time_zone, 0)
}

/// [`svg`] from second `from` of the runs on (`--report-from`).
pub fn svg_from(
    runs: &[Run],
    title: &str,
    start: jiff::Timestamp,
    time_zone: &jiff::tz::TimeZone,
    from: u64,
) -> Result<String, ChartError> {
    let mut out = String::new();
    draw(&mut out, runs, title, start, time_zone, from).map_err(|e| ChartError(e.to_string()))?;
    Ok(out)
}

fn draw(
    out: &mut String,
    runs: &[Run],
    title: &str,
    start: jiff::Timestamp,
    time_zone: &jiff::tz::TimeZone,
    from: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let height = PANEL_HEIGHT * runs.len().max(1) as u32;
    let root = SVGBackend::with_string(out, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    // One time range and one scale for every panel, so they compare at a glance.
    let end = runs
        .iter()
        .map(|r| r.end)
        .max()
        .unwrap_or(3600)
        .max(from + 1);
    // The x axis counts hours, or days for long runs, so that plotters'
    // round steps (1, 2, 5...) fall on whole hours or days.
    let unit = if end - from <= 72 * 3600 {
        3600
    } else {
        86_400
    };
    let top = runs
        .iter()
        .flat_map(|r| &r.samples)
        .filter(|s| s.at >= from)
        .flat_map(|s| [JOBS, LINES[0], LINES[1]].map(|(.., value)| value(s)))
        .max()
        .unwrap_or(0)
        .max(1);
    let y_top = top + top.div_ceil(10);
    let zone = time_zone.iana_name().unwrap_or("UTC").to_string();
    let label = |x: &f64| {
        let at = start + jiff::SignedDuration::from_secs((x * unit as f64).round() as i64);
        let local = at.to_zoned(time_zone.clone());
        // Midnights name the day; other labels are times of day.
        if (local.hour(), local.minute()) == (0, 0) {
            local.strftime("%a %d").to_string()
        } else {
            local.strftime("%H:%M").to_string()
        }
    };

    for (panel, run) in root.split_evenly((runs.len().max(1), 1)).iter().zip(runs) {
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{} — {title}", run.label), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(48)
            .build_cartesian_2d(
                from as f64 / unit as f64..end as f64 / unit as f64,
                0u32..y_top,
            )?;
        chart
            .configure_mesh()
            .x_labels(14)
            .x_label_formatter(&label)
            .x_desc(format!("time ({zone})"))
            .y_desc("count")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .light_line_style(RGBColor(245, 245, 245))
            .draw()?;
        let samples: &[Sample] = {
            let first = run.samples.partition_point(|s| s.at < from);
            &run.samples[first..]
        };
        // The waiting area is drawn on top of the running jobs: stacked.
        for (name, colour, _, value) in [JOBS, RUNNING] {
            chart
                .draw_series(
                    AreaSeries::new(steps(samples, value, unit), 0, colour.mix(0.45))
                        .border_style(colour.mix(0.7)),
                )?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 24, y + 5)], colour.mix(0.45).filled())
                });
        }
        let pool = (!run.pool.is_empty()).then_some(POOL);
        for (name, colour, width, value) in LINES.into_iter().chain(pool) {
            chart
                .draw_series(LineSeries::new(
                    steps(samples, value, unit),
                    colour.stroke_width(width),
                ))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(width.max(2)))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// A step line: each tick's value holds until the next tick; only the
/// changes become points.
fn steps(samples: &[Sample], value: fn(&Sample) -> u32, unit: u64) -> Vec<(f64, u32)> {
    let x = |s: &Sample| s.at as f64 / unit as f64;
    let mut points = Vec::new();
    let Some(first) = samples.first() else {
        return points;
    };
    let mut previous = value(first);
    points.push((x(first), previous));
    for sample in &samples[1..] {
        let v = value(sample);
        if v != previous {
            points.push((x(sample), previous));
            points.push((x(sample), v));
            previous = v;
        }
    }
    if let Some(last) = samples.last() {
        points.push((x(last), previous));
    }
    points
}
