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
//! creation is deployed here. moto runs no Lambda code here (that needs
//! Docker): without it, an invocation answers with the event it received,
//! which shows that the invoke commands deploy.sh prints and the docs show
//! are accepted by the AWS CLI deploy.sh installs (v1) and send the event
//! as the JSON they echo.

use crate::support;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
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
    moto.cli(REGION, args)
}

fn env(moto: &Moto) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.endpoint().to_string()),
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

/// The physical id of a resource of the test's stack.
fn physical_id(moto: &Moto, logical: &str) -> String {
    moto.stack_resource(REGION, STACK, logical)
}

/// A moto account ready for the stack: the bucket, the image parameter, a
/// VPC with a subnet, and the template as moto can take it.
struct Account {
    moto: Moto,
    dir: tempfile::TempDir,
    vpc: String,
    subnet: String,
    template: PathBuf,
}

fn account() -> Account {
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
    Account {
        moto,
        dir,
        vpc,
        subnet,
        template,
    }
}

impl Account {
    /// The stack's required parameters, and a few more.
    fn parameters(&self) -> Vec<String> {
        vec![
            "ResourceClass=acme/linux-large".into(),
            format!("CircleToken={CIRCLE_TOKEN}"),
            "RunnerToken=runner-token".into(),
            format!("VpcId={}", self.vpc),
            format!("Subnets={}", self.subnet),
            format!("ImageId={IMAGE_PARAMETER}"),
            "MaxRunners=6".into(),
            "TimeZone=Europe/Berlin".into(),
            "Policy=policies/business-hours.wasm".into(),
            "PolicyParams=warm=1,hours=08-18".into(),
        ]
    }

    /// `scripts/deploy.sh ARGS` for the stack, with `path` as PATH if given:
    /// its output and everything it printed.
    fn deploy(&self, args: &[&str], path: Option<&str>) -> (Output, String) {
        let mut command = Command::new("bash");
        command
            .arg(repo().join("scripts/deploy.sh"))
            .args(["--stack", STACK, "--bucket", BUCKET, "--region", REGION])
            .arg("--template")
            .arg(&self.template)
            .args(args)
            .args(self.parameters())
            .envs(env(&self.moto));
        if let Some(path) = path {
            command.env("PATH", path);
        }
        let output = command.output().expect("run scripts/deploy.sh");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!log.contains(CIRCLE_TOKEN), "the token leaked: {log}");
        (output, log)
    }

    /// moto's Lambda without Docker: an invocation answers a fixed payload.
    fn lambda_without_docker(&self) {
        let status = Command::new("python3")
            .args([
                "-c",
                "import sys, urllib.request\nurllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/moto-api/config', data=b'{\"lambda\": {\"use_docker\": false}}', headers={'Content-Type': 'application/json'}))",
            ])
            .arg(self.moto.endpoint())
            .status()
            .unwrap();
        assert!(status.success(), "cannot configure moto's Lambda");
    }

    /// Run a shell `command` line (an invoke a user copies) against moto,
    /// which answers with the event it received: the event must arrive as
    /// the JSON the line echoes, not base64 or a refusal of the CLI.
    fn invoke(&self, command: &str) {
        let event = command
            .strip_prefix("echo '")
            .and_then(|rest| rest.split_once("' |"))
            .map(|(event, _)| event)
            .unwrap_or_else(|| {
                panic!("not an `echo '<event>' | aws lambda invoke` line: {command}")
            });
        assert!(!command.contains("--cli-binary-format"), "{command}");
        let answer = self.run_line(command);
        assert!(
            answer.contains("\"StatusCode\": 200"),
            "{command}: {answer}"
        );
        assert!(
            answer.contains(event),
            "{command}: moto received another event: {answer}"
        );
    }

    /// Run a shell `command` line against moto: what it printed.
    fn run_line(&self, command: &str) -> String {
        let output = Command::new("bash")
            .args(["-c", command])
            .envs(env(&self.moto))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{command}:\n{text}");
        text
    }
}

/// The lines deploy.sh prints after `label`.
fn printed<'a>(log: &'a str, label: &str) -> &'a str {
    log.lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("deploy.sh printed no {label:?}: {log}"))
        .trim()
}

