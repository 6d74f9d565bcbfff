//! The EC2 Auto Scaling adapter and the runner secret against moto's server
//! (a local AWS). Each test starts its own moto, so tests share no state.
//!
//! moto is laxer than AWS in places (the list, and how these tests
//! compensate: `support/moto.rs`); no test here relies on a request AWS
//! would refuse.

use crate::support;

use runner_scaler::aws::AwsOptions;
use runner_scaler::groups::asg::{ApiCalls, AsgGroups};
use runner_scaler::groups::{GroupId, GroupState, Groups, Write};
use runner_scaler::plan::{plan, Bounds};
use runner_scaler::sources::circleci;
use runner_scaler::state::STATE_TAG;
use runner_scaler::token_secret::{read_token_secret, SecretError};
use runner_scaler::Decision;
use std::time::{Duration, Instant};
use support::aws_proxy::{Answer, AwsProxy};
use support::moto::{Moto, TestGroup, KEY};

const REGION: &str = "us-east-1";

fn id(name: &str) -> GroupId {
    GroupId {
        region: REGION.into(),
        name: name.into(),
    }
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

async fn describe_one(groups: &AsgGroups, name: &str) -> GroupState {
    groups
        .describe(REGION, &names(&[name]))
        .await
        .unwrap()
        .remove(name)
        .unwrap_or_else(|| panic!("{name} was not described"))
}

#[tokio::test]
async fn describe_counts_instances_protection_and_the_state_tag() {
    let moto = Moto::start();
    moto.create_group(
        REGION,
        &TestGroup::new("protected")
            .bounds(1, 8)
            .desired(3)
            .protected()
            .tag(STATE_TAG, r#"{"streak":2}"#)
            .tag("team", "ci"),
    )
    .await;
    moto.create_group(REGION, &TestGroup::new("plain").desired(3))
        .await;
    // In "plain": one instance to standby (desired follows it down), and one
    // protected by hand although the group does not protect new ones.
    let client = moto.autoscaling(REGION).await;
    let plain = moto.group(REGION, "plain").await.unwrap();
    let instances: Vec<String> = plain
        .instances()
        .iter()
        .filter_map(|instance| instance.instance_id().map(str::to_owned))
        .collect();
    assert_eq!(instances.len(), 3);
    client
        .enter_standby()
        .auto_scaling_group_name("plain")
        .instance_ids(&instances[0])
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .unwrap();
    client
        .set_instance_protection()
        .auto_scaling_group_name("plain")
        .instance_ids(&instances[1])
        .protected_from_scale_in(true)
        .send()
        .await
        .unwrap();

    let groups = moto.groups();
    let described = groups
        .describe(REGION, &names(&["protected", "plain"]))
        .await
        .unwrap();
    assert_eq!(described.len(), 2);
    assert_eq!(
        described["protected"],
        GroupState {
            desired: 3,
            min_size: 1,
            max_size: 8,
            pending: 0,
            in_service: 3,
            terminating: 0,
            protected: 3,
            unprotected: 0,
            new_instances_protected: true,
            policy_state: Some(r#"{"streak":2}"#.into()),
            warm_pool: None,
        }
    );
    assert_eq!(
        described["plain"],
        GroupState {
            desired: 2,
            min_size: 0,
            max_size: 10,
            pending: 0,
            in_service: 2,
            terminating: 1,
            protected: 1,
            // In service and not protected; the standby one does not count:
            // scale-in does not pick it.
            unprotected: 1,
            new_instances_protected: false,
            policy_state: None,
            warm_pool: None,
        }
    );
    assert_eq!(
        groups.calls(),
        ApiCalls {
            describe: 1,
            write: 0
        }
    );
}

#[tokio::test]
async fn a_batch_of_120_groups_is_described_in_2_calls() {
    let moto = Moto::start();
    let all: Vec<String> = (0..120).map(|i| format!("pool-{i:03}")).collect();
    for (i, name) in all.iter().enumerate() {
        moto.create_group(REGION, &TestGroup::new(name).desired((i % 3) as i32))
            .await;
    }
    let groups = moto.groups();
    let described = groups.describe(REGION, &all).await.unwrap();
    assert_eq!(described.len(), 120);
    for (i, name) in all.iter().enumerate() {
        let state = &described[name];
        assert_eq!(
            (state.desired, state.in_service),
            ((i % 3) as u32, (i % 3) as u32),
            "{name}"
        );
    }
    // 100 + 20 names, MaxRecords 100: one page per batch.
    assert_eq!(groups.calls().describe, 2);
    // A name given twice is asked for once.
    let twice: Vec<String> = all.iter().chain(&all[..10]).cloned().collect();
    assert_eq!(groups.describe(REGION, &twice).await.unwrap().len(), 120);
    assert_eq!(groups.calls().describe, 4);
}

#[tokio::test]
async fn each_write_changes_what_describe_sees() {
    let moto = Moto::start();
    moto.create_group(
        REGION,
        &TestGroup::new("pool").bounds(0, 5).desired(1).protected(),
    )
    .await;
    let groups = moto.groups();
    let pool = id("pool");

    groups.apply(&pool, &Write::Desired(3)).await.unwrap();
    let state = describe_one(&groups, "pool").await;
    assert_eq!((state.desired, state.in_service), (3, 3));

    groups
        .apply(
            &pool,
            &Write::DesiredAndBounds {
                desired: 8,
                min: 2,
                max: 12,
            },
        )
        .await
        .unwrap();
    let state = describe_one(&groups, "pool").await;
    assert_eq!((state.desired, state.min_size, state.max_size), (8, 2, 12));
    assert_eq!(state.in_service, 8);

    // Scaling that group in to 0 takes its MinSize (2) down too: AWS
    // refuses a desired capacity below MinSize (moto would take a plain
    // SetDesiredCapacity of 0), so the plan widens the bounds in the same
    // call — and never sends the plain one (`plan.rs` checks that for any
    // state and answer).
    let bounds = Bounds {
        min: 0,
        max: 12,
        allow_unprotected_scale_in: false,
        warm_max: 12,
    };
    let to_zero = Decision {
        desired: 0,
        reason: String::new(),
        state: None,
        warm: None,
    };
    let writes = plan(&to_zero, &state, bounds).writes;
    assert_eq!(
        writes,
        vec![Write::DesiredAndBounds {
            desired: 0,
            min: 0,
            max: 12
        }]
    );
    groups.apply(&pool, &writes[0]).await.unwrap();
    let state = describe_one(&groups, "pool").await;
    assert_eq!((state.desired, state.min_size, state.max_size), (0, 0, 12));
    // Every instance is protected: as on AWS, none is terminated.
    assert_eq!(state.in_service, 8);

    groups
        .apply(&pool, &Write::State(Some(r#"{"last":1}"#.into())))
        .await
        .unwrap();
    assert_eq!(
        describe_one(&groups, "pool").await.policy_state.as_deref(),
        Some(r#"{"last":1}"#)
    );
    groups
        .apply(&pool, &Write::State(Some("x".repeat(256))))
        .await
        .unwrap();
    assert_eq!(
        describe_one(&groups, "pool").await.policy_state,
        Some("x".repeat(256))
    );
    // The state tag is not copied onto the instances the group launches.
    let group = moto.group(REGION, "pool").await.unwrap();
    let tag = group
        .tags()
        .iter()
        .find(|tag| tag.key() == Some(STATE_TAG))
        .unwrap();
    assert_eq!(tag.propagate_at_launch(), Some(false));

    groups.apply(&pool, &Write::State(None)).await.unwrap();
    assert_eq!(describe_one(&groups, "pool").await.policy_state, None);

    assert_eq!(
        groups.calls(),
        ApiCalls {
            describe: 6,
            write: 6
        }
    );
}

/// Issue 25: a policy sizes the group's warm pool. The write is one
/// `PutWarmPool` with `MinSize` and `MaxGroupPreparedCapacity` equal (the
/// only settings that give the pool a fixed size) and the pool's state and
/// reuse policy as they were (PutWarmPool resets what it is not given);
/// describe reads it back; a second plan with the same size writes nothing.
#[tokio::test]
async fn a_warm_pool_is_sized_and_keeps_its_state_and_reuse_policy() {
    use aws_sdk_autoscaling::types::{InstanceReusePolicy, WarmPoolState as PoolState};
    let moto = Moto::start();
    moto.create_group(REGION, &TestGroup::new("warm").bounds(0, 10).protected())
        .await;
    let client = moto.autoscaling(REGION).await;
    client
        .put_warm_pool()
        .auto_scaling_group_name("warm")
        .min_size(2)
        .max_group_prepared_capacity(2)
        .pool_state(PoolState::Hibernated)
        .instance_reuse_policy(
            InstanceReusePolicy::builder()
                .reuse_on_scale_in(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let groups = moto.groups();
    let state = describe_one(&groups, "warm").await;
    let pool = state.warm_pool.clone().expect("the group's warm pool");
    assert_eq!(
        (
            pool.min_size,
            pool.max_prepared,
            pool.pool_state.as_deref(),
            pool.reuse_on_scale_in
        ),
        (2, Some(2), Some("Hibernated"), Some(false))
    );
    let bounds = Bounds {
        min: 0,
        max: 10,
        allow_unprotected_scale_in: false,
        warm_max: 5,
    };
    let mut decision = Decision {
        desired: 0,
        reason: String::new(),
        state: None,
        warm: Some(4),
    };
    let writes = plan(&decision, &state, bounds).writes;
    assert_eq!(
        writes,
        vec![Write::WarmPool {
            size: 4,
            pool_state: Some("Hibernated".into()),
            reuse_on_scale_in: Some(false),
        }]
    );
    groups.apply(&id("warm"), &writes[0]).await.unwrap();
    let read = client
        .describe_warm_pool()
        .auto_scaling_group_name("warm")
        .send()
        .await
        .unwrap();
    let config = read.warm_pool_configuration().unwrap();
    assert_eq!(config.min_size(), Some(4));
    assert_eq!(config.max_group_prepared_capacity(), Some(4));
    assert_eq!(config.pool_state(), Some(&PoolState::Hibernated));
    let state = describe_one(&groups, "warm").await;
    assert_eq!(state.warm_pool.as_ref().map(|p| p.min_size), Some(4));
    assert!(
        plan(&decision, &state, bounds).writes.is_empty(),
        "unchanged"
    );
    // Over warm_max: clamped, and said.
    decision.warm = Some(9);
    let p = plan(&decision, &state, bounds);
    assert_eq!(p.warm, Some(5));
    assert!(p.why().unwrap().contains("warm_max 5"), "{:?}", p.why());
}

#[tokio::test]
async fn a_missing_group_is_absent_and_a_write_to_it_names_it() {
    let moto = Moto::start();
    moto.create_group(REGION, &TestGroup::new("here").desired(1))
        .await;
    let groups = moto.groups();
    let described = groups
        .describe(REGION, &names(&["here", "gone"]))
        .await
        .unwrap();
    assert_eq!(described.keys().collect::<Vec<_>>(), ["here"]);
    assert!(groups
        .describe(REGION, &names(&["gone"]))
        .await
        .unwrap()
        .is_empty());

    let err = groups
        .apply(&id("gone"), &Write::Desired(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("gone (us-east-1)"), "{err}");
    // moto answers that one with an HTML 500; this one as AWS does.
    let err = groups
        .apply(
            &id("gone"),
            &Write::DesiredAndBounds {
                desired: 1,
                min: 0,
                max: 2,
            },
        )
        .await
        .unwrap_err();
    assert!(!err.outcome_unknown(), "AWS answered no: {err}");
    let err = err.to_string();
    assert!(err.contains("gone (us-east-1)"), "{err}");
    assert!(
        err.contains("ValidationError: AutoScalingGroup name not found"),
        "{err}"
    );
    assert!(!err.contains("<html"), "{err}");
}

#[tokio::test]
async fn a_region_without_groups_describes_to_nothing() {
    let moto = Moto::start();
    moto.create_group(REGION, &TestGroup::new("pool").desired(1))
        .await;
    let groups = moto.groups();
    // Same name, another region: regions are separate.
    let elsewhere = groups
        .describe("ap-southeast-2", &names(&["pool"]))
        .await
        .unwrap();
    assert!(elsewhere.is_empty());
    // No names: no call at all (an empty list would ask for every group).
    assert!(groups.describe(REGION, &[]).await.unwrap().is_empty());
    assert_eq!(groups.calls().describe, 1);
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_within_the_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let groups = AsgGroups::new(AwsOptions::local(
        format!("http://{closed}"),
        "testing",
        "testing",
    ));
    let started = Instant::now();
    let err = groups
        .describe("eu-west-1", &names(&["pool"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("eu-west-1"), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    // A write that never got a connection was not made, and says so.
    let err = groups
        .apply(&id("pool"), &Write::Desired(3))
        .await
        .unwrap_err();
    assert!(!err.outcome_unknown(), "nothing was sent: {err}");
}

/// AWS made the write, and the connection closed before its answer came:
/// the outcome is unknown — not refused — and describe shows what was made.
#[tokio::test]
async fn a_write_whose_answer_is_lost_has_an_unknown_outcome() {
    let moto = Moto::start();
    moto.create_group(REGION, &TestGroup::new("lost").desired(1).protected())
        .await;
    let proxy = AwsProxy::start(moto.endpoint(), Answer::Drop).await;
    let groups = AsgGroups::new(AwsOptions::local(proxy.endpoint(), KEY, KEY));
    let err = groups
        .apply(&id("lost"), &Write::Desired(5))
        .await
        .unwrap_err();
    assert!(err.outcome_unknown(), "{err}");
    assert!(
        err.to_string().contains("may or may not have been made"),
        "{err}"
    );
    assert!(proxy.writes() >= 1);
    assert_eq!(describe_one(&moto.groups(), "lost").await.desired, 5);
    // Answers that come back are known outcomes again.
    proxy.answer(Answer::Pass);
    groups.apply(&id("lost"), &Write::Desired(2)).await.unwrap();
    assert_eq!(describe_one(&groups, "lost").await.desired, 2);
}

const TOKEN: &str = "CCIPAT_moto_test_token_4f9a";

fn assert_no_token(err: &SecretError) -> String {
    let message = format!("{err} {err:?}");
    assert!(!message.contains(TOKEN), "the token leaked: {message}");
    err.to_string()
}

#[tokio::test]
async fn the_runner_secret_is_read() {
    let moto = Moto::start();
    moto.create_secret(
        "eu-west-1",
        "circleci/runner",
        &format!(r#"{{"circle_token": "{TOKEN}", "resource_class": "acme/linux-large"}}"#),
    )
    .await;
    let secret = read_token_secret(
        &circleci::SECRET,
        "circleci/runner",
        "eu-west-1",
        &moto.options(),
    )
    .await
    .unwrap();
    assert_eq!(secret.token.expose(), TOKEN);
    assert_eq!(secret.queue.as_deref(), Some("acme/linux-large"));
    assert!(!format!("{secret:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_secret_missing_a_field_names_the_field_not_the_token() {
    let moto = Moto::start();
    moto.create_secret(
        REGION,
        "no-class",
        &format!(r#"{{"circle_token": "{TOKEN}"}}"#),
    )
    .await;
    moto.create_secret(REGION, "no-token", r#"{"resource_class": "acme/large"}"#)
        .await;
    moto.create_secret(REGION, "not-json", TOKEN).await;

    // A pool that names its resource class needs only the token: the
    // secret's own is optional (`modes::ready` refuses a pool with neither).
    let secret = read_token_secret(&circleci::SECRET, "no-class", REGION, &moto.options())
        .await
        .unwrap();
    assert_eq!(secret.queue, None);

    let err = read_token_secret(&circleci::SECRET, "no-token", REGION, &moto.options())
        .await
        .unwrap_err();
    let message = assert_no_token(&err);
    assert!(
        message.contains("no-token") && message.contains("`circle_token`"),
        "{message}"
    );

    let err = read_token_secret(&circleci::SECRET, "not-json", REGION, &moto.options())
        .await
        .unwrap_err();
    let message = assert_no_token(&err);
    assert!(
        message.contains("not-json") && message.contains("not a JSON object"),
        "{message}"
    );
}

#[tokio::test]
async fn a_nonexistent_secret_is_named() {
    let moto = Moto::start();
    let err = read_token_secret(
        &circleci::SECRET,
        "circleci/missing",
        REGION,
        &moto.options(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err:?}");
    let message = assert_no_token(&err);
    assert!(
        message.contains("circleci/missing") && message.contains(REGION),
        "{message}"
    );
    assert!(message.contains("SECRET_NAME"), "{message}");
}
