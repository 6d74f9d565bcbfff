//! The validation of a configuration's top-level sections — the interval
//! and the tick deadline, `[sandbox]`, `[aws]`, `[daemon]`, and a section per
//! queue source — and of the pools as a whole (each pool in [`super::pool`]).

use super::pool::validate_pool;
use super::raw::{RawConfig, RawSource};
use super::{
    paced_interval, parse_duration, Config, ConfigError, DaemonConfig, PoolConfig, SourceConfig,
    TokenSource, DEFAULT_INTERVAL, DEFAULT_REQUESTS_PER_MINUTE, MAX_CONCURRENT_REQUESTS,
    MIN_DEFAULT_TICK_DEADLINE,
};
use crate::policy::{Limits, MAX_DEADLINE_MS, MAX_MEMORY_MIB};
use crate::sources::http::HttpOptions;
use crate::sources::SourceKind;
use crate::text::quoted;
use std::path::Path;
use std::time::Duration;

/// Makes the error of a field of the configuration `origin`.
type Invalid<'a> = dyn Fn(&str, String) -> ConfigError + 'a;

/// The source kinds' names, for messages: `circleci, buildkite`.
pub(super) fn source_names() -> String {
    SourceKind::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl RawConfig {
    pub(super) fn validate(self, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            origin: origin.into(),
            field: field.into(),
            message,
        };
        let interval = match &self.interval {
            None => DEFAULT_INTERVAL,
            Some(text) => at_least_a_second(text).ok_or_else(|| {
                invalid(
                    "interval",
                    format!(
                        "{} is not a duration of 1s or more, e.g. \"60s\" or \"2m\"",
                        quoted(text)
                    ),
                )
            })?,
        };
        let limits = sandbox(&self, &invalid)?;
        // Without one, the tick may take the interval (at least 10 s), as
        // lengthened for the sources' request budgets (see below).
        let tick_deadline = match &self.tick_deadline {
            None => interval.max(MIN_DEFAULT_TICK_DEADLINE),
            Some(text) => at_least_a_second(text).ok_or_else(|| {
                invalid(
                    "tick_deadline",
                    format!(
                        "{} is not a duration of 1s or more, e.g. \"60s\"",
                        quoted(text)
                    ),
                )
            })?,
        };
        if tick_deadline <= limits.deadline {
            return Err(invalid(
                "tick_deadline",
                format!(
                    "{} s is not above the policy deadline (sandbox.deadline_ms = {}): a tick must \
                     leave its policies time to decide; raise tick_deadline",
                    tick_deadline.as_secs_f64(),
                    limits.deadline.as_millis()
                ),
            ));
        }
        if let Some(url) = &self.aws.endpoint_url {
            if let Err(why) = check_endpoint_url(url) {
                return Err(invalid(
                    "aws.endpoint_url",
                    format!("{} is not usable: {why}; give a URL such as \"http://127.0.0.1:5000\", or leave it out to call AWS itself", quoted(url)),
                ));
            }
        }
        let daemon = daemon(&self, &invalid)?;
        let pools = pools(&self, origin, base, &invalid)?;
        // A section for every source a pool reads (its defaults when it is
        // not written), and for no other.
        let mut sources = Vec::new();
        for kind in SourceKind::ALL.iter().copied() {
            let section = self.section(kind);
            if pools.iter().any(|pool| pool.source == kind) {
                sources.push(source(
                    kind,
                    section.unwrap_or(&RawSource::default()),
                    &invalid,
                )?);
            } else if section.is_some() {
                return Err(invalid(
                    kind.name(),
                    format!(
                        "is configured, but no pool reads it: give a pool `source = \"{kind}\"`, or \
                         remove the section"
                    ),
                ));
            }
        }
        let tick_deadline = match self.tick_deadline {
            Some(_) => tick_deadline,
            None => tick_deadline.max(paced_interval(interval, &pools, &sources)),
        };
        Ok(Config {
            origin: origin.into(),
            interval,
            tick_deadline,
            sources,
            aws_endpoint_url: self.aws.endpoint_url,
            limits,
            daemon,
            pools,
        })
    }

    /// The section of the source `kind`, when it is written.
    fn section(&self, kind: SourceKind) -> Option<&RawSource> {
        match kind {
            SourceKind::CircleCi => self.circleci.as_ref(),
            SourceKind::Buildkite => self.buildkite.as_ref(),
            #[cfg(test)]
            SourceKind::Fixed => self.fixed.as_ref(),
        }
    }
}

