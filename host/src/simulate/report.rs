//! The numbers of a run ([`Summary`]) and the table that shows several runs
//! side by side.

use super::run::Run;
use super::stats::percentile;
use super::trace::Trace;
use super::world::{InstanceRecord, PoolRecord, BILLING_MINIMUM, STOPPED_PRICE_PER_HOUR};

/// What a run cost and how long its jobs waited.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub label: String,
    pub jobs: usize,
    /// Jobs no runner ever claimed (their waits count up to the end).
    pub never_ran: usize,
    /// Jobs lost because scale-in terminated their instance.
    pub killed: usize,
    /// Waits in seconds, nearest-rank percentiles.
    pub wait_p50: u64,
    pub wait_p95: u64,
    pub wait_max: u64,
    /// Jobs that waited longer than the slow-wait threshold.
    pub slow: usize,
    /// Billed instance time: per second, a minute at least per instance;
    /// with a warm pool, also the time instances ran in it to initialise.
    pub instance_seconds: u64,
    /// Of `instance_seconds`, the time in the warm pool.
    pub pool_running_seconds: u64,
    /// Time instances spent stopped in the warm pool (their volumes bill).
    pub stopped_seconds: u64,
    /// Running instances at the instance price, stopped ones at theirs.
    pub cost: f64,
    pub peak: u32,
    pub launches: usize,
    /// Launches that replaced an instance that left on its own.
    pub replacements: usize,
    /// Replacements that left without running a job, and their time: what
    /// the exit behaviour cost.
    pub idle_replacements: usize,
    pub idle_replacement_seconds: u64,
    /// Instances whose every decrement EC2 refused (desired at the group's
    /// min), so they powered off.
    pub decrements_refused: u64,
    pub policy_errors: u64,
    /// Ticks on which a shadow decided, and those on which it would have
    /// set another desired capacity.
    pub shadow_decisions: u64,
    pub shadow_disagreements: u64,
}

impl Summary {
    /// Summarize `run` at `price_per_hour` per running instance, and a
    /// stopped one's volume at [`STOPPED_PRICE_PER_HOUR`]; `slow_wait` in
    /// seconds.
    pub fn of(run: &Run, price_per_hour: f64, slow_wait: u64) -> Summary {
        Summary::priced(run, price_per_hour, STOPPED_PRICE_PER_HOUR, slow_wait)
    }

    /// [`Summary::of`] with a stopped instance's price per hour.
    pub fn priced(
        run: &Run,
        price_per_hour: f64,
        stopped_price_per_hour: f64,
        slow_wait: u64,
    ) -> Summary {
        Summary::window(run, 0, price_per_hour, stopped_price_per_hour, slow_wait)
    }