/// The invoke commands of `docs/deploying.md`, continuation lines joined,
/// comments dropped.
fn documented_invokes() -> Vec<String> {
    let doc = std::fs::read_to_string(repo().join("docs/deploying.md")).unwrap();
    let mut commands = vec![];
    let mut current = String::new();
    for line in doc.lines() {
        let line = line.trim();
        if current.is_empty()
            && !(line.starts_with("echo '{") && line.contains("aws lambda invoke"))
        {
            continue;
        }
        let code = line.split(" #").next().unwrap().trim_end();
        match code.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(code);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

#[test]
fn one_command_packages_uploads_and_creates_the_stack() {
    let account = account();
    let moto = &account.moto;
    let zip = account.dir.path().join("bundle.zip");
    let built = support::unpack(&support::bundle_zip());
    let bootstrap = built.path().join("bootstrap");
    let (output, log) = account.deploy(
        &[
            "--arch",
            "x86_64",
            "--out",
            zip.to_str().unwrap(),
            "--binary",
            bootstrap.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{log}");
    // Its progress, as it went.
    assert!(log.contains("change set deploy-"), "{log}");
    assert!(
        log.contains(&format!("stack {STACK}: CREATE_COMPLETE")),
        "{log}"
    );

    let stack = aws(
        moto,
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
    let objects = aws(moto, &["s3api", "list-objects-v2", "--bucket", BUCKET]);
    let object = objects["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["Key"] == key.as_str())
        .unwrap_or_else(|| panic!("no {key}: {objects}"));
    assert_eq!(object["Size"], bytes.len() as u64);

    // The function runs that zip, as the bootstrap of provided.al2023.
    let function_name = physical_id(moto, "ScalerFunction");
    let function = aws(
        moto,
        &["lambda", "get-function", "--function-name", &function_name],
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
    let scaler = statements(moto, &physical_id(moto, "ScalerRole"), "scaler");
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
    ] {
        assert_eq!(resource_of(&scaler, write), GROUP_ARN, "{write}");
    }
    resource_of(&scaler, "secretsmanager:GetSecretValue");
    let runner = statements(moto, &physical_id(moto, "RunnerRole"), "runner");
    assert_eq!(
        resource_of(&runner, "autoscaling:TerminateInstanceInAutoScalingGroup"),
        GROUP_ARN
    );

    // The group the roles are scoped to exists, bounded by MaxRunners.
    let groups = aws(
        moto,
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

    // The dashboard exists, its body JSON as CloudFormation filled it in.
    let dashboard = aws(
        moto,
        &[
            "cloudwatch",
            "get-dashboard",
            "--dashboard-name",
            &format!("{STACK}-runner-scaler"),
        ],
    );
    let body: Value = serde_json::from_str(dashboard["DashboardBody"].as_str().unwrap()).unwrap();
    assert!(
        body.to_string().contains("\"ci-runners\""),
        "the dashboard names the group: {body}"
    );

    // Issue 27: the invoke commands deploy.sh prints, and those the docs
    // show, work with the AWS CLI it installs (v1 refuses v2's
    // --cli-binary-format) and send the event they echo, which moto answers.
    account.lambda_without_docker();
    for label in ["Try it without a write:", "Check its permissions:"] {
        account.invoke(printed(&log, label));
    }
    let documented = documented_invokes();
    assert!(documented.len() >= 3, "{documented:?}");
    for command in documented {
        account.invoke(
            &command
                .replace("ci-runners-scaler", &function_name)
                .replace("cci-runner-lambda-function", &function_name),
        );
    }
}

/// Issue 27: a downloaded bundle deploys where no Rust is installed
/// (`--zip` alone, its architecture read from its bootstrap; cargo, rustc
/// and rustup are stubs on PATH that fail loudly), and deploy.sh no longer
/// waits in silence and without limit on a stack left in
/// REVIEW_IN_PROGRESS: with no time left (`--timeout 0`) it stops after
/// creating its change set, exits 1 and says where the stack is; run again,
/// it creates the stack that was left in review.
#[test]
fn a_downloaded_zip_deploys_without_rust_and_a_timeout_says_where_the_stack_is() {
    let account = account();
    let stubs = account.dir.path().join("no-rust");
    std::fs::create_dir(&stubs).unwrap();
    for tool in ["cargo", "rustc", "rustup", "cargo-zigbuild"] {
        let stub = stubs.join(tool);
        std::fs::write(
            &stub,
            format!("#!/bin/sh\necho \"STUB: {tool} was called\" >&2\nexit 99\n"),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    // First on PATH: whatever runs `cargo` runs the stub.
    let path: Vec<PathBuf> = std::iter::once(stubs.clone())
        .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap()))
        .collect();
    let path = std::env::join_paths(path).unwrap();
    let path = Some(path.to_str().unwrap());
    let zip = support::bundle_zip();
    let zip = zip.to_str().unwrap();

    let (output, log) = account.deploy(&["--zip", zip, "--timeout", "0"], path);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("deploy: timed out after 0s"), "{log}");
    assert!(
        log.contains(&format!("deploy: stack {STACK} is REVIEW_IN_PROGRESS")),
        "{log}"
    );
    let (output, log) = account.deploy(&["--timeout", "soon", "--zip", zip], path);
    assert!(!output.status.success());
    assert!(log.contains("must be a number of seconds"), "{log}");
    // An --arch that contradicts the zip is refused before anything is sent.
    let (output, log) = account.deploy(&["--zip", zip, "--arch", "arm64"], path);
    assert!(!output.status.success());
    assert!(
        log.contains("holds an x86_64 bootstrap, not arm64"),
        "{log}"
    );

    let (output, log) = account.deploy(&["--zip", zip], path);
    assert!(output.status.success(), "{log}");
    assert!(!log.contains("STUB:"), "Rust was called: {log}");
    assert!(
        log.contains(&format!("==> stack {STACK}: REVIEW_IN_PROGRESS;")),
        "{log}"
    );
    assert!(
        log.contains(&format!("stack {STACK}: CREATE_COMPLETE")),
        "{log}"
    );
    // moto keeps the stack left in review beside the one created, and
    // answers the name with the first: find the created one by its id.
    let stacks = aws(&account.moto, &["cloudformation", "list-stacks"]);
    let id = stacks["StackSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["StackName"] == STACK && s["StackStatus"] == "CREATE_COMPLETE")
        .unwrap_or_else(|| panic!("no stack created: {stacks}"))["StackId"]
        .as_str()
        .unwrap()
        .to_string();
    let stack = aws(
        &account.moto,
        &["cloudformation", "describe-stacks", "--stack-name", &id],
    );
    let created = &stack["Stacks"][0];
    let architecture = created["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ParameterKey"] == "Architecture")
        .map(|p| p["ParameterValue"].clone());
    assert_eq!(
        architecture,
        Some(Value::from("x86_64")),
        "read from the zip"
    );
    let function = aws(
        &account.moto,
        &[
            "lambda",
            "get-function",
            "--function-name",
            &format!("{STACK}-scaler"),
        ],
    );
    let digest = Sha256::digest(std::fs::read(zip).unwrap());
    assert_eq!(
        function["Configuration"]["CodeSha256"],
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
}
