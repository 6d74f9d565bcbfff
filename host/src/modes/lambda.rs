//! `runner-scaler lambda`: the binary as the `bootstrap` of a
//! `provided.al2023` function. Set up once per cold start (configuration,
//! engine, policies, clients), then, in each invocation, a tick every tick
//! interval (10 s by default) until the next would not fit before the
//! invocation's deadline: a one-minute schedule and a 55 s timeout give six
//! ticks a minute, never two at once and none overlapping the next
//! invocation. Each tick is complete on its own (state, decision records,
//! metrics). The answer is a JSON summary of the last tick. A setup failure
//! goes to the Runtime API's init error endpoint, so it shows in the
//! function's errors with its message.

use crate::config::Config;
use crate::modes::{self, Scaler};
use crate::policy::EngineOptions;
use crate::tick::{Action, PoolReport, TickOptions};
use anyhow::Context;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing::Instrument;

/// Set by Lambda for a custom runtime: `host:port` of the Runtime API.
pub const RUNTIME_API_VAR: &str = "AWS_LAMBDA_RUNTIME_API";

/// Variables Lambda always sets and the runtime crate requires.
const FUNCTION_VARS: [&str; 3] = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// The directory of `policy precompile` entries [default:
/// `$LAMBDA_TASK_ROOT/precompiled`].
pub const PRECOMPILED_VAR: &str = "RUNNER_SCALER_PRECOMPILED";

/// The least time left that a tick is started with (or the interval, if
/// shorter); with less, the invocation ends and the next one ticks.
const MIN_TICK_TIME: std::time::Duration = std::time::Duration::from_secs(3);

/// What one invocation answers: its last tick, and how many it ran.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Ticks this invocation ran.
    pub ticks: usize,
    /// Every pool's decision record, from the last tick.
    pub pools: Vec<PoolReport>,
    /// Pools that got a decision.
    pub decided: usize,
    /// Pools held: inputs unreadable or a write failed; nothing written.
    pub held: usize,
    /// Pools whose write was sent with an unknown outcome (re-read next tick).
    pub unknown: usize,
}

impl Summary {
    /// The summary of one tick's reports.
    pub fn of(pools: Vec<PoolReport>) -> Summary {
        let count = |action| pools.iter().filter(|r| r.action == action).count();
        Summary {
            ticks: 1,
            decided: pools.iter().filter(|r| r.decided()).count(),
            held: count(Action::Held),
            unknown: count(Action::Unknown),
            pools,
        }
    }
}

