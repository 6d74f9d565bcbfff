//! What each example policy's documentation claims against the built-in
//! `queue` rule, checked in the simulator on a named trace with the shipped
//! stack's settings (`runner-scaler simulate`'s defaults). The README's
//! comparison tables (`readme.rs`) print the same runs.

use crate::support;
use runner_scaler::simulate::experiment::BAKED;
use runner_scaler::simulate::{figures, simulate, Run, Settings, Summary};

async fn summary(trace: &str, policy: &str, params: &[(&str, &str)]) -> Summary {
    figures(trace, &file_or_rule(policy), params, &Settings::default())
        .await
        .expect("build the policies first: cargo xtask policies")
}

fn file_or_rule(policy: &str) -> String {
    match policy {
        "queue" | "hold" => policy.to_string(),
        example => support::policy_file(example).display().to_string(),
    }
}

/// The median wait, in seconds, of the jobs submitted in `[from, to)`
/// (seconds from the trace's start).
fn median_wait(run: &Run, from: u64, to: u64) -> u64 {
    let mut waits: Vec<u64> = run
        .jobs
        .iter()
        .filter(|job| (from..to).contains(&job.submit))
        .map(|job| job.wait(run.end))
        .collect();
    assert!(!waits.is_empty(), "no job in [{from}, {to})");
    waits.sort_unstable();
    waits[(waits.len() - 1) / 2]
}

/// `business-hours`: a warm floor the size of the first pipeline (`warm=4`)
/// lowers the wait of the first business hour's jobs (08:00 to 09:00 on the
/// weekday trace, a Monday) by 10 s or more, for at most 1.2 times
/// `queue`'s instance time. (With production's 10 s ticks `queue` already
/// starts a boot within 10 s of a job; the floor saves the rest of the boot
/// for the jobs it covers.)
/// (At its default `warm=1`, with the stack's 5-minute idle timeout, the one
/// warm instance changes no median: see the policy's documentation.)
#[tokio::test]
async fn business_hours_lowers_the_morning_wait_on_the_weekday() {
    let settings = Settings::default();
    let (from, to) = (8 * 3600, 9 * 3600);
    let queue = simulate("weekday", "queue", &[], &settings).await.unwrap();
    let policy = file_or_rule("business-hours");
    let hours = simulate("weekday", &policy, &[("warm", "4")], &settings)
        .await
        .unwrap();
    let (before, after) = (median_wait(&queue, from, to), median_wait(&hours, from, to));
    let cost = |run: &Run| Summary::of(run, settings.price_per_hour, 300).instance_seconds;
    println!(
        "weekday 08-09 median wait: queue {before} s, business-hours {after} s; \
         instance-seconds {} vs {}",
        cost(&queue),
        cost(&hours)
    );
    assert!(
        after + 10 <= before,
        "{after} s is not 10 s below {before} s"
    );
    assert!(cost(&hours) as f64 <= 1.2 * cost(&queue) as f64);
}

/// `buffered` with a buffer: a lower p95 wait, for at most 1.5 times the
/// instance time of `queue` (the weekday trace).
#[tokio::test]
async fn buffered_lowers_the_p95_wait_at_a_stated_cost() {
    let queue = summary("weekday", "queue", &[]).await;
    let buffered = summary("weekday", "buffered", &[("buffer", "2")]).await;
    println!(
        "weekday p95 wait: queue {} s, buffered {} s; instance-seconds {} vs {}",
        queue.wait_p95, buffered.wait_p95, queue.instance_seconds, buffered.instance_seconds
    );
    assert!(buffered.wait_p95 < queue.wait_p95);
    assert!(buffered.wait_p50 < queue.wait_p50);
    assert!(buffered.instance_seconds as f64 <= 1.5 * queue.instance_seconds as f64);
}

