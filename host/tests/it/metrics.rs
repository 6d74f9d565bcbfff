//! Issue 27: what the daemon's `/metrics` shows before anything happened —
//! every counter at 0, `runner_scaler_build_info` and each pool's live
//! policy in `runner_scaler_policy_info` — and the digest changing when a
//! reload brings another policy.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;
use support::binary::*;
use support::fake_circleci::{Endpoint, FakeCircleCi, Fault};
use support::moto::{Moto, TestGroup};

/// The samples of `name`, each as its labels and value.
fn samples(body: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .into_iter()
        .filter(|s| s.metric == name)
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("{name} is a {other:?}"),
            };
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (labels, value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(unix)]
#[tokio::test]
async fn counters_start_at_zero_and_the_info_metrics_follow_the_live_policy() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-info").desired(0).protected())
        .await;
    circleci.set_queue("acme/info", 2, 0);
    // The first tick's queue read answers late: the first scrapes come
    // while it is still in flight.
    circleci.push_faults(
        "acme/info",
        Endpoint::Unclaimed,
        vec![Fault::Slow(Duration::from_secs(4))],
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.wasm");
    let replace = |path: &std::path::Path, bytes: &[u8]| {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes).unwrap();
        std::fs::rename(&partial, path).unwrap();
    };
    let queue_depth = support::policy_file("queue-depth");
    replace(&policy, &std::fs::read(&queue_depth).unwrap());
    let text = format!(
        "interval = \"1s\"\n[circleci]\nbase_url = \"{}\"\n[aws]\nendpoint_url = \"{}\"\n\
         [[pool]]\nname = \"info\"\nresource_class = \"acme/info\"\ngroup = \"ci-info\"\n\
         region = \"{REGION}\"\npolicy = \"p.wasm\"\nshadow = \"queue\"\nmax = 10\n",
        circleci.base_url(),
        moto.endpoint()
    );
    let file = dir.path().join("runner-scaler.toml");
    replace(&file, text.as_bytes());
    let listen = free_listen();
    let mut child = start_daemon(&file, &listen);

    let body = wait_until(&listen, "/metrics", |status, _| status == 200).await;
    assert_eq!(
        samples(&body, "runner_scaler_ticks_total"),
        vec![(labels(&[]), 0.0)],
        "the first tick is still reading:\n{body}"
    );
    for counter in [
        "runner_scaler_decisions_total",
        "runner_scaler_holds_total",
        "runner_scaler_unknown_outcomes_total",
        "runner_scaler_source_errors_total",
        "runner_scaler_apply_errors_total",
        "runner_scaler_shadow_disagreements_total",
        "runner_scaler_shadow_difference_total",
    ] {
        assert_eq!(
            samples(&body, counter),
            vec![(labels(&[("pool", "info")]), 0.0)],
            "{counter}:\n{body}"
        );
    }
    for counter in [
        "runner_scaler_policy_errors_total",
        "runner_scaler_shadow_errors_total",
    ] {
        let mut kinds: Vec<(String, f64)> = samples(&body, counter)
            .into_iter()
            .map(|(l, v)| {
                assert_eq!(l["pool"], "info");
                (l["kind"].clone(), v)
            })
            .collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<(String, f64)> =
            ["bad_output", "deadline", "out_of_memory", "refused", "trap"]
                .iter()
                .map(|k| (k.to_string(), 0.0))
                .collect();
        assert_eq!(kinds, expected, "{counter}:\n{body}");
    }
    for counter in [
        "runner_scaler_failed_ticks_total",
        "runner_scaler_config_reloads_total",
        "runner_scaler_config_reload_failures_total",
    ] {
        assert_eq!(
            samples(&body, counter),
            vec![(labels(&[]), 0.0)],
            "{counter}"
        );
    }
    let build = samples(&body, "runner_scaler_build_info");
    assert_eq!(build.len(), 1, "{body}");
    assert_eq!(build[0].1, 1.0);
    assert_eq!(build[0].0["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        build[0].0["contracts"],
        "runner-scaler:policy@0.2.0 runner-scaler:policy@0.1.0"
    );
    let info = |body: &str| {
        let mut info = samples(body, "runner_scaler_policy_info");
        info.sort_by(|a, b| a.0.cmp(&b.0));
        info
    };
    let live = |sha256: &str| {
        vec![
            (
                labels(&[
                    ("pool", "info"),
                    ("role", "policy"),
                    ("policy", "p"),
                    ("sha256", sha256),
                ]),
                1.0,
            ),
            (
                labels(&[
                    ("pool", "info"),
                    ("role", "shadow"),
                    ("policy", "queue"),
                    ("sha256", ""),
                ]),
                1.0,
            ),
        ]
    };
    assert_eq!(info(&body), live(&sha256_of(&queue_depth)), "{body}");

    // Another policy in the file: after the reload, its digest alone.
    let cooldown = support::policy_file("cooldown");
    replace(&policy, &std::fs::read(&cooldown).unwrap());
    let body = wait_until(&listen, "/metrics", |_, body| {
        samples(body, "runner_scaler_config_reloads_total")[0].1 >= 1.0
    })
    .await;
    assert_eq!(info(&body), live(&sha256_of(&cooldown)), "{body}");
    let (exit, stderr) = stop_daemon(&mut child).await;
    assert!(exit.success(), "{exit:?}: {stderr}");
}
