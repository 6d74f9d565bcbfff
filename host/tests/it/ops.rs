//! The operations assets in `ops/` against the real tools and a running
//! daemon (moto and the fake CircleCI behind it):
//!
//! - `ops/prometheus/rules.yml` passes `promtool check rules` and its unit
//!   tests (`rules.test.yml`, `promtool test rules`);
//! - a real Prometheus server scrapes the daemon every second with those
//!   rules loaded, and `RunnerScalerPoolHeld` fires, through its HTTP API,
//!   for the pool whose queue the fake runner API refuses (and not for the
//!   healthy one);
//! - every metric the dashboard (`ops/grafana/runner-scaler.json`) and the
//!   rules query is one the daemon serves (read from its /metrics), and the
//!   dashboard's queries parse (promtool).
//!
//! Prometheus and promtool come from Debian's `prometheus` package, which
//! `cargo xtask test` installs and names in `RUNNER_SCALER_TEST_PROMETHEUS`.
//! A test that needs them fails when they are missing under CI (`CI=true`)
//! or the xtask, and is skipped, saying so, only on a machine that has
//! neither.

use crate::support;
use support::binary::{
    config, free_listen, http_get, pool, start_daemon, wait_until, REGION, TOKEN,
};

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::fake_circleci::{Endpoint, FakeCircleCi, Fault};
use support::moto::{Moto, TestGroup};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `prometheus` or `promtool`: in the directory `cargo xtask test` names in
/// `RUNNER_SCALER_TEST_PROMETHEUS`, else on PATH. `None` (and a message
/// saying the test is skipped) only when neither CI nor the xtask asks for
/// them; otherwise a missing tool fails the test.
fn prometheus_tool(name: &str) -> Option<PathBuf> {
    let named = std::env::var_os("RUNNER_SCALER_TEST_PROMETHEUS");
    let found = match &named {
        Some(dir) => Some(PathBuf::from(dir).join(name)).filter(|p| p.is_file()),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        }),
    };
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci && named.is_none(),
            "{name} is missing: install Debian's prometheus package (`apt-get install prometheus`; \
             `cargo xtask test` does it)"
        );
        eprintln!(
            "SKIPPED: {name} is not installed (Debian: apt-get install prometheus); \
             under CI=true this test fails instead"
        );
    }
    found
}

/// Run `program` with `args`; its output, which must say success.
fn run_ok(program: &Path, args: &[&Path]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{} {args:?} failed:\n{text}",
        program.display()
    );
    text
}

fn rules_file() -> PathBuf {
    repo().join("ops/prometheus/rules.yml")
}

fn rules() -> serde_norway::Value {
    serde_norway::from_str(&std::fs::read_to_string(rules_file()).unwrap()).unwrap()
}

/// Every alerting rule of `rules`, mutably.
fn alerting_rules(rules: &mut serde_norway::Value) -> Vec<&mut serde_norway::Value> {
    rules["groups"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|group| group["rules"].as_sequence_mut().unwrap().iter_mut())
        .collect()
}

