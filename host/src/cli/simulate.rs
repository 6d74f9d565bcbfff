//! `runner-scaler simulate`: replay a trace through policies, print the
//! figures side by side, draw the chart.

use crate::config::parse_duration;
use crate::policy::Policy;
use crate::simulate::experiment::{self, load_policies};
use crate::simulate::{self, chart, html, report, window, Boot, Exit, Protection, Settings};
use crate::simulate::{Summary, Trace};
use anyhow::{bail, ensure, Context};
use clap::{Args, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
With no arguments: the built-in `queue` rule over the embedded weekday trace, \
once with each exit behaviour, side by side. The example WebAssembly policies \
are files, not part of the binary: build them with `cargo xtask policies`, then \
e.g. `--policy target/policies/cooldown.wasm --policy queue`.

Ticks are at one tick interval after the trace's start and every interval \
after. The group behaves as EC2 Auto Scaling documents: with --protection all \
(every instance protected from scale-in, as the shipped CloudFormation stack \
sets up) a lower desired capacity terminates nothing, and instances leave only \
on their own: after their job or their idle timeout, lowering desired by one \
(--exit decrement), which AWS refuses while desired is at the group's min (the \
instance then powers off after the user data's retries, and the group replaces \
it); or without lowering it (--exit poweroff), and the group replaces them. \
With --protection none a lower desired capacity terminates instances the \
termination policy picks, busy ones too, which the scaler allows only with \
--allow-unprotected-scale-in. A tick on which a policy fails is decided by \
the `hold` rule (production's default fallback) and counted in the table. \
Traces and the model in full: examples/traces/README.md.";

/// Replay a day of CI jobs through scaling policies against a simulated
/// Auto Scaling group; report job waits and instance cost.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct SimulateArgs {
    /// A policy: a .wasm file or a built-in rule (`queue`, `hold`). Repeat
    /// to compare [default: queue].
    #[arg(long = "policy", value_name = "P.wasm|queue|hold")]
    policies: Vec<String>,
    /// An embedded trace (weekday, release-day, weekend, bursty) or a CSV
    /// file of `submit,duration[,resource_class]` lines.
    #[arg(long, default_value = "weekday")]
    trace: String,
    /// Second 0 of the trace [default: the embedded trace's day, the first
    /// job of an RFC 3339 trace, else 2026-11-23T00:00:00Z, a Monday].
    #[arg(long)]
    start: Option<jiff::Timestamp>,
    /// The pool's time zone, as policies see the clock.
    #[arg(long, default_value = "UTC")]
    time_zone: String,
    /// Simulate only this resource class's jobs (needed when the trace has several).
    #[arg(long)]
    resource_class: Option<String>,
    /// Seeds random boot times (`--boot LOW..HIGH`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time between ticks (production's default interval).
    #[arg(long, default_value = "10s", value_parser = seconds)]
    tick: u64,
    /// The runner image, which sets --boot and --warm-start: `stock` (the
    /// user data installs the runner at launch: 90 s, 25 s) or `baked` (the
    /// runner baked into the AMI: 30 s, 25 s). The figures' sources:
    /// examples/traces/README.md.
    #[arg(long, value_enum, default_value = "stock")]
    image: ImageArg,
    /// Boot time of an instance: fixed (`90s`), or uniform between two
    /// (`60s..150s`) [default: the image's].
    #[arg(long, value_parser = boot)]
    boot: Option<Boot>,
    /// Keep this many instances initialised and stopped in the group's warm
    /// pool: a launch takes one and it starts in --warm-start instead of
    /// --boot; the pool refills at once with instances that boot in full,
    /// then stop (the stack's WarmPoolSize). `auto`: sized by the
    /// documented rule, the 95th percentile over the trace's jobs of the
    /// jobs that arrived within one full boot and one tick up to each.
    /// `policy`: a warm pool the policy sizes (its decisions' `warm`),
    /// empty at the start.
    #[arg(long, default_value = "0", value_name = "N|auto|policy", value_parser = warm_pool)]
    warm_pool: WarmPoolArg,
    /// Time from a warmed instance's start to its runner taking jobs
    /// [default: the image's].
    #[arg(long, value_parser = seconds)]
    warm_start: Option<u64>,
    /// What a stopped instance in the warm pool costs per hour (its EBS
    /// volume; the default is 30 GiB of gp3).
    #[arg(long, default_value_t = crate::simulate::world::STOPPED_PRICE_PER_HOUR)]
    stopped_price_per_hour: f64,
    /// An instance whose runner gets no job in this time leaves.
    #[arg(long, default_value = "5m", value_parser = seconds)]
    idle_timeout: u64,
    /// The pool's and group's least capacity (the group starts there).
    #[arg(long, default_value_t = 0)]
    min: u32,
    /// The pool's and group's most instances.
    #[arg(long, default_value_t = 20)]
    max: u32,
    /// How an instance leaves: `decrement` (lowers desired by one, as
    /// runner-scaler's user data does), `poweroff` (the group replaces it,
    /// as the original tool's script) or `both` [default: both without
    /// --policy, else decrement].
    #[arg(long, value_enum)]
    exit: Option<ExitArg>,
    /// Which instances are protected from scale-in: `all` (the shipped
    /// CloudFormation stack: a lower desired capacity terminates nothing) or
    /// `none` (it terminates instances the termination policy picks).
    #[arg(long, value_enum, default_value = "all")]
    protection: ProtectionArg,
    /// Let the scaler lower desired capacity although unprotected instances
    /// could be terminated (the pool's `allow_unprotected_scale_in`); with
    /// `--protection none`, jobs can then be killed.
    #[arg(long)]
    allow_unprotected_scale_in: bool,
    /// What an instance costs per hour, for the estimate.
    #[arg(long, default_value_t = 0.10)]
    price_per_hour: f64,
    /// Count the jobs that waited longer than this.
    #[arg(long, default_value = "5m", value_parser = seconds)]
    slow_wait: u64,
    /// Write the chart (queue, desired capacity, instances over time; a
    /// panel per run) to this SVG file.
    #[arg(long, value_name = "OUT.svg")]
    chart: Option<PathBuf>,
    /// Write a report to this HTML file, to open in any browser (one file,
    /// nothing fetched): per run the queue (waiting and running) and the
    /// capacity over time, every run's waits and cost overlaid, the tables.
    #[arg(long, value_name = "OUT.html")]
    report: Option<PathBuf>,
    /// Count only the jobs submitted from this moment (the table, the
    /// chart, the report): an RFC 3339 time, or an offset from the trace's
    /// start such as 21d. The simulation still starts at the trace's start,
    /// so the policies' state and the fleet are warmed up.
    #[arg(long, value_name = "TIME|OFFSET")]
    report_from: Option<String>,
    /// A param for the policies (`minutes=5`), or for one policy by name
    /// (`cooldown:minutes=5`). Repeat for more.
    #[arg(long = "params", value_name = "[POLICY:]KEY=VALUE")]
    params: Vec<String>,
    /// A shadow for the (one) --policy: it decides beside it on every
    /// tick's observation, never applied, and the table counts the ticks on
    /// which it would have set another desired capacity; a second column
    /// runs it as the live policy, to show what switching would change.
    /// Its params: `--params NAME:key=value`.
    #[arg(long, value_name = "P.wasm|queue|hold")]
    shadow: Option<String>,
    /// Print the table as Markdown (the README's policy tables are this
    /// output).
    #[arg(long)]
    markdown: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExitArg {
    Decrement,
    Poweroff,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProtectionArg {
    All,
    None,
}

/// Run the simulations, print the table, write the chart.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        args.max >= 1,
        "--max {} leaves no room for an instance; use 1 or more",
        args.max
    );
    ensure!(
        args.min <= args.max,
        "--min {} is above --max {}; lower --min or raise --max",
        args.min,
        args.max
    );
    ensure!(
        args.price_per_hour.is_finite() && args.price_per_hour >= 0.0,
        "--price-per-hour {} is not a price; use e.g. 0.10",
        args.price_per_hour
    );
    ensure!(
        args.stopped_price_per_hour.is_finite() && args.stopped_price_per_hour >= 0.0,
        "--stopped-price-per-hour {} is not a price; use e.g. 0.0033",
        args.stopped_price_per_hour
    );
    let time_zone = crate::time_zone::named(&args.time_zone).with_context(|| {
        format!(
            "--time-zone {:?} is not an IANA time zone, e.g. Europe/Berlin",
            args.time_zone
        )
    })?;
    let trace = Trace::find(&args.trace, args.start)?.for_class(args.resource_class.as_deref())?;
    let from = match &args.report_from {
        Some(text) => window::parse_from(text, &trace).map_err(anyhow::Error::msg)?,
        None => 0,
    };

    let default_run = args.policies.is_empty();
    let names = if default_run {
        vec!["queue".to_string()]
    } else {
        args.policies.clone()
    };
    let exits = match args.exit {
        Some(ExitArg::Decrement) => vec![Exit::Decrement],
        Some(ExitArg::Poweroff) => vec![Exit::Poweroff],
        Some(ExitArg::Both) => vec![Exit::Decrement, Exit::Poweroff],
        None if default_run => vec![Exit::Decrement, Exit::Poweroff],
        None => vec![Exit::Decrement],
    };
    let mut policies = load_policies(&names)?;
    let shadow = match &args.shadow {
        None => None,
        Some(name) => {
            ensure!(
                policies.len() == 1 && !default_run,
                "--shadow compares one live policy with its shadow: give exactly one --policy"
            );
            let shadow = load_policies(std::slice::from_ref(name))?.remove(0);
            ensure!(
                shadow.name() != policies[0].name(),
                "--shadow {name} is the --policy itself; give another policy"
            );
            policies.push(shadow.clone());
            Some(shadow)
        }
    };
    let params = parse_params(&args.params, &policies)?;
    let image = match args.image {
        ImageArg::Stock => experiment::STOCK,
        ImageArg::Baked => experiment::BAKED,
    };
    let boot = args.boot.unwrap_or(Boot::Fixed(image.boot));
    let settings = Settings {
        tick: args.tick,
        boot,
        warm_pool: crate::simulate::world::WarmPool {
            size: match args.warm_pool {
                WarmPoolArg::Size(size) => size,
                WarmPoolArg::Policy => 0,
                WarmPoolArg::Auto => {
                    let full_boot = match boot {
                        Boot::Fixed(seconds) => seconds,
                        Boot::Uniform { high, .. } => high,
                    };
                    trace.warm_pool_for(full_boot + args.tick)
                }
            },
            start: args.warm_start.unwrap_or(image.warm_start),
            sized_by_policy: args.warm_pool == WarmPoolArg::Policy,
        },
        idle_timeout: args.idle_timeout,
        min: args.min,
        max: args.max,
        exit: exits[0],
        protection: match args.protection {
            ProtectionArg::All => Protection::All,
            ProtectionArg::None => Protection::None,
        },
        allow_unprotected_scale_in: args.allow_unprotected_scale_in,
        seed: args.seed,
        time_zone: time_zone.clone(),
        price_per_hour: args.price_per_hour,
        stopped_price_per_hour: args.stopped_price_per_hour,
        slow_wait: args.slow_wait,
    };

    let mut scenarios = Vec::new();
    for policy in &policies {
        for &exit in &exits {
            let label = if exits.len() > 1 {
                format!("{} ({})", policy.name(), exit.name())
            } else {
                policy.name().to_string()
            };
            let settings = Settings {
                exit,
                ..settings.clone()
            };
            let mut scenario =
                settings.scenario(label, policy.clone(), params_for(&params, policy.name()));
            match &shadow {
                Some(shadow) if shadow.name() == policy.name() => {
                    scenario.label = format!("{} (shadow, if live)", scenario.label);
                }
                Some(shadow) => {
                    scenario.label = format!("{} (live)", scenario.label);
                    scenario.shadow = Some((shadow.clone(), params_for(&params, shadow.name())));
                }
                None => {}
            }
            scenarios.push(scenario);
        }
    }

    let progress = progress_bar(&trace, scenarios.len(), args.tick);
    let mut runs = Vec::new();
    for scenario in &scenarios {
        progress.set_message(scenario.label.clone());
        runs.push(simulate::run(&trace, scenario, &mut || progress.inc(1)).await);
    }
    progress.finish_and_clear();

    let described = settings.describe(exits.len() == 1);
    let day = trace
        .start
        .to_zoned(time_zone.clone())
        .strftime("%a %Y-%m-%d %H:%M %Z");
    let mut heading = format!(
        "{}: {} jobs from {day}; {described}; ${:.2} per instance-hour",
        trace.origin,
        trace.jobs.len(),
        args.price_per_hour
    );
    if settings.warm_pool.exists() {
        heading += &format!(
            ", ${:.4} per stopped instance-hour",
            args.stopped_price_per_hour
        );
    }
    if from > 0 {
        heading += &format!("; {}", window::describe(&trace, from, &time_zone));
    }
    let summaries: Vec<Summary> = runs
        .iter()
        .map(|r| {
            Summary::window(
                r,
                from,
                args.price_per_hour,
                args.stopped_price_per_hour,
                args.slow_wait,
            )
        })
        .collect();
    // The whole text is written at once, after the chart: a reader that
    // stops early (`| head`) must not keep the chart from being written.
    let mut out = if args.markdown {
        format!(
            "{heading}.\n\n{}",
            report::markdown(&summaries, args.slow_wait)
        )
    } else {
        format!("{heading}\n\n{}", report::table(&summaries, args.slow_wait))
    };
    let calibration = report::Calibration::of(&trace, &runs, from);
    if let Some(calibration) = &calibration {
        out += "\n";
        out += &if args.markdown {
            calibration.markdown()
        } else {
            calibration.text()
        };
    }
    for run in &runs {
        if let Some(err) = &run.first_policy_error {
            out += &format!(
                "\n{}: the policy failed on {} ticks, decided by `hold` instead; the first failure: {err}\n",
                run.label, run.policy_errors
            );
        }
    }
    if exits.len() > 1 && !args.markdown {
        out += "\ndecrement: an instance that leaves lowers desired by one (runner-scaler's user data);\n\
                at the group's min AWS refuses that, and it powers off and is replaced.\n\
                poweroff: it only terminates; the group launches a replacement while desired is above\n\
                the instance count (the original tool).\n";
    }
    if default_run && !args.markdown {
        out += "\nCompare a WebAssembly policy: cargo xtask policies, then\n  \
                runner-scaler simulate --policy target/policies/cooldown.wasm --policy queue\n";
    }
    if let Some(path) = &args.chart {
        let title = format!("{}, {described}", trace.origin);
        let svg = chart::svg_from(&runs, &title, trace.start, &time_zone, from)?;
        std::fs::write(path, svg)
            .with_context(|| format!("cannot write the chart to {}", path.display()))?;
        out += &format!("\nchart: {}\n", path.display());
    }
    if let Some(path) = &args.report {
        let recorded: Vec<u64> = trace
            .jobs
            .iter()
            .filter(|j| j.submit >= from)
            .filter_map(|j| j.wait)
            .collect();
        let page = html::html(&html::ReportInput {
            title: &trace.origin,
            heading: &heading,
            runs: &runs,
            summaries: &summaries,
            slow_wait: args.slow_wait,
            tick: args.tick,
            start: trace.start,
            time_zone: &time_zone,
            from,
            recorded: (!recorded.is_empty()).then_some(recorded),
            calibration,
            price_per_hour: args.price_per_hour,
            stopped_price_per_hour: args.stopped_price_per_hour,
        });
        std::fs::write(path, page)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        out += &format!("\nreport: {}\n", path.display());
    }
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(err).context("cannot write to stdout")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `[POLICY:]KEY=VALUE` → (policy, key, value); a named policy must be one
/// of those simulated.
fn parse_params(
    raw: &[String],
    policies: &[Policy],
) -> anyhow::Result<Vec<(Option<String>, String, String)>> {
    raw.iter()
        .map(|text| {
            let Some((target, value)) = text.split_once('=') else {
                bail!("--params {text:?} is not KEY=VALUE (or POLICY:KEY=VALUE), e.g. minutes=5");
            };
            let (policy, key) = match target.split_once(':') {
                Some((policy, key)) => (Some(policy.to_string()), key),
                None => (None, target),
            };
            ensure!(
                !key.is_empty(),
                "--params {text:?} has no key, e.g. minutes=5"
            );
            if let Some(policy) = &policy {
                let known: Vec<&str> = policies.iter().map(|p| p.name()).collect();
                ensure!(
                    known.contains(&policy.as_str()),
                    "--params {text:?} names the policy {policy:?}, which is not simulated ({})",
                    known.join(", ")
                );
            }
            Ok((policy, key.to_string(), value.to_string()))
        })
        .collect()
}

fn params_for(params: &[(Option<String>, String, String)], policy: &str) -> Vec<(String, String)> {
    params
        .iter()
        .filter(|(target, ..)| target.as_deref().is_none_or(|t| t == policy))
        .map(|(_, key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A bar over every run's ticks, on stderr when it is a terminal.
fn progress_bar(trace: &Trace, runs: usize, tick: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    // An estimate: runs end once the last job is done and the group drained.
    let last_end = trace
        .jobs
        .iter()
        .map(|j| j.submit + j.duration)
        .max()
        .unwrap_or(0);
    let per_run = last_end.div_ceil(tick) + 1;
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(per_run * runs as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} ticks  {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// A duration as the configuration writes it ([`parse_duration`]), in whole
/// seconds, at least 1.
/// The longest of the simulator's time settings.
const MAX_SETTING_SECONDS: u64 = 24 * 3600;

fn seconds(text: &str) -> Result<u64, String> {
    let seconds = parse_duration(text)
        .ok_or_else(|| {
            if text.trim().starts_with('-') {
                format!("{text:?} is negative")
            } else {
                format!("{text:?} is not a duration; write e.g. 90s, 5m or 1h")
            }
        })?
        .as_secs();
    if seconds == 0 {
        return Err(format!("{text:?} is zero; use at least 1s"));
    }
    if seconds > MAX_SETTING_SECONDS {
        return Err(format!(
            "{text:?} is more than a day; these settings (tick, boot, idle timeout, warm start, \
             slow wait) are seconds to minutes"
        ));
    }
    Ok(seconds)
}

/// `90s` (fixed) or `60s..150s` (uniform).
/// `--warm-pool`: a size, or sized from the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WarmPoolArg {
    Size(u32),
    Auto,
    Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ImageArg {
    Stock,
    Baked,
}

fn warm_pool(text: &str) -> Result<WarmPoolArg, String> {
    match text.trim() {
        "auto" => Ok(WarmPoolArg::Auto),
        "policy" => Ok(WarmPoolArg::Policy),
        n => n.parse().map(WarmPoolArg::Size).map_err(|_| {
            format!(
                "{} is neither a number of instances, `auto` nor `policy`; write e.g. 8, auto or policy",
                crate::text::quoted(text)
            )
        }),
    }
}

fn boot(text: &str) -> Result<Boot, String> {
    match text.split_once("..") {
        None => Ok(Boot::Fixed(seconds(text)?)),
        Some((low, high)) => {
            let (low, high) = (seconds(low)?, seconds(high)?);
            if low > high {
                return Err(format!(
                    "{text:?}: the low end is above the high end; write e.g. 60s..150s"
                ));
            }
            Ok(Boot::Uniform { low, high })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::BuiltinRule;

    #[test]
    fn durations_and_boots() {
        assert_eq!(seconds("90"), Ok(90));
        assert_eq!(seconds("90s"), Ok(90));
        assert_eq!(seconds("5m"), Ok(300));
        assert_eq!(seconds("1h 30m"), Ok(5400));
        assert!(seconds("0s").unwrap_err().contains("zero"));
        assert!(seconds("soon").unwrap_err().contains("90s, 5m or 1h"));
        assert_eq!(boot("90s"), Ok(Boot::Fixed(90)));
        assert_eq!(boot("1m..2m"), Ok(Boot::Uniform { low: 60, high: 120 }));
        assert!(boot("2m..1m").unwrap_err().contains("low end"));
    }

    #[test]
    fn params_go_to_every_policy_or_the_one_named() {
        let policies = [
            Policy::Builtin(BuiltinRule::Queue),
            Policy::Builtin(BuiltinRule::Hold),
        ];
        let raw = ["a=1".to_string(), "hold:b=2".to_string()];
        let params = parse_params(&raw, &policies).unwrap();
        assert_eq!(params_for(&params, "queue"), vec![("a".into(), "1".into())]);
        assert_eq!(
            params_for(&params, "hold"),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        let err = parse_params(&["cooldown:m=1".into()], &policies).unwrap_err();
        assert!(
            err.to_string().contains("not simulated (queue, hold)"),
            "{err}"
        );
        assert!(parse_params(&["m".into()], &policies).is_err());
    }
}
