//! The CloudFormation templates (`examples/cloudformation/runner-scaler.yaml`,
//! the runner image's `runner-image.yaml`), the Packer template and the
//! hand-set-up IAM policies (`examples/iam/`): least privilege as the issue
//! defines it, the user data identical to `userdata/`, and the function wired
//! as the Lambda mode expects. cfn-lint and `packer validate` run in the xtask.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Value {
    template_named("runner-scaler.yaml")
}

fn template_named(name: &str) -> Value {
    let path = repo().join("examples/cloudformation").join(name);
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

/// `Fn::If: [IsBuildkite, {Ref: buildkite}, {Ref: circleci}]`.
fn by_source(buildkite: &str, circleci: &str) -> Value {
    serde_json::json!({"Fn::If": ["IsBuildkite", {"Ref": buildkite}, {"Ref": circleci}]})
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
        "autoscaling:PutWarmPool",
    ] {
        assert_eq!(granted(write)["Fn::Sub"], GROUP_ARN, "{write}");
    }
    // One secret: the original tool's (CircleCI), or the agent token's,
    // which the instances read too (Buildkite). The one SECRET_NAME names.
    let secret = granted("secretsmanager:GetSecretValue");
    assert_eq!(secret, by_source("RunnerTokenSecret", "ScalerSecret"));
    assert_eq!(
        resource(&template, "ScalerFunction")["Environment"]["Variables"]["SECRET_NAME"],
        secret
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
    // Source's script: Buildkite's, or CircleCI's.
    let scripts = &parts[1]["Fn::If"];
    assert_eq!(scripts[0], "IsBuildkite");
    for (branch, name) in [
        (1, "install-buildkite-agent-ubuntu.sh"),
        (2, "install-runner-ubuntu.sh"),
    ] {
        let script = std::fs::read_to_string(repo().join("userdata").join(name)).unwrap();
        assert!(
            scripts[branch].as_str() == Some(script.as_str()),
            "the template's user data differs from userdata/{name}: run scripts/sync-template-userdata.sh"
        );
        // EC2 takes at most 16 KiB of user data before base64. Count the
        // settings as CloudFormation fills them in, for the longest stack
        // name (128), a generous secret ARN and the longest queue.
        let queue_max = template["Parameters"]["BuildkiteQueue"]["MaxLength"]
            .as_u64()
            .unwrap() as usize;
        let filled = settings
            .replace("${AWS::StackName}", &"s".repeat(128))
            .replace("${AWS::Region}", "ap-southeast-4")
            .replace("${RunnerTokenSecret}", &"a".repeat(200))
            .replace("${LaunchHook}", "runner-ready")
            .replace("${BuildkiteQueue}", &"q".repeat(queue_max));
        assert!(!filled.contains("${"), "{filled}");
        let size = filled.len() + script.len();
        assert!(size <= 16 * 1024, "{name}: user data of {size} bytes");
        println!("{name}: at most {size} bytes of user data, of 16384");
    }

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

/// The value of the first `[[ "$NAME" =~ ^...$ ]]` test in a script: what
/// it accepts for that setting.
fn script_pattern(script: &str, name: &str) -> String {
    let prefix = format!("[[ \"${name}\" =~ ^");
    let start = script.find(&prefix).unwrap_or_else(|| panic!("{name}")) + prefix.len();
    script[start..].split("$ ]]").next().unwrap().to_string()
}

#[test]
fn the_source_picks_the_user_data_the_secret_and_the_scalers_variables() {
    let template = template();
    let parameters = &template["Parameters"];
    assert_eq!(parameters["Source"]["Default"], "circleci");
    assert_eq!(
        parameters["Source"]["AllowedValues"],
        serde_json::json!(["circleci", "buildkite"])
    );
    for (condition, source) in [("IsBuildkite", "buildkite"), ("IsCircleCI", "circleci")] {
        assert_eq!(
            template["Conditions"][condition],
            serde_json::json!({"Fn::Equals": [{"Ref": "Source"}, source]})
        );
    }

    // What each source needs is refused before anything is created: the
    // parameters that only one source takes default to empty.
    let required = |rule: &str| -> (Value, Vec<String>) {
        let rule = &template["Rules"][rule];
        let asserted = rule["Assertions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|assertion| {
                let not_empty = &assertion["Assert"]["Fn::Not"][0]["Fn::Equals"];
                assert_eq!(not_empty[1], "", "{assertion}");
                assert!(assertion["AssertDescription"].is_string(), "{assertion}");
                not_empty[0]["Ref"].as_str().unwrap().to_string()
            })
            .collect();
        (rule["RuleCondition"].clone(), asserted)
    };
    let (when, needs) = required("CircleCINeedsAResourceClassAndAToken");
    assert_eq!(when, template["Conditions"]["IsCircleCI"]);
    assert_eq!(needs, ["ResourceClass", "CircleToken"]);
    let (when, needs) = required("BuildkiteNeedsAQueue");
    assert_eq!(when, template["Conditions"]["IsBuildkite"]);
    assert_eq!(needs, ["BuildkiteQueue"]);
    for name in ["ResourceClass", "CircleToken", "BuildkiteQueue"] {
        assert_eq!(parameters[name]["Default"], "", "{name}");
    }
    // RunnerToken serves both: the instances register with it.
    assert_eq!(parameters["RunnerToken"]["MinLength"], 1);

    // The queue goes into the user data's settings, in single quotes, and the
    // script accepts every name the parameter does.
    let queue = &parameters["BuildkiteQueue"];
    let buildkite =
        std::fs::read_to_string(repo().join("userdata/install-buildkite-agent-ubuntu.sh")).unwrap();
    assert_eq!(
        queue["AllowedPattern"],
        format!("|{}", script_pattern(&buildkite, "BUILDKITE_QUEUE"))
    );
    assert!(!queue["AllowedPattern"].as_str().unwrap().contains('\''));
    let data = &resource(&template, "RunnerLaunchTemplate")["LaunchTemplateData"];
    let settings = data["UserData"]["Fn::Base64"]["Fn::Join"][1][0]["Fn::Sub"][0]
        .as_str()
        .unwrap();
    assert!(
        settings.contains("\nexport BUILDKITE_QUEUE='${BuildkiteQueue}'\n"),
        "{settings}"
    );

    // The original tool's secret exists for CircleCI only; with Buildkite the
    // scaler reads the agent token, the instances' own secret.
    let scaler_secret = &template["Resources"]["ScalerSecret"];
    assert_eq!(scaler_secret["Condition"], "IsCircleCI");
    assert!(template["Resources"]["RunnerTokenSecret"]
        .get("Condition")
        .is_none());
    let variables = &resource(&template, "ScalerFunction")["Environment"]["Variables"];
    assert_eq!(
        variables["SECRET_NAME"],
        by_source("RunnerTokenSecret", "ScalerSecret")
    );
    // The scaler's source and queue, for Buildkite only: a CircleCI stack's
    // function has the original tool's variables and no other.
    assert_eq!(
        variables["RUNNER_SCALER_SOURCE"],
        serde_json::json!({"Fn::If": ["IsBuildkite", "buildkite", {"Ref": "AWS::NoValue"}]})
    );
    assert_eq!(
        variables["RUNNER_SCALER_QUEUE"],
        serde_json::json!({"Fn::If": ["IsBuildkite", {"Ref": "BuildkiteQueue"}, {"Ref": "AWS::NoValue"}]})
    );
    assert!(variables.get("RUNNER_SCALER_RESOURCE_CLASS").is_none());
    // The instances read the one token secret, whatever the source: their
    // role is the same (the_runner_role_... checks it).
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

/// The figures `emf.rs` writes, as CloudWatch reads them from one line of a
/// pool with every figure known (a shadow and a warm pool included):
/// (namespace, the dimension names, the metric names).
fn emf_figures() -> (String, Vec<String>, Vec<String>) {
    use runner_scaler::report::{Action, PoolReport};
    use runner_scaler::sources::{QueueId, SourceKind};
    let mut report = PoolReport::new(
        "ci-runners",
        "ci-runners",
        "eu-west-1",
        &QueueId::new(SourceKind::CircleCi, "acme/linux"),
        0,
        10,
    );
    report.jobs = Some(runner_scaler::Queue {
        waiting: 3,
        running: 1,
        blocked: None,
    });
    report.capacity = Some(runner_scaler::Capacity {
        warm_pool: Some(runner_scaler::WarmPool {
            instances: Some(1),
            size: 1,
            max: 4,
        }),
        ..Default::default()
    });
    report.warm = Some(2);
    report.desired = Some(4);
    report.action = Action::Applied;
    report.policy_ms = Some(0.02);
    report.shadow = Some(runner_scaler::report::ShadowReport {
        policy: "candidate".into(),
        desired: Some(5),
        ..Default::default()
    });
    let line: Value = serde_json::from_str(&runner_scaler::emf::line(&report, 0)).unwrap();
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    let names = |value: &Value, field: Option<&str>| -> Vec<String> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| match field {
                Some(field) => v[field].as_str().unwrap().to_string(),
                None => v.as_str().unwrap().to_string(),
            })
            .collect()
    };
    (
        directive["Namespace"].as_str().unwrap().to_string(),
        names(&directive["Dimensions"][0], None),
        names(&directive["Metrics"], Some("Name")),
    )
}