fn dashboard() -> Value {
    let path = repo().join("ops/grafana/runner-scaler.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every PromQL expression of the dashboard: its panels' targets and its
/// variables' queries.
fn dashboard_queries() -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr" | "definition", Value::String(query)) => out.push(query.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    walk(&dashboard(), &mut out);
    out
}

/// The dashboard's query as Prometheus sees it once Grafana has filled in
/// its variables (`label_values(metric, label)` is Grafana's: the metric).
fn as_promql(query: &str) -> String {
    let query = query
        .replace("$__rate_interval", "1m")
        .replace("$pool", ".*");
    assert!(
        !query.contains('$'),
        "an unknown Grafana variable in {query}"
    );
    match query.strip_prefix("label_values(") {
        Some(rest) => rest.split(',').next().unwrap().trim().to_string(),
        None => query,
    }
}

/// The metric names a PromQL expression reads: its identifiers that are not
/// a function, an aggregation, a keyword, a label (in `{...}`, `by (...)`,
/// `on (...)`...) or inside a string or a range.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // The label list that follows `by`, `on`... is no metric.
    let mut labels_next = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if labels_next => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                labels_next = false;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i]))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let rest: String = chars[i..].iter().collect::<String>();
                let rest = rest.trim_start();
                let lower = word.to_ascii_lowercase();
                if KEYWORDS.contains(&lower.as_str()) {
                    labels_next = matches!(
                        lower.as_str(),
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    );
                } else if rest.starts_with('(')
                    || rest.starts_with("by ")
                    || rest.starts_with("by(")
                    || rest.starts_with("without")
                {
                    // A function or an aggregation.
                } else {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number, or a duration such as 5m.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The series names a scrape of the daemon can have, from its `# TYPE`
/// lines: a gauge's name, a counter's `_total`, a histogram's `_bucket`,
/// `_sum` and `_count`, an info's `_info`.
fn served_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            "info" => {
                names.insert(format!("{name}_info"));
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[test]
fn metric_names_finds_the_metrics_and_nothing_else() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le, pool) (rate(a_bucket{pool=~"x|y",le!="+Inf"}[5m]))) > 2 unless on (pool) sum(b_total offset 1h) by (pool) / c or vector(0) and time() - d"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["a_bucket", "b_total", "c", "d"]
    );
}

/// promtool's own checks of the rules: syntax, and the unit tests that
/// fire (and do not fire) every alert on hand-made series.
#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let Some(promtool) = prometheus_tool("promtool") else {
        return;
    };
    let checked = run_ok(
        &promtool,
        &[Path::new("check"), Path::new("rules"), &rules_file()],
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run_ok(
        &promtool,
        &[
            Path::new("test"),
            Path::new("rules"),
            &repo().join("ops/prometheus/rules.test.yml"),
        ],
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a unit test.
    let tests = std::fs::read_to_string(repo().join("ops/prometheus/rules.test.yml")).unwrap();
    for rule in alerting_rules(&mut rules()) {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "{name} has no test in rules.test.yml"
        );
    }
}

/// Every query of the dashboard parses, as Prometheus parses it: each is
/// given to `promtool check rules` as a recording rule.
#[test]
fn the_dashboards_queries_parse() {
    let Some(promtool) = prometheus_tool("promtool") else {
        return;
    };
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{queries:?}");
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, query)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": as_promql(query)}))
        .collect();
    let file = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    // JSON is YAML.
    std::fs::write(
        file.path(),
        serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let checked = run_ok(
        &promtool,
        &[Path::new("check"), Path::new("rules"), file.path()],
    );
    assert!(
        checked.contains(&format!("{} rules found", queries.len())),
        "{checked}"
    );
}

/// A daemon with a healthy pool, a pool whose queue the runner API refuses
/// (500 on every request) and a pool with a shadow policy, ticking every
/// second, serving /metrics on `listen`.
struct Daemon {
    _moto: Moto,
    _circleci: FakeCircleCi,
    _config: tempfile::NamedTempFile,
    child: tokio::process::Child,
    listen: String,
}

impl Daemon {
    async fn start() -> Daemon {
        let moto = Moto::start();
        let circleci = FakeCircleCi::start(TOKEN).await;
        for (name, desired) in [("healthy", 0), ("broken", 2), ("shadowed", 0)] {
            moto.create_group(
                REGION,
                &TestGroup::new(&format!("ci-{name}"))
                    .desired(desired)
                    .protected(),
            )
            .await;
        }
        circleci.set_queue("acme/healthy", 2, 1);
        circleci.set_queue("acme/shadowed", 1, 0);
        circleci.set_queue("acme/broken", 0, 0);
        // More refusals than the test has ticks: the pool is held throughout.
        circleci.push_faults(
            "acme/broken",
            Endpoint::Unclaimed,
            vec![Fault::Status(500); 10_000],
        );
        let pools = format!(
            "{}{}{}shadow = \"hold\"\n",
            pool("healthy", "queue", ""),
            pool("broken", "queue", ""),
            pool("shadowed", "queue", "")
        );
        let file = config(&moto, &circleci, &pools);
        let text = std::fs::read_to_string(file.path()).unwrap();
        let text = text.replacen("[circleci]\n", "[circleci]\nattempts = 1\n", 1);
        std::fs::write(file.path(), format!("interval = \"1s\"\n{text}")).unwrap();
        let listen = free_listen();
        let child = start_daemon(file.path(), &listen);
        Daemon {
            _moto: moto,
            _circleci: circleci,
            _config: file,
            child,
            listen,
        }
    }

