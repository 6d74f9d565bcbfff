//! The ways the scaler runs: `once` (one tick), `run` (a daemon ticking on an
//! interval) and `lambda` (a tick per invocation). They share [`Scaler`]: pools with their
//! policies loaded, their queue sources and a group API.

pub mod daemon;
pub mod http;
pub mod lambda;
pub mod once;
pub mod probe;
pub mod reload;
pub mod runtime_api_guard;

use crate::config::{Config, PoolConfig, SourceConfig, TokenSource};
use crate::groups::asg::AsgGroups;
use crate::groups::{GroupState, Groups};
use crate::plan::{self, Bounds};
use crate::policy::{CompileCache, EngineOptions, Limits, Pin, Policy, PolicyEngine, PolicyLoader};
use crate::secret::Secret;
use crate::sources::{QueueId, QueueSource, Source, SourceKind, Sources};
use crate::tick::{self, Cut, Pool, PoolReport, Shadow, TickOptions};
use crate::token_secret;
use anyhow::Context;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// Pools ready to tick against a queue source and a group API.
pub struct Scaler<Q, G> {
    pub pools: Vec<Pool>,
    pub queues: Q,
    pub groups: G,
    /// The longest one tick may take (the configuration's `tick_deadline`).
    pub tick_deadline: Duration,
    /// Time between ticks ([`Config::tick_interval`]).
    pub interval: Duration,
}

impl<Q: QueueSource, G: Groups> Scaler<Q, G> {
    /// One tick, now, within the scaler's tick deadline (unless `options`
    /// give another).
    pub async fn tick(&self, options: TickOptions) -> Vec<PoolReport> {
        self.tick_until(options, std::future::pending()).await
    }

    /// [`Scaler::tick`], also cut short when `stop` resolves.
    pub async fn tick_until(
        &self,
        options: TickOptions,
        stop: impl Future<Output = Cut>,
    ) -> Vec<PoolReport> {
        let options = TickOptions {
            deadline: options.deadline.or(Some(self.tick_deadline)),
            ..options
        };
        tick::tick_until(
            &self.pools,
            &self.queues,
            &self.groups,
            jiff::Timestamp::now(),
            options,
            stop,
        )
        .await
    }
}

/// The loader of the pools' policies in `once`, `run`, `check` and Lambda:
/// its engine, built as `options` say and with the compile cache, is made
/// the first time a pool's policy is a file, so pools of built-in rules
/// reserve no sandbox.
pub fn policy_loader(limits: Limits, options: EngineOptions) -> PolicyLoader<'static> {
    PolicyLoader::lazy(move || {
        PolicyEngine::with_options(
            limits,
            Some(CompileCache::new(CompileCache::default_dir())),
            options.clone(),
        )
    })
}

/// The pools of `config`, each policy file loaded through `policies` (once,
/// however many pools share it; a lazy loader makes no engine for built-in
/// rules). `secret_queues` serve pools that name no queue (the original
/// tool's set-up keeps CircleCI's resource class in the token's secret).
pub fn load_pools(
    config: &Config,
    policies: &mut PolicyLoader<'_>,
    secret_queues: &SecretQueues,
) -> anyhow::Result<Vec<Pool>> {
    ready_pools(config, load_policies(config, policies)?, secret_queues)
}

/// The queue each source's token secret names, for pools that name none.
pub type SecretQueues = BTreeMap<SourceKind, String>;

/// The pools of `config` with their `loaded` policies (in the pools'
/// order).
fn ready_pools(
    config: &Config,
    loaded: Vec<(Policy, Option<Shadow>)>,
    secret_queues: &SecretQueues,
) -> anyhow::Result<Vec<Pool>> {
    loaded
        .into_iter()
        .zip(&config.pools)
        .map(|((policy, shadow), pool)| {
            let secret_queue = secret_queues.get(&pool.source).map(String::as_str);
            ready(pool, policy, shadow, secret_queue)
        })
        .collect()
}

