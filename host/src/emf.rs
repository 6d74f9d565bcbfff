//! CloudWatch Embedded Metric Format: in Lambda, the same figures the
//! daemon serves to Prometheus, written as one JSON log line per pool per
//! tick. CloudWatch Logs turns them into metrics — no API call, no extra
//! permission.

use crate::report::{Action, PoolReport};
use serde_json::{json, Map, Value};

/// The CloudWatch namespace the metrics go to.
pub const NAMESPACE: &str = "RunnerScaler";

/// The metrics of one pool's record, as (name, unit, value).
fn figures(r: &PoolReport) -> Vec<(&'static str, &'static str, f64)> {
    let mut figures = vec![
        ("Decisions", "Count", f64::from(u8::from(r.decided()))),
        (
            "Holds",
            "Count",
            f64::from(u8::from(r.action == Action::Held)),
        ),
        (
            "UnknownOutcomes",
            "Count",
            f64::from(u8::from(r.action == Action::Unknown)),
        ),
        (
            "PolicyErrors",
            "Count",
            f64::from(u8::from(r.policy_error_kind.is_some())),
        ),
    ];
    if let Some(queue) = r.jobs {
        figures.push(("Waiting", "Count", queue.waiting.into()));
        figures.push(("Running", "Count", queue.running.into()));
    }
    if let Some(capacity) = r.capacity {
        figures.push(("InService", "Count", capacity.in_service.into()));
        figures.push(("Pending", "Count", capacity.pending.into()));
    }
    if let Some(desired) = r.desired {
        figures.push(("DesiredDecided", "Count", desired.into()));
    }
    if let Some(pool) = r.capacity.and_then(|c| c.warm_pool) {
        // What the pool keeps now: the policy's size once written (or
        // found so), else the size the group had.
        let written = matches!(r.action, Action::Applied | Action::Unchanged);
        let size = r.warm.filter(|_| written).unwrap_or(pool.size);
        figures.push(("WarmPoolSize", "Count", size.into()));
        if let Some(instances) = pool.instances {
            figures.push(("WarmPoolInstances", "Count", instances.into()));
        }
    }
    if let Some(ms) = r.policy_ms {
        figures.push(("PolicyEvaluationTime", "Milliseconds", ms));
    }
    // A shadow: what it would have set, and how far that is from the live
    // decision (0 when they agree).
    if r.shadow.is_some() {
        figures.push((
            "ShadowErrors",
            "Count",
            f64::from(u8::from(
                r.shadow.as_ref().is_some_and(|s| s.error_kind.is_some()),
            )),
        ));
    }
    if let Some(shadow) = r.shadow.as_ref().and_then(|s| s.desired) {
        figures.push(("ShadowDesired", "Count", shadow.into()));
        if let Some(live) = r.desired {
            figures.push((
                "ShadowDifference",
                "Count",
                f64::from(shadow.abs_diff(live)),
            ));
        }
    }
    figures.push(("PoolTickTime", "Milliseconds", r.duration_ms));
    figures
}

/// One EMF line for `report`, stamped `timestamp_ms`.
pub fn line(report: &PoolReport, timestamp_ms: i64) -> String {
    let figures = figures(report);
    let definitions: Vec<Value> = figures
        .iter()
        .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Pool"]],
                "Metrics": definitions,
            }],
        }),
    );
    root.insert("Pool".into(), report.pool.clone().into());
    for (name, _, value) in figures {
        root.insert(name.into(), json!(value));
    }
    // Context for people reading the log; not metrics.
    root.insert("action".into(), json!(report.action));
    root.insert("reason".into(), json!(report.reason));
    Value::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{Capacity, Queue};

    fn report(action: Action) -> PoolReport {
        PoolReport {
            jobs: Some(Queue {
                waiting: 3,
                running: 1,
                blocked: None,
            }),
            capacity: Some(Capacity {
                desired: 2,
                in_service: 2,
                ..Capacity::default()
            }),
            decided_by: Some("queue".into()),
            policy_desired: Some(4),
            reason: Some("3 waiting + 1 running".into()),
            desired: Some(4),
            action,
            policy_ms: Some(0.02),
            duration_ms: 12.5,
            ..PoolReport::example("linux")
        }
    }

    /// The structure CloudWatch requires: `_aws` with a millisecond
    /// timestamp and metric directives whose dimensions and metrics are
    /// members of the root object, with numeric values.
    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let value: Value =
            serde_json::from_str(&line(&report(Action::Applied), 1_795_000_000_000)).unwrap();
        let aws = &value["_aws"];
        assert_eq!(aws["Timestamp"], 1_795_000_000_000i64);
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        for set in directive["Dimensions"].as_array().unwrap() {
            for dimension in set.as_array().unwrap() {
                let name = dimension.as_str().unwrap();
                assert!(
                    value[name].is_string(),
                    "dimension {name} must be a string member"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(
            metrics.len() <= 100,
            "EMF allows at most 100 metrics per directive"
        );
        for metric in metrics {
            let name = metric["Name"].as_str().unwrap();
            assert!(
                value[name].is_number(),
                "metric {name} must be a number member"
            );
            assert!(["Count", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap()));
        }
        assert_eq!(value["Waiting"], 3.0);
        assert_eq!(value["DesiredDecided"], 4.0);
        assert_eq!(value["Decisions"], 1.0);
    }

    #[test]
    fn a_held_pool_counts_a_hold_and_no_decision() {
        let mut held = report(Action::Held);
        held.jobs = None;
        held.desired = None;
        let value: Value = serde_json::from_str(&line(&held, 0)).unwrap();
        assert_eq!(
            (value["Holds"].as_f64(), value["Decisions"].as_f64()),
            (Some(1.0), Some(0.0))
        );
        assert!(
            value.get("Waiting").is_none(),
            "no figure for what was not read"
        );
    }
}