/// The metrics an alarm reads: its own, or those of its metric math.
fn alarm_metrics(alarm: &Value) -> Vec<&Value> {
    match alarm.get("Metrics") {
        Some(math) => math
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m.get("MetricStat").map(|s| &s["Metric"]))
            .collect(),
        None => vec![alarm],
    }
}

/// Issue 27: the stack alarms on a held pool and on policy failures with the
/// figures `emf.rs` writes (its namespace, its `Pool` dimension, which the
/// environment route fills with the group's name), and on the function's
/// failed invocations; every alarm notifies `AlarmTopicArn` when it is set,
/// and nothing when it is empty.
#[test]
fn the_alarms_watch_what_the_scaler_emits_and_notify_the_topic_when_one_is_given() {
    let template = template();
    let (namespace, dimensions, emitted) = emf_figures();
    assert_eq!(dimensions, ["Pool"]);
    let alarms: Vec<(&String, &Value)> = template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(name, r)| (name, &r["Properties"]))
        .collect();
    let mut watched = vec![];
    for (name, alarm) in &alarms {
        for metric in alarm_metrics(alarm) {
            let metric_name = metric["MetricName"].as_str().unwrap();
            let dimensions = metric["Dimensions"].as_array().unwrap();
            assert_eq!(dimensions.len(), 1, "{name}");
            if metric["Namespace"] == "AWS/Lambda" {
                assert_eq!(dimensions[0]["Name"], "FunctionName", "{name}");
                assert_eq!(dimensions[0]["Value"]["Ref"], "ScalerFunction", "{name}");
            } else {
                assert_eq!(metric["Namespace"], namespace.as_str(), "{name}");
                assert!(
                    emitted.iter().any(|e| e == metric_name),
                    "{name} watches {metric_name}, which emf.rs does not write ({emitted:?})"
                );
                assert_eq!(dimensions[0]["Name"], "Pool", "{name}");
                // The pool of the environment route is named after its group.
                assert_eq!(dimensions[0]["Value"]["Ref"], "RunnerGroup", "{name}");
            }
            watched.push((metric["Namespace"].as_str().unwrap(), metric_name));
        }
        let notify = serde_json::json!({"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]});
        assert_eq!(alarm["AlarmActions"], notify, "{name}");
        assert_eq!(alarm["OKActions"], notify, "{name}");
    }
    for wanted in [
        ("RunnerScaler", "Holds"),
        ("RunnerScaler", "Decisions"),
        ("RunnerScaler", "PolicyErrors"),
        ("AWS/Lambda", "Errors"),
    ] {
        assert!(watched.contains(&wanted), "no alarm on {wanted:?}");
    }
    // Held: ticks held in periods that decided nothing.
    let held = resource(&template, "PoolHeldAlarm");
    let expression = held["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["ReturnData"] == true)
        .unwrap()["Expression"]
        .as_str()
        .unwrap();
    assert_eq!(expression, "IF(decisions == 0, holds, 0)");
    // The topic is optional.
    let topic = &template["Parameters"]["AlarmTopicArn"];
    assert_eq!(topic["Default"], "");
    assert_eq!(
        template["Conditions"]["HasAlarmTopic"],
        serde_json::json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]})
    );
}

