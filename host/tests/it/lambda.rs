//! The Lambda mode as Lambda runs it: the binary started with no arguments,
//! `AWS_LAMBDA_RUNTIME_API` pointing at a fake Runtime API, moto as AWS and
//! the fake CircleCI API; a bundle directory as `LAMBDA_TASK_ROOT`. Also the
//! cold-start measurement (`#[ignore]`d; `scripts/measure-lambda-cold-start.sh`,
//! of this build's binary or of `$BOOTSTRAP`).

use crate::support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::fake_circleci::FakeCircleCi;
use support::fake_lambda::{scheduled_event, FakeLambda, Posted};
use support::moto::{Moto, TestGroup};
use tokio::io::AsyncReadExt;

const REGION: &str = "eu-west-1";
const TOKEN: &str = "CCIPAT_lambda_redaction_canary_0123456789";
const SECRET: &str = "cci-runner-lambda-secrets";

/// A bundle as `package-lambda.sh` lays it out: `policies/NAME.wasm`, and
/// `precompiled/` when `precompile` is set.
fn bundle(policy: &str, precompile: bool) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("policies")).unwrap();
    let file = root.path().join("policies").join(format!("{policy}.wasm"));
    std::fs::copy(
        support::policies_dir().join(format!("{policy}.wasm")),
        &file,
    )
    .unwrap();
    if precompile {
        let output = std::process::Command::new(measured_binary())
            .args(["policy", "precompile"])
            .arg(&file)
            .arg("--out")
            .arg(root.path().join("precompiled"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    root
}

/// The function's environment: Lambda's own variables, moto's
/// credentials, and the original tool's variables for one group.
fn lambda_env(
    lambda: &FakeLambda,
    moto: &Moto,
    circleci: &FakeCircleCi,
    root: &Path,
    group: &str,
) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", lambda.runtime_api()),
        ("AWS_LAMBDA_FUNCTION_NAME", "runner-scaler".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("LAMBDA_TASK_ROOT", root.display().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", REGION.into()),
        ("AWS_ENDPOINT_URL", moto.endpoint().into()),
        ("CIRCLECI_RUNNER_API_URL", circleci.base_url()),
        ("SECRET_NAME", SECRET.into()),
        ("SECRET_REGION", REGION.into()),
        ("AUTO_SCALING_MAX", "8".into()),
        ("AUTO_SCALING_GROUP_NAME", group.into()),
        ("AUTO_SCALING_GROUP_REGION", REGION.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Start the bootstrap as Lambda does: no arguments, a clean environment
/// plus `env`, a fresh compile cache (an empty /tmp).
pub(crate) fn bootstrap(env: &[(String, String)], cache: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUNNER_SCALER_CACHE_DIR", cache)
        .env("RUST_LOG", "info,runner_scaler=debug")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start runner-scaler")
}

/// Stop the process (Lambda would freeze it) and return its output.
pub(crate) async fn stop(mut child: tokio::process::Child) -> String {
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text).await;
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text).await;
    }
    text
}

async fn setup_seed(moto: &Moto, circleci: &FakeCircleCi, group: &str, class: &str) {
    moto.create_group(REGION, &TestGroup::new(group).desired(0).protected())
        .await;
    let secret = format!("{{\"circle_token\": \"{TOKEN}\", \"resource_class\": \"{class}\"}}");
    moto.create_secret(REGION, SECRET, &secret).await;
    circleci.set_queue(class, 4, 1);
}

#[tokio::test]
async fn scheduled_events_each_run_a_tick_and_answer_a_summary() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    setup_seed(&moto, &circleci, "cci-runner-asg", "acme/seed").await;
    let lambda = FakeLambda::start([scheduled_event(), scheduled_event()]).await;
    let root = bundle("queue-depth", true);
    let cache = tempfile::tempdir().unwrap();
    let mut env = lambda_env(&lambda, &moto, &circleci, root.path(), "cci-runner-asg");
    env.push((
        "RUNNER_SCALER_POLICY".into(),
        "policies/queue-depth.wasm".into(),
    ));
    let child = bootstrap(&env, cache.path());
    let posted = lambda.wait_for(2, Duration::from_secs(60)).await;
    let output = stop(child).await;
    assert_eq!(posted.len(), 2, "{posted:?}\n{output}");

    let answers: Vec<serde_json::Value> = posted
        .iter()
        .map(|(_, p)| match p {
            Posted::Response { request_id, .. } => {
                assert!(request_id.starts_with("req-"), "{request_id}");
                p.json()
            }
            other => panic!("not a response: {other:?}\n{output}"),
        })
        .collect();
    let first = &answers[0];
    assert_eq!(first["decided"], 1, "{first}");
    assert_eq!(first["held"], 0, "{first}");
    let pool = &first["pools"][0];
    assert_eq!(pool["group"], "cci-runner-asg");
    assert_eq!(pool["decided_by"], "queue-depth");
    assert_eq!(pool["desired"], 5, "one per waiting or running job");
    assert_eq!(pool["action"], "applied");
    assert_eq!(answers[1]["pools"][0]["action"], "unchanged");
    let group = moto.group(REGION, "cci-runner-asg").await.unwrap();
    assert_eq!(group.desired_capacity(), Some(5));

    // Logs are JSON lines in Lambda; the policy came precompiled; no token.
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|err| panic!("a log line that is not JSON ({err}): {line}"));
    }
    assert!(
        output.contains("loaded precompiled policy"),
        "the bundled code was not used:\n{output}"
    );
    assert!(
        !output.contains("\"message\":\"compiled policy\""),
        "{output}"
    );
    assert!(
        output.contains("\"_aws\""),
        "no CloudWatch metric (EMF) line:\n{output}"
    );
    assert!(!output.contains(TOKEN), "the token leaked:\n{output}");
    assert!(!answers.iter().any(|a| a.to_string().contains(TOKEN)));
}