fn at_least_a_second(text: &str) -> Option<Duration> {
    parse_duration(text).filter(|d| *d >= Duration::from_secs(1))
}

/// `[sandbox]`: the limits of every decision.
fn sandbox(raw: &RawConfig, invalid: &Invalid) -> Result<Limits, ConfigError> {
    if let Some(ms) = raw.sandbox.deadline_ms {
        if ms > MAX_DEADLINE_MS {
            return Err(invalid(
                "sandbox.deadline_ms",
                format!(
                    "{ms} is above the ceiling of {MAX_DEADLINE_MS} ms: a decision takes microseconds, \
                     and a policy still deciding after seconds is hung; leave it out for the default of {}",
                    Limits::default().deadline.as_millis()
                ),
            ));
        }
    }
    if let Some(mib) = raw.sandbox.memory_mib {
        if mib > MAX_MEMORY_MIB {
            return Err(invalid(
                "sandbox.memory_mib",
                format!(
                    "{mib} is above the ceiling of {MAX_MEMORY_MIB} MiB, the most a (32-bit) \
                     WebAssembly memory can hold; leave it out for the default of {}",
                    Limits::default().memory_bytes / (1024 * 1024)
                ),
            ));
        }
    }
    let defaults = Limits::default();
    let limits = Limits {
        deadline: raw
            .sandbox
            .deadline_ms
            .map_or(defaults.deadline, Duration::from_millis),
        memory_bytes: raw
            .sandbox
            .memory_mib
            .map_or(defaults.memory_bytes, |mib| mib * 1024 * 1024),
        ..defaults
    };
    if limits.deadline.is_zero() || limits.memory_bytes == 0 {
        return Err(invalid(
            "sandbox",
            "deadline_ms and memory_mib must be above 0".into(),
        ));
    }
    Ok(limits)
}

/// `[daemon]`: the listener, the health rule, the stop grace, the reload
/// deadline.
fn daemon(raw: &RawConfig, invalid: &Invalid) -> Result<DaemonConfig, ConfigError> {
    let mut daemon = DaemonConfig::default();
    if let Some(listen) = &raw.daemon.listen {
        daemon.listen = listen.parse().map_err(|_| {
            invalid(
                "daemon.listen",
                format!(
                    "{} is not an address and port, e.g. \"127.0.0.1:9464\"",
                    quoted(listen)
                ),
            )
        })?;
    }
    if let Some(n) = raw.daemon.unhealthy_after {
        if n == 0 {
            return Err(invalid(
                "daemon.unhealthy_after",
                "must be 1 or more".into(),
            ));
        }
        daemon.unhealthy_after = n;
    }
    if let Some(text) = &raw.daemon.reload_deadline {
        daemon.reload_deadline = at_least_a_second(text).ok_or_else(|| {
            invalid(
                "daemon.reload_deadline",
                format!(
                    "{} is not a duration of 1s or more, e.g. \"60s\" (compiling a \
                     Python or JavaScript policy takes seconds)",
                    quoted(text)
                ),
            )
        })?;
    }
    if let Some(text) = &raw.daemon.stop_grace {
        daemon.stop_grace = parse_duration(text).ok_or_else(|| {
            invalid(
                "daemon.stop_grace",
                format!(
                    "{} is not a duration, e.g. \"10s\" (\"0s\" cuts the tick in flight at once)",
                    quoted(text)
                ),
            )
        })?;
    }
    Ok(daemon)
}

