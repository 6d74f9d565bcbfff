//! `runner-scaler lambda`: the binary as the `bootstrap` of a
//! `provided.al2023` function. Set up once per cold start (configuration,
//! engine, policies, clients), then one tick per invocation, answered with a
//! JSON summary of the decisions. A setup failure goes to the Runtime API's
//! init error endpoint, so it shows in the function's errors with its message.

use crate::config::Config;
use crate::modes::{self, Scaler};
use crate::policy::{linux_target, CompileCache, EngineOptions, PolicyEngine};
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

/// What one invocation answers.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Every pool's decision record.
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
            decided: pools.iter().filter(|r| r.decided()).count(),
            held: count(Action::Held),
            unknown: count(Action::Unknown),
            pools,
        }
    }
}

/// An optional field of the event: a manual test invocation can ask for a
/// dry run with `{"dry_run": true}`, or for the permission probe of `check
/// --probe` with `{"probe": true}` (as the function's own role). Anything
/// else in the event (an EventBridge scheduled event's fields) is ignored.
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

/// Run as the function's runtime until Lambda stops the process.
pub async fn run() -> anyhow::Result<ExitCode> {
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
        let time_left = time_left(event.context.deadline, jiff::Timestamp::now());
        async move {
            if requested(&event.payload, "probe") {
                return probe(config).await;
            }
            let summary = invoke(scaler, &event.payload, time_left).await?;
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

/// One invocation: one tick. It succeeds when any pool was decided (held
/// pools are in the summary); when every pool was held it fails, so the
/// function's error metric shows an outage (token revoked, API down).
async fn invoke<Q, G>(
    scaler: &Scaler<Q, G>,
    event: &serde_json::Value,
    time_left: Option<std::time::Duration>,
) -> Result<Summary, Diagnostic>
where
    Q: crate::sources::QueueSource,
    G: crate::groups::Groups,
{
    let dry_run = requested(event, "dry_run");
    // The tick ends before the function's own timeout would kill it
    // without a report.
    let deadline = time_left.map(|left| left.min(scaler.tick_deadline));
    let summary = Summary::of(scaler.tick(TickOptions { dry_run, deadline }).await);
    // The metrics (docs/operating.md, "Metrics (Lambda)"): EMF lines on
    // stdout, which CloudWatch Logs turns into metrics.
    let now_ms = jiff::Timestamp::now().as_millisecond();
    for report in &summary.pools {
        println!("{}", crate::emf::line(report, now_ms));
    }
    tracing::info!(
        decided = summary.decided,
        held = summary.held,
        unknown = summary.unknown,
        dry_run,
        "tick done"
    );
    if summary.decided == 0 && summary.held + summary.unknown > 0 {
        let why: Vec<String> = summary
            .pools
            .iter()
            .map(|r| format!("{}: {}", r.pool, r.why.as_deref().unwrap_or("held")))
            .collect();
        return Err(Diagnostic {
            error_type: "RunnerScaler.AllPoolsHeld".into(),
            error_message: format!("no pool was decided; {}", why.join("; ")),
        });
    }
    Ok(summary)
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
    Scaler<crate::sources::circleci::CircleCi, crate::groups::asg::AsgGroups>,
)> {
    let root = task_root();
    let config = load_config(&root, &|name| std::env::var(name).ok())?;
    let precompiled = std::env::var_os(PRECOMPILED_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("precompiled"));
    // The host's baseline target, not its detected CPU features: the code
    // `policy precompile --target` wrote elsewhere then has this engine's key.
    let engine = PolicyEngine::with_options(
        config.limits,
        Some(CompileCache::new(CompileCache::default_dir())),
        EngineOptions {
            target: Some(linux_target(std::env::consts::ARCH)),
            precompiled: Some(precompiled),
        },
    )?;
    let scaler = modes::connect(&config, &engine).await?;
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
