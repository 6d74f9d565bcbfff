//! Buildkite pools end to end: the source against a fake of the agent
//! metrics API (counts, the poll-duration header, every fault), then the
//! binary as users run it against that fake and moto — `once`, `run`, the
//! Lambda bootstrap, `check --probe`, the environment route, a
//! configuration mixing CircleCI and Buildkite pools — and `simulate` on a
//! trace of Buildkite queues. Every test gives the binary a canary token and
//! checks it never shows.

use crate::support;

use runner_scaler::secret::Secret;
use runner_scaler::sources::buildkite::Buildkite;
use runner_scaler::sources::http::HttpOptions;
use runner_scaler::sources::SourceError;
use runner_scaler::Queue;
use std::process::Output;
use std::time::{Duration, Instant};
use support::binary::{desired, free_listen, http_get, sample, text, wait_until, REGION};
use support::fake_buildkite::{FakeBuildkite, Fault};
use support::fake_circleci::FakeCircleCi;
use support::fake_lambda::{scheduled_event, FakeLambda, Posted};
use support::moto::{Moto, TestGroup};

/// The agent token the tests give the binary: a canary that must never show.
const TOKEN: &str = "bkua_agent_token_redaction_canary_0123456789";
/// A token Buildkite does not know: it must not show either.
const WRONG: &str = "bkua_wrong_token_canary_9876543210";
const QUEUE: &str = "linux";

/// Fast timing, so the suite stays quick.
fn options() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_millis(300),
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
        ..HttpOptions::default()
    }
}

fn source(fake: &FakeBuildkite, token: &str) -> Buildkite {
    Buildkite::new(&fake.base_url(), Secret::new(token), options()).unwrap()
}

fn queue(waiting: u32, running: u32, blocked: u32) -> Queue {
    Queue {
        waiting,
        running,
        blocked: Some(blocked),
    }
}

#[tokio::test]
async fn scheduled_is_waiting_running_is_running_and_waiting_is_blocked() {
    let fake = FakeBuildkite::start(TOKEN).await;
    fake.set_queue("linux large&x", 4, 2, 7);
    let read = source(&fake, TOKEN).queue("linux large&x").await.unwrap();
    assert_eq!(read, queue(4, 2, 7));
    let recorded = fake.recorded();
    assert_eq!(recorded.len(), 1, "one request per reading");
    assert!(recorded[0].token_ok, "Authorization: Token <agent token>");
    assert_eq!(recorded[0].query, "name=linux+large%26x");
    assert_eq!(fake.strays(), 0, "only /v3/metrics/queue is asked");
}

/// Answers from before Buildkite counted `waiting` jobs have no such field
/// (buildkite-agent-metrics' own test answers lack it): the queue is read,
/// its blocked jobs unknown.
#[tokio::test]
async fn an_answer_without_waiting_is_read_with_blocked_unknown() {
    let fake = FakeBuildkite::start(TOKEN).await;
    fake.push_faults(
        QUEUE,
        [Fault::Body(
            r#"{"organization":{"slug":"acme"},"jobs":{"scheduled":3,"running":1,"total":4},"agents":{"idle":0,"busy":1,"total":1}}"#.into(),
        )],
    );
    let read = source(&fake, TOKEN).queue(QUEUE).await.unwrap();
    assert_eq!(
        read,
        Queue {
            waiting: 3,
            running: 1,
            blocked: None
        }
    );
    assert_eq!(fake.requests(QUEUE), 1);
}

