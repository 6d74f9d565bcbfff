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

/// The figures `emf.rs` writes, as CloudWatch reads them from one line of a
/// pool with every figure known (a shadow included): (namespace, the
/// dimension names, the metric names).
fn emf_figures() -> (String, Vec<String>, Vec<String>) {
    use runner_scaler::report::{Action, PoolReport};
    let mut report = PoolReport::new("ci-runners", "ci-runners", "eu-west-1", "acme/linux", 0, 10);
    report.queue = Some(runner_scaler::Queue {
        waiting: 3,
        running: 1,
    });
    report.capacity = Some(runner_scaler::Capacity::default());
    report.desired = Some(4);
    report.action = Action::Applied;
    report.policy_ms = Some(0.02);
    report.shadow = Some("candidate".into());
    report.shadow_desired = Some(5);
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
