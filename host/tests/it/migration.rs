//! Migrating from the original tool: its role, refused as AWS refuses it (a
//! proxy in front of moto answers AccessDenied in AWS's own shapes,
//! `support/refusing_proxy.rs`), must be told what to grant, by the tick,
//! by the Lambda's setup and by `check --probe`; and the environment route
//! takes what the original's users have (a binary secret, a secret without
//! a resource class, a token in SSM, a time zone).

use crate::support;

use std::process::{Output, Stdio};
use std::time::Duration;
use support::fake_circleci::FakeCircleCi;
use support::fake_lambda::{scheduled_event, FakeLambda, Posted};
use support::moto::{Moto, TestGroup};
use support::refusing_proxy::{RefusingProxy, ORIGINAL_ROLE, PRINCIPAL, ROLE};

const REGION: &str = "eu-west-1";
const TOKEN: &str = "CCIPAT_migration_redaction_canary_42";
const SECRET: &str = "cci-runner-lambda-secrets";
const GROUP: &str = "cci-runner-auto-scaling-group";
const CLASS: &str = "acme/seed";
const DESCRIBE: &str = "autoscaling:DescribeAutoScalingGroups";
const GROUP_ARN: &str = "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:6d9a8b9e-51e2-4c3b-9a1f-2c4f0e3d7a11:autoScalingGroupName/cci-runner-auto-scaling-group";

/// The original tool's set-up on moto: its group (max 10, protected, empty),
/// its secret, and four waiting jobs and one running.
async fn original_setup() -> (Moto, FakeCircleCi) {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new(GROUP).desired(0).protected())
        .await;
    let secret = format!("{{\"circle_token\": \"{TOKEN}\", \"resource_class\": \"{CLASS}\"}}");
    moto.create_secret(REGION, SECRET, &secret).await;
    circleci.set_queue(CLASS, 4, 1);
    (moto, circleci)
}