/// The server's `Buildkite-Agent-Metrics-Poll-Duration`: within it the
/// source answers its last reading without a request; after it, it polls
/// again. Without the header, every reading is a request.
#[tokio::test]
async fn the_poll_duration_header_spaces_the_requests() {
    let fake = FakeBuildkite::start(TOKEN).await;
    fake.set_queue(QUEUE, 3, 1, 0);
    fake.set_poll_duration(Some("2"));
    let polite = source(&fake, TOKEN);
    assert_eq!(polite.queue(QUEUE).await.unwrap(), queue(3, 1, 0));
    fake.set_queue(QUEUE, 9, 9, 9);
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            polite.queue(QUEUE).await.unwrap(),
            queue(3, 1, 0),
            "within the window: the last reading"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.requests(QUEUE), 1, "no request within the window");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(polite.queue(QUEUE).await.unwrap(), queue(9, 9, 9));
    assert_eq!(fake.requests(QUEUE), 2, "polled again after the window");
    let recorded = fake.recorded();
    assert!(recorded[1].at - recorded[0].at >= Duration::from_secs(2));

    fake.set_poll_duration(None);
    let other = FakeBuildkite::start(TOKEN).await;
    other.set_queue(QUEUE, 1, 0, 0);
    let eager = source(&other, TOKEN);
    for _ in 0..3 {
        eager.queue(QUEUE).await.unwrap();
    }
    assert_eq!(other.requests(QUEUE), 3, "no header: a request per reading");
}

/// A fault that passes is retried, and the next answer read.
#[tokio::test]
async fn a_passing_fault_is_retried_then_read() {
    let cases: [(&str, Fault, Duration); 5] = [
        ("server error", Fault::Status(502), Duration::ZERO),
        (
            "too many requests",
            Fault::TooMany {
                retry_after_secs: 1,
            },
            Duration::from_secs(1),
        ),
        ("malformed", Fault::Malformed, Duration::ZERO),
        ("missing field", Fault::MissingField, Duration::ZERO),
        ("slow", Fault::Slow(Duration::from_secs(2)), Duration::ZERO),
    ];
    for (name, fault, at_least) in cases {
        let fake = FakeBuildkite::start(TOKEN).await;
        fake.set_queue(QUEUE, 5, 2, 1);
        fake.push_faults(QUEUE, [fault]);
        let started = Instant::now();
        let read = source(&fake, TOKEN).queue(QUEUE).await;
        assert_eq!(read.unwrap(), queue(5, 2, 1), "{name}");
        assert!(
            started.elapsed() >= at_least,
            "{name}: {:?}",
            started.elapsed()
        );
        assert_eq!(fake.requests(QUEUE), 2, "{name}: one retry");
    }
}

/// A fault that lasts leaves the queue unknown (an error, never a guess),
/// after every attempt; the message says what the server did and never
/// holds the token.
#[tokio::test]
async fn a_lasting_fault_leaves_the_queue_unknown() {
    let cases: [(&str, Fault, &str); 5] = [
        ("server error", Fault::Status(500), "500"),
        (
            "too many requests",
            Fault::TooMany {
                retry_after_secs: 0,
            },
            "429",
        ),
        ("malformed", Fault::Malformed, "JSON"),
        ("missing field", Fault::MissingField, "scheduled"),
        ("hanging", Fault::Hang, "no answer within"),
    ];
    for (name, fault, words) in cases {
        let fake = FakeBuildkite::start(TOKEN).await;
        fake.set_queue(QUEUE, 5, 2, 1);
        fake.push_faults(QUEUE, vec![fault; 3]);
        let err = source(&fake, TOKEN).queue(QUEUE).await.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, SourceError::Unavailable { attempts: 3, .. }),
            "{name}: {message}"
        );
        assert!(message.contains(words), "{name}: {message}");
        assert!(!message.contains(TOKEN), "{name}: the token leaked");
        assert_eq!(fake.requests(QUEUE), 3, "{name}: every attempt");
    }
}

#[tokio::test]
async fn a_refused_token_is_not_retried_and_the_message_names_the_token() {
    let fake = FakeBuildkite::start(TOKEN).await;
    fake.set_queue(QUEUE, 5, 2, 1);
    let err = source(&fake, WRONG).queue(QUEUE).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, SourceError::Refused { .. }), "{message}");
    assert!(
        message.contains("token was refused") && message.contains("agent token"),
        "{message}"
    );
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains(WRONG), "the token leaked: {message}");
    assert_eq!(fake.requests(QUEUE), 1, "a refusal is final");
    assert!(!fake.recorded()[0].token_ok);
}

// The binary, against the fake and moto.

