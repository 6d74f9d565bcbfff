//! The configuration: a TOML file, or — with no file — environment
//! variables (the original tool's five, and a few of runner-scaler's own).
//! Both are read into raw structs, and one validation turns them into the
//! [`Config`] the rest of the code trusts, whichever mode runs (`once`,
//! `run`, Lambda). Every error names the file (or variable), the field and
//! the fix.

use crate::groups::GroupId;
use crate::plan::Bounds;
use crate::policy::{BuiltinRule, Limits, PolicyRef, MAX_DEADLINE_MS, MAX_MEMORY_MIB};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages: a file, or the environment.
    pub origin: String,
    /// Time between ticks, in `run` and within a Lambda invocation, as
    /// configured; [`Config::tick_interval`] is what the modes use.
    pub interval: Duration,
    /// The longest one tick may take, in every mode; pools still at work
    /// then are cut (reported held, or unknown where a write was under way).
    pub tick_deadline: Duration,
    pub circleci: CircleCiConfig,
    /// An endpoint for every AWS call instead of AWS's own (tests, LocalStack).
    pub aws_endpoint_url: Option<String>,
    pub limits: Limits,
    pub daemon: DaemonConfig,
    pub pools: Vec<PoolConfig>,
}

/// The daemon's HTTP listener and health rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Where `/metrics` and `/healthz` are served (loopback by default).
    pub listen: std::net::SocketAddr,
    /// Consecutive ticks that decide no pool, or intervals a tick may run
    /// without completing, before `/healthz` says unhealthy.
    pub unhealthy_after: u32,
    /// How long the tick in flight may go on after SIGTERM before it is cut.
    pub stop_grace: Duration,
    /// How long a reload may take to read the configuration and load (and
    /// compile) its policies before it is abandoned.
    pub reload_deadline: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: ([127, 0, 0, 1], 9464).into(),
            unhealthy_after: 3,
            stop_grace: Duration::from_secs(10),
            reload_deadline: Duration::from_secs(60),
        }
    }
}

/// Where the CircleCI runner API is and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct CircleCiConfig {
    pub base_url: String,
    pub token: TokenSource,
    /// Per-request timeout and attempts; the backoff keeps its defaults.
    pub http: crate::sources::circleci::HttpOptions,
    /// The most requests per minute the scaler sends the runner API; the
    /// tick interval grows when the pools' resource classes need more.
    pub requests_per_minute: u32,
}

/// Where the CircleCI API token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable.
    Env(String),
    /// A Secrets Manager secret: JSON with `circle_token` (and, for the
    /// original tool's set-up, `resource_class`).
    Secret { name: String, region: String },
    /// An SSM Parameter Store parameter (a SecureString) holding the token.
    Parameter { name: String, region: String },
}

/// One pool: a resource class, the group that runs it, and its policy.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub name: String,
    /// None: read from the token's secret (the original tool's set-up).
    pub resource_class: Option<String>,
    pub group: GroupId,
    pub policy: PolicyRef,
    /// The SHA-256 the policy file must have (lowercase hex), if pinned.
    pub policy_sha256: Option<String>,
    pub params: Vec<(String, String)>,
    pub bounds: Bounds,
    pub time_zone: jiff::tz::TimeZone,
    pub fallback: BuiltinRule,
    /// A policy that decides beside the live one, never applied.
    pub shadow: Option<ShadowConfig>,
}

