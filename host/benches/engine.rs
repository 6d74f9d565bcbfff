//! The policy engine's figures: `cargo bench --bench engine` (after
//! `cargo xtask policies`). Prints medians and the ratios the targets are
//! stated in, rather than asserting them: a noisy machine makes a timed
//! assertion flaky, a printed figure is for people to compare.
//!
//! - decision: one `queue-depth` decision, fresh instance included
//!   (target: median ≤ 8 µs, issue 14); and one of each other example policy, with
//!   every param set (params parsing and state included);
//! - load cold: read, componentize and compile a policy with no cache;
//! - load warm: the same load with the compiled code in the cache
//!   (target: ≥ 20× faster than cold). Both load through an engine made
//!   beforehand, so the ratio compares the loads alone;
//! - engine: making one (the pooling allocator's reservation, the linker,
//!   the deadline thread), which a process pays once, and only when a pool
//!   uses WebAssembly; and a load from `policy precompile`'s directory, what
//!   a cold start with `--precompiled` (or in Lambda) pays besides.
//!
//! Then `business-hours` in each language (Rust, Python through
//! componentize-py, JavaScript through componentize-js), side by side:
//! component size, compile time (a cold load), cached load, decision
//! latency (fresh instance included), and the memory a decision needs: the
//! smallest `memory_mib` under which it decides.

