//! The CloudFormation template (`examples/cloudformation/runner-scaler.yaml`)
//! and the hand-set-up IAM policies (`examples/iam/`): least privilege as
//! the issue defines it, the user data identical to `userdata/`, and the
//! function wired as the Lambda mode expects. cfn-lint runs in the xtask.

use serde_json::Value;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Value {
    let path = repo().join("examples/cloudformation/runner-scaler.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|err| {
        panic!(
            "{}: not plain YAML ({err}); write intrinsic functions in the long form (Fn::Sub, not !Sub)",
            path.display()
        )
    })
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Resources"][name]["Properties"]
}

/// Every (actions, resource) pair allowed by a role's inline policies. A
/// statement under `Fn::If` counts: it is allowed when its condition holds.
fn statements(role: &Value) -> Vec<(Vec<String>, Value)> {
    let mut out = vec![];
    for policy in role["Policies"].as_array().unwrap() {
        for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
            let statement = conditional(statement).map_or(statement, |(_, then)| then);
            assert_eq!(statement["Effect"], "Allow", "{statement}");
            out.push((strings(&statement["Action"]), statement["Resource"].clone()));
        }
    }
    out
}

/// `Fn::If: [condition, value, AWS::NoValue]`: the condition and the value.
fn conditional(value: &Value) -> Option<(&str, &Value)> {
    let branches = value.get("Fn::If")?.as_array()?;
    assert_eq!(branches.len(), 3, "{value}");
    assert_eq!(branches[2]["Ref"], "AWS::NoValue", "{value}");
    Some((branches[0].as_str().unwrap(), &branches[1]))
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        other => panic!("not a string or list: {other}"),
    }
}

/// Whether `resource` is `*` (or a list that holds it).
fn is_star(resource: &Value) -> bool {
    match resource {
        Value::String(s) => s == "*",
        Value::Array(items) => items.iter().any(is_star),
        _ => false,
    }
}

/// The only action the APIs force onto `*`.
const DESCRIBE: &str = "autoscaling:DescribeAutoScalingGroups";
const GROUP_ARN: &str = "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/${AWS::StackName}-runners";

#[test]
fn the_scaler_role_has_no_write_on_star_and_each_grant_is_scoped() {
    let template = template();
    let statements = statements(resource(&template, "ScalerRole"));
    for (actions, resource) in &statements {
        if is_star(resource) {
            assert_eq!(actions, &[DESCRIBE], "only describe may be on *");
        }
        for action in actions {
            assert!(!action.contains('*'), "no wildcard actions: {action}");
        }
    }
    let granted = |action: &str| -> Value {
        statements
            .iter()
            .find(|(actions, _)| actions.iter().any(|a| a == action))
            .unwrap_or_else(|| panic!("{action} is not granted"))
            .1
            .clone()
    };
    for write in [
        "autoscaling:SetDesiredCapacity",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:CreateOrUpdateTags",
        "autoscaling:DeleteTags",
    ] {
        assert_eq!(granted(write)["Fn::Sub"], GROUP_ARN, "{write}");
    }
    assert_eq!(
        granted("secretsmanager:GetSecretValue")["Ref"],
        "ScalerSecret"
    );
    assert_eq!(
        granted("logs:PutLogEvents")["Fn::GetAtt"],
        serde_json::json!(["ScalerLogGroup", "Arn"])
    );
    // The group the ARN names is the group the template creates.
    assert_eq!(
        resource(&template, "RunnerGroup")["AutoScalingGroupName"]["Fn::Sub"],
        "${AWS::StackName}-runners"
    );
}

#[test]
fn the_runner_role_reads_its_token_leaves_its_group_and_completes_its_hook_only() {
    let template = template();
    let role = resource(&template, "RunnerRole");
    let mut statements = statements(role);
    statements.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(statements.len(), 3, "{statements:?}");
    assert_eq!(statements[0].0, ["autoscaling:CompleteLifecycleAction"]);
    assert_eq!(statements[0].1["Fn::Sub"], GROUP_ARN);
    assert_eq!(
        statements[1].0,
        ["autoscaling:TerminateInstanceInAutoScalingGroup"]
    );
    assert_eq!(statements[1].1["Fn::Sub"], GROUP_ARN);
    assert_eq!(statements[2].0, ["secretsmanager:GetSecretValue"]);
    assert_eq!(statements[2].1["Ref"], "RunnerTokenSecret");
    // The hook exists only with a warm pool, and so does the grant.
    let conditions: Vec<&str> = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(conditional)
        .map(|(condition, _)| condition)
        .collect();
    assert_eq!(conditions, ["HasWarmPool"]);
}

