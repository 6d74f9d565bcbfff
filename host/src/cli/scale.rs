//! `runner-scaler once`, `run` and `check`: the scaler's main job.

use crate::config::Config;
use crate::groups::asg::AsgGroups;
use crate::metrics::Metrics;
use crate::modes::lambda::PRECOMPILED_VAR;
use crate::modes::{self, daemon, http, reload};
use crate::policy::{EngineOptions, Policy, PolicyLoader};
use crate::sources::Sources;
use crate::tick::TickOptions;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Where the configuration is, and the policies' compiled code.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The configuration file. Without one, the original tool's environment
    /// variables (SECRET_NAME, AUTO_SCALING_GROUP_NAME, ...) define one pool.
    #[arg(long, short, env = "RUNNER_SCALER_CONFIG")]
    config: Option<PathBuf>,
    /// A directory written by `runner-scaler policy precompile` (for this
    /// machine's architecture and the configuration's sandbox limits):
    /// policies load their code from it instead of compiling it, as the
    /// Lambda bundle does. An entry that is missing, damaged or built for
    /// another engine is skipped with a warning, and the policy compiled.
    #[arg(long, value_name = "DIR", env = PRECOMPILED_VAR)]
    precompiled: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Also try every AWS call the scaler makes, with the credentials it
    /// would use, and report any it may not make with the IAM statement to
    /// add. Reads are real; writes take a form that changes nothing (a
    /// name-only UpdateAutoScalingGroup, a SetDesiredCapacity above the
    /// group's maximum, which Auto Scaling refuses, and a runner-scaler:probe
    /// tag it removes).
    #[arg(long)]
    probe: bool,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Decide and report, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the decision records as JSON instead of a table (`once` only).
    #[arg(long)]
    json: bool,
    /// Serve /metrics and /healthz here (`run` only) [default: the config's daemon.listen, 127.0.0.1:9464].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

impl ConfigArgs {
    /// The configuration, and the loader of its policies: its engine (a
    /// reserved pool of sandboxes) is made only when a pool's policy is a
    /// file, and reads `--precompiled` before the compile cache.
    fn load(&self) -> anyhow::Result<(Config, PolicyLoader<'static>)> {
        let config = Config::load(self.config.as_deref())?;
        let options = match &self.precompiled {
            Some(dir) => EngineOptions::precompiled(dir.clone()),
            None => EngineOptions::default(),
        };
        let policies = modes::policy_loader(config.limits, options);
        Ok((config, policies))
    }
}

