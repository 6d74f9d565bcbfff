//! The policy engine against real compiled policies: the four examples with
//! exact decisions, the Python and JavaScript ports of `business-hours`
//! against the Rust original, the hostile ones in every language (each must
//! fail the way it should, the fallback must decide, and the host must go
//! on), what WASI gives an interpreter, and the compile cache.
//!
//! The policies are built by `cargo xtask policies` (or `cargo xtask test`)
//! into `target/policies/`.

use crate::support;

use runner_scaler::policy::{
    BuiltinRule, CompileCache, Limits, Policy, PolicyEngine, PolicyError, WasmPolicy,
};
use runner_scaler::{Capacity, Clock, Observation, Queue};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn load(engine: &PolicyEngine, name: &str) -> WasmPolicy {
    engine
        .load(&support::policy_file(name))
        .unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// An observation at `at` (RFC 3339) in `tz`.
fn observation(waiting: u32, running: u32, desired: u32, at: &str, tz: &str) -> Observation {
    let tz = jiff::tz::TimeZone::get(tz).unwrap();
    Observation {
        pool: "linux-large".into(),
        queue: Queue {
            waiting,
            running,
            blocked: None,
        },
        capacity: Capacity {
            desired,
            min: 0,
            max: 10,
            in_service: desired,
            protected: desired,
            ..Capacity::default()
        },
        clock: Clock::at(at.parse().unwrap(), &tz),
        params: vec![],
        state: None,
    }
}

fn with_params(mut o: Observation, params: &[(&str, &str)]) -> Observation {
    o.params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    o
}

async fn desired(policy: &WasmPolicy, o: &Observation) -> u32 {
    policy
        .decide(o)
        .await
        .0
        .unwrap_or_else(|err| panic!("{err}"))
        .desired
}

const MONDAY_9: &str = "2026-11-23T08:00:00Z"; // 09:00 in Berlin
const SATURDAY_9: &str = "2026-11-28T08:00:00Z";

#[tokio::test]
async fn queue_depth_is_the_original_rule() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = load(&engine, "queue-depth");
    // (name, waiting, running, desired now, expected)
    let cases = [
        ("empty queue scales to zero", 0, 0, 3, 0),
        ("waiting and running both count", 3, 2, 1, 5),
        ("never above max", 9, 4, 0, 10),
    ];
    for (name, waiting, running, now, expected) in cases {
        let o = observation(waiting, running, now, MONDAY_9, "UTC");
        assert_eq!(desired(&policy, &o).await, expected, "{name}");
    }
}

#[tokio::test]
async fn business_hours_keeps_a_warm_floor_in_the_pools_time_zone() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = load(&engine, "business-hours");
    let params = [("warm", "2"), ("days", "mon-fri"), ("hours", "08-18")];
    // (name, waiting, at, time zone, expected)
    let cases = [
        (
            "monday 09:00 Berlin is open",
            0,
            MONDAY_9,
            "Europe/Berlin",
            2,
        ),
        ("jobs above the floor win", 5, MONDAY_9, "Europe/Berlin", 5),
        (
            "monday 08:00 UTC is 03:00 in New York",
            0,
            MONDAY_9,
            "America/New_York",
            0,
        ),
        ("saturday is closed", 0, SATURDAY_9, "Europe/Berlin", 0),
        (
            "07:59 Berlin is closed",
            0,
            "2026-11-23T06:59:00Z",
            "Europe/Berlin",
            0,
        ),
        (
            "17:59 Berlin is open",
            0,
            "2026-11-23T16:59:00Z",
            "Europe/Berlin",
            2,
        ),
        (
            "18:00 Berlin is closed",
            0,
            "2026-11-23T17:00:00Z",
            "Europe/Berlin",
            0,
        ),
    ];
    for (name, waiting, at, tz, expected) in cases {
        let o = with_params(observation(waiting, 0, 1, at, tz), &params);
        assert_eq!(desired(&policy, &o).await, expected, "{name}");
    }
    let bad = with_params(observation(0, 0, 1, MONDAY_9, "UTC"), &[("warm", "lots")]);
    let err = policy.decide(&bad).await.0.unwrap_err();
    assert!(matches!(err, PolicyError::Refused { .. }), "{err}");
    assert!(
        err.to_string().contains("warm"),
        "the error names the param: {err}"
    );
}