/// An optional field of the event: a manual test invocation can ask for a
/// dry run with `{"dry_run": true}` (one tick), for a single tick with
/// `{"once": true}`, or for the permission probe of `check --probe` with
/// `{"probe": true}` (as the function's own role). Anything else in the
/// event (an EventBridge scheduled event's fields) is ignored.
fn requested(event: &serde_json::Value, field: &str) -> bool {
    event
        .get(field)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// Whether this process is a Lambda function's runtime: the Runtime API is
/// announced. With no subcommand, `main` then runs [`run`].
pub fn detected() -> bool {
    std::env::var_os(RUNTIME_API_VAR).is_some_and(|v| !v.is_empty())
}

/// Run as the function's runtime until Lambda stops the process, through
/// `guard` ([`super::runtime_api_guard`]) when it could be bound.
pub async fn run(guard: Option<super::runtime_api_guard::Guard>) -> anyhow::Result<ExitCode> {
    if let Some(guard) = guard {
        tokio::spawn(super::runtime_api_guard::serve(guard));
    }
    let api = std::env::var(RUNTIME_API_VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| {
            format!(
                "{RUNTIME_API_VAR} is not set: `runner-scaler lambda` runs inside AWS Lambda (as the \
                 function's bootstrap); use `runner-scaler once` or `run` elsewhere"
            )
        })?;
    if let Some(missing) = FUNCTION_VARS.iter().find(|v| std::env::var_os(v).is_none()) {
        let message = format!(
            "{missing} is not set; Lambda sets it for every function. To run the Lambda mode by hand, \
             set {} too",
            FUNCTION_VARS.join(", ")
        );
        report_init_error(&api, "Runtime.InitError", &message).await;
        anyhow::bail!(message);
    }
    let started = std::time::Instant::now();
    let (config, scaler) = match setup().await {
        Ok(ready) => ready,
        Err(err) => {
            let message = format!("{err:#}");
            tracing::error!(error = %message, "runner-scaler cannot start");
            report_init_error(&api, "RunnerScaler.SetupError", &message).await;
            return Err(err);
        }
    };
    tracing::info!(
        pools = scaler.pools.len(),
        setup_ms = started.elapsed().as_secs_f64() * 1e3,
        "runner-scaler ready for invocations"
    );
    let (config, scaler) = (&config, &scaler);
    let handler = service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        let deadline = time_left(event.context.deadline, jiff::Timestamp::now())
            .map(|left| tokio::time::Instant::now() + left);
        async move {
            if requested(&event.payload, "probe") {
                return probe(config).await;
            }
            let summary = invoke(scaler, &event.payload, deadline).await?;
            serde_json::to_value(summary).map_err(|err| Diagnostic {
                error_type: "RunnerScaler.Internal".into(),
                error_message: format!("cannot write the summary: {err}"),
            })
        }
        .instrument(span)
    });
    lambda_runtime::Runtime::new(handler)
        .run()
        .await
        .map_err(|err| anyhow::anyhow!("the Lambda Runtime API failed: {err}"))?;
    Ok(ExitCode::SUCCESS)
}

/// One invocation: a tick every interval while another fits before
/// `deadline` (one tick with no deadline, or when the event asks for a dry
/// run or a single tick). It succeeds when any tick decided a pool (held
/// pools are in the summary); when no tick decided any, it fails, so the
/// function's error metric shows an outage (token revoked, API down).
async fn invoke<Q, G>(
    scaler: &Scaler<Q, G>,
    event: &serde_json::Value,
    deadline: Option<tokio::time::Instant>,
) -> Result<Summary, Diagnostic>
where
    Q: crate::sources::QueueSource,
    G: crate::groups::Groups,
{
    let dry_run = requested(event, "dry_run");
    let single = dry_run || requested(event, "once");
    let started = tokio::time::Instant::now();
    let least = MIN_TICK_TIME.min(scaler.interval);
    let mut ticks = 0;
    let mut decided_any = false;
    loop {
        // A tick ends before the function's own timeout would kill it
        // without a report.
        let tick_deadline = deadline.map(|at| {
            at.saturating_duration_since(tokio::time::Instant::now())
                .min(scaler.tick_deadline)
        });
        let mut summary = Summary::of(
            scaler
                .tick(TickOptions {
                    dry_run,
                    deadline: tick_deadline,
                })
                .await,
        );
        ticks += 1;
        decided_any |= summary.decided > 0;
        // The metrics (docs/operating.md, "Metrics (Lambda)"): EMF lines on
        // stdout, which CloudWatch Logs turns into metrics.
        let now_ms = jiff::Timestamp::now().as_millisecond();
        for report in &summary.pools {
            println!("{}", crate::emf::line(report, now_ms));
        }
        tracing::info!(
            tick = ticks,
            decided = summary.decided,
            held = summary.held,
            unknown = summary.unknown,
            dry_run,
            "tick done"
        );
        let next = started + scaler.interval * ticks as u32;
        let fits = deadline.is_some_and(|at| next + least <= at);
        if single || !fits {
            summary.ticks = ticks;
            return if decided_any || summary.held + summary.unknown == 0 {
                Ok(summary)
            } else {
                Err(all_held(&summary))
            };
        }
        tokio::time::sleep_until(next).await;
    }
}

