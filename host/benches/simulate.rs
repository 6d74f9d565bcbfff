//! 30 days of 1-minute ticks through the compiled `queue-depth` policy:
//! `cargo bench --bench simulate` (after `cargo xtask policies`). The trace
//! is the embedded weekday, thirty times over. Prints the wall time of the
//! run (target ≤ 1 s), per tick, and the run's figures.
//!
//! Then the same month through `business-hours` (a warm floor of 2 in
//! Berlin's business hours) in Rust, Python and JavaScript: the three must
//! give the same figures, and the wall time is the cost of each language.

use runner_scaler::policy::{BuiltinRule, CompileCache, Limits, Policy, PolicyEngine};
use runner_scaler::simulate::trace::Job;
use runner_scaler::simulate::{
    run, Boot, Exit, Protection, Scenario, Summary, Trace, WorldSettings,
};
use std::path::PathBuf;
use std::time::Instant;

const DAYS: u64 = 30;

fn main() {
    let policies = std::env::var_os("RUNNER_SCALER_TEST_POLICIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/policies"));
    // Python and JavaScript take seconds to compile: use the compile cache
    // (`$RUNNER_SCALER_CACHE_DIR`, as `cargo xtask` fills it).
    let cache = CompileCache::new(
        std::env::var_os("RUNNER_SCALER_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(CompileCache::default_dir),
    );
    let engine = PolicyEngine::new(Limits::default(), Some(cache)).unwrap();
    let policy = engine
        .load(&policies.join("queue-depth.wasm"))
        .expect("build the policies first: cargo xtask policies");

    let day = Trace::find("weekday", None).unwrap();
    let jobs: Vec<Job> = (0..DAYS)
        .flat_map(|d| {
            day.jobs.iter().map(move |j| Job {
                submit: j.submit + d * 86_400,
                ..j.clone()
            })
        })
        .collect();
    let month = Trace { jobs, ..day };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{:>18} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "policy", "ticks", "jobs", "wall", "per tick", "inst-min"
    );
    // (policy, params, time zone)
    type Run = (Policy, Vec<(String, String)>, jiff::tz::TimeZone);
    let mut runs: Vec<Run> = vec![
        (Policy::Wasm(policy), vec![], jiff::tz::TimeZone::UTC),
        (
            Policy::Builtin(BuiltinRule::Queue),
            vec![],
            jiff::tz::TimeZone::UTC,
        ),
    ];
    for file in ["business-hours", "business-hours-py", "business-hours-js"] {
        let policy = engine
            .load(&policies.join(format!("{file}.wasm")))
            .expect("build the policies first: cargo xtask policies");
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        runs.push((
            Policy::Wasm(policy),
            vec![("warm".into(), "2".into())],
            berlin,
        ));
    }
    for (policy, params, time_zone) in runs {
        let scenario = Scenario {
            label: policy.name().to_string(),
            policy,
            params,
            fallback: BuiltinRule::Hold,
            tick: 60,
            time_zone,
            allow_unprotected_scale_in: false,
            world: WorldSettings {
                boot: Boot::Uniform { low: 60, high: 150 },
                warm_pool: runner_scaler::simulate::world::WarmPool::NONE,
                idle_timeout: 300,
                exit: Exit::Decrement,
                protection: Protection::All,
                min: 0,
                max: 20,
                seed: 1,
            },
            shadow: None,
        };
        let started = Instant::now();
        let result = runtime.block_on(run(&month, &scenario, &mut || {}));
        let wall = started.elapsed();
        let summary = Summary::of(&result, 0.1, 300);
        println!(
            "{:>18} {:>8} {:>8} {:>8.0}ms {:>8.1}µs {:>10.0}",
            scenario.label,
            result.ticks,
            summary.jobs,
            wall.as_secs_f64() * 1000.0,
            wall.as_secs_f64() * 1e6 / result.ticks as f64,
            summary.instance_minutes(),
        );
    }
}
