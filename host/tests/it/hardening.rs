//! Issue 24, "Hardening II", as an attacker tried it: nothing the scaler
//! reads can stall it, and a pin binds the code that runs. Each test here
//! failed on the main branch the issue was filed against.

use crate::support;
use std::path::Path;
use std::time::{Duration, Instant};
use support::binary::*;
use support::fake_circleci::FakeCircleCi;
use support::moto::{Moto, TestGroup};

/// A FIFO at `path` that no one writes to.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A configuration of one pool `p` whose policy is `policy`, in `dir`.
fn one_pool(dir: &Path, policy: &str, extra: &str) -> std::path::PathBuf {
    let file = dir.join("runner-scaler.toml");
    std::fs::write(
        &file,
        format!(
            "[[pool]]\nname = \"p\"\nresource_class = \"acme/p\"\ngroup = \"ci-p\"\nregion = \"{REGION}\"\n\
             policy = \"{policy}\"\nmax = 10\n{extra}"
        ),
    )
    .unwrap();
    file
}

/// Runs the binary and insists it finishes within 20 s.
async fn finishes(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(20), runner_scaler(args, env))
        .await
        .unwrap_or_else(|_| panic!("runner-scaler {args:?} hung"))
}

/// Item 1: a policy path that is a FIFO is refused at once by `check`,
/// `once` and `policy eval`, naming the file; before, each blocked forever
/// in the open.
#[tokio::test]
async fn a_policy_that_is_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("p.wasm");
    mkfifo(&fifo);
    let config = one_pool(dir.path(), "p.wasm", "");
    let config = config.to_str().unwrap();
    let observation = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/observations/weekday-morning.json"
    );
    for args in [
        vec!["check", "--config", config],
        vec!["once", "--config", config],
        vec!["policy", "eval", fifo.to_str().unwrap(), observation],
    ] {
        let output = finishes(&args, &[]).await;
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {all}");
        assert!(
            all.contains("p.wasm: it is a FIFO (named pipe), not a regular file"),
            "{args:?}: {all}"
        );
    }
}

/// Item 5: a configuration, an observation or a trace that is a device or
/// a FIFO is refused at once; before, `/dev/zero` was read until memory
/// ran out and a FIFO configuration hung.
#[tokio::test]
async fn configurations_observations_and_traces_are_regular_files_read_within_a_cap() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("input");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    let policy = support::policy_file("queue-depth");
    let policy = policy.to_str().unwrap();
    for input in ["/dev/zero", fifo] {
        for (args, what) in [
            (vec!["check", "--config", input], "configuration"),
            (vec!["policy", "eval", policy, input], "observation"),
            (vec!["simulate", "--trace", input], "trace"),
        ] {
            let output = finishes(&args, &[]).await;
            let all = text(&output);
            assert_eq!(output.status.code(), Some(1), "{args:?}: {all}");
            assert!(all.contains("not a regular file"), "{what} {input}: {all}");
        }
    }
    // A regular file over its cap is refused naming the cap.
    let big = dir.path().join("big.toml");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(5 * 1024 * 1024).unwrap();
    let output = finishes(&["check", "--config", big.to_str().unwrap()], &[]).await;
    assert!(
        text(&output).contains("it is larger than 4 MiB"),
        "{}",
        text(&output)
    );
}