#[tokio::test]
async fn cooldown_keeps_warm_instances_for_the_configured_minutes() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = load(&engine, "cooldown");
    let params = [("warm", "2"), ("minutes", "10")];
    // A burst: 3 jobs, then the queue empties at 08:00 and stays empty.
    let busy = with_params(observation(3, 0, 0, MONDAY_9, "UTC"), &params);
    let d = policy.decide(&busy).await.0.unwrap();
    assert_eq!(
        (d.desired, d.state.as_deref()),
        (5, None),
        "one per job and 2 warm"
    );

    let mut state = None;
    for (minute, expected) in [(0, 2), (5, 2), (9, 2), (10, 0), (30, 0)] {
        let at = format!("2026-11-23T08:{minute:02}:00Z");
        let mut idle = with_params(observation(0, 0, 5, &at, "UTC"), &params);
        idle.state = state.clone();
        let d = policy.decide(&idle).await.0.unwrap();
        assert_eq!(d.desired, expected, "minute {minute}: {}", d.reason);
        state = d.state;
    }
    assert_eq!(
        state.as_deref(),
        Some("empty_since=1795420800"),
        "the time the queue emptied stays until jobs come"
    );
}

#[tokio::test]
async fn buffered_adds_a_buffer_and_damps_scale_in() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = load(&engine, "buffered");
    // (name, waiting, running, desired now, params, expected)
    type Case<'a> = (&'a str, u32, u32, u32, &'a [(&'a str, &'a str)], u32);
    let cases: [Case; 4] = [
        (
            "two runners per instance, rounded up",
            3,
            0,
            0,
            &[("runners_per_instance", "2")],
            2,
        ),
        ("a buffer while work exists", 3, 0, 0, &[("buffer", "2")], 5),
        (
            "no buffer on an empty queue",
            0,
            0,
            0,
            &[("buffer", "2")],
            0,
        ),
        (
            "half the gap per tick when scaling in",
            0,
            2,
            10,
            &[("scale_in_factor", "0.5")],
            6,
        ),
    ];
    for (name, waiting, running, now, params, expected) in cases {
        let o = with_params(observation(waiting, running, now, MONDAY_9, "UTC"), params);
        assert_eq!(desired(&policy, &o).await, expected, "{name}");
    }
}