/// The original tool's five variables, with `endpoint` as AWS.
fn original_env(endpoint: &str, circleci: &FakeCircleCi) -> Vec<(String, String)> {
    [
        ("SECRET_NAME", SECRET.to_string()),
        ("SECRET_REGION", REGION.into()),
        ("AUTO_SCALING_MAX", "8".into()),
        ("AUTO_SCALING_GROUP_NAME", GROUP.into()),
        ("AUTO_SCALING_GROUP_REGION", REGION.into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
        ("CIRCLECI_RUNNER_API_URL", circleci.base_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Run the binary with a clean environment plus `env` and moto's keys.
async fn runner_scaler(args: &[&str], env: &[(String, String)]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("RUNNER_SCALER_CACHE_DIR", cache.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run runner-scaler")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Run the binary as Lambda's bootstrap for `events`, and return what it
/// posted and printed.
async fn as_lambda(
    env: &[(String, String)],
    events: Vec<serde_json::Value>,
) -> (Vec<Posted>, String) {
    let count = events.len();
    let lambda = FakeLambda::start(events).await;
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", lambda.runtime_api())
        .env("AWS_LAMBDA_FUNCTION_NAME", "cci-runner-lambda-function")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("LAMBDA_TASK_ROOT", root.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("RUNNER_SCALER_CACHE_DIR", cache.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start runner-scaler");
    let posted = lambda.wait_for(count, Duration::from_secs(60)).await;
    let _ = child.start_kill();
    let output = child.wait_with_output().await.unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (posted.into_iter().map(|(_, p)| p).collect(), printed)
}

async fn desired(moto: &Moto) -> i32 {
    moto.group(REGION, GROUP)
        .await
        .unwrap()
        .desired_capacity()
        .unwrap()
}

#[tokio::test]
async fn the_original_role_is_told_which_statement_to_add() {
    let (moto, circleci) = original_setup().await;
    let proxy = RefusingProxy::start(moto.endpoint(), &ORIGINAL_ROLE).await;
    let env = original_env(&proxy.endpoint(), &circleci);
    let (posted, printed) = as_lambda(&env, vec![scheduled_event()]).await;
    assert_eq!(posted.len(), 1, "{posted:?}\n{printed}");
    assert!(
        matches!(posted[0], Posted::Error { .. }),
        "not an invocation error: {posted:?}\n{printed}"
    );
    assert_eq!(posted[0].json()["errorType"], "RunnerScaler.AllPoolsHeld");
    let message = posted[0].json()["errorMessage"]
        .as_str()
        .unwrap()
        .to_string();
    for words in [
        format!("AccessDenied: AWS refused {DESCRIBE} to {PRINCIPAL}"),
        format!("Add this statement to the role {ROLE}"),
        format!(r#"{{"Action":"{DESCRIBE}","Effect":"Allow","Resource":"*"}}"#),
        format!("aws iam put-role-policy --role-name {ROLE}"),
    ] {
        assert!(message.contains(&words), "{words}\nnot in: {message}");
    }
    assert!(!message.contains(TOKEN) && !printed.contains(TOKEN));
    assert_eq!(proxy.refused(), [DESCRIBE]);
    assert_eq!(desired(&moto).await, 0, "nothing written");
}

#[tokio::test]
async fn a_refused_write_names_the_groups_arn_and_writes_nothing() {
    let (moto, circleci) = original_setup().await;
    let allowed = [ORIGINAL_ROLE[0], ORIGINAL_ROLE[1], DESCRIBE];
    let proxy = RefusingProxy::start(moto.endpoint(), &allowed).await;
    let output = runner_scaler(&["once"], &original_env(&proxy.endpoint(), &circleci)).await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    let statement = format!(
        r#"{{"Action":"autoscaling:SetDesiredCapacity","Effect":"Allow","Resource":"{GROUP_ARN}"}}"#
    );
    assert!(
        printed.contains(&statement),
        "{statement}\nnot in: {printed}"
    );
    assert!(printed.contains("HELD"), "{printed}");
    assert_eq!(proxy.refused(), ["autoscaling:SetDesiredCapacity"]);
    assert_eq!(desired(&moto).await, 0);
}

#[tokio::test]
async fn a_refused_secret_fails_setup_with_the_statement() {
    let (moto, circleci) = original_setup().await;
    let proxy = RefusingProxy::start(moto.endpoint(), &[ORIGINAL_ROLE[0], DESCRIBE]).await;
    let env = original_env(&proxy.endpoint(), &circleci);
    let (posted, printed) = as_lambda(&env, vec![scheduled_event()]).await;
    assert_eq!(posted.len(), 1, "{posted:?}\n{printed}");
    assert!(matches!(posted[0], Posted::InitError { .. }), "{posted:?}");
    let message = posted[0].json()["errorMessage"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&format!("cannot read the secret {SECRET} in {REGION}"))
            && message.contains(
                r#""Resource":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:cci-runner-lambda-secrets-??????""#
            )
            && message.contains("secretsmanager:GetSecretValue"),
        "{message}"
    );
}

/// `check --probe` with the original role, then with describe added, then
/// with every permission: what it reports, and that it changes nothing.
#[tokio::test]
async fn check_probe_names_each_missing_permission_and_changes_nothing() {
    let (moto, circleci) = original_setup().await;
    let env = original_env(moto.endpoint(), &circleci);

    let proxy = RefusingProxy::start(moto.endpoint(), &ORIGINAL_ROLE).await;
    let mut through_proxy = env.clone();
    through_proxy.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint()));
    let output = runner_scaler(&["check", "--probe"], &through_proxy).await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    for line in [
        format!("ok       secretsmanager:GetSecretValue on {SECRET} ({REGION})"),
        format!("REFUSED  {DESCRIBE} on * ({REGION}): AccessDenied"),
        format!("ok       autoscaling:UpdateAutoScalingGroup on {GROUP} ({REGION})"),
        format!("skipped  autoscaling:SetDesiredCapacity on {GROUP} ({REGION}): not tried"),
        format!("skipped  autoscaling:CreateOrUpdateTags on {GROUP} ({REGION}): not needed"),
        format!("skipped  autoscaling:PutWarmPool on {GROUP} ({REGION}): not needed"),
        format!("ok       circleci API on \"{CLASS}\" ("),
        "probe: 1 of 8 calls refused or failed".to_string(),
    ] {
        assert!(printed.contains(&line), "{line}\nnot in:\n{printed}");
    }

    let proxy = RefusingProxy::start(
        moto.endpoint(),
        &[ORIGINAL_ROLE[0], ORIGINAL_ROLE[1], DESCRIBE],
    )
    .await;
    through_proxy.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint()));
    let output = runner_scaler(&["check", "--probe"], &through_proxy).await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains(&format!(
            "REFUSED  autoscaling:SetDesiredCapacity on {GROUP} ({REGION}): AccessDenied: AWS refused \
             autoscaling:SetDesiredCapacity to {PRINCIPAL} on {GROUP_ARN}"
        )),
        "{printed}"
    );
    assert!(printed.contains("probe: 1 of 8 calls"), "{printed}");

    // Every permission (moto itself), and a policy that keeps state, so the
    // tag calls are tried too.
    let mut full = env.clone();
    full.push((
        "RUNNER_SCALER_POLICY".into(),
        support::policy_file("cooldown").display().to_string(),
    ));
    let before = moto.group(REGION, GROUP).await.unwrap();
    let output = runner_scaler(&["check", "--probe"], &full).await;
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("probe as arn:aws:"), "{printed}");
    assert!(printed.contains("probe: all 8 calls allowed"), "{printed}");
    assert!(
        printed.contains("ok       autoscaling:CreateOrUpdateTags")
            && printed.contains("ok       autoscaling:DeleteTags"),
        "{printed}"
    );
    let after = moto.group(REGION, GROUP).await.unwrap();
    assert_eq!(after.desired_capacity(), before.desired_capacity());
    assert_eq!(
        (after.min_size(), after.max_size()),
        (before.min_size(), before.max_size())
    );
    assert!(
        !after
            .tags()
            .iter()
            .any(|t| t.key() == Some("runner-scaler:probe")),
        "the probe's tag was left: {:?}",
        after.tags()
    );
}

#[tokio::test]
async fn the_function_probes_its_own_role_on_request() {
    let (moto, circleci) = original_setup().await;
    let proxy = RefusingProxy::start(
        moto.endpoint(),
        &[ORIGINAL_ROLE[0], ORIGINAL_ROLE[1], DESCRIBE],
    )
    .await;
    let env = original_env(&proxy.endpoint(), &circleci);
    let (posted, printed) = as_lambda(&env, vec![serde_json::json!({ "probe": true })]).await;
    assert_eq!(posted.len(), 1, "{posted:?}\n{printed}");
    assert!(
        matches!(posted[0], Posted::Error { .. }),
        "not an invocation error: {posted:?}\n{printed}"
    );
    assert_eq!(posted[0].json()["errorType"], "RunnerScaler.ProbeRefused");
    let message = posted[0].json()["errorMessage"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("REFUSED  autoscaling:SetDesiredCapacity"),
        "{message}"
    );
    assert_eq!(desired(&moto).await, 0, "a probe is not a tick");
}

#[tokio::test]
async fn the_token_may_come_from_an_ssm_securestring() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new(GROUP).desired(0).protected())
        .await;
    moto.put_parameter(REGION, "/ci/circle-token", TOKEN, true)
        .await;
    circleci.set_queue(CLASS, 2, 1);
    let mut env = original_env(moto.endpoint(), &circleci);
    env.retain(|(k, _)| !k.starts_with("SECRET_"));
    env.push((
        "RUNNER_SCALER_TOKEN_PARAMETER".into(),
        "/ci/circle-token".into(),
    ));
    env.push(("RUNNER_SCALER_RESOURCE_CLASS".into(), CLASS.into()));
    let output = runner_scaler(&["once"], &env).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(desired(&moto).await, 3);
    assert!(!text(&output).contains(TOKEN));

    // A parameter that is missing is named, with the variable to check.
    env.retain(|(k, _)| k != "RUNNER_SCALER_TOKEN_PARAMETER");
    env.push(("RUNNER_SCALER_TOKEN_PARAMETER".into(), "/ci/nothing".into()));
    let output = runner_scaler(&["once"], &env).await;
    assert!(!output.status.success());
    assert!(
        text(&output).contains("the SSM parameter /ci/nothing does not exist in eu-west-1")
            && text(&output).contains("RUNNER_SCALER_TOKEN_PARAMETER"),
        "{}",
        text(&output)
    );
}