/// Issue 24: an answer of the Runtime API without a deadline or a request
/// id made the bootstrap panic (exit 101) inside `lambda_runtime`. The
/// invocation without a deadline is now failed at the Runtime API, the one
/// without a request id (which nothing can answer) skipped, and the next,
/// well-formed one runs as usual.
#[tokio::test]
async fn malformed_invocations_are_failed_or_skipped_never_a_panic() {
    use support::fake_lambda::Invocation;
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    setup_seed(&moto, &circleci, "cci-guarded", "acme/guarded").await;
    let invocation = |without: Vec<&'static str>| Invocation {
        event: scheduled_event(),
        without,
    };
    let lambda = FakeLambda::start([
        invocation(vec!["lambda-runtime-deadline-ms"]),
        invocation(vec!["lambda-runtime-aws-request-id"]),
        invocation(vec![]),
    ])
    .await;
    let root = bundle("queue-depth", false);
    let cache = tempfile::tempdir().unwrap();
    let env = lambda_env(&lambda, &moto, &circleci, root.path(), "cci-guarded");
    let mut child = bootstrap(&env, cache.path());
    let posted = lambda.wait_for(2, Duration::from_secs(60)).await;
    let still_running = child.try_wait().unwrap().is_none();
    let output = stop(child).await;
    assert!(still_running, "the bootstrap exited:\n{output}");
    assert!(!output.contains("panicked"), "{output}");
    let posted: Vec<Posted> = posted.into_iter().map(|(_, p)| p).collect();
    match &posted[..] {
        [Posted::Error { request_id, .. }, Posted::Response {
            request_id: answered,
            ..
        }] => {
            assert_eq!(request_id, "req-0001");
            assert_eq!(answered, "req-0003");
        }
        other => panic!("{other:?}\n{output}"),
    }
    let error = posted[0].json();
    assert_eq!(error["errorType"], "RunnerScaler.MalformedInvocation");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("no lambda-runtime-deadline-ms header"),
        "{error}"
    );
    assert_eq!(posted[1].json()["decided"], 1);
    assert!(
        output.contains("no lambda-runtime-aws-request-id header"),
        "{output}"
    );
}

