//! The control loop against real servers on loopback: moto as EC2 Auto
//! Scaling and Secrets Manager, the fake CircleCI runner API, and the
//! compiled example policies. Some tests run the `runner-scaler` binary as
//! a user would; the fault tests drive the tick with the real adapters.

use crate::support;

use runner_scaler::policy::{BuiltinRule, Limits, Policy, PolicyEngine};
use runner_scaler::secret::Secret;
use runner_scaler::sources::circleci::{CircleCi, HttpOptions};
use runner_scaler::tick::{tick, Action, TickOptions};
use std::time::Duration;
use support::aws_proxy::{Answer, AwsProxy};
use support::binary::*;
use support::fake_circleci::{Endpoint, FakeCircleCi, Fault};
use support::moto::{Moto, TestGroup};

#[tokio::test]
async fn once_applies_every_example_policy_to_its_group() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    // (pool, policy, params, waiting, running, desired now, expected after)
    let pools = [
        ("depth", "queue-depth", "", 4, 1, 0, 5),
        (
            "hours",
            "business-hours",
            "warm = \"2\", days = \"mon-sun\", hours = \"00-24\"",
            0,
            0,
            0,
            2,
        ),
        (
            "cool",
            "cooldown",
            "warm = \"3\", minutes = \"10\"",
            0,
            0,
            1,
            3,
        ),
        ("buffer", "buffered", "buffer = \"1\"", 3, 0, 0, 4),
        ("builtin", "queue", "", 2, 0, 5, 2),
    ];
    let mut text_pools = String::new();
    for (name, policy, params, waiting, running, now, _) in pools {
        moto.create_group(
            REGION,
            &TestGroup::new(&format!("ci-{name}"))
                .desired(now)
                .protected(),
        )
        .await;
        circleci.set_queue(&format!("acme/{name}"), waiting, running);
        text_pools.push_str(&pool(name, policy, params));
    }
    let file = config(&moto, &circleci, &text_pools);
    let output = runner_scaler(&["once", "--config", file.path().to_str().unwrap()], &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    for (name, _, _, _, _, _, expected) in pools {
        assert_eq!(
            desired(&moto, &format!("ci-{name}")).await,
            expected,
            "{name}: {}",
            text(&output)
        );
    }
    let kept = state_tag(&moto, "ci-cool").await;
    assert!(
        kept.as_deref()
            .is_some_and(|s| s.starts_with("empty_since=")),
        "{kept:?}"
    );
    assert!(
        !text(&output).contains(TOKEN),
        "the token leaked into the output"
    );
}

/// Issue 11: a policy asleep in a host call held `once` for an hour, and a
/// policy's newline forged a log line (its ESC and CR reached the terminal).
/// `once` must finish at the policy's deadline, and neither the table nor
/// the log may carry a raw control character: none of the policy's, and no
/// colour codes either, since stderr is not a terminal here.
#[tokio::test]
async fn once_finishes_and_stays_inert_whatever_the_policies_do() {
    const FORGED: &str = "INFO decision: pool=forged";
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    let mut pools = String::new();
    for (name, policy) in [("asleep", "sleeps"), ("forger", "forges")] {
        moto.create_group(
            REGION,
            &TestGroup::new(&format!("ci-{name}")).desired(0).protected(),
        )
        .await;
        circleci.set_queue(&format!("acme/{name}"), 1, 0);
        pools.push_str(&pool(name, policy, ""));
    }
    let file = config(&moto, &circleci, &pools);
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        runner_scaler(&["once", "--config", file.path().to_str().unwrap()], &[]),
    )
    .await
    .expect("once must finish: a policy's deadline covers its host calls");
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("policy sleeps ran past its deadline"), "{all}");
    assert_eq!(desired(&moto, "ci-forger").await, 1, "{all}");
    assert!(
        !all.contains(['\u{1b}', '\r', '\u{7}', '\u{202e}']),
        "a raw control character: {all:?}"
    );
    assert!(
        !all.lines()
            .any(|line| line.trim_start().starts_with(FORGED)),
        "a forged line: {all}"
    );
    assert!(
        all.contains("\\nINFO decision: pool=forged"),
        "escaped: {all}"
    );
}

/// Issue 11: a state with control characters reached the group's tag, and
/// the local AWS endpoint then failed every describe of the region, holding
/// every pool there until someone removed the tag by hand.
#[tokio::test]
async fn a_state_with_control_characters_never_reaches_aws() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    for name in ["bad", "good"] {
        moto.create_group(
            REGION,
            &TestGroup::new(&format!("ci-{name}")).desired(0).protected(),
        )
        .await;
        circleci.set_queue(&format!("acme/{name}"), 2, 0);
    }
    let pools = format!(
        "{}{}",
        pool("bad", "bad-state", ""),
        pool("good", "queue-depth", "")
    );
    let file = config(&moto, &circleci, &pools);
    for run in 1..=2 {
        let output = runner_scaler(&["once", "--config", file.path().to_str().unwrap()], &[]).await;
        let all = text(&output);
        assert!(output.status.success(), "run {run}: {all}");
        assert!(all.contains("bad_output"), "run {run}: {all}");
        assert!(
            all.contains("U+0000"),
            "run {run}: names the character: {all}"
        );
        assert_eq!(state_tag(&moto, "ci-bad").await, None, "run {run}");
        assert_eq!(desired(&moto, "ci-good").await, 2, "run {run}: {all}");
    }
}