use runner_scaler::policy::{linux_target, CompileCache, EngineOptions, Limits, PolicyEngine};
use runner_scaler::{Capacity, Clock, Observation, Queue};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` passes `--bench`; a filter is not supported.
    let policies = std::env::var_os("RUNNER_SCALER_TEST_POLICIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/policies"));
    let core = policies.join("queue-depth.wasm");
    assert!(
        core.is_file(),
        "{} is missing: run `cargo xtask policies` first",
        core.display()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = engine.load(&core).unwrap();
    let observation = Observation {
        pool: "bench".into(),
        queue: Queue {
            waiting: 3,
            running: 2,
            blocked: None,
        },
        capacity: Capacity {
            desired: 2,
            max: 10,
            ..Capacity::default()
        },
        clock: Clock::at(jiff::Timestamp::UNIX_EPOCH, &jiff::tz::TimeZone::UTC),
        params: vec![("warm".into(), "2".into())],
        state: None,
    };
    let decision = median_per_call(2_000, 25, || {
        let (result, _) = runtime.block_on(policy.decide(&observation));
        assert_eq!(result.unwrap().desired, 5);
    });

    // The other examples: params to parse (and cooldown a state it clears).
    let monday_9 = Clock::at(
        jiff::Timestamp::from_second(1_795_424_400).unwrap(),
        &jiff::tz::TimeZone::UTC,
    );
    let params = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect::<Vec<_>>()
    };
    let examples = [
        (
            "business-hours",
            params(&[("warm", "2"), ("days", "mon-fri"), ("hours", "08-18")]),
            None,
            2,
        ),
        (
            "cooldown",
            params(&[("warm", "2"), ("minutes", "10")]),
            Some(format!("empty_since={}", 1_795_424_400 - 60)),
            4,
        ),
        (
            "buffered",
            params(&[
                ("runners_per_instance", "2"),
                ("buffer", "1"),
                ("scale_out_factor", "0.5"),
                ("scale_in_factor", "0.5"),
            ]),
            None,
            3,
        ),
    ];
    let mut example_decisions = Vec::new();
    for (name, params, state, expected) in examples {
        let policy = engine.load(&policies.join(format!("{name}.wasm"))).unwrap();
        let observation = Observation {
            queue: Queue {
                waiting: 0,
                running: 2,
                blocked: None,
            },
            capacity: Capacity {
                desired: 4,
                max: 10,
                ..Capacity::default()
            },
            clock: monday_9.clone(),
            params,
            state,
            ..observation.clone()
        };
        let median = median_per_call(2_000, 25, || {
            let (result, _) = runtime.block_on(policy.decide(&observation));
            assert_eq!(result.unwrap().desired, expected, "{name}");
        });
        example_decisions.push((name, median));
    }

    // Each load with an engine made beforehand: no cache, so every load
    // compiles; and a cache that holds the code after the first.
    let uncached = PolicyEngine::new(Limits::default(), None).unwrap();
    let cold = median_per_call(1, 10, || {
        uncached.load(&core).unwrap();
    });
    let cache_dir = tempfile::tempdir().unwrap();
    let cached =
        PolicyEngine::new(Limits::default(), Some(CompileCache::new(cache_dir.path()))).unwrap();
    cached.load(&core).unwrap(); // fills the cache
    let warm = median_per_call(1, 50, || {
        cached.load(&core).unwrap();
    });
    let made = median_per_call(1, 20, || {
        PolicyEngine::new(Limits::default(), None).unwrap();
    });
    let precompiled_dir = tempfile::tempdir().unwrap();
    let precompiling = PolicyEngine::with_options(
        Limits::default(),
        None,
        EngineOptions {
            target: Some(linux_target(std::env::consts::ARCH)),
            precompiled: None,
        },
    )
    .unwrap();
    precompiling
        .precompile_into(&core, &CompileCache::new(precompiled_dir.path()))
        .unwrap();
    let from_precompiled = PolicyEngine::with_options(
        Limits::default(),
        None,
        EngineOptions::precompiled(precompiled_dir.path().into()),
    )
    .unwrap();
    let precompiled = median_per_call(1, 50, || {
        from_precompiled.load(&core).unwrap();
    });

    println!(
        "decision (queue-depth, fresh instance)  median {:>10.2?}   target ≤ 8µs",
        decision
    );
    for (name, median) in example_decisions {
        println!(
            "decision ({name}, with params){:pad$}median {median:>10.2?}",
            "",
            pad = 16 - name.len()
        );
    }
    println!(
        "load cold (componentize + compile)      median {:>10.2?}",
        cold
    );
    println!(
        "load warm (from the compile cache)      median {:>10.2?}",
        warm
    );
    println!(
        "warm load is {:.0}× faster than cold              target ≥ 20×",
        cold.as_secs_f64() / warm.as_secs_f64()
    );
    println!(
        "engine (pool reserved, linker)          median {:>10.2?}   once per process, only for WebAssembly",
        made
    );
    println!(
        "load from the precompiled directory     median {:>10.2?}",
        precompiled
    );

    println!();
    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>10} {:>12}",
        "language", "size", "compile", "cached load", "decision", "memory"
    );
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let monday = Observation {
        clock: Clock::at("2026-11-23T08:00:00Z".parse().unwrap(), &berlin),
        ..observation
    };
    for (language, file) in [
        ("Rust", "business-hours"),
        ("Python", "business-hours-py"),
        ("JavaScript", "business-hours-js"),
    ] {
        let path = policies.join(format!("{file}.wasm"));
        assert!(
            path.is_file(),
            "{} is missing: run `cargo xtask policies` first",
            path.display()
        );
        let size = std::fs::metadata(&path).unwrap().len();
        // Compiling an interpreter takes seconds: fewer samples. An engine
        // with no cache compiles on every load.
        let (per, samples) = if language == "Rust" { (1, 10) } else { (1, 3) };
        let compile = median_per_call(per, samples, || {
            uncached.load(&path).unwrap();
        });
        let cache_dir = tempfile::tempdir().unwrap();
        let cached =
            PolicyEngine::new(Limits::default(), Some(CompileCache::new(cache_dir.path())))
                .unwrap();
        let policy = cached.load(&path).unwrap();
        let cached_load = median_per_call(1, 20, || {
            cached.load(&path).unwrap();
        });
        let decision = median_per_call(50, 11, || {
            let (result, _) = runtime.block_on(policy.decide(&monday));
            assert_eq!(result.unwrap().desired, 5);
        });
        let memory = smallest_memory_mib(&runtime, &path, cache_dir.path(), &monday);
        println!(
            "{:<10} {:>8.1}MB {:>10.2?} {:>12.2?} {:>10.2?} {:>9} MiB",
            language,
            size as f64 / 1e6,
            compile,
            cached_load,
            decision,
            memory
        );
    }
}

/// The smallest memory limit, in MiB, under which the policy at `path`
/// loads and decides `observation`: what one decision needs at its peak,
/// rounded up to a MiB.
fn smallest_memory_mib(
    runtime: &tokio::runtime::Runtime,
    path: &std::path::Path,
    cache: &std::path::Path,
    observation: &Observation,
) -> usize {
    (1..=64)
        .find(|&mib| {
            let limits = Limits {
                memory_bytes: mib << 20,
                ..Limits::default()
            };
            let engine = PolicyEngine::new(limits, Some(CompileCache::new(cache))).unwrap();
            engine
                .load(path)
                .is_ok_and(|policy| runtime.block_on(policy.decide(observation)).0.is_ok())
        })
        .expect("decides within the default 64 MiB")
}

/// The median, over `samples` runs of `per_sample` calls, of the time per call.
fn median_per_call(per_sample: u32, samples: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm up
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..per_sample {
                f();
            }
            started.elapsed() / per_sample
        })
        .collect();
    times.sort();
    times[samples / 2]
}