/// A pool's shadow policy and its own params.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowConfig {
    pub policy: PolicyRef,
    /// The SHA-256 the shadow's file must have, if pinned (`shadow_sha256`).
    pub policy_sha256: Option<String>,
    pub params: Vec<(String, String)>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {}: {}", .0.path().display(), .0.reason())]
    Read(crate::input_file::ReadError),
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {field}: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
    #[error(
        "no configuration: pass --config FILE or set RUNNER_SCALER_CONFIG, or set the original tool's \
         variables SECRET_NAME, SECRET_REGION, AUTO_SCALING_MAX, AUTO_SCALING_GROUP_NAME and \
         AUTO_SCALING_GROUP_REGION"
    )]
    Missing,
    #[error(
        "{variables} set, but the configuration comes from {file}: the environment's pool variables \
         do not apply to a configuration file. Set each pool's policy, params, time_zone and \
         resource_class in the file, and unset {variables}"
    )]
    Mixed { file: String, variables: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interval: Option<String>,
    tick_deadline: Option<String>,
    #[serde(default)]
    circleci: RawCircleCi,
    #[serde(default)]
    aws: RawAws,
    #[serde(default)]
    sandbox: RawSandbox,
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    defaults: RawPool,
    #[serde(default, rename = "pool")]
    pools: Vec<RawPool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCircleCi {
    base_url: Option<String>,
    token_env: Option<String>,
    token_secret: Option<RawSecretRef>,
    token_parameter: Option<RawSecretRef>,
    timeout: Option<String>,
    attempts: Option<u32>,
    requests_per_minute: Option<u32>,
    max_concurrent_requests: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    name: String,
    region: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    listen: Option<String>,
    unhealthy_after: Option<u32>,
    stop_grace: Option<String>,
    reload_deadline: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSandbox {
    deadline_ms: Option<u64>,
    memory_mib: Option<usize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: Option<String>,
    resource_class: Option<String>,
    group: Option<String>,
    region: Option<String>,
    policy: Option<String>,
    policy_sha256: Option<String>,
    params: Option<toml::Table>,
    min: Option<u32>,
    max: Option<u32>,
    time_zone: Option<String>,
    fallback: Option<String>,
    allow_unprotected_scale_in: Option<bool>,
    warm_max: Option<u32>,
    shadow: Option<String>,
    shadow_sha256: Option<String>,
    shadow_params: Option<toml::Table>,
}

/// The most `circleci.max_concurrent_requests`: more connections at once
/// than this is a burst, whatever the server.
pub const MAX_CONCURRENT_REQUESTS: usize = 64;

/// The default time between ticks: a job waits at most this long for the
/// scaler to see it (the daemon's, and within a Lambda invocation).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The default budget of runner API requests per minute. CircleCI publishes
/// no rate limit for the runner API (it answers 429 with `Retry-After` when
/// one is hit, which the client honours); 600 a minute, ten a second, keeps
/// 10 s ticks for up to 50 resource classes (two requests each per tick).
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 600;

/// The shortest default tick deadline: room for the upstream calls' own
/// timeouts (10 s per AWS call) when the interval is shorter.
pub const MIN_DEFAULT_TICK_DEADLINE: Duration = Duration::from_secs(10);

impl Config {
    /// The time between ticks: the configured interval, or longer when a
    /// tick's runner API requests (two per resource class) at that interval
    /// would exceed `circleci.requests_per_minute`.
    pub fn tick_interval(&self) -> Duration {
        paced_interval(
            self.interval,
            &self.pools,
            self.circleci.requests_per_minute,
        )
    }

    /// The configuration for this process: `path` (from `--config` or
    /// `RUNNER_SCALER_CONFIG`) if given, else the original tool's variables.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::resolve(path, &|name| std::env::var(name).ok(), Path::new("."))
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::input_file::read_text(path, crate::input_file::MAX_CONFIG_BYTES)
            .map_err(ConfigError::Read)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, &path.display().to_string(), base)
    }

    /// Parse `text`; `origin` names it in messages, relative policy paths
    /// are taken from `base`.
    pub fn from_toml(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            origin: origin.into(),
            // TOML's message quotes the offending line, which may be huge.
            message: crate::text::cut_lines(&err.to_string(), 20),
        })?;
        raw.validate(origin, base)
    }

    /// The configuration for this process: the file at `path` if given,
    /// else the environment route ([`Config::from_seed_env`]). `var` reads a
    /// variable; the environment route's relative policy paths are taken
    /// from `base` (the bundle, in Lambda). With a file, the environment's
    /// pool variables are refused rather than silently ignored.
    pub fn resolve(
        path: Option<&Path>,
        var: &dyn Fn(&str) -> Option<String>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Config::from_seed_env(var, base);
        };
        let mixed: Vec<&str> = env::POOL_VARS
            .iter()
            .copied()
            .filter(|name| var(name).is_some_and(|v| !v.trim().is_empty()))
            .collect();
        if !mixed.is_empty() {
            return Err(ConfigError::Mixed {
                file: path.display().to_string(),
                variables: mixed.join(", "),
            });
        }
        Config::from_file(path)
    }

    /// The environment route: the original tool's variables define one pool
    /// with the `queue` rule, its token (and resource class) from its
    /// secret; runner-scaler's own variables ([`env`]) set the pool's
    /// policy, params, time zone and resource class, and may take the token
    /// from an SSM parameter instead. Every variable is read here, into the
    /// same raw structs as a file, and validated once. `var` reads a
    /// variable; relative policy paths are taken from `base`.
    pub fn from_seed_env(
        var: &dyn Fn(&str) -> Option<String>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let required = [
            "AUTO_SCALING_MAX",
            "AUTO_SCALING_GROUP_NAME",
            "AUTO_SCALING_GROUP_REGION",
        ];
        let known = ["SECRET_NAME", "SECRET_REGION", env::TOKEN_PARAMETER];
        if required.iter().chain(&known).all(|n| var(n).is_none()) {
            return Err(ConfigError::Missing);
        }
        let origin = "environment".to_string();
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            origin: origin.clone(),
            field: field.into(),
            message,
        };
        let get = |name: &str| {
            set(name).ok_or_else(|| {
                invalid(
                    name,
                    format!(
                        "is not set; the original tool's set-up needs all of SECRET_NAME, SECRET_REGION, {} \
                         (or {} instead of SECRET_NAME)",
                        required.join(", "),
                        env::TOKEN_PARAMETER
                    ),
                )
            })
        };
        let max = get("AUTO_SCALING_MAX")?;
        let max: u32 = max.trim().parse().map_err(|_| {
            invalid(
                "AUTO_SCALING_MAX",
                format!(
                    "{} is not a whole number of instances, e.g. 10",
                    crate::text::quoted(&max)
                ),
            )
        })?;
        let group_region = get("AUTO_SCALING_GROUP_REGION")?;
        let (token_secret, token_parameter) = match (set("SECRET_NAME"), set(env::TOKEN_PARAMETER))
        {
            (Some(_), Some(_)) => return Err(invalid(
                env::TOKEN_PARAMETER,
                "is set, and so is SECRET_NAME: the token comes from one of them; unset the other"
                    .into(),
            )),
            (Some(name), None) => (
                Some(RawSecretRef {
                    name,
                    region: get("SECRET_REGION")?,
                }),
                None,
            ),
            (None, Some(name)) => (
                None,
                Some(RawSecretRef {
                    name,
                    region: set("SECRET_REGION").unwrap_or_else(|| group_region.clone()),
                }),
            ),
            (None, None) => return Err(get("SECRET_NAME").unwrap_err()),
        };
        let params = set(env::POLICY_PARAMS)
            .map(|text| env::parse_params(&text))
            .transpose()
            .map_err(|message| invalid(env::POLICY_PARAMS, message))?;
        let shadow_params = set(env::SHADOW_PARAMS)
            .map(|text| env::parse_params(&text))
            .transpose()
            .map_err(|message| invalid(env::SHADOW_PARAMS, message))?;
        let group = get("AUTO_SCALING_GROUP_NAME")?;
        let raw = RawConfig {
            interval: set(env::TICK_INTERVAL).map(|text| text.trim().into()),
            circleci: RawCircleCi {
                base_url: set(env::CIRCLECI_URL),
                token_secret,
                token_parameter,
                ..RawCircleCi::default()
            },
            aws: RawAws {
                endpoint_url: set("AWS_ENDPOINT_URL"),
            },
            pools: vec![RawPool {
                name: Some(group.clone()),
                group: Some(group),
                region: Some(group_region),
                resource_class: set(env::RESOURCE_CLASS),
                policy: Some(set(env::POLICY).map_or_else(|| "queue".into(), |p| p.trim().into())),
                params,
                policy_sha256: set(env::POLICY_SHA256).map(|d| d.trim().into()),
                shadow: set(env::SHADOW_POLICY).map(|p| p.trim().into()),
                shadow_sha256: set(env::SHADOW_SHA256).map(|d| d.trim().into()),
                shadow_params,
                time_zone: set(env::TIME_ZONE).map(|zone| zone.trim().into()),
                min: Some(0),
                max: Some(max),
                ..RawPool::default()
            }],
            ..RawConfig::default()
        };
        raw.validate(&origin, base).map_err(env::name_variables)
    }
}

/// The environment route's own variables, beyond the original tool's five.
pub mod env {
    use super::ConfigError;

    /// The pool's policy: a built-in rule or a `.wasm` path relative to the
    /// bundle (Lambda) or the working directory [default: `queue`].
    pub const POLICY: &str = "RUNNER_SCALER_POLICY";
    /// The policy's params, `key=value` pairs separated by commas.
    pub const POLICY_PARAMS: &str = "RUNNER_SCALER_POLICY_PARAMS";
    /// The pool's IANA time zone, for the policy's clock [default: UTC].
    /// (Lambda reserves `TZ`, and keeps it at UTC.)
    pub const TIME_ZONE: &str = "RUNNER_SCALER_TIME_ZONE";
    /// The pool's resource class; then the secret needs none.
    pub const RESOURCE_CLASS: &str = "RUNNER_SCALER_RESOURCE_CLASS";
    /// An SSM SecureString parameter holding the token, instead of
    /// `SECRET_NAME`; in `SECRET_REGION`, else the group's region.
    pub const TOKEN_PARAMETER: &str = "RUNNER_SCALER_TOKEN_PARAMETER";
    /// The CircleCI runner API (CircleCI server) [default: CircleCI's].
    pub const CIRCLECI_URL: &str = "CIRCLECI_RUNNER_API_URL";
    /// Time between ticks within one Lambda invocation [default: 10s].
    pub const TICK_INTERVAL: &str = "RUNNER_SCALER_TICK_INTERVAL";
    /// The SHA-256 the policy file must have (`policy_sha256`).
    pub const POLICY_SHA256: &str = "RUNNER_SCALER_POLICY_SHA256";
    /// A shadow policy beside the pool's (`shadow`), its params, and the
    /// SHA-256 its file must have (`shadow_sha256`).
    pub const SHADOW_POLICY: &str = "RUNNER_SCALER_SHADOW_POLICY";
    pub const SHADOW_PARAMS: &str = "RUNNER_SCALER_SHADOW_PARAMS";
    pub const SHADOW_SHA256: &str = "RUNNER_SCALER_SHADOW_SHA256";