/// The invocation's error when no tick decided any pool, naming why each
/// pool of the last tick was held.
fn all_held(summary: &Summary) -> Diagnostic {
    let why: Vec<String> = summary
        .pools
        .iter()
        .map(|r| format!("{}: {}", r.pool, r.why.as_deref().unwrap_or("held")))
        .collect();
    Diagnostic {
        error_type: "RunnerScaler.AllPoolsHeld".into(),
        error_message: format!("no pool was decided; {}", why.join("; ")),
    }
}

/// What a tick may take of an invocation that must end by `deadline_ms`
/// (Unix milliseconds, as the Runtime API gives it): the time left, less a
/// second to report in. `None` when the Runtime API gave no deadline.
fn time_left(deadline_ms: u64, now: jiff::Timestamp) -> Option<std::time::Duration> {
    if deadline_ms == 0 {
        return None;
    }
    let left = (deadline_ms as i64).saturating_sub(now.as_millisecond());
    let left = std::time::Duration::from_millis(left.max(0) as u64);
    Some(
        left.saturating_sub(std::time::Duration::from_secs(1))
            .max(std::time::Duration::from_millis(100)),
    )
}

/// `{"probe": true}`: every AWS call the scaler makes, tried as the
/// function's role ([`modes::probe`]); the report is the answer, and an
/// invocation error when a call is refused.
async fn probe(config: &Config) -> Result<serde_json::Value, Diagnostic> {
    let report = modes::probe::probe(config).await;
    tracing::info!(ok = report.ok(), "probe done");
    if !report.ok() {
        return Err(Diagnostic {
            error_type: "RunnerScaler.ProbeRefused".into(),
            error_message: report.text(),
        });
    }
    serde_json::to_value(report).map_err(|err| Diagnostic {
        error_type: "RunnerScaler.Internal".into(),
        error_message: format!("cannot write the probe's report: {err}"),
    })
}

/// Everything done once per cold start: the configuration, and the scaler
/// it describes.
async fn setup() -> anyhow::Result<(
    Config,
    Scaler<crate::sources::Sources, crate::groups::asg::AsgGroups>,
)> {
    let root = task_root();
    let config = load_config(&root, &|name| std::env::var(name).ok())?;
    let precompiled = std::env::var_os(PRECOMPILED_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("precompiled"));
    // The host's baseline target, not its detected CPU features: the code
    // `policy precompile --target` wrote elsewhere then has this engine's key.
    let mut policies = modes::policy_loader(config.limits, EngineOptions::precompiled(precompiled));
    let scaler = modes::connect(&config, &mut policies).await?;
    Ok((config, scaler))
}