    /// /metrics once every pool has been ticked (held or decided).
    async fn metrics(&self) -> String {
        wait_until(&self.listen, "/metrics", |_, body| {
            body.contains("runner_scaler_holds_total{pool=\"broken\"}")
                && body.contains("runner_scaler_decisions_total{pool=\"healthy\"}")
                && body.contains("runner_scaler_shadow_desired{pool=\"shadowed\"}")
        })
        .await
    }
}

/// The daemon's own registry (`runner_scaler::metrics::Metrics`, what `run`
/// serves) after records that touch every family: a family shows in the
/// exposition only once it has a series (a pool whose writes never failed
/// has no `apply_errors` series), which a few seconds of a live daemon
/// cannot all provoke.
fn every_family_exposition() -> String {
    use runner_scaler::report::{Action, HeldBecause, PoolReport};
    use runner_scaler::sources::{QueueId, SourceKind};
    let queue = QueueId::new(SourceKind::CircleCi, "acme/p");
    let metrics = runner_scaler::metrics::Metrics::new(3, Duration::from_secs(10));
    // The live pools' policies (`policy_info`), as `run` sets them at start.
    let live = runner_scaler::policy::Policy::Builtin(runner_scaler::policy::BuiltinRule::Queue);
    metrics.set_pools(&[support::pool("p", live)]);
    // One pool each: a held pool's gauges are dropped.
    let record = |action: Action, change: &dyn Fn(&mut PoolReport)| {
        let pool = format!("{action:?}");
        let mut report = PoolReport::new(&pool, &pool, REGION, &queue, 0, 10);
        report.action = action;
        change(&mut report);
        report
    };
    let decided = record(Action::Applied, &|r| {
        r.jobs = Some(runner_scaler::Queue {
            waiting: 2,
            running: 1,
            blocked: None,
        });
        r.capacity = Some(runner_scaler::Capacity {
            warm_pool: Some(runner_scaler::WarmPool {
                instances: Some(1),
                size: 1,
                max: 4,
            }),
            ..Default::default()
        });
        r.warm = Some(2);
        r.desired = Some(3);
        r.policy_ms = Some(0.01);
        r.policy_error_kind = Some("trap");
        r.shadow = Some(runner_scaler::report::ShadowReport {
            policy: "candidate".into(),
            desired: Some(4),
            ..Default::default()
        });
    });
    let shadow_failed = record(Action::Unchanged, &|r| {
        r.desired = Some(3);
        r.shadow = Some(runner_scaler::report::ShadowReport {
            policy: "candidate".into(),
            error_kind: Some("trap"),
            ..Default::default()
        });
    });
    let queue_held = record(Action::Held, &|r| r.held_because = Some(HeldBecause::Queue));
    let mut write_held = record(Action::Held, &|r| r.held_because = Some(HeldBecause::Apply));
    write_held.pool = "written".into();
    let unknown = record(Action::Unknown, &|_| {});
    metrics.tick_started();
    metrics.record(
        &[decided, shadow_failed, queue_held, write_held, unknown],
        Duration::from_millis(5),
    );
    metrics.reloaded();
    metrics.reload_failed();
    metrics.encode()
}