/// What each hostile policy must produce, as an error kind and words the
/// operator needs to read in its message.
#[tokio::test]
async fn hostile_policies_fail_cleanly_and_the_fallback_decides() {
    let limits = Limits {
        deadline: Duration::from_millis(200),
        memory_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let engine = PolicyEngine::new(limits, None).unwrap();
    let o = observation(4, 1, 2, MONDAY_9, "UTC");
    let queue_rule = BuiltinRule::Queue.decide(&o);
    let cases = [
        ("spin", "deadline", "200 ms"),
        ("sleeps", "deadline", "200 ms"),
        ("alloc-bomb", "out_of_memory", "16 MiB"),
        ("panics", "trap", "unreachable"),
        ("refuses", "refused", "param `warm`"),
        ("big-state", "bad_output", "256"),
        ("bad-state", "bad_output", "U+0000"),
    ];
    for (name, kind, words) in cases {
        let policy = Policy::Wasm(load(&engine, name));
        let started = Instant::now();
        // A policy that hangs the call must fail this test, not hold it.
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            policy.decide_or_fallback(&o, BuiltinRule::Queue),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: decide did not end"));
        let elapsed = started.elapsed();
        let err = outcome
            .error
            .unwrap_or_else(|| panic!("{name} should fail"));
        assert_eq!(err.kind(), kind, "{name}: {err}");
        let message = err.to_string();
        assert!(
            message.contains(words),
            "{name}: {message:?} should say {words:?}"
        );
        assert!(
            message.contains(name),
            "{name}: {message:?} should name the policy"
        );
        assert!(
            !message.contains('\n'),
            "{name}: one line, no backtrace: {message:?}"
        );
        assert_eq!(outcome.decision, queue_rule, "{name}: the fallback decides");
        assert!(outcome.decided_by.contains("fallback"), "{name}");
        if kind == "deadline" {
            assert!(
                elapsed >= limits.deadline && elapsed < limits.deadline * 2,
                "stopped after {elapsed:?}, deadline {:?}",
                limits.deadline
            );
        }
    }
    // The host is unharmed: the same engine still runs a good policy.
    let good = load(&engine, "queue-depth");
    assert_eq!(desired(&good, &o).await, 5);
}

/// Issue 11: a policy blocked in a host call (an hour's sleep on the WASI
/// monotonic clock) held `decide` for an hour; epochs fire only in guest code.
#[tokio::test]
async fn a_policy_waiting_in_a_host_call_stops_at_its_deadline() {
    let limits = Limits {
        deadline: Duration::from_millis(200),
        ..Limits::default()
    };
    let engine = PolicyEngine::new(limits, None).unwrap();
    let policy = load(&engine, "sleeps");
    for ms in [None, Some("201")] {
        let mut o = observation(0, 0, 0, MONDAY_9, "UTC");
        if let Some(ms) = ms {
            o = with_params(o, &[("ms", ms)]);
        }
        let started = Instant::now();
        let decided = tokio::time::timeout(Duration::from_secs(10), policy.decide(&o))
            .await
            .expect("decide must end within its deadline, not sleep an hour");
        let elapsed = started.elapsed();
        let err = decided.0.unwrap_err();
        assert_eq!(err.kind(), "deadline", "sleep of {ms:?} ms: {err}");
        assert!(
            elapsed >= limits.deadline && elapsed < limits.deadline * 2,
            "sleep of {ms:?} ms: stopped after {elapsed:?}, deadline {:?}",
            limits.deadline
        );
    }
}

/// What WASI gives a policy is a function of its observation: a sleep within
/// the deadline takes no time and moves only the decision's own monotonic
/// clock, and random bytes are the same for the same observation.
#[tokio::test]
async fn wasi_clocks_and_random_are_functions_of_the_observation() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = load(&engine, "sleeps");
    let reason = |o: Observation| {
        let policy = policy.clone();
        async move { policy.decide(&o).await.0.unwrap().reason }
    };
    let o = with_params(observation(0, 0, 0, MONDAY_9, "UTC"), &[("ms", "60")]);
    let first = reason(o.clone()).await;
    assert!(
        first.starts_with("slept 60 ms: clock 0 -> 60000000, random "),
        "{first}"
    );
    assert_eq!(
        reason(o.clone()).await,
        first,
        "the same observation, the same answer"
    );
    let mut other = o.clone();
    other.queue.waiting = 1;
    assert_ne!(
        reason(other).await,
        first,
        "another observation, other random bytes"
    );
}

/// Issue 11: `Err(message)` was unbounded (50 MB went to the log every tick).
#[tokio::test]
async fn a_policys_error_is_cut_like_its_reason() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = load(&engine, "forges");
    let o = with_params(observation(0, 0, 0, MONDAY_9, "UTC"), &[("error", "huge")]);
    let err = policy.decide(&o).await.0.unwrap_err();
    assert_eq!(err.kind(), "refused", "{err}");
    let message = err.to_string();
    assert!(message.len() < 1024, "{} bytes", message.len());
    assert!(
        message.contains("more bytes cut"),
        "says it was cut: {message}"
    );
}