#[test]
fn the_launch_template_carries_the_user_data_and_the_safety_settings() {
    let template = template();
    let data = &resource(&template, "RunnerLaunchTemplate")["LaunchTemplateData"];
    assert_eq!(data["InstanceInitiatedShutdownBehavior"], "terminate");
    assert_eq!(data["MetadataOptions"]["HttpTokens"], "required");
    let parts = &data["UserData"]["Fn::Base64"]["Fn::Join"][1];
    let settings = parts[0]["Fn::Sub"][0].as_str().unwrap();
    assert!(settings.starts_with("#!/bin/bash\n"), "{settings}");
    for variable in [
        "RUNNER_TOKEN_SOURCE=secretsmanager",
        "RUNNER_TOKEN_NAME='${RunnerTokenSecret}'",
        "RUNNER_TOKEN_REGION=",
    ] {
        assert!(settings.contains(variable), "{variable}: {settings}");
    }
    let script = std::fs::read_to_string(repo().join("userdata/install-runner-ubuntu.sh")).unwrap();
    assert!(
        parts[1].as_str() == Some(script.as_str()),
        "the template's user data differs from userdata/install-runner-ubuntu.sh: run scripts/sync-template-userdata.sh"
    );
    // EC2 takes at most 16 KiB of user data before base64. Count the settings
    // as CloudFormation fills them in, for the longest stack name (128) and a
    // generous secret ARN.
    let filled = settings
        .replace("${AWS::StackName}", &"s".repeat(128))
        .replace("${AWS::Region}", "ap-southeast-4")
        .replace("${RunnerTokenSecret}", &"a".repeat(200))
        .replace("${LaunchHook}", "runner-ready");
    assert!(!filled.contains("${"), "{filled}");
    let size = filled.len() + script.len();
    assert!(size <= 16 * 1024, "user data of {size} bytes");

    let group = resource(&template, "RunnerGroup");
    assert_eq!(group["NewInstancesProtectedFromScaleIn"], true);
    assert_eq!(group["MinSize"], "0");
    assert!(
        group.get("DesiredCapacity").is_none(),
        "the scaler owns the desired capacity"
    );
}

#[test]
fn the_warm_pool_is_optional_keeps_its_size_and_never_takes_a_used_runner_back() {
    let template = template();
    let parameters = &template["Parameters"];
    assert_eq!(parameters["WarmPoolSize"]["Type"], "Number");
    assert_eq!(parameters["WarmPoolSize"]["MinValue"], 0);
    assert_eq!(parameters["WarmPoolSize"]["Default"], 2);
    assert_eq!(parameters["WarmPoolState"]["Default"], "Stopped");
    assert_eq!(
        parameters["WarmPoolState"]["AllowedValues"],
        serde_json::json!(["Stopped", "Hibernated", "Running"])
    );
    // WarmPoolSize 0: no pool, no hook, no hibernation, no grant.
    assert_eq!(
        template["Conditions"]["HasWarmPool"],
        serde_json::json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "WarmPoolSize"}, "0"]}]})
    );

    let pool = &template["Resources"]["RunnerWarmPool"];
    assert_eq!(pool["Type"], "AWS::AutoScaling::WarmPool");
    assert_eq!(pool["Condition"], "HasWarmPool");
    let pool = &pool["Properties"];
    assert_eq!(pool["AutoScalingGroupName"]["Ref"], "RunnerGroup");
    assert_eq!(pool["PoolState"]["Ref"], "WarmPoolState");
    // A runner that ran its job terminates; it never goes back to the pool.
    assert_eq!(pool["InstanceReusePolicy"]["ReuseOnScaleIn"], false);
    // MinSize = MaxGroupPreparedCapacity is the one absolute pool size AWS
    // offers: WarmPoolSize instances whatever the desired capacity, so the
    // group and its pool hold at most MaxRunners + WarmPoolSize instances.
    assert_eq!(pool["MinSize"]["Ref"], "WarmPoolSize");
    assert_eq!(pool["MaxGroupPreparedCapacity"]["Ref"], "WarmPoolSize");
    let group = resource(&template, "RunnerGroup");
    assert_eq!(group["MaxSize"]["Ref"], "MaxRunners");

    // The launch hook holds a pool instance until its user data is done; one
    // that never reports is terminated, not stopped half-built.
    let hooks = &group["LifecycleHookSpecificationList"]["Fn::If"];
    assert_eq!(hooks[0], "HasWarmPool");
    assert_eq!(hooks[2]["Ref"], "AWS::NoValue");
    assert_eq!(hooks[1].as_array().unwrap().len(), 1);
    let hook = &hooks[1][0];
    assert_eq!(
        hook["LifecycleTransition"],
        "autoscaling:EC2_INSTANCE_LAUNCHING"
    );
    assert_eq!(hook["DefaultResult"], "ABANDON");
    // The user data completes that hook, in the group the role's grants name.
    let hook_name = hook["LifecycleHookName"].as_str().unwrap();
    let data = &resource(&template, "RunnerLaunchTemplate")["LaunchTemplateData"];
    let sub = &data["UserData"]["Fn::Base64"]["Fn::Join"][1][0]["Fn::Sub"];
    let settings = sub[0].as_str().unwrap();
    for variable in [
        "\nexport AUTO_SCALING_GROUP_NAME='${AWS::StackName}-runners'\n",
        "\nexport LIFECYCLE_HOOK_NAME='${LaunchHook}'\n",
    ] {
        assert!(settings.contains(variable), "{variable}: {settings}");
    }
    assert_eq!(
        sub[1]["LaunchHook"],
        serde_json::json!({"Fn::If": ["HasWarmPool", hook_name, ""]})
    );

    // Hibernated: the launch template's option, with a hibernated pool only,
    // and an encrypted root volume.
    assert_eq!(
        template["Conditions"]["HibernatedPool"],
        serde_json::json!({"Fn::And": [
            {"Condition": "HasWarmPool"},
            {"Fn::Equals": [{"Ref": "WarmPoolState"}, "Hibernated"]}
        ]})
    );
    assert_eq!(
        data["HibernationOptions"],
        serde_json::json!({"Fn::If": ["HibernatedPool", {"Configured": true}, {"Ref": "AWS::NoValue"}]})
    );
    assert_eq!(data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"], true);
}