    /// [`Summary::priced`] counting only from second `from` of the run
    /// (`--report-from`): the jobs submitted from then, the instance time
    /// billed from then (an instance launched before counts from `from`, and
    /// its minute's minimum not again), the launches from then. The ticks
    /// on which a policy failed or a shadow disagreed are the whole run's.
    pub fn window(
        run: &Run,
        from: u64,
        price_per_hour: f64,
        stopped_price_per_hour: f64,
        slow_wait: u64,
    ) -> Summary {
        let jobs: Vec<_> = run.jobs.iter().filter(|j| j.submit >= from).collect();
        let mut waits: Vec<u64> = jobs.iter().map(|j| j.wait(run.end)).collect();
        waits.sort_unstable();
        let pool_running_seconds: u64 = run
            .pool
            .iter()
            .map(|p| pool_running_between(p, from, run.end))
            .sum();
        let stopped_seconds: u64 = run
            .pool
            .iter()
            .map(|p| overlap(p.warmed, p.left.unwrap_or(run.end), from, run.end))
            .sum();
        let instance_seconds = run
            .instances
            .iter()
            .map(|i| billed_between(i, from, run.end, run.end))
            .sum::<u64>()
            + pool_running_seconds;
        let launched: Vec<_> = run
            .instances
            .iter()
            .filter(|i| i.launched >= from)
            .collect();
        let idle_replacements: Vec<_> = launched
            .iter()
            .filter(|i| i.replacement && i.job.is_none())
            .collect();
        let peak = if from == 0 {
            run.peak
        } else {
            run.samples
                .iter()
                .filter(|s| s.at >= from)
                .map(|s| s.counts.instances)
                .max()
                .unwrap_or(0)
        };
        let decrements_refused = if from == 0 {
            run.decrements_refused
        } else {
            run.instances
                .iter()
                .filter(|i| i.powered_off && i.runner_exited.is_some_and(|at| at >= from))
                .count() as u64
        };
        Summary {
            label: run.label.clone(),
            jobs: jobs.len(),
            never_ran: jobs.iter().filter(|j| j.claimed.is_none()).count(),
            killed: jobs.iter().filter(|j| j.killed.is_some()).count(),
            wait_p50: percentile(&waits, 50),
            wait_p95: percentile(&waits, 95),
            wait_max: waits.last().copied().unwrap_or(0),
            slow: waits.iter().filter(|&&w| w > slow_wait).count(),
            instance_seconds,
            pool_running_seconds,
            stopped_seconds,
            cost: instance_seconds as f64 / 3600.0 * price_per_hour
                + stopped_seconds as f64 / 3600.0 * stopped_price_per_hour,
            peak,
            launches: launched.len(),
            replacements: launched.iter().filter(|i| i.replacement).count(),
            idle_replacements: idle_replacements.len(),
            idle_replacement_seconds: idle_replacements
                .iter()
                .map(|i| billed_between(i, from, run.end, run.end))
                .sum(),
            decrements_refused,
            policy_errors: run.policy_errors,
            shadow_decisions: run.shadow_decisions,
            shadow_disagreements: run.shadow_disagreements,
        }
    }

    /// Billed instance time in minutes.
    pub fn instance_minutes(&self) -> f64 {
        self.instance_seconds as f64 / 60.0
    }

    /// Billed time of the replacements that ran no job, in minutes.
    pub fn idle_replacement_minutes(&self) -> f64 {
        self.idle_replacement_seconds as f64 / 60.0
    }
}

/// Seconds of `[start, end)` within `[from, to)`.
fn overlap(start: u64, end: u64, from: u64, to: u64) -> u64 {
    end.min(to).saturating_sub(start.max(from))
}

/// What EC2 bills for `instance` between `from` and `to`, the run ending
/// at `end`: per second, and a minute at least for one launched in that
/// time (none before its launch). With `from` 0 and `to` the end, its
/// [`InstanceRecord::billed_seconds`].
pub fn billed_between(instance: &InstanceRecord, from: u64, to: u64, end: u64) -> u64 {
    let gone = instance
        .left
        .map_or(end, |(at, _)| at)
        .max(instance.launched);
    let seconds = overlap(instance.launched, gone, from, to);
    if instance.launched >= from && instance.launched <= to {
        seconds.max(BILLING_MINIMUM)
    } else {
        seconds
    }
}

/// What EC2 bills for `pool`'s instance as a running one (initialising in
/// the pool) between `from` and `to`: [`PoolRecord::billed_running_seconds`]
/// over the whole run.
pub fn pool_running_between(pool: &PoolRecord, from: u64, to: u64) -> u64 {
    let until = pool
        .left
        .unwrap_or(u64::MAX)
        .min(pool.warmed)
        .max(pool.launched);
    let seconds = overlap(pool.launched, until, from, to);
    if seconds > 0 && pool.launched >= from {
        seconds.max(BILLING_MINIMUM)
    } else {
        seconds
    }
}