/// Run the binary with `args` and `env`, moto's credentials and debug logs;
/// no CI token unless `env` gives one.
async fn scaler(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(args)
        .env_remove("BUILDKITE_AGENT_TOKEN")
        .env_remove("CIRCLECI_TOKEN")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env(
            "RUNNER_SCALER_CACHE_DIR",
            std::env::temp_dir().join("runner-scaler-test-cache"),
        )
        .env("RUST_LOG", "debug")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run runner-scaler")
}

/// Asserts neither canary token is in `output`; returns all it printed.
fn no_token(output: &Output) -> String {
    let printed = text(output);
    assert!(!printed.contains(TOKEN), "the token leaked:\n{printed}");
    assert!(!printed.contains(WRONG), "the token leaked:\n{printed}");
    printed
}

/// A Buildkite pool on queue `queue` and group `bk-NAME`, the `queue` rule.
fn bk_pool(name: &str, queue: &str) -> String {
    format!(
        "[[pool]]\nname = \"{name}\"\nsource = \"buildkite\"\nqueue = \"{queue}\"\ngroup = \"bk-{name}\"\npolicy = \"queue\"\nmax = 10\n"
    )
}

/// A configuration file: a `[buildkite]` section for `fake` with `token`
/// (a line such as `token_env = "..."`, or empty for BUILDKITE_AGENT_TOKEN),
/// two attempts of at most 1 s, moto as AWS, and `rest` (pools, sections).
fn bk_config(
    moto: &Moto,
    fake: &FakeBuildkite,
    token: &str,
    rest: &str,
) -> tempfile::NamedTempFile {
    let text = format!(
        "[buildkite]\nbase_url = \"{}\"\n{token}\nattempts = 2\ntimeout = \"1s\"\n[aws]\nendpoint_url = \"{}\"\n[defaults]\nregion = \"{REGION}\"\n{rest}",
        fake.base_url(),
        moto.endpoint()
    );
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn path(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().unwrap()
}

/// `once --json`'s records, by pool.
fn records(output: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", text(output)))
        .as_array()
        .unwrap()
        .clone()
}

/// The agent token from Secrets Manager (plain text, as the Elastic CI
/// Stack stores it, or JSON) or from an SSM SecureString: `once` reads the
/// queue with it and scales the group; `once --json` records the source
/// and the queue, the three counts, and no resource class.
#[tokio::test]
async fn once_scales_a_buildkite_pool_with_the_token_from_a_secret_or_a_parameter() {
    let moto = Moto::start();
    let fake = FakeBuildkite::start(TOKEN).await;
    moto.create_secret(REGION, "bk/plain", &format!("{TOKEN}\n"))
        .await;
    moto.create_secret(
        REGION,
        "bk/json",
        &format!("{{\"buildkite_agent_token\": \"{TOKEN}\"}}"),
    )
    .await;
    moto.put_parameter(REGION, "/bk/agent-token", TOKEN, true)
        .await;
    let routes = [
        (
            "plain",
            format!("token_secret = {{ name = \"bk/plain\", region = \"{REGION}\" }}"),
        ),
        (
            "json",
            format!("token_secret = {{ name = \"bk/json\", region = \"{REGION}\" }}"),
        ),
        (
            "parameter",
            format!("token_parameter = {{ name = \"/bk/agent-token\", region = \"{REGION}\" }}"),
        ),
    ];
    for (i, (name, token)) in routes.iter().enumerate() {
        let group = format!("bk-{name}");
        moto.create_group(REGION, &TestGroup::new(&group).desired(0).protected())
            .await;
        let queue = format!("queue-{name}");
        fake.set_queue(&queue, 3 + i as u32, 1, 5);
        let file = bk_config(&moto, &fake, token, &bk_pool(name, &queue));
        let output = scaler(&["once", "--config", path(&file)], &[]).await;
        let printed = no_token(&output);
        assert!(output.status.success(), "{name}: {printed}");
        assert!(
            printed.contains("1 of 1 pools decided"),
            "{name}: {printed}"
        );
        assert_eq!(
            desired(&moto, &group).await,
            4 + i as i32,
            "{name}: scheduled + running"
        );

        let output = scaler(&["once", "--json", "--config", path(&file)], &[]).await;
        no_token(&output);
        let records = records(&output);
        let record = records[0].as_object().unwrap();
        assert_eq!(record["source"], "buildkite", "{record:?}");
        assert_eq!(record["queue"], queue.as_str(), "{record:?}");
        assert!(!record.contains_key("resource_class"), "{record:?}");
        assert_eq!(record["waiting"], 3 + i as u32, "{record:?}");
        assert_eq!(record["running"], 1, "{record:?}");
        assert_eq!(record["blocked"], 5, "{record:?}");
        assert_eq!(record["action"], "unchanged", "{record:?}");
        assert_eq!(fake.requests(&queue), 2, "{name}: one request per run");
    }
    assert!(fake.recorded().iter().all(|r| r.token_ok));
}

/// No configuration file: the environment defines a Buildkite pool, its
/// agent token in BUILDKITE_AGENT_TOKEN (no secret needed).
#[tokio::test]
async fn the_environment_alone_defines_a_buildkite_pool() {
    let moto = Moto::start();
    let fake = FakeBuildkite::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("bk-env").desired(0).protected())
        .await;
    fake.set_queue("deploy", 6, 1, 2);
    let base_url = fake.base_url();
    let env = [
        ("RUNNER_SCALER_SOURCE", "buildkite"),
        ("RUNNER_SCALER_QUEUE", "deploy"),
        ("BUILDKITE_AGENT_TOKEN", TOKEN),
        ("BUILDKITE_AGENT_ENDPOINT", base_url.as_str()),
        ("AUTO_SCALING_MAX", "5"),
        ("AUTO_SCALING_GROUP_NAME", "bk-env"),
        ("AUTO_SCALING_GROUP_REGION", REGION),
        ("AWS_ENDPOINT_URL", moto.endpoint()),
    ];
    let output = scaler(&["once", "--json"], &env).await;
    let printed = no_token(&output);
    assert!(output.status.success(), "{printed}");
    let records = records(&output);
    assert_eq!(records[0]["source"], "buildkite", "{printed}");
    assert_eq!(records[0]["queue"], "deploy", "{printed}");
    assert_eq!(desired(&moto, "bk-env").await, 5, "min(6 + 1, max 5)");
    assert_eq!(fake.requests("deploy"), 1);

    // Without the token, the error names the variable to set.
    let without: Vec<_> = env
        .iter()
        .copied()
        .filter(|(k, _)| *k != "BUILDKITE_AGENT_TOKEN")
        .collect();
    let output = scaler(&["once"], &without).await;
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(printed.contains("BUILDKITE_AGENT_TOKEN"), "{printed}");
    assert_eq!(fake.requests("deploy"), 1, "nothing read without a token");
}