/// "A test, not a promise": every metric the dashboard and the rules read
/// is one the daemon serves: read from a running daemon's /metrics, and
/// from its registry once every family has a series.
#[tokio::test]
async fn the_dashboard_and_the_rules_read_only_metrics_the_daemon_serves() {
    let mut daemon = Daemon::start().await;
    let exposition = daemon.metrics().await;
    daemon.child.kill().await.unwrap();
    let live = served_names(&exposition);
    assert!(live.contains("runner_scaler_holds_total"), "{exposition}");
    let registered = served_names(&every_family_exposition());
    assert!(
        live.is_subset(&registered),
        "the daemon serves metrics its registry does not have: {:?}",
        live.difference(&registered).collect::<Vec<_>>()
    );
    let served = registered;

    let mut read: Vec<(String, String)> = vec![];
    for query in dashboard_queries() {
        for name in metric_names(&as_promql(&query)) {
            read.push(("ops/grafana/runner-scaler.json".into(), name));
        }
    }
    for rule in alerting_rules(&mut rules()) {
        let expr = rule["expr"].as_str().unwrap().to_string();
        for name in metric_names(&expr) {
            read.push(("ops/prometheus/rules.yml".into(), name));
        }
    }
    let distinct: BTreeSet<&str> = read.iter().map(|(_, name)| name.as_str()).collect();
    assert!(distinct.len() >= 15, "too few metrics found: {distinct:?}");
    let unknown: Vec<String> = read
        .iter()
        .filter(|(_, name)| !served.contains(name))
        .map(|(file, name)| format!("{file}: {name}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "metrics the daemon does not serve:\n{}\nit serves: {served:?}",
        unknown.join("\n")
    );
}

/// A Prometheus server (Debian's) on loopback, killed when dropped.
struct Prometheus {
    child: std::process::Child,
    address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scraping `target` every second, evaluating `rules` every second.
    fn start(binary: &Path, target: &str, rules: &serde_norway::Value) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules_path = dir.path().join("rules.yml");
        std::fs::write(&rules_path, serde_norway::to_string(rules).unwrap()).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: runner-scaler\n    static_configs:\n      - targets: ['{target}']\n",
            rules_path.display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let address = free_listen();
        let log = dir.path().join("prometheus.log");
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        Prometheus {
            child,
            address,
            log,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let (status, body) = http_get(&self.address, path).await?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// What Prometheus said, for a failure's message (its last 4 KiB).
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text[text.len().saturating_sub(4096)..].to_string()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The end-to-end alert: a real Prometheus scrapes a daemon whose runner API
/// answers 500 for one pool, with `ops/prometheus/rules.yml` loaded, and
/// reports `RunnerScalerPoolHeld` firing for that pool and no other. The
/// rules are the shipped ones with only their `for:` shortened, so the test
/// takes seconds, not minutes.
#[tokio::test]
async fn a_real_prometheus_fires_pool_held_for_the_pool_whose_queue_cannot_be_read() {
    let Some(binary) = prometheus_tool("prometheus") else {
        return;
    };
    let mut shortened = rules();
    for rule in alerting_rules(&mut shortened) {
        assert!(rule.get("for").is_some(), "every rule says its `for:`");
        rule["for"] = "2s".into();
    }
    let mut daemon = Daemon::start().await;
    daemon.metrics().await;
    let prometheus = Prometheus::start(&binary, &daemon.listen, &shortened);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let mut last = Value::Null;
    let firing = loop {
        if let Some(answer) = prometheus.get("/api/v1/alerts").await {
            let held: Vec<Value> = answer["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["labels"]["alertname"] == "RunnerScalerPoolHeld")
                .cloned()
                .collect();
            if held
                .iter()
                .any(|a| a["labels"]["pool"] == "broken" && a["state"] == "firing")
            {
                break held;
            }
            last = answer;
        }
        if Instant::now() > deadline {
            let targets = prometheus.get("/api/v1/targets").await;
            panic!(
                "RunnerScalerPoolHeld did not fire for pool broken within 90 s.\n\
                 last /api/v1/alerts: {last}\ntargets: {targets:?}\nprometheus log:\n{}",
                prometheus.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "RunnerScalerPoolHeld firing after {:.1?}: {firing:?}",
        started.elapsed()
    );
    assert!(
        firing.iter().all(|a| a["labels"]["pool"] == "broken"),
        "the healthy pools are not held: {firing:?}"
    );
    let alert = &firing[0];
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["annotations"]["summary"],
        "pool broken is held: its capacity is frozen"
    );
    // What Prometheus scraped is the daemon, up.
    let up = prometheus
        .get("/api/v1/query?query=up%7Bjob%3D%22runner-scaler%22%7D")
        .await
        .unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    daemon.child.kill().await.unwrap();
}

/// The container image: its base is pinned (by digest, or a dated tag), it
/// runs as a user other than root, its entry point is the binary it copies,
/// and the daemon listens where the port mapping reaches it. podman builds
/// and runs it in `cargo xtask test`.
#[test]
fn the_container_image_is_pinned_and_runs_as_a_non_root_user() {
    let text = std::fs::read_to_string(repo().join("ops/container/Containerfile")).unwrap();
    let instructions: Vec<(&str, &str)> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split_once(' ').unwrap())
        .collect();
    let all = |keyword: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(k, _)| *k == keyword)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(all("FROM"), ["${BASE}"]);
    let base = all("ARG")
        .into_iter()
        .find_map(|arg| arg.strip_prefix("BASE="))
        .expect("ARG BASE=<image>");
    let pinned_by_digest = base.split_once("@sha256:").is_some_and(|(_, digest)| {
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())
    });
    let tag = base.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
    let pinned_by_version = tag.chars().any(|c| c.is_ascii_digit()) && !tag.contains("latest");
    assert!(
        pinned_by_digest || pinned_by_version,
        "unpinned base: {base}"
    );
    let user = *all("USER").last().expect("a USER");
    let name = user.split(':').next().unwrap();
    assert!(
        name != "root" && name.parse::<u32>() != Ok(0),
        "USER {user}"
    );
    let copy: Vec<&str> = all("COPY")[0].split_whitespace().collect();
    let installed = copy.last().unwrap();
    assert_eq!(
        all("ENTRYPOINT"),
        [format!("[\"{installed}\"]").as_str()],
        "the entry point is the binary copied in"
    );
    let cmd: Vec<String> = serde_json::from_str(all("CMD")[0]).unwrap();
    assert_eq!(cmd[0], "run");
    let listen = &cmd[cmd.iter().position(|a| a == "--listen").unwrap() + 1];
    assert!(listen.starts_with("0.0.0.0:"), "{listen}");
    assert_eq!(all("EXPOSE"), [listen.rsplit(':').next().unwrap()]);
}

/// The systemd unit: a user of its own, a read-only system, no privileges;
/// `systemctl reload` sends SIGHUP (the daemon's reload); a descriptor
/// limit; compiled policy code cached in its cache directory. `cargo xtask
/// test` runs `systemd-analyze verify` and `security` on it.
#[test]
fn the_systemd_unit_is_hardened_reloads_with_sighup_and_keeps_its_compile_cache() {
    let text = std::fs::read_to_string(repo().join("ops/systemd/runner-scaler.service")).unwrap();
    let mut section = "";
    let mut service: Vec<(String, String)> = vec![];
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.starts_with('#') && !line.is_empty() {
            let (key, value) = line.split_once('=').unwrap();
            service.push((key.into(), value.into()));
        }
    }
    let value = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (key, wanted) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictSUIDSGID", "yes"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("CacheDirectory", "runner-scaler"),
        ("Environment", "RUNNER_SCALER_CACHE_DIR=%C/runner-scaler"),
    ] {
        assert_eq!(value(key), [wanted], "{key}");
    }
    assert!(value("LimitNOFILE")[0].parse::<u32>().unwrap() >= 4096);
    assert!(
        value("ExecStart")[0].contains(" run "),
        "{:?}",
        value("ExecStart")
    );
    let families = value("RestrictAddressFamilies")[0];
    assert!(
        families.contains("AF_INET") && families.contains("AF_INET6"),
        "{families}"
    );
}