/// A source's section: its API, its token, how it is read.
fn source(
    kind: SourceKind,
    raw: &RawSource,
    invalid: &Invalid,
) -> Result<SourceConfig, ConfigError> {
    let field = |key: &str| format!("{kind}.{key}");
    let base_url = raw
        .base_url
        .clone()
        .unwrap_or_else(|| kind.default_base_url().into());
    if let Err(err) = kind.check_base_url(&base_url) {
        return Err(invalid(&field("base_url"), err.to_string()));
    }
    let token = match (&raw.token_env, &raw.token_secret, &raw.token_parameter) {
        (None, Some(secret), None) => TokenSource::Secret {
            name: secret.name.clone(),
            region: secret.region.clone(),
        },
        (None, None, Some(parameter)) => TokenSource::Parameter {
            name: parameter.name.clone(),
            region: parameter.region.clone(),
        },
        (env, None, None) => TokenSource::Env(
            env.clone()
                .unwrap_or_else(|| kind.default_token_env().into()),
        ),
        _ => {
            return Err(invalid(
                kind.name(),
                "give one of token_env, token_secret and token_parameter, not both".into(),
            ))
        }
    };
    let mut http = HttpOptions::default();
    if let Some(text) = &raw.timeout {
        http.timeout = parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                invalid(
                    &field("timeout"),
                    format!("{} is not a duration above 0, e.g. \"5s\"", quoted(text)),
                )
            })?;
    }
    if let Some(attempts) = raw.attempts {
        if !(1..=10).contains(&attempts) {
            return Err(invalid(
                &field("attempts"),
                format!("{attempts} is not between 1 and 10 (tries per reading and tick, the first included)"),
            ));
        }
        http.attempts = attempts;
    }
    if let Some(n) = raw.max_concurrent_requests {
        if !(1..=MAX_CONCURRENT_REQUESTS).contains(&n) {
            return Err(invalid(
                &field("max_concurrent_requests"),
                format!(
                    "{n} is not between 1 and {MAX_CONCURRENT_REQUESTS} (requests to the API in \
                     flight at once; the default, {}, suits the CI's cloud)",
                    crate::sources::http::DEFAULT_MAX_CONCURRENT
                ),
            ));
        }
        http.max_concurrent = n;
    }
    let requests_per_minute =
        match raw.requests_per_minute {
            None => DEFAULT_REQUESTS_PER_MINUTE,
            Some(0) => return Err(invalid(
                &field("requests_per_minute"),
                "0 would never read a queue; give the most API requests a minute the scaler may \
                 send, e.g. 600"
                    .into(),
            )),
            Some(n) => n,
        };
    Ok(SourceConfig {
        kind,
        base_url,
        token,
        http,
        requests_per_minute,
    })
}

/// Every `[[pool]]`, each validated with `[defaults]`; names and groups
/// unique.
fn pools(
    raw: &RawConfig,
    origin: &str,
    base: &Path,
    invalid: &Invalid,
) -> Result<Vec<PoolConfig>, ConfigError> {
    if raw.pools.is_empty() {
        return Err(invalid(
            "pool",
            "no pools: add at least one [[pool]] with name, queue (resource_class), group, region and max".into(),
        ));
    }
    // A pool may leave its queue to its token's secret when the source's
    // secret names one (CircleCI's, in the original tool's set-up).
    let secret_names_queue: Vec<SourceKind> = SourceKind::ALL
        .iter()
        .copied()
        .filter(|kind| kind.secret_format().queue_field.is_some())
        .filter(|kind| raw.section(*kind).is_some_and(|s| s.token_secret.is_some()))
        .collect();
    let defaults = raw.defaults.clone().into();
    let mut pools: Vec<PoolConfig> = Vec::new();
    for (index, pool) in raw.pools.iter().cloned().enumerate() {
        let pool = validate_pool(pool, &defaults, index, origin, base, &secret_names_queue)?;
        if pools.iter().any(|p| p.name == pool.name) {
            return Err(invalid(
                &format!("pool[{index}].name"),
                format!(
                    "{} names two pools; names must be unique",
                    quoted(&pool.name)
                ),
            ));
        }
        if let Some(other) = pools.iter().find(|p| p.group == pool.group) {
            return Err(invalid(
                &format!("pool {}: group", quoted(&pool.name)),
                format!(
                    "{} is also the group of pool {}: two pools would fight over its desired \
                     capacity; give each pool a group of its own (or merge the two pools)",
                    pool.group,
                    quoted(&other.name)
                ),
            ));
        }
        pools.push(pool);
    }
    Ok(pools)
}

/// What is wrong with `url` as an AWS endpoint, if anything.
fn check_endpoint_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|err| err.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("the scheme must be http or https".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    Ok(())
}