    /// The variables that set what a configuration file sets per pool.
    pub const POOL_VARS: [&str; 9] = [
        POLICY,
        POLICY_PARAMS,
        TIME_ZONE,
        RESOURCE_CLASS,
        TOKEN_PARAMETER,
        POLICY_SHA256,
        SHADOW_POLICY,
        SHADOW_PARAMS,
        SHADOW_SHA256,
    ];

    /// `key=value,key=value` as a params table, in order.
    pub(super) fn parse_params(text: &str) -> Result<toml::Table, String> {
        let mut params = toml::Table::new();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            match item.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    params.insert(key.trim().into(), toml::Value::String(value.trim().into()));
                }
                _ => {
                    return Err(format!(
                        "{} is not key=value; write the params as key=value pairs separated by \
                         commas, e.g. warm=2,hours=08-18",
                        crate::text::quoted(item)
                    ))
                }
            }
        }
        Ok(params)
    }

    /// An error of the one validation, in the environment's words: the
    /// variable that set the field, not the field's name in a file.
    pub(super) fn name_variables(err: ConfigError) -> ConfigError {
        let ConfigError::Invalid {
            origin,
            field,
            message,
        } = err
        else {
            return err;
        };
        // A pool's field reads `pool "NAME": field`; the route has one pool.
        let key = field.rsplit(": ").next().unwrap_or(&field);
        let variable = match key.split('.').next().unwrap_or(key) {
            "policy" => POLICY,
            "params" => POLICY_PARAMS,
            "time_zone" => TIME_ZONE,
            "resource_class" => RESOURCE_CLASS,
            "max" => "AUTO_SCALING_MAX",
            "group" | "name" => "AUTO_SCALING_GROUP_NAME",
            "region" => "AUTO_SCALING_GROUP_REGION",
            "circleci" if key == "circleci.base_url" => CIRCLECI_URL,
            "interval" => TICK_INTERVAL,
            "policy_sha256" => POLICY_SHA256,
            "shadow" => SHADOW_POLICY,
            "shadow_params" => SHADOW_PARAMS,
            "shadow_sha256" => SHADOW_SHA256,
            _ => {
                return ConfigError::Invalid {
                    origin,
                    field,
                    message,
                }
            }
        };
        ConfigError::Invalid {
            origin,
            field: variable.into(),
            message,
        }
    }
}