/// Seconds as `45s`, `2m30s`, `1h05m`.
pub fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => match s % 60 {
            0 => format!("{}m", s / 60),
            r => format!("{}m{r:02}s", s / 60),
        },
        s => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The figures of `summaries`, a row per figure: its name (indented under
/// the row it details) and a cell per run.
pub(crate) fn rows(summaries: &[Summary], slow_wait: u64) -> Vec<(String, Vec<String>)> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, cell: &dyn Fn(&Summary) -> String| {
        rows.push((name.to_string(), summaries.iter().map(cell).collect()));
    };
    row("jobs", &|s| s.jobs.to_string());
    if summaries.iter().any(|s| s.never_ran > 0) {
        row("  never ran", &|s| s.never_ran.to_string());
    }
    if summaries.iter().any(|s| s.killed > 0) {
        row("  killed by scale-in", &|s| s.killed.to_string());
    }
    row("wait p50", &|s| duration(s.wait_p50));
    row("wait p95", &|s| duration(s.wait_p95));
    row("wait max", &|s| duration(s.wait_max));
    row(&format!("waited > {}", duration(slow_wait)), &|s| {
        s.slow.to_string()
    });
    row("instance-minutes", &|s| {
        format!("{:.1}", s.instance_minutes())
    });
    if summaries
        .iter()
        .any(|s| s.pool_running_seconds + s.stopped_seconds > 0)
    {
        row("  initialising in the warm pool", &|s| {
            format!("{:.1}", s.pool_running_seconds as f64 / 60.0)
        });
        row("stopped instance-hours (pool)", &|s| {
            format!("{:.1}", s.stopped_seconds as f64 / 3600.0)
        });
    }
    row("estimated cost", &|s| format!("${:.2}", s.cost));
    row("peak instances", &|s| s.peak.to_string());
    row("launches", &|s| s.launches.to_string());
    row("replacement launches", &|s| s.replacements.to_string());
    row("  that ran no job", &|s| s.idle_replacements.to_string());
    row("    their instance-minutes", &|s| {
        format!("{:.1}", s.idle_replacement_minutes())
    });
    row("decrements refused at min", &|s| {
        s.decrements_refused.to_string()
    });
    if summaries.iter().any(|s| s.shadow_decisions > 0) {
        row(
            "ticks the shadow would differ",
            &|s| match s.shadow_decisions {
                0 => "-".into(),
                n => format!("{} of {n}", s.shadow_disagreements),
            },
        );
    }
    if summaries.iter().any(|s| s.policy_errors > 0) {
        row("ticks decided by fallback", &|s| {
            s.policy_errors.to_string()
        });
    }
    rows
}

/// What the jobs of an imported trace waited in reality (its recorded
/// waits: started − queued) beside what the same jobs waited in each run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calibration {
    /// The jobs compared: those with a recorded wait, from `--report-from`.
    pub jobs: usize,
    /// The recorded waits' p50, p95 and max.
    pub recorded: [u64; 3],
    /// Each run's label and its waits' p50, p95 and max, for the same jobs.
    pub simulated: Vec<(String, [u64; 3])>,
    /// Each run's median, over the jobs, of simulated − recorded wait
    /// (seconds): above 0, the simulator is slower than reality.
    pub median_gap: Vec<i64>,
}

