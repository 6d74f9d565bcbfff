//! What each example policy's documentation claims against the built-in
//! `queue` rule, checked in the simulator on a named trace with the shipped
//! stack's settings (`runner-scaler simulate`'s defaults). The README's
//! comparison tables (`readme.rs`) print the same runs.

use crate::support;
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