#[tokio::test]
async fn an_invocation_ticks_every_interval_and_answers_before_its_deadline() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    setup_seed(&moto, &circleci, "cci-runner-asg", "acme/seed").await;
    // 4.5 s, less the second kept to report in: ticks at 0, 1 and 2 s; one
    // at 3 s would have only half a second of the 1 s it needs.
    let timeout = Duration::from_millis(4500);
    let lambda = FakeLambda::with_timeout([scheduled_event()], timeout).await;
    let root = bundle("queue-depth", true);
    let cache = tempfile::tempdir().unwrap();
    let mut env = lambda_env(&lambda, &moto, &circleci, root.path(), "cci-runner-asg");
    env.push(("RUNNER_SCALER_TICK_INTERVAL".into(), "1s".into()));
    let child = bootstrap(&env, cache.path());
    let posted = lambda.wait_for(1, Duration::from_secs(30)).await;
    let output = stop(child).await;
    let (at, Posted::Response { request_id, body }) = &posted[0] else {
        panic!("not a response: {posted:?}\n{output}");
    };
    let deadline = lambda.deadline_of(request_id).unwrap();
    assert!(
        *at < deadline - Duration::from_secs(1),
        "answered {:?} before the deadline\n{output}",
        deadline - *at
    );
    let answer: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(answer["ticks"], 3, "{answer}\n{output}");
    // Each tick is a full tick: its own reads, its own metric line; the
    // first applied the decision, the last found it in place.
    use support::fake_circleci::Endpoint;
    assert_eq!(circleci.requests(Endpoint::Unclaimed), 3);
    assert_eq!(circleci.requests(Endpoint::Running), 3);
    assert_eq!(output.matches("\"_aws\"").count(), 3, "{output}");
    assert_eq!(answer["pools"][0]["action"], "unchanged", "{answer}");
    let group = moto.group(REGION, "cci-runner-asg").await.unwrap();
    assert_eq!(group.desired_capacity(), Some(5));
}

#[tokio::test]
async fn a_bad_configuration_is_reported_as_an_init_error() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    let lambda = FakeLambda::start([scheduled_event()]).await;
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut env = lambda_env(&lambda, &moto, &circleci, root.path(), "cci-runner-asg");
    env.retain(|(k, _)| k != "AUTO_SCALING_MAX");
    env.push(("AUTO_SCALING_MAX".into(), "lots".into()));
    let mut child = bootstrap(&env, cache.path());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the runtime exits after an init error")
        .unwrap();
    let posted = lambda.posted();
    let output = stop(child).await;
    assert!(!status.success(), "{output}");
    assert_eq!(posted.len(), 1, "{posted:?}\n{output}");
    let Posted::InitError { error_type, .. } = &posted[0] else {
        panic!("not an init error: {posted:?}");
    };
    assert_eq!(error_type.as_deref(), Some("RunnerScaler.SetupError"));
    let body = posted[0].json();
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("AUTO_SCALING_MAX") && message.contains("\"lots\""),
        "{message}"
    );
    assert_eq!(lambda.polls(), 0, "no invocation was asked for");
}

#[tokio::test]
async fn a_held_pool_is_in_a_successful_summary_and_all_held_is_an_error() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-ok").desired(0).protected())
        .await;
    circleci.set_queue("acme/ok", 2, 0);
    circleci.set_queue("acme/gone", 2, 0);
    let root = tempfile::tempdir().unwrap();
    let pools = |names: &[&str]| {
        let mut text = format!(
            "[circleci]\nbase_url = \"{}\"\ntoken_env = \"CIRCLECI_TOKEN\"\n[aws]\nendpoint_url = \"{}\"\n[defaults]\nregion = \"{REGION}\"\npolicy = \"queue\"\nmax = 5\n",
            circleci.base_url(),
            moto.endpoint()
        );
        for name in names {
            text.push_str(&format!(
                "[[pool]]\nname = \"{name}\"\nresource_class = \"acme/{name}\"\ngroup = \"ci-{name}\"\n"
            ));
        }
        text
    };
    std::fs::write(root.path().join("some.toml"), pools(&["ok", "gone"])).unwrap();
    std::fs::write(root.path().join("gone.toml"), pools(&["gone"])).unwrap();
    for (file, expect_error) in [("some.toml", false), ("gone.toml", true)] {
        let lambda = FakeLambda::start([scheduled_event()]).await;
        let cache = tempfile::tempdir().unwrap();
        let mut env = lambda_env(&lambda, &moto, &circleci, root.path(), "unused");
        env.retain(|(k, _)| !k.starts_with("AUTO_SCALING") && !k.starts_with("SECRET_"));
        env.push(("RUNNER_SCALER_CONFIG".into(), file.into()));
        env.push(("CIRCLECI_TOKEN".into(), TOKEN.into()));
        let child = bootstrap(&env, cache.path());
        let posted = lambda.wait_for(1, Duration::from_secs(60)).await;
        let output = stop(child).await;
        assert_eq!(posted.len(), 1, "{file}: {posted:?}\n{output}");
        let (_, answer) = &posted[0];
        match (answer, expect_error) {
            (Posted::Response { .. }, false) => {
                let body = answer.json();
                assert_eq!(
                    (body["decided"].as_u64(), body["held"].as_u64()),
                    (Some(1), Some(1)),
                    "{body}"
                );
                let gone = body["pools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["pool"] == "gone")
                    .unwrap();
                assert_eq!(gone["action"], "held");
                assert!(
                    gone["why"].as_str().unwrap().contains("does not exist"),
                    "{gone}"
                );
            }
            (Posted::Error { .. }, true) => {
                let body = answer.json();
                assert_eq!(body["errorType"], "RunnerScaler.AllPoolsHeld", "{body}");
                let message = body["errorMessage"].as_str().unwrap().to_string();
                assert!(message.contains("gone: held"), "{message}");
            }
            (other, _) => panic!("{file}: unexpected {other:?}\n{output}"),
        }
    }
    let group = moto.group(REGION, "ci-ok").await.unwrap();
    assert_eq!(group.desired_capacity(), Some(2));
}

