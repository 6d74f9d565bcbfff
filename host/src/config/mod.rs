//! The configuration: a TOML file, or — with no file — environment
//! variables (the original tool's five, and a few of runner-scaler's own).
//! Both are read into the raw structs of [`raw`] (the environment route in
//! [`env`]), and one validation turns them into the [`Config`] the rest of
//! the code trusts, whichever mode runs (`once`, `run`, Lambda): the
//! top-level sections in [`sections`], each pool in [`pool`]. Every error
//! names the file (or variable), the field and the fix.

pub mod env;
mod pool;
mod raw;
mod sections;

pub use pool::{
    MAX_GROUP_CHARS, MAX_NAME_CHARS, MAX_PARAMS, MAX_PARAM_NAME_CHARS, MAX_PARAM_VALUE_BYTES,
    MAX_QUEUE_CHARS, MAX_REGION_CHARS,
};

use crate::bounds::Bounds;
use crate::groups::GroupId;
use crate::policy::{BuiltinRule, Limits, PolicyRef};
use crate::sources::http::HttpOptions;
use crate::sources::SourceKind;
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
    /// The queue sources the pools read, one per kind, in the order of
    /// [`SourceKind::ALL`].
    pub sources: Vec<SourceConfig>,
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

/// A queue source the pools read: where its API is, how to authenticate
/// to it, how to read it.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub base_url: String,
    pub token: TokenSource,
    /// Per-request timeout, attempts and requests in flight; the backoff
    /// keeps its defaults.
    pub http: HttpOptions,
    /// The most requests per minute the scaler sends this API; the tick
    /// interval grows when the pools' queues need more.
    pub requests_per_minute: u32,
}

/// Where a source's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable.
    Env(String),
    /// A Secrets Manager secret (for CircleCI, the original tool's JSON
    /// with `circle_token` and optionally `resource_class`).
    Secret { name: String, region: String },
    /// An SSM Parameter Store parameter (a SecureString) holding the token.
    Parameter { name: String, region: String },
}

/// One pool: a queue, the group that runs its jobs, and its policy.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub name: String,
    /// The CI its queue is in.
    pub source: SourceKind,
    /// The queue's name there (a CircleCI resource class); `None`: read
    /// from the token's secret (the original tool's set-up).
    pub queue: Option<String>,
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

/// The most `max_concurrent_requests` of a source: more connections at
/// once than this is a burst, whatever the server.
pub const MAX_CONCURRENT_REQUESTS: usize = 64;

/// The default time between ticks: a job waits at most this long for the
/// scaler to see it (the daemon's, and within a Lambda invocation).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The default budget of a source's API requests per minute. CircleCI
/// publishes no rate limit for the runner API (it answers 429 with
/// `Retry-After` when one is hit, which the client honours); 600 a minute,
/// ten a second, keeps 10 s ticks for up to 50 resource classes (two
/// requests each per tick). Buildkite paces its pollers itself (see
/// `sources/buildkite.rs`).
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 600;

/// The shortest default tick deadline: room for the upstream calls' own
/// timeouts (10 s per AWS call) when the interval is shorter.
pub const MIN_DEFAULT_TICK_DEADLINE: Duration = Duration::from_secs(10);

impl Config {
    /// The time between ticks: the configured interval, or longer when a
    /// tick's API requests to a source (two per CircleCI resource class, one
    /// per Buildkite queue) at that interval would exceed its
    /// `requests_per_minute`.
    pub fn tick_interval(&self) -> Duration {
        paced_interval(self.interval, &self.pools, &self.sources)
    }

    /// The settings of the source `kind`, if a pool reads it.
    pub fn source(&self, kind: SourceKind) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.kind == kind)
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
        let raw: raw::RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
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

    /// The environment route ([`env`]): the original tool's variables, and
    /// runner-scaler's own, define one pool.
    pub fn from_seed_env(
        var: &dyn Fn(&str) -> Option<String>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        env::config(var, base)
    }
}

/// `interval`, or longer when a tick's requests to a source (its
/// `requests_per_reading` per distinct queue) would exceed its
/// `requests_per_minute`.
fn paced_interval(interval: Duration, pools: &[PoolConfig], sources: &[SourceConfig]) -> Duration {
    sources
        .iter()
        .map(|source| {
            let queues: std::collections::BTreeSet<Option<&str>> = pools
                .iter()
                .filter(|pool| pool.source == source.kind)
                .map(|pool| pool.queue.as_deref())
                .collect();
            let per_tick = source.kind.requests_per_reading() * queues.len() as u64;
            Duration::from_millis(
                (per_tick * 60_000).div_ceil(u64::from(source.requests_per_minute.max(1))),
            )
        })
        .fold(interval, Duration::max)
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

    pub(super) const POOL: &str = r#"
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
            config.source(SourceKind::CircleCi).unwrap().base_url,
            crate::sources::circleci::DEFAULT_BASE_URL
        );
        assert_eq!(
            config.source(SourceKind::CircleCi).unwrap().token,
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
        let http = parse(&slow)
            .unwrap()
            .source(SourceKind::CircleCi)
            .unwrap()
            .http
            .clone();
        assert_eq!(
            (http.timeout, http.attempts, http.max_concurrent),
            (Duration::from_secs(2), 2, 3)
        );
        let http = parse(POOL)
            .unwrap()
            .source(SourceKind::CircleCi)
            .unwrap()
            .http
            .clone();
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
    fn the_example_configuration_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/runner-scaler.toml");
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.pools.len(), 2);
    }
}