/// Each pool's policy and shadow (their files checked against
/// `policy_sha256` and `shadow_sha256`), every file loaded through
/// `policies` once however many pools share it.
pub fn load_policies(
    config: &Config,
    policies: &mut PolicyLoader<'_>,
) -> anyhow::Result<Vec<(Policy, Option<Shadow>)>> {
    config
        .pools
        .iter()
        .map(|pool| {
            let policy = policies
                .load_pinned(&pool.policy, pin("policy_sha256", &pool.policy_sha256))
                .with_context(|| format!("{}: pool {:?}: policy", config.origin, pool.name))?;
            let shadow = match &pool.shadow {
                None => None,
                Some(shadow) => Some(Shadow::new(
                    policies
                        .load_pinned(&shadow.policy, pin("shadow_sha256", &shadow.policy_sha256))
                        .with_context(|| {
                            format!("{}: pool {:?}: shadow", config.origin, pool.name)
                        })?,
                    shadow.params.clone(),
                )),
            };
            Ok((policy, shadow))
        })
        .collect()
}

/// A pool's pin, `field`, if it has one.
fn pin<'a>(field: &'static str, sha256: &'a Option<String>) -> Option<Pin<'a>> {
    sha256.as_deref().map(|sha256| Pin { field, sha256 })
}

fn ready(
    pool: &PoolConfig,
    policy: Policy,
    shadow: Option<Shadow>,
    secret_queue: Option<&str>,
) -> anyhow::Result<Pool> {
    let queue = pool.queue.as_deref().or(secret_queue).with_context(|| {
        let field = pool.source.secret_format().queue_field.unwrap_or("queue");
        format!(
            "pool {:?} names no {field}, and its token's secret has no `{field}` field: add one \
             to the secret's JSON object, or name it in the pool ({field}, or \
             RUNNER_SCALER_{})",
            pool.name,
            field.to_uppercase()
        )
    })?;
    Ok(Pool {
        name: pool.name.clone(),
        queue: QueueId::new(pool.source, queue),
        group: pool.group.clone(),
        policy,
        fallback: pool.fallback,
        bounds: pool.bounds,
        time_zone: pool.time_zone.clone(),
        params: pool.params.clone(),
        shadow,
    })
}

/// The production scaler for `config`: each source's token (from its
/// variable, secret or parameter) and API, and Auto Scaling through the
/// AWS SDK; the pools' policies loaded through `policies`.
pub async fn connect(
    config: &Config,
    policies: &mut PolicyLoader<'_>,
) -> anyhow::Result<Scaler<Sources, AsgGroups>> {
    let loaded = load_policies(config, policies)?;
    connect_loaded(config, loaded).await
}

/// [`connect`], with the pools' policies already loaded
/// ([`load_policies`]): what a reload does after loading them off the
/// runtime's threads.
pub async fn connect_loaded(
    config: &Config,
    policies: Vec<(Policy, Option<Shadow>)>,
) -> anyhow::Result<Scaler<Sources, AsgGroups>> {
    let aws = crate::aws::AwsOptions::new(config.aws_endpoint_url.clone());
    let mut sources = vec![];
    let mut secret_queues = SecretQueues::new();
    for source in &config.sources {
        let (token, secret_queue) = source_token(config, source, &aws).await?;
        if let Some(queue) = secret_queue {
            secret_queues.insert(source.kind, queue);
        }
        sources.push(
            Source::build(source.kind, &source.base_url, token, source.http.clone())
                .with_context(|| format!("{}: [{}]", config.origin, source.kind))?,
        );
    }
    Ok(Scaler {
        pools: ready_pools(config, policies, &secret_queues)?,
        queues: Sources::new(sources),
        groups: AsgGroups::new(aws),
        tick_deadline: config.tick_deadline,
        interval: paced_interval(config),
    })
}

/// The token of `source` (from its variable, its Secrets Manager secret or
/// its SSM parameter), and the queue its secret names, if it does (the
/// original tool's secret names CircleCI's resource class). `connect` and
/// `trace fetch` read it so.
pub async fn source_token(
    config: &Config,
    source: &SourceConfig,
    aws: &crate::aws::AwsOptions,
) -> anyhow::Result<(Secret, Option<String>)> {
    Ok(match &source.token {
        TokenSource::Env(var) => {
            let token = std::env::var(var)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .with_context(|| {
                    format!(
                        "{}: [{}] token_env: the variable {var} is not set; export {} in it",
                        config.origin,
                        source.kind,
                        source.kind.token_kind()
                    )
                })?;
            (Secret::new(token.trim()), None)
        }
        TokenSource::Secret { name, region } => {
            let format = source.kind.secret_format();
            let secret = token_secret::read_token_secret(format, name, region, aws).await?;
            (secret.token, secret.queue)
        }
        TokenSource::Parameter { name, region } => (
            token_secret::read_token_parameter(name, region, aws).await?,
            None,
        ),
    })
}