impl RawConfig {
    fn validate(self, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            origin: origin.into(),
            field: field.into(),
            message,
        };
        let interval = match &self.interval {
            None => DEFAULT_INTERVAL,
            Some(text) => parse_duration(text)
                .filter(|d| *d >= Duration::from_secs(1))
                .ok_or_else(|| {
                    invalid(
                        "interval",
                        format!(
                            "{} is not a duration of 1s or more, e.g. \"60s\" or \"2m\"",
                            crate::text::quoted(text)
                        ),
                    )
                })?,
        };
        let token = match (
            self.circleci.token_env,
            self.circleci.token_secret,
            self.circleci.token_parameter,
        ) {
            (None, Some(secret), None) => TokenSource::Secret {
                name: secret.name,
                region: secret.region,
            },
            (None, None, Some(parameter)) => TokenSource::Parameter {
                name: parameter.name,
                region: parameter.region,
            },
            (env, None, None) => TokenSource::Env(env.unwrap_or_else(|| "CIRCLECI_TOKEN".into())),
            _ => {
                return Err(invalid(
                    "circleci",
                    "give one of token_env, token_secret and token_parameter, not both".into(),
                ))
            }
        };
        if let Some(ms) = self.sandbox.deadline_ms {
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
        if let Some(mib) = self.sandbox.memory_mib {
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
            deadline: self
                .sandbox
                .deadline_ms
                .map_or(defaults.deadline, Duration::from_millis),
            memory_bytes: self
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
        // Without one, the tick may take the interval (at least 10 s), as
        // lengthened for the runner API's budget (see below).
        let tick_deadline = match &self.tick_deadline {
            None => interval.max(MIN_DEFAULT_TICK_DEADLINE),
            Some(text) => parse_duration(text)
                .filter(|d| *d >= Duration::from_secs(1))
                .ok_or_else(|| {
                    invalid(
                        "tick_deadline",
                        format!(
                            "{} is not a duration of 1s or more, e.g. \"60s\"",
                            crate::text::quoted(text)
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
        // The environment route names its variables, not the file's keys.
        let from_env = origin == "environment";
        let base_url = self
            .circleci
            .base_url
            .unwrap_or_else(|| crate::sources::circleci::DEFAULT_BASE_URL.into());
        if let Err(err) = crate::sources::circleci::parse_base_url(&base_url) {
            let field = if from_env {
                "CIRCLECI_RUNNER_API_URL"
            } else {
                "circleci.base_url"
            };
            return Err(invalid(field, err.to_string()));
        }
        if let Some(url) = &self.aws.endpoint_url {
            if let Err(why) = check_endpoint_url(url) {
                let field = if from_env {
                    "AWS_ENDPOINT_URL"
                } else {
                    "aws.endpoint_url"
                };
                return Err(invalid(
                    field,
                    format!("{} is not usable: {why}; give a URL such as \"http://127.0.0.1:5000\", or leave it out to call AWS itself", crate::text::quoted(url)),
                ));
            }
        }
        let mut http = crate::sources::circleci::HttpOptions::default();
        if let Some(text) = &self.circleci.timeout {
            http.timeout = parse_duration(text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    invalid(
                        "circleci.timeout",
                        format!(
                            "{} is not a duration above 0, e.g. \"5s\"",
                            crate::text::quoted(text)
                        ),
                    )
                })?;
        }
        if let Some(attempts) = self.circleci.attempts {
            if !(1..=10).contains(&attempts) {
                return Err(invalid(
                    "circleci.attempts",
                    format!("{attempts} is not between 1 and 10 (tries per count and tick, the first included)"),
                ));
            }
            http.attempts = attempts;
        }
        if let Some(n) = self.circleci.max_concurrent_requests {
            if !(1..=MAX_CONCURRENT_REQUESTS).contains(&n) {
                return Err(invalid(
                    "circleci.max_concurrent_requests",
                    format!(
                        "{n} is not between 1 and {MAX_CONCURRENT_REQUESTS} (requests to the runner API in \
                         flight at once; the default, {}, suits CircleCI cloud)",
                        crate::sources::circleci::DEFAULT_MAX_CONCURRENT
                    ),
                ));
            }
            http.max_concurrent = n;
        }
        let requests_per_minute =
            match self.circleci.requests_per_minute {
                None => DEFAULT_REQUESTS_PER_MINUTE,
                Some(0) => return Err(invalid(
                    "circleci.requests_per_minute",
                    "0 would never read a queue; give the most runner API requests a minute the \
                     scaler may send, e.g. 600"
                        .into(),
                )),
                Some(n) => n,
            };
        let mut daemon = DaemonConfig::default();
        if let Some(listen) = &self.daemon.listen {
            daemon.listen = listen.parse().map_err(|_| {
                invalid(
                    "daemon.listen",
                    format!(
                        "{} is not an address and port, e.g. \"127.0.0.1:9464\"",
                        crate::text::quoted(listen)
                    ),
                )
            })?;
        }
        if let Some(n) = self.daemon.unhealthy_after {
            if n == 0 {
                return Err(invalid(
                    "daemon.unhealthy_after",
                    "must be 1 or more".into(),
                ));
            }
            daemon.unhealthy_after = n;
        }
        if let Some(text) = &self.daemon.reload_deadline {
            daemon.reload_deadline = parse_duration(text)
                .filter(|d| *d >= Duration::from_secs(1))
                .ok_or_else(|| {
                    invalid(
                        "daemon.reload_deadline",
                        format!(
                            "{} is not a duration of 1s or more, e.g. \"60s\" (compiling a \
                             Python or JavaScript policy takes seconds)",
                            crate::text::quoted(text)
                        ),
                    )
                })?;
        }
        if let Some(text) = &self.daemon.stop_grace {
            daemon.stop_grace = parse_duration(text).ok_or_else(|| {
                invalid(
                    "daemon.stop_grace",
                    format!("{} is not a duration, e.g. \"10s\" (\"0s\" cuts the tick in flight at once)", crate::text::quoted(text)),
                )
            })?;
        }
        if self.pools.is_empty() {
            return Err(invalid(
                "pool",
                "no pools: add at least one [[pool]] with name, resource_class, group, region and max".into(),
            ));
        }
        let secret_has_resource_class = matches!(token, TokenSource::Secret { .. });
        let mut pools = Vec::new();
        for (index, pool) in self.pools.into_iter().enumerate() {
            let pool = validate_pool(
                pool,
                &self.defaults,
                index,
                origin,
                base,
                secret_has_resource_class,
            )?;
            if pools.iter().any(|p: &PoolConfig| p.name == pool.name) {
                return Err(invalid(
                    &format!("pool[{index}].name"),
                    format!(
                        "{} names two pools; names must be unique",
                        crate::text::quoted(&pool.name)
                    ),
                ));
            }
            if let Some(other) = pools.iter().find(|p: &&PoolConfig| p.group == pool.group) {
                return Err(invalid(
                    &format!("pool {}: group", crate::text::quoted(&pool.name)),
                    format!(
                        "{} is also the group of pool {}: two pools would fight over its desired \
                         capacity; give each pool a group of its own (or merge the two pools)",
                        pool.group,
                        crate::text::quoted(&other.name)
                    ),
                ));
            }
            pools.push(pool);
        }
        let tick_deadline = match self.tick_deadline {
            Some(_) => tick_deadline,
            None => tick_deadline.max(paced_interval(interval, &pools, requests_per_minute)),
        };
        Ok(Config {
            origin: origin.into(),
            interval,
            tick_deadline,
            circleci: CircleCiConfig {
                base_url,
                token,
                http,
                requests_per_minute,
            },
            aws_endpoint_url: self.aws.endpoint_url,
            limits,
            daemon,
            pools,
        })
    }
}

fn validate_pool(
    pool: RawPool,
    defaults: &RawPool,
    index: usize,
    origin: &str,
    base: &Path,
    secret_has_resource_class: bool,
) -> Result<PoolConfig, ConfigError> {
    let label = pool.name.clone().map_or_else(
        || format!("pool[{index}]"),
        |n| format!("pool {}", crate::text::quoted(&n)),
    );
    let invalid = |field: &str, message: String| ConfigError::Invalid {
        origin: origin.into(),
        field: format!("{label}: {field}"),
        message,
    };
    let required = |value: Option<String>, default: &Option<String>, field: &str, example: &str| {
        value
            .or_else(|| default.clone())
            .ok_or_else(|| invalid(field, format!("is missing; e.g. {field} = {example}")))
    };
    let name = required(pool.name.clone(), &None, "name", "\"linux-large\"")?;
    check_text(&name, "name", MAX_NAME_CHARS, &invalid)?;
    let resource_class = pool
        .resource_class
        .or_else(|| defaults.resource_class.clone());
    if let Some(class) = &resource_class {
        check_text(class, "resource_class", MAX_RESOURCE_CLASS_CHARS, &invalid)?;
        if class.chars().any(char::is_whitespace) {
            return Err(invalid(
                "resource_class",
                format!(
                    "{} has spaces; a resource class is namespace/name, e.g. \"acme/linux-large\"",
                    crate::text::quoted(class)
                ),
            ));
        }
    }
    if resource_class.is_none() && !secret_has_resource_class {
        return Err(invalid(
            "resource_class",
            "is missing; e.g. resource_class = \"my-namespace/linux-large\"".into(),
        ));
    }
    let group = required(pool.group, &defaults.group, "group", "\"ci-runners-large\"")?;
    let region = required(pool.region, &defaults.region, "region", "\"eu-west-1\"")?;
    check_text(&group, "group", MAX_GROUP_CHARS, &invalid)?;
    if region.is_empty()
        || region.len() > MAX_REGION_CHARS
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "region",
            format!(
                "{} is not an AWS region name, e.g. \"eu-west-1\"",
                crate::text::quoted(&region)
            ),
        ));
    }
    let policy_text = required(
        pool.policy,
        &defaults.policy,
        "policy",
        "\"queue\" or \"policies/business-hours.wasm\"",
    )?;
    let policy = PolicyRef::parse(&policy_text, base);
    if matches!(&policy, PolicyRef::File(_)) && !policy_text.ends_with(".wasm") {
        return Err(invalid(
            "policy",
            format!(
                "{} is neither a built-in rule (queue, hold) nor a .wasm file",
                crate::text::quoted(&policy_text)
            ),
        ));
    }
    let params = merged_params(&defaults.params, &pool.params, "params", &invalid)?;
    let policy_sha256 = pin(
        pool.policy_sha256
            .or_else(|| defaults.policy_sha256.clone()),
        &policy,
        &policy_text,
        "policy_sha256",
        &invalid,
    )?;
    let shadow = match pool.shadow.or_else(|| defaults.shadow.clone()) {
        None => {
            for (field, set) in [
                ("shadow_params", pool.shadow_params.is_some()),
                ("shadow_sha256", pool.shadow_sha256.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        field,
                        format!("is set, but there is no shadow policy; add shadow = \"candidate.wasm\" or remove {field}"),
                    ));
                }
            }
            None
        }
        Some(text) => {
            let shadow = PolicyRef::parse(&text, base);
            if matches!(&shadow, PolicyRef::File(_)) && !text.ends_with(".wasm") {
                return Err(invalid(
                    "shadow",
                    format!(
                        "{} is neither a built-in rule (queue, hold) nor a .wasm file",
                        crate::text::quoted(&text)
                    ),
                ));
            }
            Some(ShadowConfig {
                policy_sha256: pin(
                    pool.shadow_sha256
                        .clone()
                        .or_else(|| defaults.shadow_sha256.clone()),
                    &shadow,
                    &text,
                    "shadow_sha256",
                    &invalid,
                )?,
                policy: shadow,
                params: merged_params(
                    &defaults.shadow_params,
                    &pool.shadow_params,
                    "shadow_params",
                    &invalid,
                )?,
            })
        }
    };
    let min = pool.min.or(defaults.min).unwrap_or(0);
    let max = pool.max.or(defaults.max).ok_or_else(|| {
        invalid(
            "max",
            "is missing: the most instances this pool may have, e.g. max = 10".into(),
        )
    })?;
    if min > max {
        return Err(invalid(
            "min",
            format!("{min} is above max {max}; set min ≤ max"),
        ));
    }
    let warm_max = pool.warm_max.or(defaults.warm_max).unwrap_or(max);
    let zone_name = pool
        .time_zone
        .or_else(|| defaults.time_zone.clone())
        .unwrap_or_else(|| "UTC".into());
    let time_zone = crate::time_zone::named(&zone_name).map_err(|_| {
        invalid(
            "time_zone",
            format!(
                "{} is not an IANA time zone, e.g. \"Europe/Berlin\" or \"America/New_York\"",
                crate::text::quoted(&zone_name)
            ),
        )
    })?;
    let fallback_name = pool
        .fallback
        .or_else(|| defaults.fallback.clone())
        .unwrap_or_else(|| "hold".into());
    let fallback = BuiltinRule::from_name(&fallback_name).ok_or_else(|| {
        invalid(
            "fallback",
            format!(
                "{} is not a built-in rule; use \"hold\" or \"queue\"",
                crate::text::quoted(&fallback_name)
            ),
        )
    })?;
    Ok(PoolConfig {
        name,
        resource_class,
        group: GroupId {
            region,
            name: group,
        },
        policy,
        policy_sha256,
        params,
        bounds: Bounds {
            min,
            max,
            allow_unprotected_scale_in: pool
                .allow_unprotected_scale_in
                .or(defaults.allow_unprotected_scale_in)
                .unwrap_or(false),
            warm_max,
        },
        time_zone,
        fallback,
        shadow,
    })
}