/// Issue 11: a trap printed the whole mangled backtrace on every tick.
#[tokio::test]
async fn a_trap_is_one_line_naming_the_policys_function() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = load(&engine, "panics");
    let err = policy
        .decide(&observation(1, 0, 0, MONDAY_9, "UTC"))
        .await
        .0
        .unwrap_err();
    let PolicyError::Trap {
        message, backtrace, ..
    } = &err
    else {
        panic!("expected a trap: {err}");
    };
    assert!(!message.contains('\n'), "one line: {message:?}");
    assert!(message.contains("unreachable"), "the kind: {message}");
    assert!(message.contains(", in "), "the top frame: {message}");
    assert!(
        message.ends_with("Guest>::decide"),
        "the policy's own function, demangled, past the panic machinery: {message}"
    );
    let backtrace = backtrace.as_deref().expect("the backtrace, for debug logs");
    assert!(backtrace.lines().count() > 2, "{backtrace}");
    assert!(
        backtrace.contains("std::panicking"),
        "every frame: {backtrace}"
    );
}

#[tokio::test]
async fn a_flood_of_log_lines_is_bounded() {
    // 20 MB of log calls take a while in a debug build; the bound is the point here.
    let limits = Limits {
        deadline: Duration::from_secs(5),
        ..Limits::default()
    };
    let engine = PolicyEngine::new(limits, None).unwrap();
    let policy = load(&engine, "log-flood");
    let (result, log) = policy.decide(&observation(0, 0, 0, MONDAY_9, "UTC")).await;
    assert_eq!(result.unwrap().desired, 1, "a chatty policy still decides");
    assert_eq!(log.lines.len(), limits.log_lines);
    assert_eq!(log.dropped, 10_000 - limits.log_lines);
    assert!(log
        .lines
        .iter()
        .all(|(_, line)| line.len() <= limits.log_line_bytes));
}

#[tokio::test]
async fn a_policy_for_another_contract_version_is_refused_at_load() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let path = support::policy_file("wrong-version");
    let err = engine.load(&path).err().expect("must not load");
    let message = err.to_string();
    assert!(
        matches!(err, PolicyError::WrongContract { .. }),
        "{message}"
    );
    assert!(
        message.contains(&path.display().to_string()),
        "names the file: {message}"
    );
    assert!(
        message.contains("runner-scaler:policy/decider@9.9.0"),
        "says what it exports: {message}"
    );
    assert!(
        message
            .contains("runner-scaler:policy/decider@0.2.0 or runner-scaler:policy/decider@0.1.0"),
        "says what is expected, every version the host loads: {message}"
    );
}

/// Issue 11: a component with the right names and a wrong type (here
/// `decision.desired: s64`) loaded, then trapped on every tick.
#[tokio::test]
async fn a_policy_whose_decide_has_another_type_is_refused_at_load() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let path = support::policy_file("wrong-type");
    let err = engine.load(&path).err().expect("must not load");
    let message = err.to_string();
    assert!(
        matches!(err, PolicyError::WrongContract { .. }),
        "{message}"
    );
    for words in ["wrong-type.wasm", "`decide`", "desired", "u32", "s64"] {
        assert!(message.contains(words), "should say {words:?}: {message}");
    }
}

/// Issue 11: a 300 MB file was read whole before anything was checked.
#[tokio::test]
async fn a_policy_file_over_the_size_limit_is_refused() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.wasm");
    // Sparse: it takes no disk.
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(runner_scaler::policy::MAX_POLICY_FILE_BYTES + 1)
        .unwrap();
    let err = engine.load(&huge).err().expect("must not load");
    assert_eq!(err.kind(), "too_large", "{err}");
    let message = err.to_string();
    assert!(
        message.contains("huge.wasm") && message.contains("64 MiB"),
        "{message}"
    );
}