/// A CircleCI pool and a Buildkite pool in one configuration: one `once`
/// reads each from its own CI with its own token and scales both.
#[tokio::test]
async fn one_tick_decides_a_circleci_pool_and_a_buildkite_pool() {
    let moto = Moto::start();
    let buildkite = FakeBuildkite::start(TOKEN).await;
    let circleci = FakeCircleCi::start(support::binary::TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("bk-linux").desired(0).protected())
        .await;
    moto.create_group(REGION, &TestGroup::new("ci-mac").desired(0).protected())
        .await;
    buildkite.set_queue(QUEUE, 2, 1, 0);
    circleci.set_queue("acme/mac", 4, 2);
    let rest = format!(
        "[circleci]\nbase_url = \"{}\"\n{}{}",
        circleci.base_url(),
        bk_pool("linux", QUEUE),
        support::binary::pool("mac", "queue", "")
    );
    let file = bk_config(&moto, &buildkite, "", &rest);
    let output = scaler(
        &["once", "--json", "--config", path(&file)],
        &[
            ("BUILDKITE_AGENT_TOKEN", TOKEN),
            ("CIRCLECI_TOKEN", support::binary::TOKEN),
        ],
    )
    .await;
    let printed = no_token(&output);
    assert!(!printed.contains(support::binary::TOKEN), "{printed}");
    assert!(output.status.success(), "{printed}");
    let records = records(&output);
    let by_pool = |name: &str| {
        records
            .iter()
            .find(|r| r["pool"] == name)
            .unwrap_or_else(|| panic!("no record of {name}: {printed}"))
    };
    assert_eq!(by_pool("linux")["source"], "buildkite");
    assert_eq!(by_pool("mac")["source"], "circleci");
    assert_eq!(by_pool("mac")["resource_class"], "acme/mac");
    assert_eq!(desired(&moto, "bk-linux").await, 3);
    assert_eq!(desired(&moto, "ci-mac").await, 6);
    assert_eq!(buildkite.requests(QUEUE), 1);
    assert_eq!(
        circleci.requests(support::fake_circleci::Endpoint::Unclaimed),
        1
    );
}