/// Items 3 and 4: a compile-cache entry of another policy, copied over the
/// pinned policy's entry, is not run (the pool decides with the pinned
/// policy, compiled again); in a `--precompiled` directory the same swap
/// is an error. A shadow is pinned like its pool's policy.
#[tokio::test]
async fn a_pin_binds_the_compiled_code_and_shadows_can_be_pinned() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-p").desired(0).protected())
        .await;
    circleci.set_queue("acme/p", 3, 0);
    let dir = tempfile::tempdir().unwrap();
    let (pinned, other) = (dir.path().join("p.wasm"), dir.path().join("o.wasm"));
    std::fs::copy(support::policy_file("queue-depth"), &pinned).unwrap();
    // `forges` always answers 1.
    std::fs::copy(support::policy_file("forges"), &other).unwrap();
    let file = config(
        &moto,
        &circleci,
        &format!(
            "[[pool]]\nname = \"p\"\nresource_class = \"acme/p\"\ngroup = \"ci-p\"\npolicy = \"{}\"\n\
             policy_sha256 = \"{}\"\nmax = 10\n",
            pinned.display(),
            sha256_of(&pinned)
        ),
    );
    let config_path = file.path().to_str().unwrap();
    let cache = dir.path().join("cache");
    let cache_env = [("RUNNER_SCALER_CACHE_DIR", cache.to_str().unwrap())];
    let entries = |dir: &Path| -> Vec<std::path::PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect();
        entries.sort();
        entries
    };
    // Both policies in the cache: `policy eval` compiles the other one.
    let output = finishes(&["once", "--config", config_path], &cache_env).await;
    assert!(output.status.success(), "{}", text(&output));
    let pinned_entry = entries(&cache).pop().unwrap();
    let observation = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/observations/weekday-morning.json"
    );
    let output = finishes(
        &["policy", "eval", other.to_str().unwrap(), observation],
        &cache_env,
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let other_entry = entries(&cache)
        .into_iter()
        .find(|e| *e != pinned_entry)
        .unwrap();
    std::fs::copy(&other_entry, &pinned_entry).unwrap();
    circleci.set_queue("acme/p", 4, 0);
    let output = finishes(&["once", "--config", config_path], &cache_env).await;
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("it is another policy's code"), "{log}");
    assert_eq!(
        desired(&moto, "ci-p").await,
        4,
        "the pinned policy decided: {log}"
    );

    // The same swap in a precompiled directory is an error.
    let precompiled = dir.path().join("precompiled");
    let precompiled_dir = precompiled.to_str().unwrap();
    for policy in [&pinned, &other] {
        let output = finishes(
            &[
                "policy",
                "precompile",
                policy.to_str().unwrap(),
                "--out",
                precompiled_dir,
            ],
            &[],
        )
        .await;
        assert!(output.status.success(), "{}", text(&output));
    }
    let flag = [
        "once",
        "--config",
        config_path,
        "--precompiled",
        precompiled_dir,
    ];
    let output = finishes(&flag, &cache_env).await;
    assert!(output.status.success(), "{}", text(&output));
    let [first, second] = <[_; 2]>::try_from(entries(&precompiled)).unwrap();
    let first_bytes = std::fs::read(&first).unwrap();
    std::fs::copy(&second, &first).unwrap();
    std::fs::write(&second, first_bytes).unwrap();
    circleci.set_queue("acme/p", 6, 0);
    let output = finishes(&flag, &cache_env).await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("holds code for it that must not run")
            && log.contains("another policy's code"),
        "{log}"
    );
    assert_eq!(desired(&moto, "ci-p").await, 4, "nothing ran: {log}");

    // A pinned shadow: the reviewed file loads and shows in `once`'s
    // table; another is refused naming shadow_sha256.
    let shadow = format!(
        "shadow = \"{}\"\nshadow_sha256 = \"{}\"\n",
        other.display(),
        sha256_of(&other)
    );
    let text_now = std::fs::read_to_string(file.path()).unwrap();
    std::fs::write(file.path(), format!("{text_now}{shadow}")).unwrap();
    let output = finishes(&["once", "--config", config_path, "--dry-run"], &cache_env).await;
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("↳ shadow o: would set 1 (disagrees)"), "{log}");
    std::fs::copy(&pinned, &other).unwrap();
    let output = finishes(&["check", "--config", config_path], &cache_env).await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("shadow") && log.contains("set shadow_sha256 = "),
        "{log}"
    );
}

/// The compile cache is created private, and one that others may write is
/// not used: the policy is compiled, nothing is written there.
#[cfg(unix)]
#[tokio::test]
async fn a_compile_cache_others_may_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        support::policy_file("queue-depth"),
        dir.path().join("p.wasm"),
    )
    .unwrap();
    let config = one_pool(dir.path(), "p.wasm", "");
    let cache = dir.path().join("new-cache");
    let env = [("RUNNER_SCALER_CACHE_DIR", cache.to_str().unwrap())];
    let output = finishes(&["check", "--config", config.to_str().unwrap()], &env).await;
    assert!(output.status.success(), "{}", text(&output));
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    let shared = dir.path().join("shared-cache");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let env = [("RUNNER_SCALER_CACHE_DIR", shared.to_str().unwrap())];
    let output = finishes(&["check", "--config", config.to_str().unwrap()], &env).await;
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("may be written by others"), "{log}");
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "{log}");
}