/// `cooldown`: warm instances after a burst start the next burst's jobs
/// without boots (the bursty trace). At its defaults (`warm=4`, fewer than a
/// burst's 6-12 jobs) the median and the longest wait fall; with a burst's
/// worth warm (`warm=8`) the median falls to seconds and the 95th
/// percentile below the defaults', for at most 3 times `queue`'s instance
/// time.
#[tokio::test]
async fn cooldown_lowers_the_wait_of_a_bursty_day() {
    let queue = summary("bursty", "queue", &[]).await;
    let defaults = summary("bursty", "cooldown", &[]).await;
    let burst = summary("bursty", "cooldown", &[("warm", "8")]).await;
    println!(
        "bursty p50/p95 wait: queue {}/{} s, cooldown {}/{} s, warm=8 {}/{} s; \
         instance-seconds {} / {} / {}",
        queue.wait_p50,
        queue.wait_p95,
        defaults.wait_p50,
        defaults.wait_p95,
        burst.wait_p50,
        burst.wait_p95,
        queue.instance_seconds,
        defaults.instance_seconds,
        burst.instance_seconds
    );
    assert!(defaults.wait_p50 < queue.wait_p50 && defaults.wait_max < queue.wait_max);
    assert!(burst.wait_p50 <= 10 && burst.wait_p95 < defaults.wait_p95);
    assert!(burst.instance_seconds <= 3 * queue.instance_seconds);
}

/// The four-week trace (`examples/traces/four-weeks.csv`), counted from the
/// start of its fourth week: what issue 25's goals are measured on, after
/// the three weeks a learning policy needs. A month of 10 s ticks takes
/// minutes in a debug build, seconds in the release build, so these run
/// `simulate` as a user does, with the release binary
/// ([`support::release_binary`]), and read its Markdown table.
const FOUR_WEEKS: &str = "examples/traces/four-weeks.csv";

/// What `simulate` printed for one run, from its Markdown table.
#[derive(Debug)]
struct Figures {
    label: String,
    p50: u64,
    p95: u64,
    cost: f64,
    stopped_hours: f64,
    never_ran: bool,
}