#[test]
fn the_function_runs_the_bootstrap_with_the_original_tools_variables() {
    let template = template();
    let function = resource(&template, "ScalerFunction");
    assert_eq!(function["Runtime"], "provided.al2023");
    assert_eq!(function["Handler"], "bootstrap");
    // The bundle's architecture, which scripts/deploy.sh sets; the default is
    // the one scripts/package-lambda.sh builds by default.
    assert_eq!(
        function["Architectures"],
        serde_json::json!([{ "Ref": "Architecture" }])
    );
    let architecture = &template["Parameters"]["Architecture"];
    assert_eq!(architecture["Default"], "arm64");
    assert_eq!(
        architecture["AllowedValues"],
        serde_json::json!(["arm64", "x86_64"])
    );
    let package = std::fs::read_to_string(repo().join("scripts/package-lambda.sh")).unwrap();
    assert!(
        package.contains("\narch=arm64\n"),
        "package-lambda.sh's default --arch"
    );
    let deploy = std::fs::read_to_string(repo().join("scripts/deploy.sh")).unwrap();
    assert!(
        deploy.contains("\narch=arm64\n"),
        "deploy.sh's default --arch"
    );
    let variables = function["Environment"]["Variables"].as_object().unwrap();
    for name in [
        "SECRET_NAME",
        "SECRET_REGION",
        "AUTO_SCALING_MAX",
        "AUTO_SCALING_GROUP_NAME",
        "AUTO_SCALING_GROUP_REGION",
        "RUNNER_SCALER_POLICY",
        "RUNNER_SCALER_POLICY_PARAMS",
        "RUNNER_SCALER_TIME_ZONE",
        "RUNNER_SCALER_TICK_INTERVAL",
    ] {
        assert!(variables.contains_key(name), "{name}");
    }
    // Ticks every TickInterval within each invocation, which ends before
    // the next minute's: no two invocations overlap.
    assert_eq!(
        variables["RUNNER_SCALER_TICK_INTERVAL"]["Ref"],
        "TickInterval"
    );
    assert_eq!(template["Parameters"]["TickInterval"]["Default"], "10s");
    let timeout = function["Timeout"].as_u64().unwrap();
    assert!((30..60).contains(&timeout), "Timeout {timeout}");
    assert_eq!(variables["RUNNER_SCALER_TIME_ZONE"]["Ref"], "TimeZone");
    assert_eq!(template["Parameters"]["TimeZone"]["Default"], "UTC");
    let logs = resource(&template, "ScalerLogGroup");
    assert!(logs["RetentionInDays"].is_object() || logs["RetentionInDays"].is_number());
    assert_eq!(
        resource(&template, "ScalerSchedule")["ScheduleExpression"],
        "rate(1 minute)"
    );
    for secret in ["CircleToken", "RunnerToken"] {
        assert_eq!(template["Parameters"][secret]["NoEcho"], true, "{secret}");
    }
}

#[test]
fn the_hand_set_up_policies_match_the_template() {
    for (file, star_ok) in [
        ("scaler-role-policy.json", true),
        ("instance-role-policy.json", false),
    ] {
        let path = repo().join("examples/iam").join(file);
        let policy: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        for statement in policy["Statement"].as_array().unwrap() {
            let actions = strings(&statement["Action"]);
            if is_star(&statement["Resource"]) {
                assert!(star_ok && actions == [DESCRIBE], "{file}: {statement}");
            }
            if actions
                .iter()
                .any(|a| a.starts_with("autoscaling:") && a != DESCRIBE)
            {
                let resource = statement["Resource"].as_str().unwrap();
                assert!(
                    resource.ends_with(":autoScalingGroupName/GROUP-NAME"),
                    "{file}: {resource}"
                );
            }
        }
    }
}
