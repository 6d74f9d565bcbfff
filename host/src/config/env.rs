//! The environment route: with no configuration file, environment
//! variables define one pool — the original tool's five, so an existing
//! deployment keeps its settings, and runner-scaler's own below. Every
//! variable is read here, into the same raw structs as a file, and
//! validated once; an error names the variable.

use super::raw::{RawAws, RawConfig, RawPool, RawSecretRef, RawSource};
use super::ConfigError;
use crate::sources::SourceKind;
use std::path::Path;

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

/// The pool's queue source: `circleci` (the default) or `buildkite`.
pub const SOURCE: &str = "RUNNER_SCALER_SOURCE";
/// The pool's queue (a Buildkite queue; for CircleCI, the resource class,
/// as `RUNNER_SCALER_RESOURCE_CLASS` sets it too).
pub const QUEUE: &str = "RUNNER_SCALER_QUEUE";
/// Buildkite's agent API (Buildkite's own name for it) [default: Buildkite's].
pub const BUILDKITE_URL: &str = "BUILDKITE_AGENT_ENDPOINT";

/// The variables that set what a configuration file sets per pool.
pub const POOL_VARS: [&str; 11] = [
    POLICY,
    POLICY_PARAMS,
    TIME_ZONE,
    RESOURCE_CLASS,
    TOKEN_PARAMETER,
    POLICY_SHA256,
    SHADOW_POLICY,
    SHADOW_PARAMS,
    SHADOW_SHA256,
    SOURCE,
    QUEUE,
];

/// `key=value,key=value` as a params table, in order.
fn parse_params(text: &str) -> Result<toml::Table, String> {
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
fn name_variables(err: ConfigError) -> ConfigError {
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
        "buildkite" if key == "buildkite.base_url" => BUILDKITE_URL,
        "source" => SOURCE,
        "aws" if key == "aws.endpoint_url" => "AWS_ENDPOINT_URL",
        "queue" => QUEUE,
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

/// The configuration the environment gives: the original tool's variables
/// define one pool with the `queue` rule, its token (and resource class)
/// from its secret; runner-scaler's own variables set the pool's source,
/// queue, policy, params and time zone, and may take the token from an SSM
/// parameter instead. `var` reads a variable; relative policy paths are
/// taken from `base`.
pub(super) fn config(
    var: &dyn Fn(&str) -> Option<String>,
    base: &Path,
) -> Result<super::Config, ConfigError> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let required = [
        "AUTO_SCALING_MAX",
        "AUTO_SCALING_GROUP_NAME",
        "AUTO_SCALING_GROUP_REGION",
    ];
    let known = ["SECRET_NAME", "SECRET_REGION", TOKEN_PARAMETER, SOURCE];
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
                        TOKEN_PARAMETER
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
    let source = match set(SOURCE) {
        None => SourceKind::CircleCi,
        Some(name) => SourceKind::from_name(name.trim()).ok_or_else(|| {
            invalid(
                SOURCE,
                format!(
                    "{} is not a queue source; use one of {}",
                    crate::text::quoted(&name),
                    super::sections::source_names()
                ),
            )
        })?,
    };
    let (mut token_secret, mut token_parameter) =
        match (set("SECRET_NAME"), set(TOKEN_PARAMETER)) {
            (Some(_), Some(_)) => return Err(invalid(
                TOKEN_PARAMETER,
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
            // A Buildkite pool may take its agent token from its own
            // variable (BUILDKITE_AGENT_TOKEN), as a file's section does.
            (None, None) if source != SourceKind::CircleCi => (None, None),
            (None, None) => return Err(get("SECRET_NAME").unwrap_err()),
        };
    let params = set(POLICY_PARAMS)
        .map(|text| parse_params(&text))
        .transpose()
        .map_err(|message| invalid(POLICY_PARAMS, message))?;
    let shadow_params = set(SHADOW_PARAMS)
        .map(|text| parse_params(&text))
        .transpose()
        .map_err(|message| invalid(SHADOW_PARAMS, message))?;
    let group = get("AUTO_SCALING_GROUP_NAME")?;
    let raw = RawConfig {
        interval: set(TICK_INTERVAL).map(|text| text.trim().into()),
        circleci: (source == SourceKind::CircleCi).then(|| RawSource {
            base_url: set(CIRCLECI_URL),
            token_secret: token_secret.take(),
            token_parameter: token_parameter.take(),
            ..RawSource::default()
        }),
        buildkite: (source == SourceKind::Buildkite).then(|| RawSource {
            base_url: set(BUILDKITE_URL),
            token_secret: token_secret.take(),
            token_parameter: token_parameter.take(),
            ..RawSource::default()
        }),
        aws: RawAws {
            endpoint_url: set("AWS_ENDPOINT_URL"),
        },
        pools: vec![RawPool {
            name: Some(group.clone()),
            group: Some(group),
            region: Some(group_region),
            source: set(SOURCE),
            queue: set(QUEUE),
            resource_class: set(RESOURCE_CLASS),
            policy: Some(set(POLICY).map_or_else(|| "queue".into(), |p| p.trim().into())),
            params,
            policy_sha256: set(POLICY_SHA256).map(|d| d.trim().into()),
            shadow: set(SHADOW_POLICY).map(|p| p.trim().into()),
            shadow_sha256: set(SHADOW_SHA256).map(|d| d.trim().into()),
            shadow_params,
            time_zone: set(TIME_ZONE).map(|zone| zone.trim().into()),
            min: Some(0),
            max: Some(max),
            ..RawPool::default()
        }],
        ..RawConfig::default()
    };
    raw.validate(&origin, base).map_err(name_variables)
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

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
            config.source(SourceKind::CircleCi).unwrap().token,
            TokenSource::Secret {
                name: "cci-runner-lambda-secrets".into(),
                region: "eu-west-1".into()
            }
        );
        assert_eq!(pool.group.name, "cci-runner-auto-scaling-group");
        assert_eq!(pool.group.region, "eu-central-1");
        assert_eq!((pool.bounds.min, pool.bounds.max), (0, 8));
        assert_eq!(pool.policy, PolicyRef::Builtin(BuiltinRule::Queue));
        assert_eq!(pool.queue, None, "read from the secret");

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
        assert_eq!(pool.queue.as_deref(), Some("acme/linux"));
        assert_eq!(
            config.source(SourceKind::CircleCi).unwrap().base_url,
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
            parameter.source(SourceKind::CircleCi).unwrap().token,
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

    /// A Buildkite pool needs no secret: its agent token may come from
    /// `BUILDKITE_AGENT_TOKEN`, as a file's `[buildkite]` section allows;
    /// a CircleCI pool still needs `SECRET_NAME` (the original tool's).
    #[test]
    fn a_buildkite_pool_from_the_environment_may_read_its_token_from_a_variable() {
        let config = Config::from_seed_env(
            &seed_env(&[
                ("SECRET_NAME", ""),
                (env::SOURCE, "buildkite"),
                (env::QUEUE, "linux"),
            ]),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(config.pools[0].source, SourceKind::Buildkite);
        assert_eq!(config.pools[0].queue.as_deref(), Some("linux"));
        assert_eq!(
            config.source(SourceKind::Buildkite).unwrap().token,
            TokenSource::Env("BUILDKITE_AGENT_TOKEN".into())
        );
        assert!(config.source(SourceKind::CircleCi).is_none());
    }

    #[test]
    fn a_configuration_file_refuses_the_environments_pool_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scaler.toml");
        std::fs::write(&file, super::super::tests::POOL).unwrap();
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
}