#[tokio::test]
async fn files_that_are_not_policies_are_refused_at_load() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("policy.wasm");
    std::fs::write(&text, "fn main() {}").unwrap();
    let err = engine.load(&text).err().unwrap();
    assert!(matches!(err, PolicyError::NotWasm { .. }), "{err}");

    // A valid core module with no embedded contract: nothing to export.
    let bare = dir.path().join("bare.wasm");
    std::fs::write(&bare, b"\0asm\x01\0\0\0").unwrap();
    let err = engine.load(&bare).err().unwrap();
    assert!(err.to_string().contains("bare.wasm"), "{err}");

    let missing = dir.path().join("missing.wasm");
    assert!(matches!(
        engine.load(&missing).err().unwrap(),
        PolicyError::Read { .. }
    ));
}

#[tokio::test]
async fn the_compile_cache_is_used_and_never_trusted_blindly() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path());
    let engine = PolicyEngine::new(Limits::default(), Some(cache.clone())).unwrap();
    let o = observation(2, 0, 0, MONDAY_9, "UTC");

    // The first load compiles and writes one entry.
    load(&engine, "queue-depth");
    let entries: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let written = std::fs::read(entry).unwrap();

    // The second load reads it and leaves it as it is.
    assert_eq!(desired(&load(&engine, "queue-depth"), &o).await, 2);
    assert_eq!(std::fs::read(entry).unwrap(), written);

    // A damaged entry (here: its checksum no longer matches) is rebuilt.
    let mut damaged = written.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(entry, &damaged).unwrap();
    assert_eq!(desired(&load(&engine, "queue-depth"), &o).await, 2);
    assert_eq!(std::fs::read(entry).unwrap(), written, "rebuilt");

    // Another policy's entry copied over this one's (the cache holds both):
    // it names another source, and is rebuilt, never loaded.
    load(&engine, "business-hours");
    let other = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p != entry)
        .unwrap();
    std::fs::copy(&other, entry).unwrap();
    assert_eq!(desired(&load(&engine, "queue-depth"), &o).await, 2);
    assert_eq!(std::fs::read(entry).unwrap(), written, "rebuilt");
}

/// An engine for policies that carry an interpreter: their compiled code
/// comes from the run's shared cache (see `support::compile_cache`).
fn interpreter_engine(limits: Limits) -> PolicyEngine {
    PolicyEngine::new(limits, Some(support::compile_cache())).unwrap()
}

/// The outcome of a decision, comparable across languages: the decision, or
/// the policy's own error message.
async fn answer(policy: &WasmPolicy, o: &Observation) -> Result<runner_scaler::Decision, String> {
    match policy.decide(o).await.0 {
        Ok(decision) => Ok(decision),
        Err(PolicyError::Refused { message, .. }) => Err(message),
        Err(other) => panic!("{}: {other}", policy.name()),
    }
}

