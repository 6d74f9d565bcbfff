//! What operators watch: per-pool gauges and counters from every tick's
//! decision records, in a Prometheus registry the daemon serves at
//! `/metrics`, and the health `/healthz` reports.
//!
//! A gauge holds only what the last tick read: a value the tick could not
//! read (a held pool's queue, say) is dropped from the exposition, not left
//! at its last reading, and `last_decision_timestamp_seconds` says when the
//! pool was last decided.
//!
//! A counter is there from the first scrape: each pool's label sets start
//! at 0 when the pools load or reload ([`Metrics::set_pools`]), so a rate
//! or an alert has a value before the first event. `build_info` and
//! `policy_info` (each pool's live policy and shadow, with their digests)
//! say what is running.

use crate::report::{Action, HeldBecause, PoolReport};
use crate::tick::Pool;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyErrorLabels {
    pool: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    /// The policy contracts (WIT packages) this build runs, newest first,
    /// separated by spaces.
    contracts: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyInfoLabels {
    pool: String,
    /// `policy` (the live one) or `shadow`.
    role: String,
    /// The policy's name (its file's stem, or the built-in rule).
    policy: String,
    /// The SHA-256 of its file; empty for a built-in rule.
    sha256: String,
}

/// The kinds a decision can fail with (`PolicyError::kind` of a policy that
/// loaded): each pool's `policy_errors` and `shadow_errors` start at 0 for
/// each. Another kind, should one come, is counted from its first failure.
pub const DECISION_ERROR_KINDS: [&str; 5] =
    ["deadline", "out_of_memory", "trap", "refused", "bad_output"];

/// The pools the metrics were last told of ([`Metrics::set_pools`]).
#[derive(Default)]
struct Known {
    /// Each pool's name and whether it has a shadow.
    pools: HashMap<String, bool>,
    /// The `policy_info` label sets now shown.
    info: Vec<PolicyInfoLabels>,
}

/// The scaler's metrics.
pub struct Metrics {
    registry: Registry,
    build_info: Family<BuildLabels, Gauge>,
    policy_info: Family<PolicyInfoLabels, Gauge>,
    known: Mutex<Known>,
    waiting: Family<PoolLabel, Gauge>,
    running: Family<PoolLabel, Gauge>,
    in_service: Family<PoolLabel, Gauge>,
    pending: Family<PoolLabel, Gauge>,
    decided_desired: Family<PoolLabel, Gauge>,
    applied_desired: Family<PoolLabel, Gauge>,
    warm_pool_size: Family<PoolLabel, Gauge>,
    warm_pool_instances: Family<PoolLabel, Gauge>,
    last_decision: Family<PoolLabel, Gauge<f64, AtomicU64>>,
    decisions: Family<PoolLabel, Counter>,
    holds: Family<PoolLabel, Counter>,
    unknown_outcomes: Family<PoolLabel, Counter>,
    policy_errors: Family<PolicyErrorLabels, Counter>,
    source_errors: Family<PoolLabel, Counter>,
    apply_errors: Family<PoolLabel, Counter>,
    policy_seconds: Family<PoolLabel, Histogram, fn() -> Histogram>,
    shadow_desired: Family<PoolLabel, Gauge>,
    shadow_disagreements: Family<PoolLabel, Counter>,
    shadow_difference: Family<PoolLabel, Counter>,
    shadow_errors: Family<PolicyErrorLabels, Counter>,
    tick_seconds: Histogram,
    ticks: Counter,
    failed_ticks: Counter,
    config_reloads: Counter,
    config_reload_failures: Counter,
    last_tick: Gauge<f64, AtomicU64>,
    consecutive_failed_ticks: AtomicU32,
    unhealthy_after: u32,
    interval: Duration,
    /// When the tick under way started, if one is.
    tick_started: Mutex<Option<Instant>>,
}

impl Metrics {
    /// Metrics whose health turns bad after `unhealthy_after` consecutive
    /// failed ticks (ticks where no pool could be decided), or when a tick
    /// has run for more than `unhealthy_after` times the `interval` between
    /// ticks (no tick has completed for that long).
    pub fn new(unhealthy_after: u32, interval: Duration) -> Metrics {
        let mut registry = Registry::with_prefix("runner_scaler");
        let m = Metrics {
            build_info: Family::default(),
            policy_info: Family::default(),
            known: Mutex::default(),
            waiting: Family::default(),
            running: Family::default(),
            in_service: Family::default(),
            pending: Family::default(),
            decided_desired: Family::default(),
            applied_desired: Family::default(),
            warm_pool_size: Family::default(),
            warm_pool_instances: Family::default(),
            last_decision: Family::default(),
            decisions: Family::default(),
            holds: Family::default(),
            unknown_outcomes: Family::default(),
            policy_errors: Family::default(),
            source_errors: Family::default(),
            apply_errors: Family::default(),
            // 10 µs to ~0.7 s: a decision takes microseconds; the deadline is 100 ms.
            policy_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_01, 3.0, 11))
            }),
            shadow_desired: Family::default(),
            shadow_disagreements: Family::default(),
            shadow_difference: Family::default(),
            shadow_errors: Family::default(),
            // 10 ms to ~40 s.
            tick_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 13)),
            ticks: Counter::default(),
            failed_ticks: Counter::default(),
            config_reloads: Counter::default(),
            config_reload_failures: Counter::default(),
            last_tick: Gauge::default(),
            consecutive_failed_ticks: AtomicU32::new(0),
            unhealthy_after: unhealthy_after.max(1),
            interval,
            tick_started: Mutex::new(None),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "build_info",
            "1, labelled with this build's version and the policy contracts it runs",
            m.build_info.clone(),
        );
        m.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                contracts: crate::policy::CONTRACTS
                    .iter()
                    .map(|(contract, _)| *contract)
                    .collect::<Vec<_>>()
                    // Not a comma: naive exposition parsers split on it.
                    .join(" "),
            })
            .set(1);
        r.register(
            "policy_info",
            "1 for each pool's live policy and shadow (role), with the SHA-256 of its file (empty for a built-in rule)",
            m.policy_info.clone(),
        );
        r.register(
            "queue_waiting",
            "Jobs waiting for a runner",
            m.waiting.clone(),
        );
        r.register(
            "queue_running",
            "Jobs running on a runner",
            m.running.clone(),
        );
        r.register(
            "instances_in_service",
            "Instances in service",
            m.in_service.clone(),
        );
        r.register(
            "instances_pending",
            "Instances launching",
            m.pending.clone(),
        );
        r.register(
            "desired_decided",
            "Desired capacity after clamping and safety rules",
            m.decided_desired.clone(),
        );
        r.register(
            "desired_applied",
            "Desired capacity last written to the group",
            m.applied_desired.clone(),
        );
        r.register(
            "warm_pool_size",
            "Instances the group's warm pool keeps, after the policy's decision",
            m.warm_pool_size.clone(),
        );
        r.register(
            "warm_pool_instances",
            "Instances in the group's warm pool, as the last tick read them",
            m.warm_pool_instances.clone(),
        );
        r.register(
            "last_decision_timestamp_seconds",
            "When the pool was last decided (Unix time); the pool's other gauges are absent while it is not",
            m.last_decision.clone(),
        );
        r.register(
            "decisions",
            "Ticks on which the pool was decided",
            m.decisions.clone(),
        );
        r.register(
            "holds",
            "Ticks on which the pool was held (nothing written)",
            m.holds.clone(),
        );
        r.register(
            "unknown_outcomes",
            "Ticks on which a write to the pool's group was sent and its outcome is unknown (re-read next tick)",
            m.unknown_outcomes.clone(),
        );
        r.register(
            "policy_errors",
            "Policy failures, by kind (the fallback decided)",
            m.policy_errors.clone(),
        );
        r.register(
            "source_errors",
            "Ticks on which the queue could not be read",
            m.source_errors.clone(),
        );
        r.register(
            "apply_errors",
            "Ticks on which writing the group failed",
            m.apply_errors.clone(),
        );
        r.register(
            "policy_evaluation_seconds",
            "Time a policy took to decide",
            m.policy_seconds.clone(),
        );
        r.register(
            "shadow_desired",
            "What the pool's shadow policy would have set (after the same clamp and safety rules); never applied",
            m.shadow_desired.clone(),
        );
        r.register(
            "shadow_disagreements",
            "Ticks on which the shadow policy would have set another desired capacity than the live one",
            m.shadow_disagreements.clone(),
        );
        r.register(
            "shadow_difference",
            "Sum over ticks of |shadow desired - live desired|: divided by shadow_disagreements, the mean gap",
            m.shadow_difference.clone(),
        );
        r.register(
            "shadow_errors",
            "Shadow policy failures, by kind (the live decision is unaffected)",
            m.shadow_errors.clone(),
        );
        r.register(
            "tick_seconds",
            "Time a whole tick took",
            m.tick_seconds.clone(),
        );
        r.register("ticks", "Ticks run", m.ticks.clone());
        r.register(
            "failed_ticks",
            "Ticks on which no pool could be decided",
            m.failed_ticks.clone(),
        );
        r.register(
            "config_reloads",
            "Reloads of the configuration and policies that took effect",
            m.config_reloads.clone(),
        );
        r.register(
            "config_reload_failures",
            "Reloads refused (the error is logged); the previous configuration and policies go on",
            m.config_reload_failures.clone(),
        );
        r.register(
            "last_tick_timestamp_seconds",
            "When the last tick completed (Unix time)",
            m.last_tick.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The pools now configured, at start and after each reload: their
    /// counters start at 0 (those already counting go on), `policy_info`
    /// shows their policies in place of the previous ones, and the series
    /// of pools no longer configured (or of a shadow removed) go.
    pub fn set_pools(&self, pools: &[Pool]) {
        let mut known = self.known.lock().unwrap();
        for labels in known.info.drain(..) {
            self.policy_info.remove(&labels);
        }
        let now: HashMap<String, bool> = pools
            .iter()
            .map(|p| (p.name.clone(), p.shadow.is_some()))
            .collect();
        for (name, had_shadow) in &known.pools {
            match now.get(name) {
                None => self.forget(name, false),
                Some(false) if *had_shadow => self.forget(name, true),
                Some(_) => {}
            }
        }
        for pool in pools {
            let label = PoolLabel {
                pool: pool.name.clone(),
            };
            for counter in [
                &self.decisions,
                &self.holds,
                &self.unknown_outcomes,
                &self.source_errors,
                &self.apply_errors,
            ] {
                let _ = counter.get_or_create(&label);
            }
            let _ = self.policy_seconds.get_or_create(&label);
            let errors = |family: &Family<PolicyErrorLabels, Counter>| {
                for kind in DECISION_ERROR_KINDS {
                    let _ = family.get_or_create(&PolicyErrorLabels {
                        pool: pool.name.clone(),
                        kind: kind.into(),
                    });
                }
            };
            errors(&self.policy_errors);
            let mut roles = vec![("policy", &pool.policy)];
            if let Some(shadow) = &pool.shadow {
                let _ = self.shadow_disagreements.get_or_create(&label);
                let _ = self.shadow_difference.get_or_create(&label);
                errors(&self.shadow_errors);
                roles.push(("shadow", &shadow.policy));
            }
            for (role, policy) in roles {
                let labels = PolicyInfoLabels {
                    pool: pool.name.clone(),
                    role: role.into(),
                    policy: policy.name().into(),
                    sha256: policy.sha256().unwrap_or_default().into(),
                };
                self.policy_info.get_or_create(&labels).set(1);
                known.info.push(labels);
            }
        }
        known.pools = now;
    }

    /// Drop every series of the pool `name` (only its shadow's, with
    /// `shadow_only`).
    fn forget(&self, name: &str, shadow_only: bool) {
        let label = PoolLabel { pool: name.into() };
        // The known kinds (a kind outside them, which no policy that loaded
        // fails with today, would stay).
        let kinds = |family: &Family<PolicyErrorLabels, Counter>| {
            for kind in DECISION_ERROR_KINDS {
                family.remove(&PolicyErrorLabels {
                    pool: name.into(),
                    kind: kind.into(),
                });
            }
        };
        self.shadow_desired.remove(&label);
        self.shadow_disagreements.remove(&label);
        self.shadow_difference.remove(&label);
        kinds(&self.shadow_errors);
        if shadow_only {
            return;
        }
        for gauge in [
            &self.waiting,
            &self.running,
            &self.in_service,
            &self.pending,
            &self.decided_desired,
            &self.applied_desired,
            &self.warm_pool_size,
            &self.warm_pool_instances,
        ] {
            gauge.remove(&label);
        }
        self.last_decision.remove(&label);
        for counter in [
            &self.decisions,
            &self.holds,
            &self.unknown_outcomes,
            &self.source_errors,
            &self.apply_errors,
        ] {
            counter.remove(&label);
        }
        self.policy_seconds.remove(&label);
        kinds(&self.policy_errors);
    }

    /// A reload took effect.
    pub fn reloaded(&self) {
        self.config_reloads.inc();
    }

    /// A reload was refused; health is unaffected, as the previous
    /// configuration goes on deciding.
    pub fn reload_failed(&self) {
        self.config_reload_failures.inc();
    }

    /// A tick starts now.
    pub fn tick_started(&self) {
        *self.tick_started.lock().unwrap() = Some(Instant::now());
    }

    /// Take in one tick's records.
    pub fn record(&self, reports: &[PoolReport], tick: Duration) {
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        for r in reports {
            let pool = PoolLabel {
                pool: r.pool.clone(),
            };
            // Each gauge shows this tick's reading, or nothing.
            let show = |family: &Family<PoolLabel, Gauge>, value: Option<u32>| match value {
                Some(value) => {
                    family.get_or_create(&pool).set(value.into());
                }
                None => {
                    family.remove(&pool);
                }
            };
            show(&self.waiting, r.jobs.map(|q| q.waiting));
            show(&self.running, r.jobs.map(|q| q.running));
            show(&self.in_service, r.capacity.map(|c| c.in_service));
            show(&self.pending, r.capacity.map(|c| c.pending));
            show(&self.decided_desired, r.desired);
            let applied = matches!(r.action, Action::Applied | Action::Unchanged);
            show(&self.applied_desired, r.desired.filter(|_| applied));
            let pool_now = r.capacity.and_then(|c| c.warm_pool);
            show(
                &self.warm_pool_size,
                r.warm.filter(|_| applied).or(pool_now.map(|w| w.size)),
            );
            show(
                &self.warm_pool_instances,
                pool_now.and_then(|w| w.instances),
            );
            if let Some(ms) = r.policy_ms {
                self.policy_seconds
                    .get_or_create(&pool)
                    .observe(ms / 1000.0);
            }
            let shadow_desired = r.shadow.as_ref().and_then(|s| s.desired);
            show(&self.shadow_desired, shadow_desired);
            if let (Some(shadow), Some(live)) = (shadow_desired, r.desired) {
                // Created at 0 so that "never disagreed" is a value.
                let disagreements = self.shadow_disagreements.get_or_create(&pool);
                let difference = self.shadow_difference.get_or_create(&pool);
                if shadow != live {
                    disagreements.inc();
                    difference.inc_by(shadow.abs_diff(live).into());
                }
            }
            if let Some(kind) = r.shadow.as_ref().and_then(|s| s.error_kind) {
                let labels = PolicyErrorLabels {
                    pool: r.pool.clone(),
                    kind: kind.into(),
                };
                self.shadow_errors.get_or_create(&labels).inc();
            }
            if let Some(kind) = r.policy_error_kind {
                let labels = PolicyErrorLabels {
                    pool: r.pool.clone(),
                    kind: kind.into(),
                };
                self.policy_errors.get_or_create(&labels).inc();
            }
            match r.action {
                Action::Held => {
                    self.holds.get_or_create(&pool).inc();
                    match r.held_because {
                        Some(HeldBecause::Queue) => self.source_errors.get_or_create(&pool).inc(),
                        Some(HeldBecause::Apply) => self.apply_errors.get_or_create(&pool).inc(),
                        _ => 0,
                    };
                }
                Action::Unknown => {
                    self.unknown_outcomes.get_or_create(&pool).inc();
                }
                Action::Applied | Action::Unchanged | Action::WouldApply => {
                    self.decisions.get_or_create(&pool).inc();
                    self.last_decision.get_or_create(&pool).set(now);
                }
            }
        }
        self.tick_seconds.observe(tick.as_secs_f64());
        self.ticks.inc();
        self.last_tick.set(now);
        *self.tick_started.lock().unwrap() = None;
        if !reports.is_empty() && reports.iter().all(|r| !r.decided()) {
            self.failed_ticks.inc();
            self.consecutive_failed_ticks
                .fetch_add(1, Ordering::Relaxed);
        } else {
            self.consecutive_failed_ticks.store(0, Ordering::Relaxed);
        }
    }

    /// Healthy unless the last `unhealthy_after` ticks all failed.
    pub fn healthy(&self) -> bool {
        self.health().is_ok()
    }

    /// Healthy, or why not.
    pub fn health(&self) -> Result<(), String> {
        self.health_at(Instant::now())
    }

    /// [`Metrics::health`] at `now`: unhealthy when the last
    /// `unhealthy_after` ticks decided no pool, or when the tick under way has
    /// run for more than `unhealthy_after` intervals (no tick has completed
    /// for that long: the loop is stuck).
    fn health_at(&self, now: Instant) -> Result<(), String> {
        let limit = self.interval.saturating_mul(self.unhealthy_after);
        if let Some(started) = *self.tick_started.lock().unwrap() {
            let running = now.saturating_duration_since(started);
            if running > limit {
                return Err(format!(
                    "no tick has completed for {} intervals: the tick under way has run for {:.0} s; see the log",
                    self.unhealthy_after,
                    running.as_secs_f64()
                ));
            }
        }
        let failed = self.consecutive_failed_ticks.load(Ordering::Relaxed);
        if failed >= self.unhealthy_after {
            return Err(format!(
                "the last {failed} ticks could not decide any pool; see the log"
            ));
        }
        Ok(())
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{Capacity, Queue};
    use crate::report::PoolReport;

    fn report(pool: &str, action: Action, held_because: Option<HeldBecause>) -> PoolReport {
        let decided = action != Action::Held;
        PoolReport {
            jobs: (held_because != Some(HeldBecause::Queue)).then_some(Queue {
                waiting: 3,
                running: 1,
                blocked: None,
            }),
            capacity: decided.then_some(Capacity {
                desired: 2,
                in_service: 2,
                pending: 1,
                ..Capacity::default()
            }),
            decided_by: decided.then(|| "queue".into()),
            policy_desired: decided.then_some(4),
            desired: decided.then_some(4),
            action,
            held_because,
            policy_ms: decided.then_some(0.05),
            duration_ms: 10.0,
            ..PoolReport::example(pool)
        }
    }

    /// The value of `name` for `pool`, read with a Prometheus parser.
    fn value(text: &str, name: &str, pool: &str) -> Option<f64> {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("pool") == Some(pool))
            .and_then(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    }

    #[test]
    fn pools_counters_start_at_zero_and_a_reload_replaces_what_went() {
        use crate::policy::{BuiltinRule, Policy};
        use crate::tick::Shadow;
        let metrics = Metrics::new(3, Duration::from_secs(60));
        let mut a = Pool::example("a", Policy::Builtin(BuiltinRule::Queue));
        a.shadow = Some(Shadow::new(Policy::Builtin(BuiltinRule::Hold), vec![]));
        let b = Pool::example("b", Policy::Builtin(BuiltinRule::Hold));
        metrics.set_pools(&[a.clone(), b.clone()]);
        let text = metrics.encode();
        for pool in ["a", "b"] {
            for name in [
                "runner_scaler_decisions_total",
                "runner_scaler_holds_total",
                "runner_scaler_unknown_outcomes_total",
                "runner_scaler_source_errors_total",
                "runner_scaler_apply_errors_total",
            ] {
                assert_eq!(value(&text, name, pool), Some(0.0), "{name} {pool}");
            }
        }
        assert_eq!(
            value(&text, "runner_scaler_shadow_disagreements_total", "a"),
            Some(0.0)
        );
        assert_eq!(
            value(&text, "runner_scaler_shadow_disagreements_total", "b"),
            None
        );
        for kind in DECISION_ERROR_KINDS {
            let line = format!("runner_scaler_policy_errors_total{{pool=\"b\",kind=\"{kind}\"}} 0");
            assert!(text.contains(&line), "{line}\n{text}");
        }
        assert!(text.contains(&format!(
            "runner_scaler_build_info{{version=\"{}\",contracts=\"runner-scaler:policy@0.2.0 runner-scaler:policy@0.1.0\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        let info = |text: &str| -> Vec<String> {
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("runner_scaler_policy_info{"))
                .map(String::from)
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(
            info(&text),
            [
                r#"runner_scaler_policy_info{pool="a",role="policy",policy="queue",sha256=""} 1"#,
                r#"runner_scaler_policy_info{pool="a",role="shadow",policy="hold",sha256=""} 1"#,
                r#"runner_scaler_policy_info{pool="b",role="policy",policy="hold",sha256=""} 1"#,
            ]
        );

        // A counts on; b goes; a's shadow goes; a's policy changes.
        metrics.record(&[report("a", Action::Applied, None)], Duration::ZERO);
        let a = Pool::example("a", Policy::Builtin(BuiltinRule::Hold));
        metrics.set_pools(&[a]);
        let text = metrics.encode();
        assert_eq!(
            value(&text, "runner_scaler_decisions_total", "a"),
            Some(1.0)
        );
        assert_eq!(value(&text, "runner_scaler_decisions_total", "b"), None);
        assert_eq!(value(&text, "runner_scaler_policy_errors_total", "b"), None);
        assert_eq!(
            value(&text, "runner_scaler_shadow_disagreements_total", "a"),
            None
        );
        assert_eq!(
            info(&text),
            [r#"runner_scaler_policy_info{pool="a",role="policy",policy="hold",sha256=""} 1"#]
        );
    }

    #[test]
    fn a_shadow_shows_beside_the_live_decision() {
        let metrics = Metrics::new(3, Duration::from_secs(60));
        let shadowed = |shadow: Option<u32>, error: Option<&'static str>| PoolReport {
            shadow: Some(crate::report::ShadowReport {
                policy: "candidate".into(),
                desired: shadow,
                error_kind: error,
                ..Default::default()
            }),
            ..report("a", Action::Applied, None)
        };
        // Live 4 each tick; the shadow says 6, then 4, then fails.
        for (shadow, error) in [(Some(6), None), (Some(4), None), (None, Some("trap"))] {
            metrics.record(&[shadowed(shadow, error)], Duration::from_millis(5));
        }
        let text = metrics.encode();
        let v = |name: &str| value(&text, name, "a");
        assert_eq!(v("runner_scaler_shadow_disagreements_total"), Some(1.0));
        assert_eq!(v("runner_scaler_shadow_difference_total"), Some(2.0));
        assert_eq!(
            v("runner_scaler_shadow_desired"),
            None,
            "absent after a failure"
        );
        assert_eq!(v("runner_scaler_desired_decided"), Some(4.0));
        assert!(
            text.contains("runner_scaler_shadow_errors_total{pool=\"a\",kind=\"trap\"} 1"),
            "{text}"
        );
        // A pool without a shadow has none of these.
        let plain = Metrics::new(3, Duration::from_secs(60));
        plain.record(
            &[report("a", Action::Applied, None)],
            Duration::from_millis(5),
        );
        assert!(!plain
            .encode()
            .contains("runner_scaler_shadow_disagreements_total{"));
    }

    #[test]
    fn a_tick_shows_in_the_exposition() {
        let metrics = Metrics::new(3, Duration::from_secs(60));
        let mut errored = report("b", Action::Applied, None);
        errored.policy_error_kind = Some("deadline");
        metrics.record(
            &[report("a", Action::Applied, None), errored],
            Duration::from_millis(40),
        );
        metrics.record(
            &[report("a", Action::Unchanged, None)],
            Duration::from_millis(40),
        );
        let text = metrics.encode();
        assert_eq!(value(&text, "runner_scaler_queue_waiting", "a"), Some(3.0));
        assert_eq!(value(&text, "runner_scaler_queue_running", "a"), Some(1.0));
        assert_eq!(
            value(&text, "runner_scaler_instances_pending", "a"),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "runner_scaler_desired_decided", "a"),
            Some(4.0)
        );
        assert_eq!(
            value(&text, "runner_scaler_desired_applied", "a"),
            Some(4.0)
        );
        assert_eq!(
            value(&text, "runner_scaler_decisions_total", "a"),
            Some(2.0)
        );
        assert_eq!(
            value(&text, "runner_scaler_policy_errors_total", "b"),
            Some(1.0)
        );
        assert!(text.contains("kind=\"deadline\""), "{text}");
    }

    #[test]
    fn holds_are_counted_by_cause() {
        let metrics = Metrics::new(3, Duration::from_secs(60));
        metrics.record(
            &[
                report("q", Action::Held, Some(HeldBecause::Queue)),
                report("w", Action::Held, Some(HeldBecause::Apply)),
            ],
            Duration::from_millis(5),
        );
        let text = metrics.encode();
        assert_eq!(value(&text, "runner_scaler_holds_total", "q"), Some(1.0));
        assert_eq!(
            value(&text, "runner_scaler_source_errors_total", "q"),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "runner_scaler_apply_errors_total", "w"),
            Some(1.0)
        );
        assert_eq!(value(&text, "runner_scaler_decisions_total", "q"), None);
    }

    #[test]
    fn a_held_pools_gauges_are_dropped_not_left_at_their_last_reading() {
        let metrics = Metrics::new(3, Duration::from_secs(60));
        metrics.record(&[report("a", Action::Applied, None)], Duration::ZERO);
        let text = metrics.encode();
        assert_eq!(value(&text, "runner_scaler_queue_waiting", "a"), Some(3.0));
        let decided_at = value(&text, "runner_scaler_last_decision_timestamp_seconds", "a")
            .expect("a decision time");
        let now = jiff::Timestamp::now().as_second() as f64;
        assert!((now - decided_at).abs() < 60.0, "{decided_at} vs {now}");

        // The queue could not be read: its numbers are gone, as is every
        // figure of the decision that was not made; the time of the last
        // decision stays, and says how old the last good reading is.
        let mut held = report("a", Action::Held, Some(HeldBecause::Queue));
        held.jobs = None;
        metrics.record(&[held], Duration::ZERO);
        let text = metrics.encode();
        for gauge in [
            "runner_scaler_queue_waiting",
            "runner_scaler_queue_running",
            "runner_scaler_instances_in_service",
            "runner_scaler_instances_pending",
            "runner_scaler_desired_decided",
            "runner_scaler_desired_applied",
        ] {
            assert_eq!(value(&text, gauge, "a"), None, "{gauge} is stale");
        }
        assert_eq!(
            value(&text, "runner_scaler_last_decision_timestamp_seconds", "a"),
            Some(decided_at)
        );
        assert_eq!(value(&text, "runner_scaler_holds_total", "a"), Some(1.0));
    }

    #[test]
    fn an_unknown_outcome_is_neither_a_decision_nor_a_hold() {
        let metrics = Metrics::new(1, Duration::from_secs(60));
        let mut unknown = report("a", Action::Unknown, None);
        unknown.desired = Some(4);
        metrics.record(&[unknown], Duration::ZERO);
        let text = metrics.encode();
        assert_eq!(
            value(&text, "runner_scaler_unknown_outcomes_total", "a"),
            Some(1.0)
        );
        assert_eq!(value(&text, "runner_scaler_decisions_total", "a"), None);
        assert_eq!(value(&text, "runner_scaler_holds_total", "a"), None);
        assert_eq!(
            value(&text, "runner_scaler_desired_decided", "a"),
            Some(4.0)
        );
        assert_eq!(
            value(&text, "runner_scaler_desired_applied", "a"),
            None,
            "not known to be applied"
        );
        assert!(!metrics.healthy(), "a tick that decided nothing failed");
    }

    #[test]
    fn health_turns_bad_when_no_tick_completes_for_n_intervals() {
        let metrics = Metrics::new(2, Duration::from_secs(60));
        metrics.tick_started();
        let started = Instant::now();
        assert!(metrics
            .health_at(started + Duration::from_secs(119))
            .is_ok());
        let why = metrics
            .health_at(started + Duration::from_secs(121))
            .unwrap_err();
        assert!(
            why.contains("no tick has completed for 2 intervals"),
            "{why}"
        );
        // A tick that completes, even one that decided nothing, ends it.
        metrics.record(
            &[report("a", Action::Held, Some(HeldBecause::Deadline))],
            Duration::from_secs(121),
        );
        assert!(metrics
            .health_at(started + Duration::from_secs(500))
            .is_ok());
    }

    #[test]
    fn health_turns_bad_after_consecutive_failed_ticks_and_back_after_a_success() {
        let metrics = Metrics::new(2, Duration::from_secs(60));
        let failed = [report("a", Action::Held, Some(HeldBecause::Queue))];
        let mixed = [
            report("a", Action::Held, Some(HeldBecause::Queue)),
            report("b", Action::Applied, None),
        ];
        metrics.record(&failed, Duration::ZERO);
        assert!(metrics.healthy(), "one failed tick is not yet unhealthy");
        metrics.record(&mixed, Duration::ZERO);
        metrics.record(&failed, Duration::ZERO);
        assert!(
            metrics.healthy(),
            "a tick that decided a pool resets the count"
        );
        metrics.record(&failed, Duration::ZERO);
        assert!(!metrics.healthy());
        metrics.record(&mixed, Duration::ZERO);
        assert!(metrics.healthy());
    }
}