/// The longest pool name: it labels every metric and log line.
pub const MAX_NAME_CHARS: usize = 128;
/// The longest Auto Scaling group name AWS accepts.
pub const MAX_GROUP_CHARS: usize = 255;
/// The longest resource class (CircleCI's are `namespace/name`, each far
/// shorter).
pub const MAX_RESOURCE_CLASS_CHARS: usize = 255;
/// The longest region name (AWS's are ~15 characters).
pub const MAX_REGION_CHARS: usize = 32;
/// Params a pool may give its policy, the longest name and value.
pub const MAX_PARAMS: usize = 64;
pub const MAX_PARAM_NAME_CHARS: usize = 64;
pub const MAX_PARAM_VALUE_BYTES: usize = 1024;

/// Refuses `value` (the `field`) when it is empty, longer than `max`
/// characters, or holds a control character.
fn check_text(
    value: &str,
    field: &str,
    max: usize,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "is empty; give it a value".into()));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(invalid(
            field,
            format!(
                "{} is {chars} characters long, more than the {max} it may have",
                crate::text::quoted(value)
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!(
                "{} holds a control character (a line break, a tab...); remove it",
                crate::text::quoted(value)
            ),
        ));
    }
    Ok(())
}

/// A pin (`policy_sha256`, `shadow_sha256`: `field`) of the policy
/// `policy`, written `text`: 64 hex digits, lowercased, and only for a file.
fn pin(
    digest: Option<String>,
    policy: &PolicyRef,
    text: &str,
    field: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<String>, ConfigError> {
    let Some(digest) = digest else {
        return Ok(None);
    };
    if !matches!(policy, PolicyRef::File(_)) {
        return Err(invalid(
            field,
            format!(
                "pins a policy file, but {} is a built-in rule; remove {field}",
                crate::text::quoted(text)
            ),
        ));
    }
    let lower = digest.trim().to_ascii_lowercase();
    if lower.len() != 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            field,
            format!(
                "{} is not a SHA-256 (64 hex digits); `runner-scaler policy build` and \
                 `sha256sum FILE` print it",
                crate::text::quoted(&digest)
            ),
        ));
    }
    Ok(Some(lower))
}

/// `interval`, or longer when the runner API requests of a tick over
/// `pools` (two per resource class) would exceed `requests_per_minute`.
fn paced_interval(interval: Duration, pools: &[PoolConfig], requests_per_minute: u32) -> Duration {
    let classes: std::collections::BTreeSet<Option<&str>> = pools
        .iter()
        .map(|pool| pool.resource_class.as_deref())
        .collect();
    let per_tick = 2 * classes.len() as u64;
    let paced =
        Duration::from_millis((per_tick * 60_000).div_ceil(u64::from(requests_per_minute.max(1))));
    interval.max(paced)
}