/// A state tag the host could not have written — here set by hand, longer
/// than a state may be though AWS takes it (200 characters, 400 bytes), or
/// holding a tab — costs its pool the state, with a warning; the pool is
/// decided, and the tag replaced.
#[tokio::test]
async fn a_state_tag_the_host_cannot_use_costs_the_pool_its_state() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    let long = "é".repeat(200);
    let mut pools = String::new();
    for (name, value) in [("long", long.as_str()), ("tab", "n=1\tm=2")] {
        moto.create_group(
            REGION,
            &TestGroup::new(&format!("ci-{name}"))
                .desired(1)
                .protected()
                .tag(runner_scaler::state::STATE_TAG, value),
        )
        .await;
        circleci.set_queue(&format!("acme/{name}"), 1, 0);
        // `hold` keeps whatever state it is given: only the host drops it.
        pools.push_str(&pool(name, "hold", ""));
    }
    let file = config(&moto, &circleci, &pools);
    let output = runner_scaler(&["once", "--config", file.path().to_str().unwrap()], &[]).await;
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    for (name, words) in [("long", "400 bytes"), ("tab", "U+0009")] {
        assert_eq!(
            state_tag(&moto, &format!("ci-{name}")).await,
            None,
            "{name}: {all}"
        );
        assert!(
            all.lines().any(|line| line.contains("WARN")
                && line.contains("cannot be used")
                && line.contains(words)),
            "{name}: warns saying why: {all}"
        );
    }
}

#[tokio::test]
async fn an_unprotected_group_is_not_scaled_in_and_the_output_says_how_to_fix_it() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-open").desired(3))
        .await;
    circleci.set_queue("acme/open", 0, 0);
    let file = config(&moto, &circleci, &pool("open", "queue", ""));
    let output = runner_scaler(&["once", "--config", file.path().to_str().unwrap()], &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(desired(&moto, "ci-open").await, 3);
    assert!(
        text(&output).contains("allow_unprotected_scale_in"),
        "{}",
        text(&output)
    );
}