/// Cold start, process start → response posted, and peak RSS, per policy
/// source: a built-in rule, a WebAssembly policy compiled at start (an empty
/// /tmp cache), and the same policy loaded precompiled. Prints a table of
/// medians. Run through `scripts/measure-lambda-cold-start.sh` (release).
#[tokio::test]
#[ignore = "a measurement, not a test: scripts/measure-lambda-cold-start.sh"]
async fn measure_cold_start() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let policy = std::env::var("POLICY").unwrap_or_else(|_| "business-hours".into());
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    setup_seed(&moto, &circleci, "cci-runner-asg", "acme/seed").await;
    let compiled_root = bundle(&policy, false);
    let precompiled_root = bundle(&policy, true);
    let wasm = format!("policies/{policy}.wasm");
    let variants: [(&str, &Path, &str); 3] = [
        ("built-in queue", compiled_root.path(), "queue"),
        ("compiled at start", compiled_root.path(), &wasm),
        ("precompiled", precompiled_root.path(), &wasm),
    ];
    println!("{runs} runs each, policy {policy}, medians:");
    println!(
        "{:<18} {:>14} {:>12} {:>14}",
        "variant", "cold start ms", "setup ms", "peak RSS MiB"
    );
    for (name, root, policy) in variants {
        let mut starts = vec![];
        let mut setups = vec![];
        let mut rss = vec![];
        for _ in 0..runs {
            let lambda = FakeLambda::start([scheduled_event()]).await;
            let cache = tempfile::tempdir().unwrap();
            let mut env = lambda_env(&lambda, &moto, &circleci, root, "cci-runner-asg");
            env.push(("RUNNER_SCALER_POLICY".into(), policy.into()));
            let time_log = cache.path().join("time.log");
            let started = Instant::now();
            let mut child = tokio::process::Command::new("/usr/bin/time")
                .arg("-v")
                .arg("-o")
                .arg(&time_log)
                .arg(measured_binary())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("RUNNER_SCALER_CACHE_DIR", cache.path().join("cache"))
                .env("RUST_LOG", "info")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("run /usr/bin/time");
            let posted = lambda.wait_for(1, Duration::from_secs(60)).await;
            let (at, answer) = posted.first().expect("an answer");
            assert!(matches!(answer, Posted::Response { .. }), "{answer:?}");
            starts.push(at.duration_since(started).as_secs_f64() * 1e3);
            // SIGTERM to `time`'s child (the bootstrap), by its id: `time`
            // then writes its report and exits.
            let pid = child.id().unwrap();
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for bootstrap in children.split_whitespace() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", bootstrap])
                    .status();
            }
            let _ = child.wait().await;
            let mut log = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut log).await;
            }
            if let Some(ms) = log
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find_map(|v| v["fields"]["setup_ms"].as_f64())
            {
                setups.push(ms);
            }
            let report = std::fs::read_to_string(&time_log).unwrap_or_default();
            if let Some(kib) = report
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("Maximum resident set size (kbytes): ")
                })
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                rss.push(kib / 1024.0);
            }
        }
        println!(
            "{name:<18} {:>14.1} {:>12.1} {:>14.1}",
            median(&mut starts),
            median(&mut setups),
            median(&mut rss)
        );
    }
}

/// The binary measured: `$BOOTSTRAP` (e.g. a bundle's `bootstrap`, built by
/// `scripts/package-lambda.sh`), else this build's runner-scaler.
fn measured_binary() -> std::path::PathBuf {
    std::env::var_os("BOOTSTRAP")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_runner-scaler").into())
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}