/// The dashboard's body is JSON once CloudFormation fills it in, and every
/// graph reads a figure `emf.rs` writes (or one of the function's own).
#[test]
fn the_dashboard_graphs_what_the_scaler_emits() {
    let template = template();
    let (namespace, _, emitted) = emf_figures();
    let body = resource(&template, "ScalerDashboard")["DashboardBody"]["Fn::Sub"]
        .as_str()
        .unwrap()
        .replace("${AWS::Region}", "eu-west-1")
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::AccountId}", "123456789012")
        .replace("${AWS::StackName}", "ci")
        .replace("${RunnerGroup}", "ci-runners")
        .replace("${ScalerFunction}", "ci-scaler");
    assert!(!body.contains("${"), "{body}");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|err| panic!("{err}: {body}"));
    let mut graphed = vec![];
    let mut alarms_shown = vec![];
    for widget in body["widgets"].as_array().unwrap() {
        if let Some(alarms) = widget["properties"]["alarms"].as_array() {
            alarms_shown.extend(alarms.iter().map(|a| a.as_str().unwrap().to_string()));
        }
        let Some(metrics) = widget["properties"]["metrics"].as_array() else {
            continue;
        };
        // CloudWatch's shorthand: "." repeats the previous row's value at
        // that place, "..." the previous row's rest.
        let mut previous: Vec<Value> = vec![];
        for row in metrics {
            let mut full: Vec<Value> = vec![];
            for (i, cell) in row.as_array().unwrap().iter().enumerate() {
                match cell.as_str() {
                    Some(".") => full.push(previous[i].clone()),
                    Some("...") => full.extend(previous[full.len()..].iter().cloned()),
                    _ => full.push(cell.clone()),
                }
            }
            full.retain(|cell| !cell.is_object());
            let (space, name) = (full[0].as_str().unwrap(), full[1].as_str().unwrap());
            if space == "AWS/Lambda" {
                assert_eq!(full[2..], ["FunctionName", "ci-scaler"], "{row}");
            } else {
                assert_eq!(space, namespace, "{row}");
                assert!(
                    emitted.iter().any(|e| e == name),
                    "{name} is not written by emf.rs"
                );
                assert_eq!(full[2..], ["Pool", "ci-runners"], "{row}");
            }
            graphed.push(name.to_string());
            previous = full;
        }
    }
    for wanted in [
        "Waiting",
        "Running",
        "DesiredDecided",
        "InService",
        "WarmPoolSize",
        "WarmPoolInstances",
        "Holds",
        "PolicyErrors",
        "PolicyEvaluationTime",
        "ShadowDesired",
        "Errors",
    ] {
        assert!(
            graphed.iter().any(|g| g == wanted),
            "{wanted} is not graphed"
        );
    }
    // The alarm widget shows every alarm of the stack, by the ARN its name gives.
    let mut alarms: Vec<String> = template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|r| {
            let name = r["Properties"]["AlarmName"]["Fn::Sub"].as_str().unwrap();
            format!(
                "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{}",
                name.replace("${AWS::StackName}", "ci")
            )
        })
        .collect();
    alarms.sort();
    alarms_shown.sort();
    assert_eq!(alarms_shown, alarms);
}

