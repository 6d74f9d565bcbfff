//! `runner-scaler lambda`: the binary as the `bootstrap` of a
//! `provided.al2023` function. Set up once per cold start (configuration,
//! engine, policies, clients), then one tick per invocation, answered with a
//! JSON summary of the decisions. A setup failure goes to the Runtime API's
//! init error endpoint, so it shows in the function's errors with its message.

use crate::config::{Config, PolicyRef};
use crate::modes::{self, Scaler};
use crate::policy::{linux_target, BuiltinRule, CompileCache, EngineOptions, PolicyEngine};
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

/// A policy for the seed-compatible (environment-only) set-up: a built-in
/// rule or a `.wasm` path relative to the bundle. The original tool's
/// variables have no policy, so without it the pool uses `queue`.
pub const POLICY_VAR: &str = "RUNNER_SCALER_POLICY";

/// The policy's params for the seed-compatible set-up, `key=value` pairs
/// separated by commas (`warm=2,hours=08-18`).
pub const POLICY_PARAMS_VAR: &str = "RUNNER_SCALER_POLICY_PARAMS";

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
/// dry run with `{"dry_run": true}`. Anything else in the event (an
/// EventBridge scheduled event's fields) is ignored.
fn dry_run_requested(event: &serde_json::Value) -> bool {
    event
        .get("dry_run")
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
    let scaler = match setup().await {
        Ok(scaler) => scaler,
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
    let scaler = &scaler;
    let handler = service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        let time_left = time_left(event.context.deadline, jiff::Timestamp::now());
        async move { invoke(scaler, &event.payload, time_left).await }.instrument(span)
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
    let dry_run = dry_run_requested(event);
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

/// Everything done once per cold start.
async fn setup(
) -> anyhow::Result<Scaler<crate::sources::circleci::CircleCi, crate::groups::asg::AsgGroups>> {
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
    modes::connect(&config, &engine).await
}

/// The bundle's directory: `LAMBDA_TASK_ROOT` (`/var/task`), else the
/// working directory.
fn task_root() -> PathBuf {
    std::env::var_os("LAMBDA_TASK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The configuration: `RUNNER_SCALER_CONFIG` (relative to the bundle), else
/// the original tool's variables, with `RUNNER_SCALER_POLICY` as the pool's
/// policy. `var` reads a variable.
pub fn load_config(root: &Path, var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let file = set("RUNNER_SCALER_CONFIG");
    let policy = set(POLICY_VAR);
    let params = set(POLICY_PARAMS_VAR);
    match (file, policy.is_some() || params.is_some()) {
        (Some(file), true) => anyhow::bail!(
            "RUNNER_SCALER_CONFIG ({file}) is set, and so is {POLICY_VAR} or {POLICY_PARAMS_VAR}; set \
             pools' policies and params in the configuration file and unset those two"
        ),
        (Some(file), false) => Ok(Config::from_file(&root.join(file))?),
        (None, _) => {
            let mut config = Config::from_seed_env(var)?;
            if let Some(params) = params {
                let params = parse_params(&params)?;
                for pool in &mut config.pools {
                    pool.params = params.clone();
                }
            }
            if let Some(policy) = policy {
                let policy = policy.trim();
                let policy = match BuiltinRule::from_name(policy) {
                    Some(rule) => PolicyRef::Builtin(rule),
                    None if policy.ends_with(".wasm") => PolicyRef::File(root.join(policy)),
                    None => anyhow::bail!(
                        "{POLICY_VAR}: {policy:?} is neither a built-in rule (queue, hold) nor a .wasm \
                         file in the bundle, e.g. policies/business-hours.wasm"
                    ),
                };
                for pool in &mut config.pools {
                    pool.policy = policy.clone();
                }
            }
            Ok(config)
        }
    }
}

/// `key=value,key=value` as params, in order.
fn parse_params(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_string(), value.trim().to_string()))
            }
            _ => anyhow::bail!(
                "{POLICY_PARAMS_VAR}: {item:?} is not key=value; write the params as \
                 key=value pairs separated by commas, e.g. warm=2,hours=08-18"
            ),
        })
        .collect()
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
        assert!(err.to_string().contains("unset those two"), "{err}");
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
        assert!(dry_run_requested(&serde_json::json!({ "dry_run": true })));
        assert!(!dry_run_requested(
            &serde_json::json!({ "source": "aws.events", "detail-type": "Scheduled Event" })
        ));
        assert!(!dry_run_requested(&serde_json::json!("hello")));
    }
}