/// Item 2: loading and compiling run off the paths that tick, serve
/// `/healthz` and handle signals. A reload that compiles for seconds (a
/// Python or JavaScript policy, which carries its interpreter, into an
/// empty cache) past `daemon.reload_deadline` is abandoned and counted, and
/// the old policy decides on; while the compile goes on, `/healthz` answers
/// within a second, a further reload is refused (counted) rather than
/// stacked, and SIGTERM stops the daemon at once. Before, the reload ran on
/// the runtime's threads: ticks and `/healthz` stopped for the length of
/// the compile, and a policy file that blocked froze the daemon until
/// SIGKILL.
#[cfg(unix)]
#[tokio::test]
async fn a_slow_reload_stalls_neither_health_nor_ticks_nor_sigterm() {
    let (python, javascript) = (
        support::policy_file("business-hours-py"),
        support::policy_file("business-hours-js"),
    );
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-slow").desired(0).protected())
        .await;
    circleci.set_queue("acme/slow", 2, 0);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.wasm");
    let replace = |path: &Path, bytes: &[u8]| {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes).unwrap();
        std::fs::rename(&partial, path).unwrap();
    };
    replace(
        &policy,
        &std::fs::read(support::policy_file("queue-depth")).unwrap(),
    );
    let settings = format!(
        "interval = \"1s\"\n[daemon]\nreload_deadline = \"1s\"\n[circleci]\nbase_url = \"{}\"\n\
         [aws]\nendpoint_url = \"{}\"\n[[pool]]\nname = \"slow\"\nresource_class = \"acme/slow\"\n\
         group = \"ci-slow\"\nregion = \"{REGION}\"\npolicy = \"p.wasm\"\nmax = 10\n",
        circleci.base_url(),
        moto.endpoint()
    );
    let file = dir.path().join("runner-scaler.toml");
    replace(&file, settings.as_bytes());
    let listen = free_listen();
    let cache = dir.path().join("cache");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(["run", "--listen", &listen, "--config"])
        .arg(&file)
        .env("CIRCLECI_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("RUNNER_SCALER_CACHE_DIR", &cache)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(&listen, "/healthz", |status, _| status == 200).await;
    let cached = || std::fs::read_dir(&cache).map_or(0, |d| d.count());
    let failures = |body: &str| {
        body.lines()
            .find_map(|line| line.strip_prefix("runner_scaler_config_reload_failures_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // `/metrics`, answered within a second.
    let metrics = || async {
        let asked = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(1), http_get(&listen, "/metrics"))
            .await
            .expect("/metrics did not answer within a second during a compile")
            .expect("/metrics answered");
        assert!(asked.elapsed() < Duration::from_secs(1));
        answer.1
    };
    let until_failures = |n: f64| async move {
        let started = Instant::now();
        while failures(&metrics().await) < n {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no failed reload"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    wait_until(&listen, "/metrics", |_, body| {
        sample(body, "slow", "runner_scaler_decisions_total").is_some_and(|n| n >= 1.0)
    })
    .await;
    assert_eq!(cached(), 1, "queue-depth's code");

    // Past its deadline: abandoned and counted; the compile goes on, on its
    // own thread, while health, ticks and the old policy go on too.
    replace(&policy, &std::fs::read(&python).unwrap());
    until_failures(1.0).await;
    circleci.set_queue("acme/slow", 5, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while desired(&moto, "ci-slow").await != 5 {
        assert!(Instant::now() < deadline, "the old policy stopped deciding");
        assert!(!metrics().await.is_empty());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once that compile is done (its code is cached), another slow one.
    let deadline = Instant::now() + Duration::from_secs(120);
    while cached() < 2 {
        assert!(
            Instant::now() < deadline,
            "the abandoned compile never ended"
        );
        metrics().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    replace(&policy, &std::fs::read(&javascript).unwrap());
    until_failures(2.0).await;
    // The compile still running: a further reload is refused, not stacked.
    replace(&file, format!("{settings}\n").as_bytes());
    until_failures(3.0).await;
    for _ in 0..3 {
        metrics().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cached(),
        2,
        "the JavaScript compile ended too soon for this test"
    );
    let stopping = Instant::now();
    let (exit, stderr) = stop_daemon(&mut child).await;
    let stopped_in = stopping.elapsed();
    assert!(exit.success(), "{exit:?}: {stderr}");
    assert!(
        stopped_in < Duration::from_secs(3),
        "SIGTERM took {stopped_in:?} during a compile"
    );
    assert!(
        stderr.contains("took longer than daemon.reload_deadline (1 s): abandoned")
            && stderr.contains("an earlier reload is still loading"),
        "{stderr}"
    );
    assert!(!stderr.contains("reloaded;"), "{stderr}");
}

/// Item 6: 1,100 idle connections to `/metrics`, with the daemon held to
/// 1,024 descriptors (soft and hard, so it cannot raise them): the
/// listener keeps at most its cap of them, and every pool still decides.
/// Before, the listener took every descriptor and each pool was held with
/// "Too many open files".
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_thousand_idle_connections_leave_the_ticks_their_descriptors() {
    use std::os::unix::process::CommandExt;
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    let mut pools = String::new();
    for name in ["a", "b", "c"] {
        moto.create_group(
            REGION,
            &TestGroup::new(&format!("ci-{name}")).desired(0).protected(),
        )
        .await;
        circleci.set_queue(&format!("acme/{name}"), 1, 0);
        pools.push_str(&pool(name, "queue", ""));
    }
    let file = config(&moto, &circleci, &pools);
    let text_now = std::fs::read_to_string(file.path()).unwrap();
    std::fs::write(file.path(), format!("interval = \"1s\"\n{text_now}")).unwrap();
    let listen = free_listen();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"));
    command
        .args(["run", "--listen", &listen, "--config"])
        .arg(file.path())
        .env("CIRCLECI_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until(&listen, "/healthz", |status, _| status == 200).await;

    // This test process needs the descriptors for its side.
    raise_own_descriptor_limit(4096);
    // 1,100 clients connect at once and then say nothing. Those the kernel
    // cannot queue retry their handshake meanwhile.
    let connected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let idle: Vec<_> = (0..1100)
        .map(|_| {
            let (listen, connected) = (listen.clone(), connected.clone());
            tokio::spawn(async move {
                if let Ok(stream) = tokio::net::TcpStream::connect(&listen).await {
                    connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::future::pending::<()>().await;
                    drop(stream);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let made = connected.load(std::sync::atomic::Ordering::Relaxed);
    assert!(made >= 100, "only {made} connections were made");
    for name in ["a", "b", "c"] {
        circleci.set_queue(&format!("acme/{name}"), 4, 0);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for name in ["a", "b", "c"] {
        while desired(&moto, &format!("ci-{name}")).await != 4 {
            assert!(
                Instant::now() < deadline,
                "pool {name} was not decided while the connections were held"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for client in idle {
        client.abort();
    }
    let (exit, stderr) = stop_daemon(&mut child).await;
    assert!(exit.success(), "{exit:?}: {stderr}");
    assert!(!stderr.contains("Too many open files"), "{stderr}");
}

/// Raise this test process's soft descriptor limit to `at_least` (or its
/// hard limit, if lower).
#[cfg(target_os = "linux")]
fn raise_own_descriptor_limit(at_least: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < at_least {
            limit.rlim_cur = at_least.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

/// Items 7 and 8: `simulate` refuses times and durations past a year, and
/// no message quotes a huge field whole; `check` refuses an empty group.
#[tokio::test]
async fn simulate_and_check_refuse_values_out_of_bounds_in_a_few_words() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.csv");
    let huge = "7".repeat(50 * 1024 * 1024);
    for (body, words) in [
        ("9223372036854775807,60\n".to_string(), "more than a year"),
        ("0,18446744073709551615\n".to_string(), "up to a year"),
        (
            "2026-01-01T00:00:00Z,60\n2030-01-01T00:00:00Z,60\n".to_string(),
            "more than a year",
        ),
        (format!("0,{huge}x\n"), "more characters"),
    ] {
        std::fs::write(&trace, &body).unwrap();
        let output = finishes(&["simulate", "--trace", trace.to_str().unwrap()], &[]).await;
        let all = text(&output);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}",
            &all[..all.len().min(500)]
        );
        assert!(all.contains("t.csv:"), "{}", &all[..all.len().min(500)]);
        assert!(all.contains(words), "{}", &all[..all.len().min(500)]);
        assert!(all.len() < 2000, "{} bytes of output", all.len());
    }
    let config = one_pool(dir.path(), "queue", "")
        .to_str()
        .unwrap()
        .to_string();
    let text_now = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text_now.replace("group = \"ci-p\"", "group = \"\""),
    )
    .unwrap();
    let output = finishes(&["check", "--config", &config], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("pool \"p\": group: is empty"),
        "{}",
        text(&output)
    );
}

/// The peak resident memory (`VmHWM`, in bytes) of process `pid`, sampled
/// every 10 ms until it exits: the largest value seen.
async fn peak_memory(pid: u32) -> u64 {
    let mut peak = 0;
    while let Ok(status) = tokio::fs::read_to_string(format!("/proc/{pid}/status")).await {
        let Some(kib) = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        else {
            break; // a zombie: its memory is gone
        };
        peak = peak.max(kib * 1024);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    peak
}

/// Item 10: an Auto Scaling answer of 1 GiB is refused, whether its length
/// is announced (refused before its body is read) or not (chunked: reading
/// stops past 16 MiB); the pool is held, nothing is written, the process
/// ends in seconds and never holds more than a fraction of the answer.
/// Before, the whole answer was read into memory.
#[tokio::test]
async fn an_auto_scaling_answer_past_the_cap_is_refused_and_holds_the_pool() {
    use support::oversized_aws::{Framing, OversizedAws, ANSWER_SIZE};
    const MIB: u64 = 1 << 20;
    let circleci = FakeCircleCi::start(TOKEN).await;
    circleci.set_queue("acme/big", 5, 0);
    for framing in [Framing::ContentLength, Framing::Chunked] {
        let aws = OversizedAws::start(framing).await;
        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(
            config.path(),
            format!(
                "[circleci]\nbase_url = \"{}\"\n[aws]\nendpoint_url = \"{}\"\n\
                 [defaults]\nregion = \"{REGION}\"\n{}",
                circleci.base_url(),
                aws.endpoint(),
                pool("big", "queue", "")
            ),
        )
        .unwrap();
        let started = Instant::now();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
            .args(["once", "--config", config.path().to_str().unwrap()])
            .env("CIRCLECI_TOKEN", TOKEN)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("RUST_LOG", "debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let peak = tokio::spawn(peak_memory(child.id().unwrap()));
        let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{framing:?}: once hung"))
            .unwrap();
        let took = started.elapsed();
        let peak = peak.await.unwrap();
        let all = text(&output);
        eprintln!(
            "{framing:?}: {took:?}, {} MiB sent, peak memory {} MiB",
            aws.sent() / MIB,
            peak / MIB
        );
        assert!(took < Duration::from_secs(10), "{framing:?}: took {took:?}");
        // The client stopped reading long before the end of the answer:
        // at most the cap, plus what the sockets' buffers hold.
        assert!(
            aws.sent() < 64 * MIB,
            "{framing:?}: {} bytes sent",
            aws.sent()
        );
        assert!(aws.sent() < ANSWER_SIZE);
        assert!(peak > 0, "{framing:?}: memory never sampled");
        assert!(
            peak < 200 * MIB,
            "{framing:?}: peak memory {} MiB",
            peak / MIB
        );
        assert_eq!(output.status.code(), Some(1), "{framing:?}: {all}");
        assert!(all.contains("HELD"), "{framing:?}: {all}");
        assert!(
            all.contains("the Auto Scaling answer is larger than 16 MiB: refused"),
            "{framing:?}: {all}"
        );
        // Nothing but the describe was asked, and the refusal is not retried.
        assert_eq!(
            aws.actions(),
            ["DescribeAutoScalingGroups"],
            "{framing:?}: {all}"
        );
    }
}