/// A refused agent token holds the pool: nothing written, exit 1, the
/// reason names the token, and the token itself shows nowhere.
#[tokio::test]
async fn a_refused_agent_token_holds_the_pool_and_writes_nothing() {
    let moto = Moto::start();
    let fake = FakeBuildkite::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("bk-linux").desired(2).protected())
        .await;
    fake.set_queue(QUEUE, 7, 0, 0);
    let file = bk_config(&moto, &fake, "", &bk_pool("linux", QUEUE));
    let output = scaler(
        &["once", "--config", path(&file)],
        &[("BUILDKITE_AGENT_TOKEN", WRONG)],
    )
    .await;
    let printed = no_token(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(printed.contains("HELD"), "{printed}");
    assert!(printed.contains("token was refused"), "{printed}");
    assert!(printed.contains("0 of 1 pools decided"), "{printed}");
    assert_eq!(desired(&moto, "bk-linux").await, 2, "nothing written");
    assert_eq!(fake.requests(QUEUE), 1, "a refusal is not retried");
}

/// Every fault that lasts the tick (429, 5xx, malformed or incomplete
/// JSON, no answer) holds its pool and writes nothing; a healthy pool in
/// the same tick is decided.
#[tokio::test]
async fn api_faults_hold_the_pool_and_spare_the_others() {
    let moto = Moto::start();
    let fake = FakeBuildkite::start(TOKEN).await;
    let faults: [(&str, Fault); 5] = [
        (
            "too-many",
            Fault::TooMany {
                retry_after_secs: 1,
            },
        ),
        ("server-error", Fault::Status(503)),
        ("malformed", Fault::Malformed),
        ("missing-field", Fault::MissingField),
        ("hanging", Fault::Hang),
    ];
    let mut pools = bk_pool("healthy", "healthy");
    moto.create_group(REGION, &TestGroup::new("bk-healthy").desired(0).protected())
        .await;
    fake.set_queue("healthy", 2, 0, 0);
    for (name, fault) in &faults {
        moto.create_group(
            REGION,
            &TestGroup::new(&format!("bk-{name}")).desired(4).protected(),
        )
        .await;
        fake.set_queue(name, 9, 0, 0);
        // More faults than attempts (2): the fault lasts the tick.
        fake.push_faults(name, vec![fault.clone(); 3]);
        pools.push_str(&bk_pool(name, name));
    }
    let file = bk_config(&moto, &fake, "", &pools);
    let output = scaler(
        &["once", "--json", "--config", path(&file)],
        &[("BUILDKITE_AGENT_TOKEN", TOKEN)],
    )
    .await;
    let printed = no_token(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    let records = records(&output);
    for (name, _) in &faults {
        let record = records.iter().find(|r| r["pool"] == *name).unwrap();
        assert_eq!(record["action"], "held", "{name}: {record}");
        assert_eq!(record["held_because"], "queue", "{name}: {record}");
        assert!(record.get("waiting").is_none(), "{name}: unknown, not zero");
        assert_eq!(desired(&moto, &format!("bk-{name}")).await, 4, "{name}");
        assert_eq!(fake.requests(name), 2, "{name}: both attempts");
    }
    let healthy = records.iter().find(|r| r["pool"] == "healthy").unwrap();
    assert_eq!(healthy["action"], "applied", "{healthy}");
    assert_eq!(desired(&moto, "bk-healthy").await, 2);
}

/// The daemon: a tick every second, `/metrics` shows the Buildkite pool,
/// the group is scaled; and with the server asking for 30 s between polls,
/// several ticks share one request.
#[tokio::test]
async fn run_scales_a_buildkite_pool_and_polls_as_the_server_asks() {
    let moto = Moto::start();
    let fake = FakeBuildkite::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("bk-linux").desired(0).protected())
        .await;
    fake.set_queue(QUEUE, 2, 1, 4);
    fake.set_poll_duration(Some("30"));
    let file = bk_config(&moto, &fake, "", &bk_pool("linux", QUEUE));
    let config = std::fs::read_to_string(file.path()).unwrap();
    std::fs::write(file.path(), format!("interval = \"1s\"\n{config}")).unwrap();
    let listen = free_listen();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(["run", "--listen", &listen, "--config", path(&file)])
        .env_remove("CIRCLECI_TOKEN")
        .env("BUILDKITE_AGENT_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let body = wait_until(&listen, "/metrics", |_, body| {
        sample(body, "linux", "runner_scaler_decisions_total").is_some_and(|n| n >= 3.0)
    })
    .await;
    let value = |name: &str| sample(&body, "linux", name);
    assert_eq!(value("runner_scaler_queue_waiting"), Some(2.0));
    assert_eq!(value("runner_scaler_queue_running"), Some(1.0));
    assert_eq!(value("runner_scaler_desired_decided"), Some(3.0));
    assert_eq!(desired(&moto, "bk-linux").await, 3);
    assert_eq!(
        fake.requests(QUEUE),
        1,
        "three ticks within the server's 30 s: one request"
    );
    let (status, _) = http_get(&listen, "/healthz").await.unwrap();
    assert_eq!(status, 200);
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    no_token(&output);
}