#[tokio::test]
async fn the_python_and_javascript_ports_answer_exactly_as_the_rust_business_hours() {
    let engine = interpreter_engine(Limits::default());
    let rust = load(&engine, "business-hours");
    let ports = [
        load(&engine, "business-hours-py"),
        load(&engine, "business-hours-js"),
    ];
    // Every hour of a week in Berlin, and of both daylight-saving Sundays,
    // under params that open and close the hours differently.
    let mut instants: Vec<jiff::Timestamp> = Vec::new();
    for (start, hours) in [
        ("2026-11-23T00:00:00Z", 7 * 24),
        ("2026-03-28T22:00:00Z", 30),
        ("2026-10-24T22:00:00Z", 30),
    ] {
        let start: jiff::Timestamp = start.parse().unwrap();
        instants.extend(
            (0..hours).map(|h| start + jiff::SignedDuration::from_mins(h * 60 + 59 * (h % 2))),
        );
    }
    let params: [&[(&str, &str)]; 4] = [
        &[],
        &[("warm", "2")],
        &[("days", "sun-thu"), ("hours", "03-18")],
        &[
            ("days", "Mon - Wed, Fri"),
            ("hours", " 7-19"),
            ("warm", "+3"),
        ],
    ];
    let mut compared = 0;
    for (i, at) in instants.iter().enumerate() {
        let waiting = [0, 1, 4, 20][i % 4];
        let mut o = observation(waiting, i as u32 % 2, 1, &at.to_string(), "Europe/Berlin");
        o.capacity.min = (i % 5 == 0) as u32 * 2;
        let o = with_params(o, params[i % params.len()]);
        let want = answer(&rust, &o).await;
        for port in &ports {
            assert_eq!(answer(port, &o).await, want, "{} at {at}", port.name());
            compared += 1;
        }
    }
    // Malformed params: the same message, word for word.
    let malformed = [
        ("warm", "lots"),
        ("warm", "-1"),
        ("warm", "4294967296"),
        ("warm", ""),
        ("warm", "a\tb\u{7}\"q\""),
        ("days", "mon-fry"),
        ("days", "mon,"),
        ("days", "monday"),
        ("days", "mon-tue-wed"),
        ("hours", "8"),
        ("hours", "22-06"),
        ("hours", "08-25"),
        ("hours", "08-xx"),
        ("wram", "2"),
    ];
    for (name, value) in malformed {
        let o = with_params(
            observation(0, 0, 1, MONDAY_9, "Europe/Berlin"),
            &[(name, value)],
        );
        let want = answer(&rust, &o).await;
        assert!(want.is_err(), "{name} = {value:?} must be refused");
        for port in &ports {
            assert_eq!(
                answer(port, &o).await,
                want,
                "{} with {name} = {value:?}",
                port.name()
            );
            compared += 1;
        }
    }
    assert!(compared > 400, "{compared}");
}

/// The Python and JavaScript hostile policies end as the Rust ones do, under
/// the same limits: `deadline` and `out_of_memory`, the fallback deciding.
#[tokio::test]
async fn interpreted_hostile_policies_end_like_the_rust_ones() {
    let limits = Limits {
        deadline: Duration::from_millis(200),
        memory_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let engine = interpreter_engine(limits);
    let o = observation(4, 1, 2, MONDAY_9, "UTC");
    let queue_rule = BuiltinRule::Queue.decide(&o);
    let cases = [
        ("spin", "deadline", "200 ms"),
        ("spin-py", "deadline", "200 ms"),
        ("spin-js", "deadline", "200 ms"),
        ("alloc-bomb", "out_of_memory", "16 MiB"),
        ("alloc-bomb-py", "out_of_memory", "16 MiB"),
        ("alloc-bomb-js", "out_of_memory", "16 MiB"),
    ];
    for (name, kind, words) in cases {
        let policy = Policy::Wasm(load(&engine, name));
        let started = Instant::now();
        let outcome = policy.decide_or_fallback(&o, BuiltinRule::Queue).await;
        let elapsed = started.elapsed();
        let err = outcome
            .error
            .unwrap_or_else(|| panic!("{name} should fail"));
        assert_eq!(err.kind(), kind, "{name}: {err}");
        let message = err.to_string();
        assert!(
            message.contains(words),
            "{name}: {message:?} should say {words:?}"
        );
        assert!(
            message.contains(name),
            "{name}: {message:?} should name the policy"
        );
        assert_eq!(outcome.decision, queue_rule, "{name}: the fallback decides");
        if kind == "deadline" {
            assert!(
                elapsed >= limits.deadline && elapsed < limits.deadline * 2,
                "{name} stopped after {elapsed:?}, deadline {:?}",
                limits.deadline
            );
        }
    }
    // The host is unharmed: the same engine still runs good policies.
    assert_eq!(desired(&load(&engine, "queue-depth"), &o).await, 5);
    assert_eq!(desired(&load(&engine, "business-hours-py"), &o).await, 5);
}

/// A pool sized for N decisions holds N interpreters at once: CPython is 14
/// core instances, where a Rust policy is 1 (before interpreters, the pool
/// held 4 per decision, so 2 decisions had 8: not one Python policy fit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_holds_its_concurrent_decisions_when_they_carry_an_interpreter() {
    let limits = Limits {
        deadline: Duration::from_millis(300),
        concurrent_decisions: 2,
        ..Limits::default()
    };
    let engine = interpreter_engine(limits);
    let o = observation(0, 0, 0, MONDAY_9, "UTC");
    // Two spinning decisions hold their instances for the whole deadline,
    // on two threads, at the same time.
    let spin = load(&engine, "spin-py");
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (spin, o) = (spin.clone(), o.clone());
            tokio::spawn(async move { spin.decide(&o).await.0 })
        })
        .collect();
    for run in runs {
        let err = run.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), "deadline", "{err}");
    }
    let python = load(&engine, "business-hours-py");
    assert_eq!(desired(&python, &o).await, 1);
}

