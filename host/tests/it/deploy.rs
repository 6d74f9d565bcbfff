//! `scripts/deploy.sh`, the one deploy command, end to end against moto
//! (S3, CloudFormation, IAM, Lambda, EC2, Auto Scaling, SSM) with the AWS
//! CLI (installed from PyPI by `cargo xtask test`): it packages the bundle,
//! uploads it, and creates the stack, which reaches CREATE_COMPLETE with the
//! function running the uploaded zip and the roles carrying their scoped
//! statements. The bootstrap is the one `cargo xtask test` built
//! (`$RUNNER_SCALER_TEST_BUNDLE`), passed with `--binary`: a release build
//! inside a test would take minutes (the packaging itself, precompiling
//! included, still runs here).
//!
//! moto's quirks, worked around here and nowhere else: it resolves an
//! SSM-typed parameter's default even when the parameter is given, and
//! refuses to create `/aws/service/...` names, so the template's image
//! default is swapped for a parameter this test creates; it does not model
//! `AWS::SecretsManager::Secret` (the stack completes without the secrets,
//! and references to them resolve to nothing), so the secrets are checked
//! in the template (`tests/cloudformation.rs`), not here; it returns inline
//! role policies as Python literals; and a stack update fails inside moto
//! (it resolves the stored image id as a parameter name), so only the
//! creation is deployed here.

use crate::support;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::moto::Moto;

const REGION: &str = "eu-west-1";
const BUCKET: &str = "runner-scaler-code";
const STACK: &str = "ci";
const CIRCLE_TOKEN: &str = "CCIPAT_deploy_redaction_canary_19";
const IMAGE_PARAMETER: &str = "/runner-scaler-test/ubuntu-ami";
const GROUP_ARN: &str =
    "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/ci-runners";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The AWS CLI against moto; its JSON answer.
fn aws(moto: &Moto, args: &[&str]) -> Value {
    let output = Command::new("aws")
        .args(args)
        .args(["--output", "json"])
        .envs(env(moto))
        .output()
        .expect("run the AWS CLI (cargo xtask test installs it: pip install awscli)");
    assert!(
        output.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

fn env(moto: &Moto) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.endpoint().to_string()),
        // `cloudformation deploy --s3-bucket` hands CloudFormation a template
        // URL made of the S3 endpoint; moto reads a path-style URL only when
        // it says "localhost" (at 127.0.0.1 it takes "127" for the bucket).
        // Still the same server, bound to 127.0.0.1.
        (
            "AWS_ENDPOINT_URL_S3",
            moto.endpoint().replace("127.0.0.1", "localhost"),
        ),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_DEFAULT_REGION", REGION.into()),
        ("AWS_REGION", REGION.into()),
    ]
}

/// The template with the image default moto can resolve.
fn template_for_moto(dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(repo().join("examples/cloudformation/runner-scaler.yaml")).unwrap();
    let canonical =
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id";
    assert!(
        text.contains(canonical),
        "the template's image default moved"
    );
    let file = dir.join("runner-scaler.yaml");
    std::fs::write(&file, text.replace(canonical, IMAGE_PARAMETER)).unwrap();
    file
}

/// A role's inline policy statements (moto answers a Python literal).
fn statements(moto: &Moto, role: &str, policy: &str) -> Vec<Value> {
    let answer = aws(
        moto,
        &[
            "iam",
            "get-role-policy",
            "--role-name",
            role,
            "--policy-name",
            policy,
        ],
    );
    let document = match &answer["PolicyDocument"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| {
            let json = Command::new("python3")
                .args([
                    "-c",
                    "import ast, json, sys; print(json.dumps(ast.literal_eval(sys.argv[1])))",
                ])
                .arg(text)
                .output()
                .unwrap();
            serde_json::from_slice(&json.stdout).unwrap()
        }),
        other => other.clone(),
    };
    document["Statement"].as_array().unwrap().clone()
}