/// The Lambda bootstrap, configured by the environment as the stack
/// configures it (the token in a plain-text secret): an invocation of 4.5 s
/// ticks three times at 1 s, with the server's poll-duration one request
/// serves all three, and the answer records the Buildkite pool.
#[tokio::test]
async fn the_lambda_bootstrap_scales_a_buildkite_pool() {
    let moto = Moto::start();
    let fake = FakeBuildkite::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("bk-lambda").desired(0).protected())
        .await;
    moto.create_secret(REGION, "bk/agent-token", TOKEN).await;
    fake.set_queue(QUEUE, 4, 1, 0);
    fake.set_poll_duration(Some("30"));
    let lambda = FakeLambda::with_timeout([scheduled_event()], Duration::from_millis(4500)).await;
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", lambda.runtime_api()),
        ("AWS_LAMBDA_FUNCTION_NAME", "runner-scaler".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("LAMBDA_TASK_ROOT", root.path().display().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", REGION.into()),
        ("AWS_ENDPOINT_URL", moto.endpoint().into()),
        ("RUNNER_SCALER_SOURCE", "buildkite".into()),
        ("RUNNER_SCALER_QUEUE", QUEUE.into()),
        ("BUILDKITE_AGENT_ENDPOINT", fake.base_url()),
        ("SECRET_NAME", "bk/agent-token".into()),
        ("SECRET_REGION", REGION.into()),
        ("AUTO_SCALING_MAX", "8".into()),
        ("AUTO_SCALING_GROUP_NAME", "bk-lambda".into()),
        ("AUTO_SCALING_GROUP_REGION", REGION.into()),
        ("RUNNER_SCALER_TICK_INTERVAL", "1s".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let child = crate::lambda::bootstrap(&env, cache.path());
    let posted = lambda.wait_for(1, Duration::from_secs(60)).await;
    let output = crate::lambda::stop(child).await;
    assert!(!output.contains(TOKEN), "the token leaked:\n{output}");
    let Some((_, Posted::Response { body, .. })) = posted.first() else {
        panic!("no response: {posted:?}\n{output}");
    };
    assert!(!body.contains(TOKEN));
    let answer: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(answer["ticks"], 3, "{answer}\n{output}");
    assert_eq!(answer["decided"], 1, "{answer}");
    let pool = &answer["pools"][0];
    assert_eq!(pool["source"], "buildkite", "{pool}");
    assert_eq!(pool["queue"], QUEUE, "{pool}");
    assert_eq!(pool["group"], "bk-lambda", "{pool}");
    assert_eq!(pool["desired"], 5, "{pool}");
    assert_eq!(desired(&moto, "bk-lambda").await, 5);
    assert_eq!(fake.requests(QUEUE), 1, "three ticks, one request");
}

/// `check --probe` reads each Buildkite queue with the agent token: ok with
/// the counts; REFUSED, and exit 1, with a token Buildkite refuses.
#[tokio::test]
async fn check_probe_reads_the_buildkite_queue_with_the_agent_token() {
    let moto = Moto::start();
    let fake = FakeBuildkite::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("bk-linux").desired(1).protected())
        .await;
    fake.set_queue(QUEUE, 3, 1, 2);
    let file = bk_config(&moto, &fake, "", &bk_pool("linux", QUEUE));
    let api = format!("buildkite API on \"{QUEUE}\" ({})", fake.base_url());

    let output = scaler(
        &["check", "--probe", "--config", path(&file)],
        &[("BUILDKITE_AGENT_TOKEN", TOKEN)],
    )
    .await;
    let printed = no_token(&output);
    assert!(output.status.success(), "{printed}");
    let line = printed
        .lines()
        .find(|l| l.contains(&api))
        .unwrap_or_else(|| panic!("no probe of the queue: {printed}"));
    assert!(line.trim_start().starts_with("ok "), "{line}");
    assert!(line.ends_with(": 3 waiting, 1 running"), "{line}");

    let output = scaler(
        &["check", "--probe", "--config", path(&file)],
        &[("BUILDKITE_AGENT_TOKEN", WRONG)],
    )
    .await;
    let printed = no_token(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    let line = printed
        .lines()
        .find(|l| l.contains(&api))
        .unwrap_or_else(|| panic!("no probe of the queue: {printed}"));
    assert!(line.trim_start().starts_with("REFUSED "), "{line}");
    assert!(line.contains("token was refused"), "{line}");
    assert_eq!(
        desired(&moto, "bk-linux").await,
        1,
        "a probe writes nothing"
    );
}

/// `simulate` takes no configuration and knows no CI: a trace's third
/// column is the queue, whichever CI named it. A trace of two Buildkite
/// queues replays one of them.
#[tokio::test]
async fn simulate_replays_a_trace_of_buildkite_queues() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("buildkite.csv");
    let mut csv = String::from("submit,duration,queue\n");
    for i in 0..40 {
        csv.push_str(&format!("{},300,linux\n", i * 600));
    }
    for i in 0..7 {
        csv.push_str(&format!("{},300,macos\n", i * 600));
    }
    std::fs::write(&trace, csv).unwrap();
    let run = |class: Option<&str>| {
        let mut args = vec![
            "simulate".to_string(),
            "--trace".into(),
            trace.display().to_string(),
            "--policy".into(),
            "queue".into(),
            "--markdown".into(),
        ];
        if let Some(class) = class {
            args.extend(["--resource-class".into(), class.into()]);
        }
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            scaler(&args, &[]).await
        }
    };
    for (queue, jobs) in [(QUEUE, 40), ("macos", 7)] {
        let output = run(Some(queue)).await;
        let printed = text(&output);
        assert!(output.status.success(), "{printed}");
        assert!(
            printed.contains(&format!("| jobs | {jobs} |")),
            "the {jobs} jobs of {queue}: {printed}"
        );
    }
    let output = run(None).await;
    let printed = text(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains("linux") && printed.contains("macos"),
        "two queues: the message names them: {printed}"
    );
}