/// The params of `defaults` then `pool` (a pool's key replaces the
/// default's), as text; `field` names them in errors.
fn merged_params(
    defaults: &Option<toml::Table>,
    pool: &Option<toml::Table>,
    field: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut params = Vec::new();
    for (key, value) in defaults.iter().flatten().chain(pool.iter().flatten()) {
        if key.is_empty()
            || key.chars().count() > MAX_PARAM_NAME_CHARS
            || key.chars().any(char::is_control)
        {
            return Err(invalid(
                field,
                format!(
                    "the param name {} is empty, longer than {MAX_PARAM_NAME_CHARS} characters or \
                     holds a control character",
                    crate::text::quoted(key)
                ),
            ));
        }
        let field = format!(
            "{field}.{}",
            crate::text::escape(crate::text::truncate(key, 64))
        );
        let value = crate::params::text(value).ok_or_else(|| {
            invalid(
                &field,
                format!(
                    "{} is not a string, number or boolean",
                    crate::text::quoted(&value.to_string())
                ),
            )
        })?;
        if value.len() > MAX_PARAM_VALUE_BYTES {
            return Err(invalid(
                &field,
                format!(
                    "{} is longer than {MAX_PARAM_VALUE_BYTES} bytes: a param is a setting, not data",
                    crate::text::quoted(&value)
                ),
            ));
        }
        params.retain(|(k, _): &(String, String)| k != key);
        params.push((key.clone(), value));
    }
    if params.len() > MAX_PARAMS {
        return Err(invalid(
            field,
            format!(
                "has {} params, more than the {MAX_PARAMS} a pool may give its policy",
                params.len()
            ),
        ));
    }
    Ok(params)
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

/// A duration as the configuration and the command line write them: "90s",
/// "2m", "1h 30m" (jiff's friendly format), or a whole number of seconds.
/// Never negative.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let span: jiff::SignedDuration = text.trim().parse().ok()?;
    span.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = r#"
[[pool]]
name = "linux"
resource_class = "acme/linux"
group = "ci-linux"
region = "eu-west-1"
policy = "queue"
max = 5
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml", Path::new("/etc/runner-scaler"))
    }

    #[test]
    fn a_minimal_pool_takes_the_defaults() {
        let config = parse(POOL).unwrap();
        let pool = &config.pools[0];
        assert_eq!(config.interval, Duration::from_secs(10));
        assert_eq!(config.tick_interval(), Duration::from_secs(10));
        assert_eq!(
            config.circleci.base_url,
            crate::sources::circleci::DEFAULT_BASE_URL
        );
        assert_eq!(
            config.circleci.token,
            TokenSource::Env("CIRCLECI_TOKEN".into())
        );
        assert_eq!(
            (
                pool.bounds.min,
                pool.bounds.max,
                pool.bounds.allow_unprotected_scale_in
            ),
            (0, 5, false)
        );
        assert_eq!(pool.fallback, BuiltinRule::Hold);
        assert_eq!(pool.policy, PolicyRef::Builtin(BuiltinRule::Queue));
        assert_eq!(pool.time_zone.iana_name(), Some("UTC"));
    }

    #[test]
    fn defaults_are_inherited_and_params_merged_in_order() {
        let text = r#"
interval = "2m"
[defaults]
region = "us-east-1"
time_zone = "America/New_York"
params = { warm = "1", days = "mon-fri" }
[[pool]]
name = "mac"
resource_class = "acme/mac"
group = "ci-mac"
policy = "policies/business-hours.wasm"
params = { warm = 3, hours = "09-17" }
max = 4
"#;
        let config = parse(text).unwrap();
        let pool = &config.pools[0];
        assert_eq!(config.interval, Duration::from_secs(120));
        assert_eq!(pool.group.region, "us-east-1");
        assert_eq!(pool.time_zone.iana_name(), Some("America/New_York"));
        assert_eq!(
            pool.policy,
            PolicyRef::File("/etc/runner-scaler/policies/business-hours.wasm".into())
        );
        let params: Vec<(&str, &str)> = pool
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            params,
            [("days", "mon-fri"), ("warm", "3"), ("hours", "09-17")]
        );
    }

    #[test]
    fn bad_configs_name_the_field_and_the_fix() {
        // (name, change to the pool, words the message must hold)
        let cases = [
            (
                "unknown time zone",
                "time_zone = \"Mars/Olympus\"",
                "time_zone",
            ),
            ("min above max", "min = 9", "min: 9 is above max 5"),
            (
                "unknown fallback",
                "fallback = \"panic\"",
                "\"hold\" or \"queue\"",
            ),
            ("unknown field", "maximum = 3", "maximum"),
            (
                "neither rule nor file",
                "policy = \"fast\"",
                "neither a built-in rule",
            ),
        ];
        for (name, change, words) in cases {
            let key = change.split(' ').next().unwrap();
            let text: String = POOL
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} ")))
                .chain([change])
                .collect::<Vec<_>>()
                .join("\n");
            let err = parse(&text)
                .err()
                .unwrap_or_else(|| panic!("{name}: accepted"));
            let message = err.to_string();
            assert!(message.starts_with("test.toml"), "{name}: {message}");
            assert!(message.contains(words), "{name}: {message}");
        }
        let missing_max = POOL.replace("max = 5", "");
        assert!(parse(&missing_max)
            .unwrap_err()
            .to_string()
            .contains("max: is missing"));
        assert!(parse("").unwrap_err().to_string().contains("no pools"));
        let twice = format!("{POOL}{POOL}");
        assert!(parse(&twice)
            .unwrap_err()
            .to_string()
            .contains("names two pools"));
        let slow = format!(
            "[circleci]\ntimeout = \"2s\"\nattempts = 2\nmax_concurrent_requests = 3\n{POOL}"
        );
        let http = parse(&slow).unwrap().circleci.http;
        assert_eq!(
            (http.timeout, http.attempts, http.max_concurrent),
            (Duration::from_secs(2), 2, 3)
        );
        let http = parse(POOL).unwrap().circleci.http;
        assert_eq!(
            http.max_concurrent,
            crate::sources::circleci::DEFAULT_MAX_CONCURRENT
        );
        for n in [0, 65] {
            let bad = format!("[circleci]\nmax_concurrent_requests = {n}\n{POOL}");
            let err = parse(&bad).unwrap_err().to_string();
            assert!(
                err.contains("circleci.max_concurrent_requests")
                    && err.contains("between 1 and 64"),
                "{err}"
            );
        }
        let none = format!("[circleci]\nattempts = 0\n{POOL}");
        assert!(parse(&none)
            .unwrap_err()
            .to_string()
            .contains("circleci.attempts"));
        let both = format!("[circleci]\ntoken_env = \"T\"\ntoken_secret = {{ name = \"s\", region = \"r\" }}\n{POOL}");
        assert!(parse(&both).unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn configurations_that_cannot_work_are_refused_naming_the_field() {
        // (name, the file, the field the message names, words it must hold)
        let cases = [
            (
                "one group in two pools",
                format!("{POOL}{}", POOL.replace("\"linux\"", "\"linux-2\"")),
                "pool \"linux-2\": group",
                "ci-linux (eu-west-1) is also the group of pool \"linux\"",
            ),
            (
                "a base URL that is not http(s)",
                format!("[circleci]\nbase_url = \"ftp://runner.example.com\"\n{POOL}"),
                "circleci.base_url",
                "http or https",
            ),
            (
                "a base URL without a scheme",
                format!("[circleci]\nbase_url = \"runner.circleci.com\"\n{POOL}"),
                "circleci.base_url",
                "e.g. https://runner.circleci.com",
            ),
            (
                "an endpoint that is not a URL",
                format!("[aws]\nendpoint_url = \"not a url\"\n{POOL}"),
                "aws.endpoint_url",
                "is not usable",
            ),
            (
                "an endpoint without a scheme",
                format!("[aws]\nendpoint_url = \"localhost:5000\"\n{POOL}"),
                "aws.endpoint_url",
                "http or https",
            ),
            (
                "a deadline of 46 days",
                format!("[sandbox]\ndeadline_ms = 4000000000\n{POOL}"),
                "sandbox.deadline_ms",
                "ceiling of 10000 ms",
            ),
            (
                "more memory than WebAssembly has",
                format!("[sandbox]\nmemory_mib = 1000000\n{POOL}"),
                "sandbox.memory_mib",
                "ceiling of 4096 MiB",
            ),
            (
                "a tick deadline under a second",
                format!("tick_deadline = \"0.5s\"\n{POOL}"),
                "tick_deadline",
                "1s or more",
            ),
            (
                "a tick deadline within the policy's",
                format!("tick_deadline = \"2s\"\n[sandbox]\ndeadline_ms = 5000\n{POOL}"),
                "tick_deadline",
                "not above the policy deadline",
            ),
            (
                "a stop grace that is not a duration",
                format!("[daemon]\nstop_grace = \"soon\"\n{POOL}"),
                "daemon.stop_grace",
                "not a duration",
            ),
        ];
        for (name, text, field, words) in cases {
            let message = parse(&text)
                .err()
                .unwrap_or_else(|| panic!("{name}: accepted"))
                .to_string();
            assert!(
                message.starts_with(&format!("test.toml: {field}: ")),
                "{name}: {message}"
            );
            assert!(message.contains(words), "{name}: {message}");
        }
        // The same group name in another region is another group.
        let elsewhere = POOL
            .replace("\"linux\"", "\"linux-us\"")
            .replace("eu-west-1", "us-east-1");
        assert_eq!(parse(&format!("{POOL}{elsewhere}")).unwrap().pools.len(), 2);
        // Bounds that can work are taken.
        let config = parse(&format!(
            "tick_deadline = \"90s\"\n[sandbox]\ndeadline_ms = 10000\nmemory_mib = 4096\n[aws]\nendpoint_url = \"http://127.0.0.1:5000\"\n[daemon]\nstop_grace = \"0s\"\n{POOL}"
        ))
        .unwrap();
        assert_eq!(config.tick_deadline, Duration::from_secs(90));
        assert_eq!(config.daemon.stop_grace, Duration::ZERO);
    }

    #[test]
    fn names_groups_and_params_are_bounded_and_echoed_cut() {
        let huge = "g".repeat(10 * 1024 * 1024);
        let with = |from: &str, to: &str| POOL.replace(from, to);
        // (name, the file, the field the message names, words it must hold)
        let cases = [
            (
                "an empty group",
                with("\"ci-linux\"", "\"\""),
                "pool \"linux\": group",
                "is empty",
            ),
            (
                "a group of blanks",
                with("\"ci-linux\"", "\"  \""),
                "pool \"linux\": group",
                "is empty",
            ),
            (
                "a 10 MB group",
                with("\"ci-linux\"", &format!("\"{huge}\"")),
                "pool \"linux\": group",
                "more than the 255 it may have",
            ),
            (
                "a group with a line break",
                with("\"ci-linux\"", "\"ci\\nlinux\""),
                "pool \"linux\": group",
                "control character",
            ),
            (
                "an empty resource class",
                with("\"acme/linux\"", "\"\""),
                "pool \"linux\": resource_class",
                "is empty",
            ),
            (
                "a resource class with a space",
                with("\"acme/linux\"", "\"acme/ linux\""),
                "pool \"linux\": resource_class",
                "has spaces",
            ),
            (
                "a region that is not one",
                with("\"eu-west-1\"", "\"Europe West\""),
                "pool \"linux\": region",
                "not an AWS region name",
            ),
            (
                "a long param value",
                format!("{POOL}params = {{ warm = \"{}\" }}\n", "9".repeat(2000)),
                "pool \"linux\": params.warm",
                "longer than 1024 bytes",
            ),
            (
                "a daemon reload deadline under a second",
                format!("[daemon]\nreload_deadline = \"0s\"\n{POOL}"),
                "daemon.reload_deadline",
                "1s or more",
            ),
        ];
        for (name, text, field, words) in cases {
            let message = parse(&text)
                .err()
                .unwrap_or_else(|| panic!("{name}: accepted"))
                .to_string();
            assert!(
                message.starts_with(&format!("test.toml: {field}: ")),
                "{name}: {}",
                crate::text::quoted(&message)
            );
            assert!(
                message.contains(words),
                "{name}: {}",
                crate::text::quoted(&message)
            );
            assert!(message.len() < 1000, "{name}: {} bytes", message.len());
        }
        // A 10 MB pool name: refused, and the pool's label in the message is
        // cut too.
        let message = parse(&with("\"linux\"", &format!("\"{huge}\"")))
            .unwrap_err()
            .to_string();
        assert!(message.contains("more than the 128 it may have") && message.len() < 1000);
        // An unknown key with a 5 MB value: TOML's message quotes the line,
        // cut.
        let message = parse(&format!("{POOL}colour = \"{}\"\n", "x".repeat(5 << 20)))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("unknown field `colour`"),
            "{}",
            crate::text::quoted(&message)
        );
        assert!(message.len() < 5000, "{} bytes", message.len());
        assert_eq!(
            parse(&format!("[daemon]\nreload_deadline = \"2m\"\n{POOL}"))
                .unwrap()
                .daemon
                .reload_deadline,
            Duration::from_secs(120)
        );
    }

    #[test]
    fn the_tick_deadline_defaults_to_the_interval_and_at_least_ten_seconds() {
        let deadline = |interval: &str| {
            parse(&format!("interval = \"{interval}\"\n{POOL}"))
                .unwrap()
                .tick_deadline
        };
        assert_eq!(deadline("2m"), Duration::from_secs(120));
        assert_eq!(deadline("1s"), Duration::from_secs(10));
        assert_eq!(
            parse(POOL).unwrap().daemon.stop_grace,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn the_interval_grows_when_the_runner_api_budget_needs_it() {
        let pools = |n: usize, budget: u32| {
            let mut text = format!("[circleci]\nrequests_per_minute = {budget}\n");
            for i in 0..n {
                text += &format!(
                    "[[pool]]\nname = \"p{i}\"\nresource_class = \"acme/c{}\"\ngroup = \"g{i}\"\n\
                     region = \"eu-west-1\"\npolicy = \"queue\"\nmax = 2\n",
                    i % 60
                );
            }
            parse(&text).unwrap().tick_interval()
        };
        // Two requests per resource class and tick.
        assert_eq!(pools(1, 600), Duration::from_secs(10));
        assert_eq!(
            pools(50, 600),
            Duration::from_secs(10),
            "100 a tick, 6 ticks"
        );
        assert_eq!(pools(100, 600), Duration::from_secs(12), "60 classes");
        assert_eq!(pools(60, 60), Duration::from_secs(120));
        // The tick may take that long too, unless told otherwise.
        let text = format!("[circleci]\nrequests_per_minute = 1\n{POOL}");
        assert_eq!(
            parse(&text).unwrap().tick_deadline,
            Duration::from_secs(120)
        );
        let text = format!("tick_deadline = \"20s\"\n[circleci]\nrequests_per_minute = 1\n{POOL}");
        assert_eq!(parse(&text).unwrap().tick_deadline, Duration::from_secs(20));
        let zero = format!("[circleci]\nrequests_per_minute = 0\n{POOL}");
        let err = parse(&zero).unwrap_err().to_string();
        assert!(err.contains("circleci.requests_per_minute"), "{err}");
        // The environment route names its variable.
        let var = |name: &str| {
            match name {
                "SECRET_NAME" => Some("s"),
                "SECRET_REGION" | "AUTO_SCALING_GROUP_REGION" => Some("eu-west-1"),
                "AUTO_SCALING_MAX" => Some("4"),
                "AUTO_SCALING_GROUP_NAME" => Some("g"),
                env::TICK_INTERVAL => Some("soon"),
                _ => None,
            }
            .map(String::from)
        };
        let err = Config::from_seed_env(&var, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("RUNNER_SCALER_TICK_INTERVAL"), "{err}");
    }

    #[test]
    fn a_pool_may_pin_its_policy_and_name_a_shadow() {
        let pool = |extra: &str| {
            format!(
                "[[pool]]\nname = \"p\"\nresource_class = \"a/p\"\ngroup = \"g\"\nregion = \"eu-west-1\"\n\
                 max = 4\n{extra}\n"
            )
        };
        let digest = "AB".repeat(32);
        let config = parse(&pool(&format!(
            "policy = \"p.wasm\"\npolicy_sha256 = \"{digest}\"\nshadow = \"c.wasm\"\n\
             shadow_params = {{ warm = 2 }}\nshadow_sha256 = \"{}\"",
            "CD".repeat(32)
        )))
        .unwrap();
        let p = &config.pools[0];
        assert_eq!(p.policy_sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(
            p.shadow,
            Some(ShadowConfig {
                policy: PolicyRef::File("/etc/runner-scaler/c.wasm".into()),
                policy_sha256: Some("cd".repeat(32)),
                params: vec![("warm".into(), "2".into())],
            })
        );
        for (extra, field) in [
            (
                "policy = \"queue\"\npolicy_sha256 = \"00\"",
                "policy_sha256",
            ),
            (
                "policy = \"p.wasm\"\npolicy_sha256 = \"xyz\"",
                "policy_sha256",
            ),
            (
                "policy = \"queue\"\nshadow_params = { warm = 2 }",
                "shadow_params",
            ),
            ("policy = \"queue\"\nshadow = \"c.py\"", "shadow"),
            (
                "policy = \"queue\"\nshadow_sha256 = \"00\"",
                "shadow_sha256",
            ),
            (
                "policy = \"queue\"\nshadow = \"hold\"\nshadow_sha256 = \"00\"",
                "shadow_sha256",
            ),
            (
                "policy = \"queue\"\nshadow = \"c.wasm\"\nshadow_sha256 = \"xyz\"",
                "shadow_sha256",
            ),
        ] {
            let err = parse(&pool(extra)).unwrap_err().to_string();
            assert!(err.contains(&format!(": {field}:")), "{extra}: {err}");
        }
    }

    #[test]
    fn an_unreadable_file_says_its_os_error_once() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let err = anyhow::Error::new(Config::from_file(&missing).unwrap_err());
        let chain = format!("{err:#}");
        assert!(chain.contains("cannot read the configuration"), "{chain}");
        assert_eq!(chain.matches("(os error").count(), 1, "{chain}");
        // A directory, a device or a FIFO is refused without reading it.
        for path in [dir.path(), Path::new("/dev/zero")] {
            let err = Config::from_file(path).unwrap_err().to_string();
            assert!(
                err.starts_with("cannot read the configuration")
                    && err.contains("not a regular file"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_original_tools_environment_defines_one_queue_pool() {
        let env = |name: &str| {
            Some(
                match name {
                    "SECRET_NAME" => "cci-runner-lambda-secrets",
                    "SECRET_REGION" => "eu-west-1",
                    "AUTO_SCALING_MAX" => "8",
                    "AUTO_SCALING_GROUP_NAME" => "cci-runner-auto-scaling-group",
                    "AUTO_SCALING_GROUP_REGION" => "eu-central-1",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let config = Config::from_seed_env(&env, Path::new(".")).unwrap();
        let pool = &config.pools[0];
        assert_eq!(
            config.circleci.token,
            TokenSource::Secret {
                name: "cci-runner-lambda-secrets".into(),
                region: "eu-west-1".into()
            }
        );
        assert_eq!(pool.group.name, "cci-runner-auto-scaling-group");
        assert_eq!(pool.group.region, "eu-central-1");
        assert_eq!((pool.bounds.min, pool.bounds.max), (0, 8));
        assert_eq!(pool.policy, PolicyRef::Builtin(BuiltinRule::Queue));
        assert_eq!(pool.resource_class, None, "read from the secret");

        let partial = |name: &str| (name == "SECRET_NAME").then(|| "s".to_string());
        let err = Config::from_seed_env(&partial, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SECRET_REGION") && err.contains("is not set"),
            "{err}"
        );
        assert!(matches!(
            Config::from_seed_env(&|_| None, Path::new(".")),
            Err(ConfigError::Missing)
        ));

        let bad_url = |name: &str| match name {
            "CIRCLECI_RUNNER_API_URL" => Some("runner.example.com".to_string()),
            _ => env(name),
        };
        let err = Config::from_seed_env(&bad_url, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("environment: CIRCLECI_RUNNER_API_URL: "),
            "{err}"
        );
    }

    /// The original tool's five variables plus `extra`.
    fn seed_env(extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut vars: Vec<(String, String)> = [
            ("SECRET_NAME", "s"),
            ("SECRET_REGION", "eu-west-1"),
            ("AUTO_SCALING_MAX", "4"),
            ("AUTO_SCALING_GROUP_NAME", "g"),
            ("AUTO_SCALING_GROUP_REGION", "eu-central-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (name, value) in extra {
            vars.retain(|(k, _)| k != name);
            if !value.is_empty() {
                vars.push((name.to_string(), value.to_string()));
            }
        }
        move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_environment_route_sets_the_pool_in_one_validation() {
        let base = Path::new("/var/task");
        let config = Config::from_seed_env(
            &seed_env(&[
                (env::TIME_ZONE, "Europe/Berlin"),
                (env::POLICY, "policies/business-hours.wasm"),
                (env::POLICY_PARAMS, "warm=2,hours=08-18"),
                (env::RESOURCE_CLASS, "acme/linux"),
                (env::CIRCLECI_URL, "https://circleci.example.com/runner"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ]),
            base,
        )
        .unwrap();
        let pool = &config.pools[0];
        assert_eq!(pool.time_zone.iana_name(), Some("Europe/Berlin"));
        assert_eq!(
            pool.policy,
            PolicyRef::File("/var/task/policies/business-hours.wasm".into())
        );
        assert_eq!(pool.params.len(), 2);
        assert_eq!(pool.resource_class.as_deref(), Some("acme/linux"));
        assert_eq!(
            config.circleci.base_url,
            "https://circleci.example.com/runner"
        );
        assert_eq!(
            config.aws_endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(pool.time_zone.iana_name(), Some("Europe/Berlin"));

        // The token from an SSM parameter: in SECRET_REGION, else the group's.
        let parameter = Config::from_seed_env(
            &seed_env(&[
                ("SECRET_NAME", ""),
                ("SECRET_REGION", ""),
                (env::TOKEN_PARAMETER, "/ci/circle-token"),
                (env::RESOURCE_CLASS, "acme/linux"),
            ]),
            base,
        )
        .unwrap();
        assert_eq!(
            parameter.circleci.token,
            TokenSource::Parameter {
                name: "/ci/circle-token".into(),
                region: "eu-central-1".into()
            }
        );
    }

    #[test]
    fn the_environment_routes_errors_name_the_variable() {
        // (name, variables changed, words the message must hold)
        let cases = [
            (
                "unknown time zone",
                vec![(env::TIME_ZONE, "Mars/Olympus")],
                "environment: RUNNER_SCALER_TIME_ZONE: \"Mars/Olympus\" is not an IANA time zone",
            ),
            (
                "neither rule nor file",
                vec![(env::POLICY, "fast")],
                "environment: RUNNER_SCALER_POLICY: \"fast\" is neither a built-in rule",
            ),
            (
                "params that are not pairs",
                vec![(env::POLICY_PARAMS, "warm")],
                "environment: RUNNER_SCALER_POLICY_PARAMS: \"warm\" is not key=value",
            ),
            (
                "a parameter holds only the token",
                vec![("SECRET_NAME", ""), (env::TOKEN_PARAMETER, "/t")],
                "environment: RUNNER_SCALER_RESOURCE_CLASS: is missing",
            ),
            (
                "two token sources",
                vec![(env::TOKEN_PARAMETER, "/t")],
                "RUNNER_SCALER_TOKEN_PARAMETER: is set, and so is SECRET_NAME",
            ),
            (
                "no token source",
                vec![("SECRET_NAME", "")],
                "SECRET_NAME: is not set",
            ),
            (
                "no max",
                vec![("AUTO_SCALING_MAX", "lots")],
                "AUTO_SCALING_MAX: \"lots\" is not a whole number",
            ),
        ];
        for (name, changes, words) in cases {
            let err = Config::from_seed_env(&seed_env(&changes), Path::new("."))
                .err()
                .unwrap_or_else(|| panic!("{name}: accepted"))
                .to_string();
            assert!(err.contains(words), "{name}: {err}");
        }
    }

    #[test]
    fn a_configuration_file_refuses_the_environments_pool_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scaler.toml");
        std::fs::write(&file, POOL).unwrap();
        let with =
            |extra: &[(&str, &str)]| Config::resolve(Some(&file), &seed_env(extra), Path::new("."));
        assert_eq!(
            with(&[]).unwrap().pools[0].name,
            "linux",
            "the original five are ignored"
        );
        let err = with(&[(env::TIME_ZONE, "Europe/Berlin"), (env::POLICY, "hold")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("RUNNER_SCALER_POLICY, RUNNER_SCALER_TIME_ZONE set")
                && err.contains("scaler.toml")
                && err.contains("unset RUNNER_SCALER_POLICY, RUNNER_SCALER_TIME_ZONE"),
            "{err}"
        );
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/runner-scaler.toml");
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.pools.len(), 2);
    }
}