fn user_data_script() -> String {
    std::fs::read_to_string(repo().join("userdata/install-runner-ubuntu.sh")).unwrap()
}

/// The value of `NAME="..."` in the user-data script (a constant it defines).
fn script_constant(script: &str, name: &str) -> String {
    let prefix = format!("\n{name}=\"");
    let start = script.find(&prefix).unwrap_or_else(|| panic!("{name}")) + prefix.len();
    script[start..].split('"').next().unwrap().to_string()
}

/// Every action any statement of the template allows, wherever it is.
fn all_actions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "Action" {
                    out.extend(strings(value));
                } else {
                    all_actions(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| all_actions(item, out)),
        _ => {}
    }
}

#[test]
fn the_image_recipe_runs_the_install_phase_of_the_same_script_and_is_renamed_when_it_changes() {
    let template = template_named("runner-image.yaml");
    let recipe = resource(&template, "Recipe");
    let parts =
        &recipe["AdditionalInstanceConfiguration"]["UserDataOverride"]["Fn::Base64"]["Fn::Join"][1];
    let settings = parts[0].as_str().unwrap();
    assert!(settings.starts_with("#!/bin/bash\n"), "{settings}");
    assert!(
        settings.contains("\nexport RUNNER_SCALER_PHASE=install\n"),
        "{settings}"
    );
    // The bake has no token to see, and no group to leave.
    assert!(!settings.contains("TOKEN"), "{settings}");
    assert!(!settings.contains("AUTO_SCALING"), "{settings}");
    let script = user_data_script();
    assert!(
        parts[1].as_str() == Some(script.as_str()),
        "the image recipe's user data differs from userdata/install-runner-ubuntu.sh: run scripts/sync-template-userdata.sh"
    );
    // UserDataOverride holds at most 21,847 base64 characters: 16,383 bytes.
    let size = settings.len() + script.len();
    assert!(size <= 16_383, "user data of {size} bytes");

    // CloudFormation updates a recipe's user data in place without telling
    // Image Builder, whose recipes never change: a new script must make a
    // new recipe, under a new name.
    let digest = Sha256::digest(script.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        recipe["Name"]["Fn::Sub"],
        format!("${{AWS::StackName}}-runner-{hash}"),
        "the recipe's name must end with the script's hash: run scripts/sync-template-userdata.sh"
    );
    // Canonical's current Ubuntu at each build, as the main stack's default.
    assert_eq!(recipe["ParentImage"]["Ref"], "BaseImage");
    let base = template["Parameters"]["BaseImage"]["Default"]
        .as_str()
        .unwrap();
    let main_default = template_named("runner-scaler.yaml")["Parameters"]["ImageId"]["Default"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(base, format!("ssm:{main_default}"));
    // Our component first, so components added after it see the runner.
    assert_eq!(
        recipe["Components"][0]["ComponentArn"]["Ref"],
        "InstallCheck"
    );
}

#[test]
fn the_image_component_waits_for_the_install_phase_then_checks_the_image_holds_no_secret() {
    let template = template_named("runner-image.yaml");
    let component = resource(&template, "InstallCheck");
    assert_eq!(component["Platform"], "Linux");
    let document: Value =
        serde_norway::from_str(component["Data"].as_str().unwrap()).expect("component document");
    let phases: Vec<&str> = document["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|phase| phase["name"].as_str().unwrap())
        .collect();
    // validate runs on the build instance after build, before the snapshot.
    assert_eq!(phases, ["build", "validate"]);
    let commands = |phase: usize| -> String {
        let step = &document["phases"][phase]["steps"][0];
        assert_eq!(step["action"], "ExecuteBash", "{step}");
        strings(&step["inputs"]["commands"]).join("\n")
    };
    let (build, validate) = (commands(0), commands(1));
    let script = user_data_script();
    let image_file = script_constant(&script, "IMAGE_FILE");
    let env_file = script_constant(&script, "ENV_FILE");
    let config_file = script_constant(&script, "CONFIG_FILE");
    let start_unit = script_constant(&script, "START_UNIT");
    assert!(build.contains("cloud-init status --wait"), "{build}");
    assert!(build.contains(&format!("[ ! -f {image_file} ]")), "{build}");
    for (what, needle) in [
        ("the install key", format!("{image_file} ||")),
        ("no instance file", format!("[ ! -e {env_file} ]")),
        ("no runner config of ours", config_file),
        ("the start unit disabled", start_unit),
        ("the runner disabled", "circleci-runner.service".into()),
    ] {
        assert!(validate.contains(&needle), "{what}: {needle} in {validate}");
    }
    // What runs on the build instance at least parses.
    for commands in [&build, &validate] {
        let status = std::process::Command::new("bash")
            .args(["-n", "-c", commands])
            .status()
            .unwrap();
        assert!(status.success(), "bash -n: {commands}");
    }
}

#[test]
fn the_image_build_role_has_the_documented_minimum_and_no_wildcard_action() {
    let template = template_named("runner-image.yaml");
    let role = resource(&template, "BuildRole");
    assert!(role.get("Policies").is_none(), "no inline policy: {role}");
    let managed: Vec<&str> = role["ManagedPolicyArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arn| arn["Fn::Sub"].as_str().unwrap())
        .collect();
    assert_eq!(
        managed,
        [
            "arn:${AWS::Partition}:iam::aws:policy/EC2InstanceProfileForImageBuilder",
            "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore",
        ]
    );
    let trust = &role["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(trust.as_array().unwrap().len(), 1);
    assert_eq!(trust[0]["Principal"]["Service"], "ec2.amazonaws.com");
    let mut actions = vec![];
    all_actions(&template, &mut actions);
    assert_eq!(actions, ["sts:AssumeRole"]);
    assert!(actions.iter().all(|action| !action.contains('*')));

    let infrastructure = resource(&template, "Infrastructure");
    assert_eq!(
        infrastructure["InstanceProfileName"]["Ref"],
        "BuildInstanceProfile"
    );
    assert_eq!(
        infrastructure["InstanceMetadataOptions"]["HttpTokens"],
        "required"
    );
    assert_eq!(infrastructure["TerminateInstanceOnFailure"], true);
}

#[test]
fn the_image_reaches_the_main_stack_through_the_ssm_parameter_its_image_id_takes() {
    let template = template_named("runner-image.yaml");
    let distribution = &resource(&template, "Distribution")["Distributions"][0];
    assert_eq!(distribution["Region"]["Ref"], "AWS::Region");
    let parameter = &distribution["SsmParameterConfigurations"][0];
    assert_eq!(parameter["ParameterName"]["Ref"], "ImageParameter");
    assert_eq!(parameter["DataType"], "aws:ec2:image");
    assert_eq!(
        template["Outputs"]["ImageParameter"]["Value"]["Ref"],
        "ImageParameter"
    );
    // The main stack's ImageId takes a parameter's name, which it reads.
    let main = template_named("runner-scaler.yaml");
    let image_id = &main["Parameters"]["ImageId"];
    assert_eq!(
        image_id["Type"],
        "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    );
    let default = template["Parameters"]["ImageParameter"]["Default"]
        .as_str()
        .unwrap();
    assert!(
        image_id["Description"].as_str().unwrap().contains(default),
        "ImageId's description names the image's parameter"
    );

    let pipeline = resource(&template, "Pipeline");
    assert_eq!(pipeline["ImageRecipeArn"]["Ref"], "Recipe");
    assert_eq!(
        pipeline["InfrastructureConfigurationArn"]["Ref"],
        "Infrastructure"
    );
    assert_eq!(
        pipeline["DistributionConfigurationArn"]["Ref"],
        "Distribution"
    );
    // A schedule only when one is given.
    assert_eq!(pipeline["Schedule"]["Fn::If"][0], "HasSchedule");
    assert_eq!(pipeline["Schedule"]["Fn::If"][2]["Ref"], "AWS::NoValue");
    assert_eq!(template["Parameters"]["Schedule"]["Default"], "");
}

#[test]
fn the_packer_template_runs_the_same_install_phase() {
    let dir = repo().join("examples/packer");
    let text = std::fs::read_to_string(dir.join("runner-image.pkr.hcl")).unwrap();
    let path = text
        .split("install_script = \"${path.root}/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("install_script in runner-image.pkr.hcl");
    assert_eq!(
        std::fs::canonicalize(dir.join(path)).unwrap(),
        std::fs::canonicalize(repo().join("userdata/install-runner-ubuntu.sh")).unwrap()
    );
    // The shell provisioner that runs the script, its words as one line.
    let provisioner = text
        .split("provisioner \"shell\" {")
        .skip(1)
        .find(|block| block.contains("local.install_script"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "script = local.install_script",
        "environment_vars = [\"RUNNER_SCALER_PHASE=install\"]",
        "execute_command = \"sudo env {{ .Vars }} bash '{{ .Path }}'\"",
    ] {
        assert!(provisioner.contains(needle), "{needle}: {provisioner}");
    }
    assert!(!text.contains("TOKEN"), "no token setting in the bake");
}
