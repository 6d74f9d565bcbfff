//! The main stack, created in moto once per `Source` (CloudFormation, Lambda,
//! EC2, S3, SSM, with the AWS CLI the xtask installs): what the conditions
//! resolve to, as `cloudformation.rs` reads them from the template. A
//! Buildkite stack's function gets `RUNNER_SCALER_SOURCE` and
//! `RUNNER_SCALER_QUEUE` and a CircleCI stack's neither; each launch
//! template holds its source's settings and script, verbatim.
//!
//! moto's quirks, as in `deploy.rs`: the image default is swapped for a
//! parameter this test creates, and secrets are not modelled (their
//! references resolve to nothing), so `SECRET_NAME` and the token's ARN are
//! checked in the template, not here. The template is larger than the
//! 51,200 bytes CloudFormation takes inline, so it goes through S3.

use crate::support;

use base64::Engine;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use support::moto::Moto;

const REGION: &str = "eu-west-1";
const BUCKET: &str = "runner-scaler-sources";
const IMAGE_PARAMETER: &str = "/runner-scaler-test/ubuntu-ami";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The AWS CLI against moto; its JSON answer.
fn aws(moto: &Moto, args: &[&str]) -> Value {
    moto.cli(REGION, args)
}

/// The physical id of a stack's resource.
fn physical_id(moto: &Moto, stack: &str, logical: &str) -> String {
    moto.stack_resource(REGION, stack, logical)
}

#[test]
fn each_source_gets_its_user_data_and_its_scaler_variables() {
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
            &format!("LocationConstraint={REGION}"),
        ],
    );
    // The function's code: any zip (moto does not run it).
    let code = dir.path().join("code.zip");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'w').writestr('bootstrap', '')",
        ])
        .arg(&code)
        .status()
        .unwrap();
    assert!(status.success());
    aws(
        &moto,
        &[
            "s3",
            "cp",
            code.to_str().unwrap(),
            &format!("s3://{BUCKET}/code.zip"),
        ],
    );
    let text =
        std::fs::read_to_string(repo().join("examples/cloudformation/runner-scaler.yaml")).unwrap();
    let canonical =
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id";
    assert!(
        text.contains(canonical),
        "the template's image default moved"
    );
    let template = dir.path().join("runner-scaler.yaml");
    std::fs::write(&template, text.replace(canonical, IMAGE_PARAMETER)).unwrap();
    aws(
        &moto,
        &[
            "s3",
            "cp",
            template.to_str().unwrap(),
            &format!("s3://{BUCKET}/runner-scaler.yaml"),
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

    for (source, own) in [
        ("buildkite", vec!["BuildkiteQueue=linux-large"]),
        (
            "circleci",
            vec!["ResourceClass=acme/linux-large", "CircleToken=circle-token"],
        ),
    ] {
        let stack = format!("ci-{source}");
        let mut parameters: Vec<String> = [
            format!("Source={source}"),
            "RunnerToken=runner-token".into(),
            format!("VpcId={vpc}"),
            format!("Subnets={subnet}"),
            format!("CodeBucket={BUCKET}"),
            "CodeKey=code.zip".into(),
            "Architecture=x86_64".into(),
        ]
        .into_iter()
        .chain(own.iter().map(|p| p.to_string()))
        .collect();
        parameters = parameters
            .iter()
            .map(|p| {
                let (key, value) = p.split_once('=').unwrap();
                format!("ParameterKey={key},ParameterValue={value}")
            })
            .collect();
        let url = format!("https://{BUCKET}.s3.{REGION}.amazonaws.com/runner-scaler.yaml");
        let mut args = vec![
            "cloudformation",
            "create-stack",
            "--stack-name",
            &stack,
            "--template-url",
            &url,
            "--capabilities",
            "CAPABILITY_IAM",
            "--parameters",
        ];
        args.extend(parameters.iter().map(String::as_str));
        aws(&moto, &args);
        let status = aws(
            &moto,
            &["cloudformation", "describe-stacks", "--stack-name", &stack],
        )["Stacks"][0]["StackStatus"]
            .clone();
        assert_eq!(status, "CREATE_COMPLETE", "{source}");

        let function = physical_id(&moto, &stack, "ScalerFunction");
        let variables = aws(
            &moto,
            &[
                "lambda",
                "get-function-configuration",
                "--function-name",
                &function,
            ],
        )["Environment"]["Variables"]
            .clone();
        assert_eq!(
            variables["AUTO_SCALING_GROUP_NAME"],
            format!("{stack}-runners")
        );
        if source == "buildkite" {
            assert_eq!(
                variables["RUNNER_SCALER_SOURCE"], "buildkite",
                "{variables}"
            );
            assert_eq!(
                variables["RUNNER_SCALER_QUEUE"], "linux-large",
                "{variables}"
            );
        } else {
            for name in ["RUNNER_SCALER_SOURCE", "RUNNER_SCALER_QUEUE"] {
                assert!(variables.get(name).is_none(), "{name}: {variables}");
            }
        }

        let launch_template = physical_id(&moto, &stack, "RunnerLaunchTemplate");
        let version = aws(
            &moto,
            &[
                "ec2",
                "describe-launch-template-versions",
                "--launch-template-id",
                &launch_template,
            ],
        );
        let user_data = base64::engine::general_purpose::STANDARD
            .decode(
                version["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let user_data = String::from_utf8(user_data).unwrap();
        let queue_line = if source == "buildkite" {
            "\nexport BUILDKITE_QUEUE='linux-large'\n"
        } else {
            "\nexport BUILDKITE_QUEUE=''\n"
        };
        let (settings, script) = user_data
            .split_once(queue_line)
            .unwrap_or_else(|| panic!("{source}: no {queue_line:?} in {user_data}"));
        assert!(
            settings.contains(&format!(
                "\nexport AUTO_SCALING_GROUP_NAME='{stack}-runners'"
            )),
            "{settings}"
        );
        let name = match source {
            "buildkite" => "install-buildkite-agent-ubuntu.sh",
            _ => "install-runner-ubuntu.sh",
        };
        let expected = std::fs::read_to_string(repo().join("userdata").join(name)).unwrap();
        assert!(
            script == expected,
            "{source}: the user data is not userdata/{name}"
        );
    }
}