/// `simulate --markdown --trace FOUR_WEEKS --report-from 21d ARGS`: a run
/// per `--policy`, in order.
fn last_week(args: &[&str]) -> Vec<Figures> {
    let mut command = std::process::Command::new(support::release_binary());
    command
        .args([
            "simulate",
            "--markdown",
            "--trace",
            FOUR_WEEKS,
            "--report-from",
            "21d",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for arg in args {
        match arg.strip_prefix("target/policies/") {
            Some(file) => command.arg(support::policies_dir().join(file)),
            None => command.arg(arg),
        };
    }
    let output = command.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = |name: &str| -> Vec<String> {
        // The heading row's first cell is empty: `| | `queue` |`.
        let start = match name {
            "" => "| |".to_string(),
            name => format!("| {name} |"),
        };
        text.lines()
            .find(|line| line.starts_with(&start))
            .unwrap_or_else(|| panic!("no row {name:?} in:\n{text}"))
            .split('|')
            .skip(2)
            .map(|cell| cell.trim().to_string())
            .filter(|cell| !cell.is_empty())
            .collect()
    };
    let labels = row("");
    let (p50, p95, cost) = (row("wait p50"), row("wait p95"), row("estimated cost"));
    let stopped = text
        .lines()
        .any(|line| line.starts_with("| stopped instance-hours (pool) |"))
        .then(|| row("stopped instance-hours (pool)"));
    let jobs = row("jobs");
    (0..labels.len())
        .map(|i| Figures {
            label: labels[i].trim_matches('`').to_string(),
            p50: seconds(&p50[i]),
            p95: seconds(&p95[i]),
            cost: cost[i].trim_start_matches('$').parse().unwrap(),
            stopped_hours: stopped.as_ref().map_or(0.0, |s| s[i].parse().unwrap()),
            never_ran: jobs[i] != jobs[0],
        })
        .collect()
}

/// `1m35s`, `30s`, `2m` in seconds.
fn seconds(text: &str) -> u64 {
    let (minutes, rest) = match text.split_once('m') {
        Some((m, rest)) => (m.parse::<u64>().unwrap(), rest),
        None => (0, text),
    };
    minutes * 60 + rest.trim_end_matches('s').parse::<u64>().unwrap_or(0)
}

/// The original tool: a tick a minute, the stock image, no pool.
fn original() -> Figures {
    last_week(&["--tick", "60s", "--policy", "queue"]).remove(0)
}

fn line(f: &Figures, original: &Figures) -> String {
    format!(
        "{}: p50 {} s, p95 {} s, {:.2}x the original's cost (${:.2}), {:.0} stopped hours",
        f.label,
        f.p50,
        f.p95,
        f.cost / original.cost,
        f.cost,
        f.stopped_hours
    )
}

/// `forecast`, and issue 25's goal for the stock image: with the warm pool
/// it sizes, the fourth week's jobs wait p50 ≤ 30 s and p95 ≤ 45 s, at no
/// more than 1.15 times the original tool's cost; and it keeps the waits of
/// the fixed pool the documented rule sizes for the trace (`--warm-pool
/// auto`), with fewer stopped instance-hours, since it lets the pool go in
/// the quiet hours.
#[test]
fn forecast_meets_the_stock_image_goal_on_the_fourth_week() {
    let original = original();
    let forecast = last_week(&[
        "--warm-pool",
        "policy",
        "--policy",
        "target/policies/forecast.wasm",
    ])
    .remove(0);
    let fixed = last_week(&["--warm-pool", "auto", "--policy", "queue"]).remove(0);
    for f in [&original, &forecast, &fixed] {
        println!("{}", line(f, &original));
        assert!(!f.never_ran);
    }
    assert!(forecast.p50 <= 30 && forecast.p95 <= 45);
    assert!(forecast.cost <= 1.15 * original.cost);
    assert!(forecast.p95 <= fixed.p95);
    assert!(forecast.stopped_hours < fixed.stopped_hours);
}

/// Issue 25's goal for the baked image — p50 ≤ 20 s, p95 ≤ 40 s at no more
/// than the original's cost — is out of reach under the model, and this is
/// the frontier that shows why. Without a pool, every job waits a tick and
/// a 30 s boot (p50 ≥ 30 s) at well under the original's cost. The warm
/// pool meets p95 ≤ 40 s, but a start from stopped is 25 s (EC2's ~21 s and
/// the runner's start), so the median stays above 20 s, and it costs more
/// than the original. Only instances already running start jobs at once,
/// and each bills as running while it waits, then leaves after the
/// runner's idle timeout: one kept ahead of the usual burst (`hot=1`) moves
/// the median by a second for a quarter more cost. The assumption that
/// binds is the warm start.
#[test]
fn the_baked_image_goal_is_beyond_a_warm_start_and_the_frontier_says_so() {
    let original = original();
    let baked = ["--image", "baked", "--warm-pool", "policy"];
    let runs = last_week(
        &[
            &baked[..],
            &[
                "--policy",
                "queue",
                "--policy",
                "target/policies/forecast.wasm",
                "--params",
                "forecast:boot=30s",
            ],
        ]
        .concat(),
    );
    let [queue, forecast] = <[Figures; 2]>::try_from(runs).unwrap();
    let variant = |params: &str| {
        let param = format!("forecast:{params}");
        last_week(
            &[
                &baked[..],
                &[
                    "--policy",
                    "target/policies/forecast.wasm",
                    "--params",
                    "forecast:boot=30s",
                    "--params",
                    &param,
                ],
            ]
            .concat(),
        )
        .remove(0)
    };
    let (bare, hot) = (variant("headroom=0"), variant("hot=1"));
    for f in [&queue, &forecast, &bare, &hot] {
        println!("{}", line(f, &original));
        assert!(!f.never_ran);
    }
    // Without a pool: the boot binds; cheaper than the original.
    assert!(queue.p50 >= 30 && queue.p95 <= 40);
    assert!(queue.cost <= 0.9 * original.cost);
    // The warm pool meets p95, not p50, and costs more than the original.
    for pool in [&forecast, &bare] {
        assert!(pool.p95 <= 40, "{}", pool.label);
        assert!(pool.p50 > 20, "{}: the goal's 20 s", pool.label);
        assert!(pool.p50 >= BAKED.warm_start, "{}", pool.label);
        assert!(pool.cost > original.cost);
    }
    // Running instances ahead of it: a second off the median, a lot more cost.
    assert!(hot.p50 < forecast.p50 && hot.p50 > 20);
    assert!(hot.cost > 1.15 * original.cost);
}