fn physical_id(moto: &Moto, logical: &str) -> String {
    // Filtered here: moto fails a --logical-resource-id filter on a stack
    // holding resources it does not model.
    let answer = aws(
        moto,
        &[
            "cloudformation",
            "describe-stack-resources",
            "--stack-name",
            STACK,
        ],
    );
    answer["StackResources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["LogicalResourceId"] == logical)
        .and_then(|r| r["PhysicalResourceId"].as_str())
        .unwrap_or_else(|| panic!("no {logical} in the stack: {answer}"))
        .to_string()
}

#[test]
fn one_command_packages_uploads_and_creates_the_stack() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    aws(
        &moto,
        &[
            "s3api",
            "create-bucket",
            "--bucket",
            BUCKET,
            "--create-bucket-configuration",
            "LocationConstraint=eu-west-1",
        ],
    );
    aws(
        &moto,
        &[
            "ssm",
            "put-parameter",
            "--name",
            IMAGE_PARAMETER,
            "--type",
            "String",
            "--value",
            support::moto::AMI,
        ],
    );
    let vpc = aws(&moto, &["ec2", "create-vpc", "--cidr-block", "10.0.0.0/16"])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let subnet = aws(
        &moto,
        &[
            "ec2",
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            "10.0.1.0/24",
            "--availability-zone",
            "eu-west-1a",
        ],
    )["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_string();
    let template = template_for_moto(dir.path());
    let zip = dir.path().join("bundle.zip");
    let built = support::unpack(&support::bundle_zip());
    let bootstrap = built.path().join("bootstrap");

    let output = Command::new("bash")
        .arg(repo().join("scripts/deploy.sh"))
        .args([
            "--stack", STACK, "--bucket", BUCKET, "--region", REGION, "--arch", "x86_64",
        ])
        .arg("--template")
        .arg(&template)
        .arg("--out")
        .arg(&zip)
        .arg("--binary")
        .arg(&bootstrap)
        .args([
            "ResourceClass=acme/linux-large".to_string(),
            format!("CircleToken={CIRCLE_TOKEN}"),
            "RunnerToken=runner-token".into(),
            format!("VpcId={vpc}"),
            format!("Subnets={subnet}"),
            format!("ImageId={IMAGE_PARAMETER}"),
            "MaxRunners=6".into(),
            "TimeZone=Europe/Berlin".into(),
            "Policy=policies/business-hours.wasm".into(),
            "PolicyParams=warm=1,hours=08-18".into(),
        ])
        .envs(env(&moto))
        .output()
        .expect("run scripts/deploy.sh");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    assert!(!log.contains(CIRCLE_TOKEN), "the token leaked: {log}");

    let stack = aws(
        &moto,
        &["cloudformation", "describe-stacks", "--stack-name", STACK],
    );
    assert_eq!(
        stack["Stacks"][0]["StackStatus"], "CREATE_COMPLETE",
        "{stack}"
    );

    // The uploaded object is the bundle, under a key named by its content.
    let bytes = std::fs::read(&zip).unwrap();
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!(
        "runner-scaler/runner-scaler-lambda-x86_64-{}.zip",
        &hex[..16]
    );
    // Next to it, the template: too large for CloudFormation inline.
    let objects = aws(&moto, &["s3api", "list-objects-v2", "--bucket", BUCKET]);
    let contents = objects["Contents"].as_array().cloned().unwrap_or_default();
    let bundle = contents
        .iter()
        .find(|o| o["Key"] == key.as_str())
        .unwrap_or_else(|| panic!("no {key}: {objects}"));
    assert_eq!(bundle["Size"], bytes.len() as u64);
    let others: Vec<&str> = contents
        .iter()
        .filter_map(|o| o["Key"].as_str())
        .filter(|k| *k != key)
        .collect();
    assert!(
        others.len() == 1
            && others[0].starts_with("runner-scaler/")
            && others[0].ends_with(".template"),
        "{objects}"
    );

    // The function runs that zip, as the bootstrap of provided.al2023.
    let function = aws(
        &moto,
        &[
            "lambda",
            "get-function",
            "--function-name",
            &physical_id(&moto, "ScalerFunction"),
        ],
    );
    let config = &function["Configuration"];
    assert_eq!(
        config["CodeSha256"],
        base64::engine::general_purpose::STANDARD.encode(digest),
        "the function's code is not the uploaded zip"
    );
    assert_eq!(config["Runtime"], "provided.al2023");
    assert_eq!(config["Handler"], "bootstrap");
    let variables = &config["Environment"]["Variables"];
    assert_eq!(variables["RUNNER_SCALER_TIME_ZONE"], "Europe/Berlin");
    assert_eq!(
        variables["RUNNER_SCALER_POLICY"],
        "policies/business-hours.wasm"
    );
    assert_eq!(variables["AUTO_SCALING_GROUP_NAME"], "ci-runners");
    assert_eq!(
        variables["AUTO_SCALING_MAX"].to_string().trim_matches('"'),
        "6"
    );
    let parameters = stack["Stacks"][0]["Parameters"].as_array().unwrap();
    let parameter = |key: &str| {
        parameters
            .iter()
            .find(|p| p["ParameterKey"] == key)
            .map(|p| p["ParameterValue"].clone())
    };
    assert_eq!(parameter("Architecture"), Some(Value::from("x86_64")));
    assert_eq!(parameter("CodeKey"), Some(Value::from(key.as_str())));

    // The roles carry their scoped statements.
    let scaler = statements(&moto, &physical_id(&moto, "ScalerRole"), "scaler");
    let resource_of = |statements: &[Value], action: &str| -> Value {
        statements
            .iter()
            .find(|s| match &s["Action"] {
                Value::String(a) => a == action,
                Value::Array(actions) => actions.iter().any(|a| a == action),
                _ => false,
            })
            .unwrap_or_else(|| panic!("{action} not granted: {statements:?}"))["Resource"]
            .clone()
    };
    assert_eq!(
        resource_of(&scaler, "autoscaling:DescribeAutoScalingGroups"),
        "*"
    );
    for write in [
        "autoscaling:SetDesiredCapacity",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:CreateOrUpdateTags",
        "autoscaling:DeleteTags",
        "autoscaling:PutWarmPool",
    ] {
        assert_eq!(resource_of(&scaler, write), GROUP_ARN, "{write}");
    }
    resource_of(&scaler, "secretsmanager:GetSecretValue");
    let runner = statements(&moto, &physical_id(&moto, "RunnerRole"), "runner");
    assert_eq!(
        resource_of(&runner, "autoscaling:TerminateInstanceInAutoScalingGroup"),
        GROUP_ARN
    );

    // The group the roles are scoped to exists, bounded by MaxRunners.
    let groups = aws(
        &moto,
        &[
            "autoscaling",
            "describe-auto-scaling-groups",
            "--auto-scaling-group-names",
            "ci-runners",
        ],
    );
    let group = &groups["AutoScalingGroups"][0];
    assert_eq!(group["MaxSize"], 6, "{groups}");
    assert_eq!(group["NewInstancesProtectedFromScaleIn"], true);
}