/// One tick; exit 0 when every pool was decided.
pub async fn once(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let (config, mut policies) = args.config.load()?;
    let scaler = modes::connect(&config, &mut policies).await?;
    let reports = scaler
        .tick(TickOptions {
            dry_run: args.dry_run,
            deadline: None,
        })
        .await;
    if args.json {
        let json = serde_json::to_string_pretty(&reports)?;
        println!("{}", crate::text::escape_json(&json));
    } else {
        println!("{}", modes::once::summary(&reports, args.dry_run));
    }
    Ok(if reports.iter().all(|r| r.decided()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Tick every interval until SIGTERM or SIGINT; reload on SIGHUP or when a
/// file the configuration depends on changes.
pub async fn run(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let descriptors = daemon::raise_descriptor_limit();
    let (config, mut policies) = args.config.load()?;
    let scaler = modes::connect(&config, &mut policies).await?;
    let config_file = args.config.config.clone();
    let triggers = reload::Triggers::start(reload::files_of(config_file.as_deref(), &config))
        .context("cannot listen for SIGHUP or watch the configuration")?;
    tracing::info!(
        pools = scaler.pools.len(),
        interval_s = scaler.interval.as_secs_f64(),
        dry_run = args.dry_run,
        open_files_limit = descriptors,
        "runner-scaler running"
    );
    modes::warn_unprotected(&scaler).await;
    let metrics = Arc::new(Metrics::new(config.daemon.unhealthy_after, scaler.interval));
    metrics.set_pools(&scaler.pools);
    let listen = args.listen.unwrap_or(config.daemon.listen);
    let listener = http::bind(listen).await.with_context(|| {
        format!(
            "cannot serve metrics on {listen}: set [daemon] listen or --listen to a free address"
        )
    })?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics and /healthz");
    tokio::spawn(http::serve(listener, metrics.clone()));
    let grace = config.daemon.stop_grace;
    let stop = daemon::stop_on_signals(grace).context("cannot listen for SIGTERM")?;
    let options = TickOptions {
        dry_run: args.dry_run,
        deadline: None,
    };
    let interval = scaler.interval;
    let current = Arc::new(reload::Current::new(scaler));
    tokio::spawn(reload_on_triggers(
        args.config,
        config,
        triggers,
        current.clone(),
        metrics.clone(),
    ));
    let ticks = daemon::run_every(interval, stop.clone(), || async {
        let started = std::time::Instant::now();
        metrics.tick_started();
        // The scaler as of now: a reload during this tick waits for the next.
        let scaler = current.get();
        let reports = scaler
            .tick_until(options, daemon::stopped(stop.clone(), grace))
            .await;
        metrics.record(&reports, started.elapsed());
    })
    .await;
    tracing::info!(ticks, "runner-scaler stopped");
    Ok(ExitCode::SUCCESS)
}

/// Reload on each trigger: a whole new scaler, swapped in for the next
/// tick, or — on any error — the old one kept and the error logged.
async fn reload_on_triggers(
    args: ConfigArgs,
    mut config: Config,
    mut triggers: reload::Triggers,
    current: Arc<reload::Current<modes::Scaler<Sources, AsgGroups>>>,
    metrics: Arc<Metrics>,
) {
    while let Some(trigger) = triggers.next().await {
        tracing::info!(%trigger, "reloading the configuration and its policies");
        let rebuilt = async {
            // Files are read and policies compiled on a thread of their
            // own, within the deadline; then the clients are made here.
            let load = args.clone();
            let (config, loaded) =
                reload::off_the_runtime(config.daemon.reload_deadline, move || {
                    let (config, mut policies) = load.load()?;
                    let loaded = modes::load_policies(&config, &mut policies)?;
                    Ok((config, loaded))
                })
                .await?;
            let scaler = modes::connect_loaded(&config, loaded).await?;
            anyhow::Ok((config, scaler))
        }
        .await;
        match rebuilt {
            Ok((new_config, scaler)) => {
                let changes = reload::changes(&current.get().pools, &scaler.pools);
                if new_config.interval != config.interval || new_config.daemon != config.daemon {
                    tracing::warn!(
                        "interval and [daemon] take effect at the next start; the rest from the next tick"
                    );
                }
                triggers.watch(reload::files_of(args.config.as_deref(), &new_config));
                metrics.set_pools(&scaler.pools);
                current.set(scaler);
                config = new_config;
                metrics.reloaded();
                tracing::info!(
                    %trigger,
                    changes = %if changes.is_empty() { "none".to_string() } else { changes.join("; ") },
                    "reloaded; the next tick uses it"
                );
            }
            Err(err) => {
                metrics.reload_failed();
                tracing::error!(
                    %trigger,
                    error = %format!("{err:#}"),
                    "the reload failed; the previous configuration and policies go on deciding"
                );
            }
        }
    }
}

/// Validate the configuration and load every policy; contact nothing unless
/// asked to probe.
pub async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (config, mut policies) = args.config.load()?;
    let loaded = modes::load_policies(&config, &mut policies)?;
    for (pool, (policy, shadow)) in config.pools.iter().zip(&loaded) {
        let describe = |policy: &Policy| match policy {
            Policy::Builtin(rule) => format!("built-in {rule}"),
            Policy::Wasm(wasm) => format!(
                "{} (sha256 {}, {})",
                wasm.path().display(),
                wasm.sha256(),
                wasm.contract()
            ),
        };
        let mut policy = describe(policy);
        if let Some(shadow) = shadow {
            policy += &format!(", shadow {}", describe(&shadow.policy));
        }
        println!(
            "pool {:?}: group {} in [{}, {}], policy {policy}, fallback {}, time zone {}",
            pool.name,
            pool.group,
            pool.bounds.min,
            pool.bounds.max,
            pool.fallback,
            pool.time_zone.iana_name().unwrap_or("UTC"),
        );
    }
    println!("{}: ok, {} pools", config.origin, config.pools.len());
    if !args.probe {
        return Ok(ExitCode::SUCCESS);
    }
    let report = modes::probe::probe(&config).await;
    println!("{}", report.text());
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