/// The bundle's directory: `LAMBDA_TASK_ROOT` (`/var/task`), else the
/// working directory.
fn task_root() -> PathBuf {
    std::env::var_os("LAMBDA_TASK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The configuration: `RUNNER_SCALER_CONFIG` (relative to the bundle), else
/// the environment route, whose policy paths are relative to the bundle too
/// ([`Config::resolve`]). `var` reads a variable.
pub fn load_config(root: &Path, var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
    let file = var("RUNNER_SCALER_CONFIG")
        .filter(|v| !v.trim().is_empty())
        .map(|file| root.join(file));
    Ok(Config::resolve(file.as_deref(), var, root)?)
}

/// Tell Lambda the runtime could not start, with the message; the
/// invocation that woke it fails with it. A failure to report is only
/// logged: the process exits either way.
async fn report_init_error(api: &str, error_type: &str, message: &str) {
    let url = format!("http://{api}/2018-06-01/runtime/init/error");
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    let sent = async {
        reqwest::Client::builder()
            .no_proxy()
            .build()?
            .post(&url)
            .header("Lambda-Runtime-Function-Error-Type", error_type)
            .json(&body)
            .send()
            .await?
            .error_for_status()
    }
    .await;
    if let Err(err) = sent {
        tracing::error!(%url, %err, "cannot report the init error to the Lambda Runtime API");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::{POLICY as POLICY_VAR, POLICY_PARAMS as POLICY_PARAMS_VAR};
    use crate::policy::BuiltinRule;
    use crate::policy::PolicyRef;

    /// A scaler of one pool (`queue` rule) over in-memory sources.
    fn memory_scaler(
        interval: std::time::Duration,
    ) -> Scaler<crate::sources::MemoryQueue, crate::groups::MemoryGroups> {
        use crate::groups::GroupState;
        let pool =
            crate::tick::Pool::example("a", crate::policy::Policy::Builtin(BuiltinRule::Queue));
        let queues = crate::sources::MemoryQueue::new();
        queues.set(
            "acme/a",
            crate::observation::Queue {
                waiting: 2,
                running: 0,
                blocked: None,
            },
        );
        let groups = crate::groups::MemoryGroups::new();
        let state = GroupState {
            max_size: 10,
            new_instances_protected: true,
            ..GroupState::default()
        };
        groups.insert(pool.group.clone(), state);
        Scaler {
            pools: vec![pool],
            queues,
            groups,
            tick_deadline: std::time::Duration::from_secs(10),
            interval,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_ticks_every_interval_until_the_next_would_not_fit() {
        let secs = std::time::Duration::from_secs;
        let scaler = memory_scaler(secs(10));
        let event = serde_json::json!({ "detail-type": "Scheduled Event" });
        // A 55 s timeout, less the second kept to report in: ticks at 0, 10,
        // ..., 50 s; the one at 60 s belongs to the next invocation.
        let started = tokio::time::Instant::now();
        let summary = invoke(&scaler, &event, Some(started + secs(54)))
            .await
            .unwrap();
        assert_eq!(summary.ticks, 6);
        assert_eq!(scaler.queues.reads(), 6, "a queue read per tick");
        assert!(started.elapsed() < secs(54), "{:?}", started.elapsed());
        assert_eq!(summary.pools[0].action, Action::Unchanged, "applied once");
        // A tick that could have only 2 s left is not started.
        let summary = invoke(
            &scaler,
            &event,
            Some(tokio::time::Instant::now() + secs(52)),
        )
        .await
        .unwrap();
        assert_eq!(
            summary.ticks, 5,
            "the one at 50 s would have 2 s: not started"
        );
        // A dry run, an explicit single tick, or no deadline: one tick.
        for event in [
            serde_json::json!({ "dry_run": true }),
            serde_json::json!({ "once": true }),
        ] {
            let summary = invoke(
                &scaler,
                &event,
                Some(tokio::time::Instant::now() + secs(54)),
            )
            .await
            .unwrap();
            assert_eq!(summary.ticks, 1, "{event}");
        }
        assert_eq!(invoke(&scaler, &event, None).await.unwrap().ticks, 1);
        // An interval longer than the invocation: one tick, at once.
        let slow = memory_scaler(secs(60));
        let started = tokio::time::Instant::now();
        let summary = invoke(&slow, &event, Some(started + secs(54)))
            .await
            .unwrap();
        assert_eq!(summary.ticks, 1);
        assert!(
            started.elapsed() < secs(1),
            "it did not wait for a tick it cannot run"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_that_decides_nothing_fails_after_its_ticks() {
        let secs = std::time::Duration::from_secs;
        let scaler = memory_scaler(secs(10));
        scaler.queues.fail("acme/a", "revoked");
        let event = serde_json::json!({});
        let err = invoke(
            &scaler,
            &event,
            Some(tokio::time::Instant::now() + secs(24)),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type, "RunnerScaler.AllPoolsHeld");
        assert_eq!(scaler.queues.reads(), 3, "three ticks were tried");
    }

    #[test]
    fn a_tick_ends_a_second_before_the_invocation_must() {
        let now: jiff::Timestamp = "2026-11-23T09:00:00Z".parse().unwrap();
        let at = |ms: i64| (now.as_millisecond() + ms) as u64;
        let secs = std::time::Duration::from_secs;
        assert_eq!(time_left(at(60_000), now), Some(secs(59)));
        assert_eq!(
            time_left(at(500), now),
            Some(std::time::Duration::from_millis(100)),
            "a floor, not zero"
        );
        assert_eq!(time_left(0, now), None, "no deadline given");
    }

    fn seed(extra: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            let base = [
                ("SECRET_NAME", "s"),
                ("SECRET_REGION", "eu-west-1"),
                ("AUTO_SCALING_MAX", "4"),
                ("AUTO_SCALING_GROUP_NAME", "g"),
                ("AUTO_SCALING_GROUP_REGION", "eu-west-1"),
            ];
            base.iter()
                .chain(extra)
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_seed_environment_takes_a_policy_from_the_bundle() {
        let root = Path::new("/var/task");
        let config = load_config(root, &seed(&[])).unwrap();
        assert_eq!(
            config.pools[0].policy,
            PolicyRef::Builtin(BuiltinRule::Queue)
        );
        let config =
            load_config(root, &seed(&[(POLICY_VAR, "policies/business-hours.wasm")])).unwrap();
        assert_eq!(
            config.pools[0].policy,
            PolicyRef::File("/var/task/policies/business-hours.wasm".into())
        );
        let err = load_config(root, &seed(&[(POLICY_VAR, "fast")])).unwrap_err();
        assert!(err.to_string().contains("neither a built-in rule"), "{err}");
        let err = load_config(
            root,
            &seed(&[("RUNNER_SCALER_CONFIG", "c.toml"), (POLICY_VAR, "hold")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unset RUNNER_SCALER_POLICY"),
            "{err}"
        );
        let config = load_config(
            root,
            &seed(&[(POLICY_PARAMS_VAR, "warm=2, hours = 08-18,")]),
        )
        .unwrap();
        assert_eq!(
            config.pools[0].params,
            [
                ("warm".into(), "2".into()),
                ("hours".into(), "08-18".into())
            ]
        );
        let err = load_config(root, &seed(&[(POLICY_PARAMS_VAR, "warm")])).unwrap_err();
        assert!(err.to_string().contains("is not key=value"), "{err}");
    }

    #[test]
    fn a_config_file_is_found_beside_the_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("runner-scaler.toml"),
            "[[pool]]\nname = \"p\"\nresource_class = \"a/b\"\ngroup = \"g\"\nregion = \"eu-west-1\"\npolicy = \"policies/q.wasm\"\nmax = 2\n",
        )
        .unwrap();
        let var =
            |name: &str| (name == "RUNNER_SCALER_CONFIG").then(|| "runner-scaler.toml".to_string());
        let config = load_config(dir.path(), &var).unwrap();
        assert_eq!(
            config.pools[0].policy,
            PolicyRef::File(dir.path().join("policies/q.wasm"))
        );
        let missing =
            |name: &str| (name == "RUNNER_SCALER_CONFIG").then(|| "nope.toml".to_string());
        let err = load_config(dir.path(), &missing).unwrap_err().to_string();
        assert!(err.contains("nope.toml"), "{err}");
    }

    #[test]
    fn the_summary_counts_and_the_event_may_ask_for_a_dry_run() {
        let summary = Summary::of(vec![]);
        assert_eq!((summary.decided, summary.held), (0, 0));
        assert!(requested(
            &serde_json::json!({ "dry_run": true }),
            "dry_run"
        ));
        assert!(requested(&serde_json::json!({ "probe": true }), "probe"));
        assert!(!requested(
            &serde_json::json!({ "source": "aws.events", "detail-type": "Scheduled Event" }),
            "dry_run"
        ));
        assert!(!requested(&serde_json::json!("hello"), "dry_run"));
    }
}