impl Calibration {
    /// The comparison for `runs` of `trace` from second `from`, when the
    /// trace records waits.
    pub fn of(trace: &Trace, runs: &[Run], from: u64) -> Option<Calibration> {
        let compared: Vec<(usize, u64)> = trace
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.submit >= from)
            .filter_map(|(i, j)| j.wait.map(|w| (i, w)))
            .collect();
        if compared.is_empty() {
            return None;
        }
        let figures = |mut waits: Vec<u64>| {
            waits.sort_unstable();
            [
                percentile(&waits, 50),
                percentile(&waits, 95),
                waits.last().copied().unwrap_or(0),
            ]
        };
        let simulated = |run: &Run| -> Vec<(u64, u64)> {
            compared
                .iter()
                .filter_map(|&(i, recorded)| run.jobs.get(i).map(|j| (j.wait(run.end), recorded)))
                .collect()
        };
        Some(Calibration {
            jobs: compared.len(),
            recorded: figures(compared.iter().map(|&(_, w)| w).collect()),
            simulated: runs
                .iter()
                .map(|run| {
                    let waits = simulated(run).into_iter().map(|(s, _)| s).collect();
                    (run.label.clone(), figures(waits))
                })
                .collect(),
            median_gap: runs
                .iter()
                .map(|run| {
                    let mut gaps: Vec<i64> = simulated(run)
                        .into_iter()
                        .map(|(s, r)| s as i64 - r as i64)
                        .collect();
                    gaps.sort_unstable();
                    gaps.get((gaps.len().max(1) - 1) / 2).copied().unwrap_or(0)
                })
                .collect(),
        })
    }

    /// The table's rows: p50, p95, max, and the median gap per job.
    pub fn rows(&self) -> Vec<(String, Vec<String>)> {
        let mut rows: Vec<(String, Vec<String>)> = ["wait p50", "wait p95", "wait max"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut cells = vec![duration(self.recorded[i])];
                cells.extend(self.simulated.iter().map(|(_, w)| duration(w[i])));
                (name.to_string(), cells)
            })
            .collect();
        let mut gaps = vec!["-".to_string()];
        gaps.extend(self.median_gap.iter().map(|&gap| match gap {
            0 => "0s".to_string(),
            g if g > 0 => format!("+{}", duration(g as u64)),
            g => format!("-{}", duration(g.unsigned_abs())),
        }));
        rows.push(("median gap per job".to_string(), gaps));
        rows
    }

    /// The columns: `recorded`, then each run.
    pub fn labels(&self) -> Vec<String> {
        let mut labels = vec!["recorded".to_string()];
        labels.extend(self.simulated.iter().map(|(l, _)| l.clone()));
        labels
    }

    /// The heading and the table, as text.
    pub fn text(&self) -> String {
        format!(
            "calibration: what {} jobs waited in reality (the export's started - queued) beside what they waited here:\n\n{}\n\
             Run the policy and settings you run today: where its column is far from `recorded`, tune\n\
             --boot, --idle-timeout and --tick until they agree (a gap above 0: the simulator waits longer;\n\
             examples/traces/README.md#calibrating).\n",
            self.jobs,
            layout(&self.labels(), &self.rows())
        )
    }

    /// The heading and the table, in Markdown.
    pub fn markdown(&self) -> String {
        format!(
            "Calibration: what {} jobs waited in reality (the export's started − queued) beside what they waited here.\n\n{}",
            self.jobs,
            markdown_table(&self.labels(), &self.rows())
        )
    }
}

/// The runs side by side: a row per figure, a column per run.
pub fn table(summaries: &[Summary], slow_wait: u64) -> String {
    let labels: Vec<String> = summaries.iter().map(|s| s.label.clone()).collect();
    layout(&labels, &rows(summaries, slow_wait))
}

/// Columns under `labels`, a row per figure, aligned for a terminal.
fn layout(labels: &[String], rows: &[(String, Vec<String>)]) -> String {
    let name_width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let widths: Vec<usize> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            rows.iter()
                .map(|(_, cells)| cells[i].len())
                .chain([label.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{:name_width$}", "");
    for (label, width) in labels.iter().zip(&widths) {
        out += &format!("  {label:>width$}");
    }
    out = out.trim_end().to_string() + "\n";
    for (name, cells) in rows {
        out += &format!("{name:name_width$}");
        for (cell, width) in cells.iter().zip(&widths) {
            out += &format!("  {cell:>width$}");
        }
        out += "\n";
    }
    out
}

/// The same table in Markdown (a detail row starts with `↳`).
pub fn markdown(summaries: &[Summary], slow_wait: u64) -> String {
    let labels: Vec<String> = summaries.iter().map(|s| s.label.clone()).collect();
    markdown_table(&labels, &rows(summaries, slow_wait))
}

fn markdown_table(labels: &[String], rows: &[(String, Vec<String>)]) -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut out = String::from("|");
    for label in labels {
        out += &format!(" `{}` |", cell(label));
    }
    out = format!("| {out}\n|---|");
    out += &"---:|".repeat(labels.len());
    out += "\n";
    for (name, cells) in rows {
        let trimmed = name.trim_start();
        let name = if trimmed.len() < name.len() {
            format!("↳ {trimmed}")
        } else {
            name.clone()
        };
        out += &format!("| {} |", cell(&name));
        for value in cells {
            out += &format!(" {} |", cell(value));
        }
        out += "\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_durations() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (150, "2m30s"),
            (3900, "1h05m"),
        ];
        for (seconds, text) in cases {
            assert_eq!(duration(seconds), text);
        }
    }
}