/// The original tool decoded a binary secret (base64 text of the JSON); and
/// a secret may leave out the resource class when the pool names it.
#[tokio::test]
async fn binary_secrets_and_secrets_without_a_resource_class_are_read() {
    use base64::Engine;
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new(GROUP).desired(0).protected())
        .await;
    circleci.set_queue(CLASS, 1, 1);
    let json = format!("{{\"circle_token\": \"{TOKEN}\", \"resource_class\": \"{CLASS}\"}}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    moto.create_binary_secret(REGION, "binary", encoded.as_bytes())
        .await;
    moto.create_secret(
        REGION,
        "token-only",
        &format!("{{\"circle_token\": \"{TOKEN}\"}}"),
    )
    .await;
    let env = |secret: &str, class: Option<&str>| {
        let mut env = original_env(moto.endpoint(), &circleci);
        env.retain(|(k, _)| k != "SECRET_NAME");
        env.push(("SECRET_NAME".into(), secret.into()));
        if let Some(class) = class {
            env.push(("RUNNER_SCALER_RESOURCE_CLASS".into(), class.into()));
        }
        env
    };
    let output = runner_scaler(&["once"], &env("binary", None)).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(desired(&moto).await, 2);

    circleci.set_queue(CLASS, 3, 1);
    let output = runner_scaler(&["once"], &env("token-only", Some(CLASS))).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(desired(&moto).await, 4);

    // Neither the secret nor the pool names one: the message says where to.
    let output = runner_scaler(&["once"], &env("token-only", None)).await;
    assert!(!output.status.success());
    assert!(
        text(&output).contains("names no resource_class")
            && text(&output).contains("RUNNER_SCALER_RESOURCE_CLASS"),
        "{}",
        text(&output)
    );
    assert!(!text(&output).contains(TOKEN));
}

#[tokio::test]
async fn the_environment_sets_the_pools_time_zone() {
    let circleci = FakeCircleCi::start(TOKEN).await;
    let mut env = original_env("http://127.0.0.1:9", &circleci);
    env.push(("RUNNER_SCALER_TIME_ZONE".into(), "Europe/Berlin".into()));
    let output = runner_scaler(&["check"], &env).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("time zone Europe/Berlin"),
        "{}",
        text(&output)
    );
    env.push(("RUNNER_SCALER_TIME_ZONE".into(), "Berlin".into()));
    let output = runner_scaler(&["check"], &env).await;
    assert!(!output.status.success());
    assert!(
        text(&output).contains("RUNNER_SCALER_TIME_ZONE: \"Berlin\" is not an IANA time zone"),
        "{}",
        text(&output)
    );
}