// Issue 13: a group whose flag protects new instances, with two instances
// launched before the flag was switched on. The old rule looked at the flag
// only and scaled in, which let Auto Scaling (moto here) terminate the two
// unprotected ones, busy or not. The rule now judges per instance: it holds
// until they are protected too, then scales in, and the group terminates
// nothing.
#[tokio::test]
async fn instances_launched_before_protection_was_switched_on_hold_scale_in() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-mixed").desired(2))
        .await;
    let client = moto.autoscaling(REGION).await;
    client
        .update_auto_scaling_group()
        .auto_scaling_group_name("ci-mixed")
        .new_instances_protected_from_scale_in(true)
        .send()
        .await
        .unwrap();
    client
        .set_desired_capacity()
        .auto_scaling_group_name("ci-mixed")
        .desired_capacity(4)
        .send()
        .await
        .unwrap();
    let instances = |group: aws_sdk_autoscaling::types::AutoScalingGroup| {
        group
            .instances()
            .iter()
            .map(|i| {
                (
                    i.instance_id().unwrap().to_string(),
                    i.protected_from_scale_in() == Some(true),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = instances(moto.group(REGION, "ci-mixed").await.unwrap());
    let protected: Vec<bool> = before.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        (protected.iter().filter(|p| **p).count(), protected.len()),
        (2, 4),
        "two old unprotected instances, two new protected ones: {before:?}"
    );

    circleci.set_queue("acme/mixed", 0, 0);
    let file = config(&moto, &circleci, &pool("mixed", "queue", ""));
    let path = file.path().to_str().unwrap();
    let output = runner_scaler(&["once", "--config", path], &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(desired(&moto, "ci-mixed").await, 4, "{}", text(&output));
    assert!(
        text(&output).contains("2 instances are not protected from scale-in"),
        "{}",
        text(&output)
    );
    assert_eq!(
        instances(moto.group(REGION, "ci-mixed").await.unwrap()),
        before,
        "nothing terminated"
    );

    let unprotected: Vec<String> = before
        .iter()
        .filter(|(_, protected)| !protected)
        .map(|(id, _)| id.clone())
        .collect();
    client
        .set_instance_protection()
        .auto_scaling_group_name("ci-mixed")
        .set_instance_ids(Some(unprotected))
        .protected_from_scale_in(true)
        .send()
        .await
        .unwrap();
    let output = runner_scaler(&["once", "--config", path], &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(desired(&moto, "ci-mixed").await, 0, "{}", text(&output));
    let after = instances(moto.group(REGION, "ci-mixed").await.unwrap());
    assert_eq!(after.len(), 4, "all protected now: none terminated");
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-dry").desired(1).protected())
        .await;
    circleci.set_queue("acme/dry", 6, 0);
    let file = config(&moto, &circleci, &pool("dry", "cooldown", ""));
    let output = runner_scaler(
        &[
            "once",
            "--dry-run",
            "--config",
            file.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("would apply"),
        "{}",
        text(&output)
    );
    assert_eq!(desired(&moto, "ci-dry").await, 1);
    assert_eq!(state_tag(&moto, "ci-dry").await, None);
}

/// The decision line says which queue and bounds the pool has, and when
/// the group's own bounds were widened to take the decision — in the text
/// log a person reads and in the JSON one a log query reads.
#[tokio::test]
async fn the_decision_line_records_the_resource_class_the_bounds_and_a_widening() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(
        REGION,
        &TestGroup::new("ci-widen")
            .desired(0)
            .bounds(0, 0)
            .protected(),
    )
    .await;
    circleci.set_queue("acme/widen", 5, 0);
    let file = config(&moto, &circleci, &pool("widen", "queue", ""));
    let widened = "widened the group's MaxSize 0 → 10 to hold desired 5";

    let output = runner_scaler(
        &[
            "--log-format",
            "text",
            "once",
            "--dry-run",
            "--config",
            file.path().to_str().unwrap(),
        ],
        &[("NO_COLOR", "1")],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let log = String::from_utf8_lossy(&output.stderr);
    let line = log
        .lines()
        .find(|l| l.contains(" decision: ") && l.contains("pool=widen"))
        .unwrap_or_else(|| panic!("no decision line: {log}"));
    for field in [
        "group=ci-widen",
        &format!("region={REGION}"),
        "resource_class=acme/widen",
        "min=0",
        "max=10",
        "desired=5",
        widened,
    ] {
        assert!(line.contains(field), "{field:?} is not in {line}");
    }

    let output = runner_scaler(
        &[
            "--log-format",
            "json",
            "once",
            "--json",
            "--config",
            file.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let log = String::from_utf8_lossy(&output.stderr);
    let line: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["target"] == "decision" && l["pool"] == "widen")
        .unwrap_or_else(|| panic!("no decision line: {log}"));
    // The record's keys at the top of the line (issue 27).
    let fields = &line;
    assert_eq!(fields["group"], "ci-widen", "{fields}");
    assert_eq!(fields["region"], REGION, "{fields}");
    assert_eq!(fields["resource_class"], "acme/widen", "{fields}");
    assert_eq!(fields["min"], 0, "{fields}");
    assert_eq!(fields["max"], 10, "{fields}");
    assert_eq!(fields["desired"], 5, "{fields}");
    assert_eq!(fields["why"], widened, "{fields}");
    let records: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(records[0]["resource_class"], "acme/widen");
    assert_eq!(records[0]["why"], widened);
    let group = moto.group(REGION, "ci-widen").await.unwrap();
    assert_eq!(
        (group.desired_capacity(), group.max_size()),
        (Some(5), Some(10))
    );
}

#[tokio::test]
async fn the_original_tools_environment_drives_a_full_tick() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(
        REGION,
        &TestGroup::new("cci-runner-asg").desired(0).protected(),
    )
    .await;
    let secret = format!("{{\"circle_token\": \"{TOKEN}\", \"resource_class\": \"acme/seed\"}}");
    moto.create_secret(REGION, "cci-runner-lambda-secrets", &secret)
        .await;
    circleci.set_queue("acme/seed", 9, 3);
    let env = [
        ("SECRET_NAME", "cci-runner-lambda-secrets"),
        ("SECRET_REGION", REGION),
        ("AUTO_SCALING_MAX", "8"),
        ("AUTO_SCALING_GROUP_NAME", "cci-runner-asg"),
        ("AUTO_SCALING_GROUP_REGION", REGION),
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("CIRCLECI_RUNNER_API_URL", &circleci.base_url()),
    ];
    let output = runner_scaler(&["once"], &env).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        desired(&moto, "cci-runner-asg").await,
        8,
        "min(9 + 3, max 8)"
    );
    assert!(
        !text(&output).contains(TOKEN),
        "the token leaked into the output"
    );
}

#[tokio::test]
async fn a_refused_token_is_reported_without_the_token() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start("another-token").await;
    moto.create_group(REGION, &TestGroup::new("ci-deny").desired(2).protected())
        .await;
    let file = config(&moto, &circleci, &pool("deny", "queue", ""));
    let output = runner_scaler(&["once", "--config", file.path().to_str().unwrap()], &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("HELD"), "{}", text(&output));
    assert!(
        !text(&output).contains(TOKEN),
        "the token leaked: {}",
        text(&output)
    );
    assert_eq!(desired(&moto, "ci-deny").await, 2);

    // What was not read is absent from the record, not zero.
    let output = runner_scaler(
        &[
            "--log-format",
            "json",
            "once",
            "--json",
            "--config",
            file.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let records: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let record = records[0].as_object().unwrap();
    assert_eq!(record["action"], "held");
    assert!(
        !record.contains_key("waiting"),
        "no queue was read: {record:?}"
    );
    assert!(!record.contains_key("desired"), "{record:?}");
    assert_eq!(record["capacity"]["desired"], 2, "the group was read");
    let log = String::from_utf8_lossy(&output.stderr);
    let line: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["target"] == "decision" && l["pool"] == "deny")
        .unwrap_or_else(|| panic!("no decision line: {log}"));
    // The line is the record, as printed (issue 27).
    let fields = line.as_object().unwrap();
    assert!(!fields.contains_key("waiting"), "{fields:?}");
    assert!(!fields.contains_key("running"), "{fields:?}");
    assert_eq!(fields["capacity"]["desired"], 2, "{fields:?}");
    assert_eq!(fields["level"], "WARN", "{fields:?}");
}

/// The reported bug: AWS made the write, the client timed out waiting for
/// its answer, and the tick said HELD. Now it says the outcome is unknown,
/// exits 1, and the next tick reads the group (desired 5) and writes nothing.
#[tokio::test]
async fn a_write_that_timed_out_is_reported_unknown_and_read_again_next_tick() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    let proxy = AwsProxy::start(moto.endpoint(), Answer::Hang).await;
    moto.create_group(REGION, &TestGroup::new("ci-slow").desired(1).protected())
        .await;
    circleci.set_queue("acme/slow", 5, 0);
    let file = config(&moto, &circleci, &pool("slow", "queue", ""));
    let proxied = std::fs::read_to_string(file.path())
        .unwrap()
        .replace(moto.endpoint(), &proxy.endpoint());
    std::fs::write(file.path(), proxied).unwrap();

    let output = runner_scaler(&["once", "--config", file.path().to_str().unwrap()], &[]).await;
    let table = String::from_utf8_lossy(&output.stdout).to_string();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(table.contains("UNKNOWN"), "{table}");
    assert!(!table.contains("HELD"), "{table}");
    assert!(
        table.contains("0 of 1 pools decided; 1 written with an unknown outcome"),
        "{table}"
    );
    assert_eq!(desired(&moto, "ci-slow").await, 5, "AWS made the write");

    proxy.answer(Answer::Pass);
    let writes = proxy.writes();
    let output = runner_scaler(&["once", "--config", file.path().to_str().unwrap()], &[]).await;
    let table = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{}", text(&output));
    assert!(table.contains("unchanged"), "{table}");
    assert_eq!(proxy.writes(), writes, "nothing written again");
}

/// `check` prints an operating-system error once, however deep the chain;
/// a directory where a file should be is said to be one.
#[tokio::test]
async fn an_os_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let output = runner_scaler(&["check", "--config", missing.to_str().unwrap()], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");

    let file = dir.path().join("runner-scaler.toml");
    let policy_is = |policy: &str| {
        std::fs::write(
            &file,
            format!("[[pool]]\nname = \"p\"\nresource_class = \"a/p\"\ngroup = \"g\"\nregion = \"eu-west-1\"\npolicy = \"{policy}\"\nmax = 1\n"),
        )
        .unwrap();
    };
    policy_is("missing.wasm");
    let output = runner_scaler(&["check", "--config", file.to_str().unwrap()], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read policy"), "{stderr}");
    assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");

    std::fs::create_dir(dir.path().join("dir.wasm")).unwrap();
    policy_is("dir.wasm");
    let output = runner_scaler(&["check", "--config", file.to_str().unwrap()], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read policy")
            && stderr.contains("it is a directory, not a regular file"),
        "{stderr}"
    );
}

/// Every CircleCI fault: retried as specified, then the pool is held, its
/// group untouched, and the other pool still decided.
#[tokio::test]
async fn circleci_faults_hold_the_pool_and_spare_the_others() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    let options = HttpOptions {
        timeout: Duration::from_millis(300),
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(2),
        ..HttpOptions::default()
    };
    let queues = CircleCi::new(&circleci.base_url(), Secret::new(TOKEN), options).unwrap();
    let groups = moto.groups();
    let pool = |name: &str| support::pool(name, Policy::Builtin(BuiltinRule::Queue));
    let faults: [(&str, Fault); 5] = [
        ("server-error", Fault::Status(500)),
        (
            "too-many",
            Fault::TooMany {
                retry_after_secs: 1,
            },
        ),
        ("slow", Fault::Slow(Duration::from_secs(2))),
        ("malformed", Fault::Malformed),
        ("missing-field", Fault::MissingField),
    ];
    moto.create_group(REGION, &TestGroup::new("ci-healthy").desired(0).protected())
        .await;
    circleci.set_queue("acme/healthy", 2, 0);
    for (name, fault) in faults {
        moto.create_group(
            REGION,
            &TestGroup::new(&format!("ci-{name}")).desired(4).protected(),
        )
        .await;
        circleci.set_queue(&format!("acme/{name}"), 0, 0);
        // More faults than attempts: the fault persists through the tick.
        circleci.push_faults(&format!("acme/{name}"), Endpoint::Unclaimed, vec![fault; 3]);
        let before = circleci.requests(Endpoint::Unclaimed);
        let pools = [pool(name), pool("healthy")];
        let reports = tick(
            &pools,
            &queues,
            &groups,
            jiff::Timestamp::now(),
            TickOptions::default(),
        )
        .await;
        let faulty = reports.iter().find(|r| r.pool == name).unwrap();
        let healthy = reports.iter().find(|r| r.pool == "healthy").unwrap();
        assert_eq!(faulty.action, Action::Held, "{name}: {:?}", faulty.why);
        assert!(healthy.decided(), "{name}: the healthy pool is decided");
        assert_eq!(
            desired(&moto, &format!("ci-{name}")).await,
            4,
            "{name}: group untouched"
        );
        // Both pools' unclaimed counts were asked: 3 attempts for the faulty one, 1 for the healthy one.
        assert_eq!(
            circleci.requests(Endpoint::Unclaimed) - before,
            3 + 1,
            "{name}: attempts"
        );
        assert!(!faulty.why.as_deref().unwrap().contains(TOKEN));
    }
    assert_eq!(desired(&moto, "ci-healthy").await, 2);
}

/// `once --precompiled DIR`, and the same directory in
/// `RUNNER_SCALER_PRECOMPILED`, loads a policy's code from what `policy
/// precompile` wrote instead of compiling it. An entry that is there but is
/// not this policy's code for this engine — damaged, or intact but compiled
/// by an engine with other settings — is refused: the run fails saying so,
/// and nothing is compiled or decided. Every run has an empty compile
/// cache, so the code comes from the directory or from Cranelift, which the
/// debug log tells apart.
#[tokio::test]
async fn once_loads_precompiled_code_and_refuses_entries_that_do_not_fit() {
    const LOADED: &str = "loaded precompiled policy";
    const COMPILED: &str = "compile: compiled policy";
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-pre").protected())
        .await;
    circleci.set_queue("acme/pre", 3, 0);
    let file = config(&moto, &circleci, &pool("pre", "queue-depth", ""));
    let config = file.path().to_str().unwrap();
    let wasm = support::policy_file("queue-depth");
    let precompiled = tempfile::tempdir().unwrap();
    let dir = precompiled.path().to_str().unwrap();
    let output = runner_scaler(
        &["policy", "precompile", wasm.to_str().unwrap(), "--out", dir],
        &[],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let entries: Vec<_> = std::fs::read_dir(precompiled.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];

    // Without the directory, the policy is compiled: the log tells.
    let log = once_decides(config, &[], &[]).await;
    assert!(log.contains(COMPILED) && !log.contains(LOADED), "{log}");

    // With it, as a flag or as the variable, it is not.
    let flag: [&str; 2] = ["--precompiled", dir];
    for (args, env) in [
        (&flag[..], &[][..]),
        (&[][..], &[("RUNNER_SCALER_PRECOMPILED", dir)][..]),
    ] {
        let log = once_decides(config, args, env).await;
        assert!(log.contains(LOADED) && !log.contains(COMPILED), "{log}");
        assert!(!log.contains("WARN"), "{log}");
    }
    assert_eq!(desired(&moto, "ci-pre").await, 3);
    circleci.set_queue("acme/pre", 5, 0);

    let refused = |log: &str, why: &str| {
        log.contains("the precompiled directory")
            && log.contains("holds code for it that must not run")
            && log.contains(why)
            && !log.contains(COMPILED)
            && !log.contains(LOADED)
    };
    // A damaged entry (its checksum no longer matches).
    let intact = std::fs::read(entry).unwrap();
    let mut damaged = intact.clone();
    *damaged.last_mut().unwrap() ^= 0xff;
    std::fs::write(entry, &damaged).unwrap();
    let mut args = vec!["once", "--config", config];
    args.extend(flag);
    let output = runner_scaler(&args, &[]).await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(refused(&log, "is damaged"), "{log}");

    // An intact entry whose code an engine with other settings compiled,
    // under this policy's header (resealed with a valid checksum):
    // wasmtime's own check refuses it. The header is the magic, the
    // policy's and the engine's SHA-256, and the payload's.
    let other = wasmtime::Engine::new(&wasmtime::Config::new()).unwrap();
    let foreign = other
        .precompile_component(&std::fs::read(&wasm).unwrap())
        .unwrap();
    let mut resealed = intact[..8 + 64].to_vec();
    resealed.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&foreign));
    resealed.extend_from_slice(&foreign);
    std::fs::write(entry, &resealed).unwrap();
    let output = runner_scaler(&args, &[]).await;
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(refused(&log, "policy precompile` again"), "{log}");
    assert_eq!(desired(&moto, "ci-pre").await, 3, "nothing decided");
}

#[tokio::test]
async fn an_unchanged_decision_makes_no_write_call() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-same").desired(0).protected())
        .await;
    circleci.set_queue("acme/same", 3, 0);
    let queues = CircleCi::new(
        &circleci.base_url(),
        Secret::new(TOKEN),
        HttpOptions::default(),
    )
    .unwrap();
    let groups = moto.groups();
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = Policy::Wasm(
        engine
            .load(&support::policies_dir().join("queue-depth.wasm"))
            .unwrap(),
    );
    let pools = [support::pool("same", policy)];
    let first = tick(
        &pools,
        &queues,
        &groups,
        jiff::Timestamp::now(),
        TickOptions::default(),
    )
    .await;
    assert_eq!(first[0].action, Action::Applied);
    assert_eq!(groups.calls().write, 1);
    let second = tick(
        &pools,
        &queues,
        &groups,
        jiff::Timestamp::now(),
        TickOptions::default(),
    )
    .await;
    assert_eq!(second[0].action, Action::Unchanged);
    assert_eq!(
        groups.calls().write,
        1,
        "no write for an unchanged decision"
    );
    assert_eq!(groups.calls().describe, 2, "one describe per tick");
}

#[cfg(unix)]
#[tokio::test]
async fn run_ticks_until_sigterm_and_exits_cleanly() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-daemon").desired(0).protected())
        .await;
    circleci.set_queue("acme/daemon", 1, 0);
    let file = config(&moto, &circleci, &pool("daemon", "queue", ""));
    // A top-level key must come before the tables.
    let text = std::fs::read_to_string(file.path()).unwrap();
    std::fs::write(file.path(), format!("interval = \"1s\"\n{text}")).unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(["run", "--config", file.path().to_str().unwrap()])
        .env("CIRCLECI_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first tick scales to 1; the queue then grows and a later tick follows it.
    for expected in [1, 3] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while desired(&moto, "ci-daemon").await != expected {
            assert!(
                std::time::Instant::now() < deadline,
                "no tick reached {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        circleci.set_queue("acme/daemon", 3, 0);
    }
    let (exit, stderr) = stop_daemon(&mut child).await;
    assert!(exit.success(), "{exit:?}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(!stderr.contains(TOKEN));
}

/// A tick stuck on an upstream that never answers (CircleCI here, whose own
/// timeout is set longer than the tick's deadline): /healthz says no tick
/// has completed, the tick is cut at its deadline with the pool reported
/// held, the daemon goes on ticking, and SIGTERM during another stuck tick
/// stops it after the stop grace — not after the tick.
#[cfg(unix)]
#[tokio::test]
async fn run_cuts_a_stuck_tick_reports_it_and_stops_on_sigterm_without_it() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-stuck").desired(0).protected())
        .await;
    circleci.set_queue("acme/stuck", 1, 0);
    let settings = format!(
        "interval = \"1s\"\ntick_deadline = \"8s\"\n\
         [circleci]\nbase_url = \"{}\"\ntimeout = \"60s\"\nattempts = 1\n\
         [aws]\nendpoint_url = \"{}\"\n\
         [daemon]\nunhealthy_after = 2\nstop_grace = \"1s\"\n\
         [defaults]\nregion = \"{REGION}\"\n{}",
        circleci.base_url(),
        moto.endpoint(),
        pool("stuck", "queue", "")
    );
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), settings).unwrap();
    let listen = free_listen();
    let mut child = start_daemon(file.path(), &listen);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while desired(&moto, "ci-stuck").await != 1 {
        assert!(std::time::Instant::now() < deadline, "no tick decided");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The next read never answers: after 2 intervals /healthz says so...
    circleci.push_faults(
        "acme/stuck",
        Endpoint::Unclaimed,
        [Fault::Slow(Duration::from_secs(300))],
    );
    let body = wait_until(&listen, "/healthz", |status, _| status == 503).await;
    assert!(
        body.contains("no tick has completed for 2 intervals"),
        "{body}"
    );
    // ...and after the deadline the tick is cut and the daemon goes on.
    wait_until(&listen, "/healthz", |status, _| status == 200).await;
    let body = wait_until(&listen, "/metrics", |_, body| {
        sample(body, "stuck", "runner_scaler_holds_total").is_some()
    })
    .await;
    assert!(sample(
        &body,
        "stuck",
        "runner_scaler_last_decision_timestamp_seconds"
    )
    .is_some());

    // SIGTERM while another tick is stuck: out after the 1 s grace.
    circleci.set_queue("acme/stuck", 2, 0);
    let before = circleci.requests(Endpoint::Unclaimed);
    circleci.push_faults(
        "acme/stuck",
        Endpoint::Unclaimed,
        [Fault::Slow(Duration::from_secs(300))],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while circleci.requests(Endpoint::Unclaimed) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no tick read the queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = std::time::Instant::now();
    let (exit, stderr) = stop_daemon(&mut child).await;
    let stopped_after = signalled.elapsed();
    assert!(exit.success(), "{exit:?}: {stderr}");
    // The tick's deadline (8 s) would have come later: the grace cut it.
    assert!(
        stopped_after < Duration::from_secs(6),
        "{stopped_after:?}: {stderr}"
    );
    assert!(
        stderr.contains(
            "held: the tick's deadline of 8 s passed before its queue (acme/stuck) could be read"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("the stop grace of 1 s after SIGTERM passed"),
        "{stderr}"
    );
    assert_eq!(
        desired(&moto, "ci-stuck").await,
        1,
        "nothing written on a guess"
    );
}

/// The daemon's /metrics after real ticks, read with a Prometheus parser;
/// /healthz turns unhealthy after consecutive failed ticks and back.
#[tokio::test]
async fn run_serves_metrics_and_health() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-watched").desired(0).protected())
        .await;
    circleci.set_queue("acme/watched", 2, 1);
    let file = config(&moto, &circleci, &pool("watched", "queue", ""));
    let text = std::fs::read_to_string(file.path()).unwrap();
    let settings = "interval = \"1s\"\n[daemon]\nunhealthy_after = 2\n";
    std::fs::write(file.path(), format!("{settings}{text}")).unwrap();
    let listen = free_listen();
    let mut child = start_daemon(file.path(), &listen);
    // The counters are there, at 0, from the start: wait for a decision.
    let body = wait_until(&listen, "/metrics", |_, body| {
        sample(body, "watched", "runner_scaler_decisions_total").is_some_and(|n| n >= 1.0)
    })
    .await;
    let value = |body: &str, name: &str| sample(body, "watched", name);
    assert_eq!(value(&body, "runner_scaler_queue_waiting"), Some(2.0));
    assert_eq!(value(&body, "runner_scaler_queue_running"), Some(1.0));
    assert_eq!(value(&body, "runner_scaler_desired_decided"), Some(3.0));
    assert!(value(&body, "runner_scaler_decisions_total").unwrap() >= 1.0);
    assert_eq!(desired(&moto, "ci-watched").await, 3);
    wait_until(&listen, "/healthz", |status, _| status == 200).await;

    // Every read fails for a while (4 attempts per tick): unhealthy after 2 such ticks...
    circleci.push_faults(
        "acme/watched",
        Endpoint::Unclaimed,
        vec![Fault::Status(500); 4 * 4],
    );
    wait_until(&listen, "/healthz", |status, _| status == 503).await;
    // ...and healthy again once a tick decides.
    wait_until(&listen, "/healthz", |status, _| status == 200).await;
    let body = http_get(&listen, "/metrics").await.unwrap().1;
    assert!(value(&body, "runner_scaler_source_errors_total").unwrap() >= 2.0);
    child.kill().await.unwrap();
}

/// `policy_sha256` pins a policy file: the reviewed file loads (`check`
/// prints its digest), another one in its place is refused naming both
/// digests, before anything is compiled or taken from a cache. A compile
/// cache entry that was tampered with is ignored with a warning and the
/// policy compiled again, never loaded.
#[tokio::test]
async fn a_pinned_policy_loads_only_as_reviewed_and_a_tampered_cache_entry_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let policy = dir.path().join("p.wasm");
    std::fs::copy(support::policy_file("queue-depth"), &policy).unwrap();
    let reviewed = sha256_of(&policy);
    let file = dir.path().join("runner-scaler.toml");
    std::fs::write(
        &file,
        format!(
            "[[pool]]\nname = \"p\"\nresource_class = \"a/p\"\ngroup = \"g\"\nregion = \"eu-west-1\"\n\
             policy = \"p.wasm\"\npolicy_sha256 = \"{}\"\nmax = 1\n",
            reviewed.to_uppercase()
        ),
    )
    .unwrap();
    let check = || async {
        runner_scaler(
            &["check", "--config", file.to_str().unwrap()],
            &[("RUNNER_SCALER_CACHE_DIR", cache.to_str().unwrap())],
        )
        .await
    };
    let output = check().await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains(&reviewed), "{}", text(&output));

    // The cache entry that run wrote, tampered with: ignored, not loaded.
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("a compile cache entry");
    let mut bytes = std::fs::read(&entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&entry, bytes).unwrap();
    let output = check().await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("not using this compile cache entry; compiling again")
            && text(&output).contains("is damaged or not a runner-scaler entry"),
        "{}",
        text(&output)
    );

    // Another policy in the reviewed one's place.
    std::fs::copy(support::policy_file("business-hours"), &policy).unwrap();
    let output = check().await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&reviewed) && stderr.contains("policy_sha256") && stderr.contains("p.wasm"),
        "{stderr}"
    );
    assert!(!stderr.contains("compiled policy"), "{stderr}");
}