/// [`Config::tick_interval`], saying so when a source's request budget
/// lengthens the configured interval.
fn paced_interval(config: &Config) -> Duration {
    let interval = config.tick_interval();
    if interval > config.interval {
        let budgets: Vec<String> = config
            .sources
            .iter()
            .map(|s| {
                format!(
                    "[{}] requests_per_minute = {}",
                    s.kind, s.requests_per_minute
                )
            })
            .collect();
        tracing::warn!(
            configured_s = config.interval.as_secs_f64(),
            interval_s = interval.as_secs_f64(),
            budgets = %budgets.join(", "),
            "ticking less often than configured: the pools' queues need more API requests per \
             tick than their source's requests_per_minute allows at the configured interval"
        );
    }
    interval
}

/// Say, once at start, which groups the scaler will not scale in as far
/// as their policy asks, because Auto Scaling could terminate an instance
/// that runs a job.
pub async fn warn_unprotected<Q: QueueSource, G: Groups>(scaler: &Scaler<Q, G>) {
    // Bounded like a tick: a describe that hangs must not keep the daemon
    // from starting its ticks.
    let read = tick::read_groups(&scaler.pools, &scaler.groups);
    let Ok(groups) = tokio::time::timeout(scaler.tick_deadline, read).await else {
        tracing::warn!(
            "the groups could not be described within the tick deadline; the ticks will say more"
        );
        return;
    };
    for pool in &scaler.pools {
        let Some(Ok(group)) = groups.get(&pool.group) else {
            continue;
        };
        if let Some(warning) = unprotected_warning(group, pool.bounds) {
            tracing::warn!(pool = %pool.name, group = %pool.group, "{warning}");
        }
    }
}

/// The start-up warning for a group, from the rule every tick applies
/// ([`plan::scale_in_limit`]).
fn unprotected_warning(group: &GroupState, bounds: Bounds) -> Option<String> {
    plan::scale_in_limit(group, bounds).map(|limit| {
        format!(
            "runner-scaler will not lower this group's desired capacity below its instance count \
             while any of them is unprotected: {}",
            limit.advice()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_of_built_in_rules_make_no_engine() {
        let config = Config::from_toml(
            "[defaults]\nregion = \"eu-west-1\"\nmax = 4\n\
             [[pool]]\nname = \"a\"\nresource_class = \"acme/a\"\ngroup = \"ga\"\npolicy = \"queue\"\n\
             [[pool]]\nname = \"b\"\nresource_class = \"acme/b\"\ngroup = \"gb\"\npolicy = \"hold\"\n",
            "test.toml",
            std::path::Path::new(""),
        )
        .unwrap();
        let mut policies = PolicyLoader::lazy(|| panic!("an engine was made for built-in rules"));
        let pools = load_pools(&config, &mut policies, &SecretQueues::new()).unwrap();
        assert_eq!(pools.len(), 2);
        assert!(pools.iter().all(|p| matches!(p.policy, Policy::Builtin(_))));
    }

    #[test]
    fn the_warning_comes_from_the_per_instance_rule() {
        let pool = Bounds {
            min: 0,
            max: 10,
            allow_unprotected_scale_in: false,
            warm_max: 10,
        };
        let protected = GroupState {
            desired: 4,
            max_size: 10,
            in_service: 4,
            protected: 4,
            new_instances_protected: true,
            ..GroupState::default()
        };
        assert_eq!(unprotected_warning(&protected, pool), None);
        // The flag is on, but two instances predate it.
        let mixed = GroupState {
            protected: 2,
            unprotected: 2,
            ..protected.clone()
        };
        let warning = unprotected_warning(&mixed, pool).unwrap();
        assert!(
            warning.contains("2 instances are not protected from scale-in")
                && warning.contains("allow_unprotected_scale_in"),
            "{warning}"
        );
        let allowed = Bounds {
            allow_unprotected_scale_in: true,
            ..pool
        };
        assert_eq!(unprotected_warning(&mixed, allowed), None);
        let flag_off = GroupState {
            new_instances_protected: false,
            ..protected
        };
        assert!(unprotected_warning(&flag_off, pool)
            .unwrap()
            .contains("does not protect new instances"));
    }
}