/// A component that would take more than a decision's share of the pool is
/// refused when it is loaded, saying what it holds and what fits.
#[tokio::test]
async fn a_policy_that_would_take_the_pool_is_refused_at_load() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let instances = runner_scaler::policy::PER_DECISION.core_instances + 1;
    // A component of one empty core module, instantiated `instances` times.
    let module = b"\0asm\x01\0\0\0";
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    component.extend([0x01, module.len() as u8]);
    component.extend(module);
    let entries: Vec<u8> = std::iter::once(instances as u8)
        .chain((0..instances).flat_map(|_| [0x00, 0x00, 0x00]))
        .collect();
    component.extend([0x02, entries.len() as u8]);
    component.extend(entries);
    let path = PathBuf::from("greedy.wasm");
    let err = engine
        .load_bytes(&path, &component)
        .err()
        .expect("must not load");
    let message = err.to_string();
    assert!(matches!(err, PolicyError::Compile { .. }), "{message}");
    assert!(
        message.contains(&format!("{instances} core module instances"))
            && message.contains(&format!("maximum of {}", instances - 1)),
        "{message}"
    );
}

/// Everything a Python interpreter imports to start (files, sockets, the
/// environment, stdin...) is there and empty: the policy sees nothing of the
/// host, and the observation's time as the clock.
#[tokio::test]
async fn a_python_policy_reaches_nothing_of_the_host() {
    let engine = interpreter_engine(Limits::default());
    let probe = load(&engine, "wasi-probe-py");
    let o = observation(0, 0, 0, MONDAY_9, "UTC");
    let seen: serde_json::Value =
        serde_json::from_str(&answer(&probe, &o).await.unwrap().reason).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "env": {},
            "argv": [],
            "time": o.clock.unix_seconds as f64,
            "root": "FileNotFoundError",
            "passwd": "FileNotFoundError",
            "cwd": "FileNotFoundError",
            "socket": "PermissionError",
            "stdin": "",
        })
    );
}

/// A JavaScript policy's clock is the observation's (not the time it was
/// built), and its random numbers repeat: the same input, the same answer.
#[tokio::test]
async fn a_javascript_policy_sees_the_observations_time_and_repeatable_randomness() {
    let engine = interpreter_engine(Limits::default());
    let probe = load(&engine, "wasi-probe-js");
    let monday = observation(0, 0, 0, MONDAY_9, "UTC");
    let saturday = observation(0, 0, 0, SATURDAY_9, "UTC");
    let seen = |reason: String| serde_json::from_str::<serde_json::Value>(&reason).unwrap();
    let first = seen(answer(&probe, &monday).await.unwrap().reason);
    assert_eq!(first["now"], monday.clock.unix_seconds * 1000);
    assert_eq!(first["process"], "undefined");
    let again = seen(answer(&probe, &saturday).await.unwrap().reason);
    assert_eq!(again["now"], saturday.clock.unix_seconds * 1000);
    assert_eq!(again["random"], first["random"]);
}