/// `run` reloads when a file it loaded changes and on SIGHUP. A broken
/// configuration is refused and counted, and the old policy goes on
/// deciding, healthy; a new policy file is swapped in between ticks (the
/// log names both digests) and decides from the next tick on.
#[cfg(unix)]
#[tokio::test]
async fn run_reloads_on_file_changes_and_sighup_and_keeps_the_old_on_a_broken_one() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-reload").desired(0).protected())
        .await;
    circleci.set_queue("acme/reload", 2, 0);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.wasm");
    // Replaced as a deploy does: a new file renamed over the old one.
    let replace = |path: &std::path::Path, bytes: &[u8]| {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes).unwrap();
        std::fs::rename(&partial, path).unwrap();
    };
    replace(
        &policy,
        &std::fs::read(support::policy_file("queue-depth")).unwrap(),
    );
    let good = format!(
        "interval = \"1s\"\n[circleci]\nbase_url = \"{}\"\n[aws]\nendpoint_url = \"{}\"\n\
         [[pool]]\nname = \"reload\"\nresource_class = \"acme/reload\"\ngroup = \"ci-reload\"\n\
         region = \"{REGION}\"\npolicy = \"p.wasm\"\nmax = 10\n",
        circleci.base_url(),
        moto.endpoint()
    );
    let file = dir.path().join("runner-scaler.toml");
    replace(&file, good.as_bytes());
    let listen = free_listen();
    let mut child = start_daemon(&file, &listen);
    let reach = |expected: i32| {
        let moto = &moto;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while desired(moto, "ci-reload").await != expected {
                assert!(
                    std::time::Instant::now() < deadline,
                    "desired never {expected}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let counter = |body: &str, name: &str| {
        body.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    reach(2).await;

    // A broken configuration: refused, counted, and the old policy decides on.
    replace(&file, format!("{good}surprise = 1\n").as_bytes());
    wait_until(&listen, "/metrics", |_, body| {
        counter(body, "runner_scaler_config_reload_failures_total") == 1.0
    })
    .await;
    wait_until(&listen, "/healthz", |status, _| status == 200).await;
    circleci.set_queue("acme/reload", 3, 0);
    reach(3).await;

    // A new policy file (one that refuses every time): swapped in, so the
    // fallback, `hold`, decides from then on.
    replace(&file, good.as_bytes());
    replace(
        &policy,
        &std::fs::read(support::policy_file("refuses")).unwrap(),
    );
    let body = wait_until(&listen, "/metrics", |_, body| {
        body.lines().any(|l| {
            l.strip_prefix("runner_scaler_policy_errors_total{pool=\"reload\",kind=\"refused\"} ")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|n| n >= 1.0)
        })
    })
    .await;
    assert!(
        counter(&body, "runner_scaler_config_reloads_total") >= 1.0,
        "{body}"
    );
    circleci.set_queue("acme/reload", 5, 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(desired(&moto, "ci-reload").await, 3, "hold decided");

    // SIGHUP reloads too.
    let body = http_get(&listen, "/metrics").await.unwrap().1;
    let reloads = counter(&body, "runner_scaler_config_reloads_total");
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_until(&listen, "/metrics", |_, body| {
        counter(body, "runner_scaler_config_reloads_total") == reloads + 1.0
    })
    .await;

    let (exit, stderr) = stop_daemon(&mut child).await;
    assert!(exit.success(), "{exit:?}: {stderr}");
    assert!(
        stderr.contains("the reload failed") && stderr.contains("surprise"),
        "{stderr}"
    );
    let digest = |name: &str| sha256_of(&support::policy_file(name));
    let swap = format!(
        "policy p (sha256 {}) -> p (sha256 {})",
        digest("queue-depth"),
        digest("refuses")
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("reloaded") && l.contains(&swap)),
        "no {swap} in:\n{stderr}"
    );
    assert!(stderr.contains("trigger=SIGHUP"), "{stderr}");
}

/// The commands that call AWS read the system's CA bundle alone, unless
/// the environment names a store (`ca_certificates.rs`).
#[tokio::test]
async fn aws_tls_reads_the_ca_bundle_alone_unless_the_environment_names_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runner-scaler.toml");
    std::fs::write(
        &file,
        "[[pool]]\nname = \"p\"\nresource_class = \"a/p\"\ngroup = \"g\"\nregion = \"eu-west-1\"\npolicy = \"queue\"\nmax = 1\n",
    )
    .unwrap();
    let check = |store: Option<(&str, &str)>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"));
        command
            .args(["check", "--config", file.to_str().unwrap()])
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .env("RUST_LOG", "debug")
            .envs(store);
        async move { command.output().await.unwrap() }
    };
    let output = check(None).await;
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let bundle = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).exists());
    match bundle {
        Some(bundle) => {
            assert!(stderr.contains("reads this CA bundle alone"), "{stderr}");
            assert!(stderr.contains(bundle), "{stderr}");
        }
        None => assert!(!stderr.contains("CA bundle"), "{stderr}"),
    }
    for store in [
        ("SSL_CERT_DIR", "/etc/ssl/certs"),
        ("SSL_CERT_FILE", "/dev/null"),
    ] {
        let output = check(Some(store)).await;
        assert!(output.status.success(), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(!stderr.contains("CA bundle"), "{store:?}: {stderr}");
    }
}

/// A plain `http://` AWS endpoint (moto here, LocalStack elsewhere) needs no
/// TLS: a tick against one opens no CA certificate file (`aws.rs`,
/// `ByScheme`). The bundle named here is a FIFO that no one writes to, so a
/// process that opened it would block.
#[tokio::test]
async fn a_plain_http_endpoint_reads_no_ca_certificates() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-plain").desired(0).protected())
        .await;
    circleci.set_queue("acme/plain", 2, 0);
    let file = config(&moto, &circleci, &pool("plain", "queue", ""));
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("bundle.crt");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let args = ["once", "--config", file.path().to_str().unwrap()];
    let env = [("SSL_CERT_FILE", fifo.to_str().unwrap())];
    let output = tokio::time::timeout(Duration::from_secs(30), runner_scaler(&args, &env))
        .await
        .expect("once blocked opening the CA bundle");
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(desired(&moto, "ci-plain").await, 2);
}
