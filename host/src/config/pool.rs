//! The validation of one `[[pool]]`, with `[defaults]` filled in: its
//! name, queue, group, policy and pins, params, bounds, time zone, fallback
//! and shadow.

use super::raw::RawPool;
use super::{ConfigError, PoolConfig, ShadowConfig};
use crate::bounds::Bounds;
use crate::groups::GroupId;
use crate::policy::{BuiltinRule, PolicyRef};
use crate::sources::SourceKind;
use std::path::Path;

pub(super) fn validate_pool(
    pool: RawPool,
    defaults: &RawPool,
    index: usize,
    origin: &str,
    base: &Path,
    secret_names_queue: &[SourceKind],
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
    let source = match pool.source.as_ref().or(defaults.source.as_ref()) {
        None => SourceKind::CircleCi,
        Some(text) => SourceKind::from_name(text.trim()).ok_or_else(|| {
            invalid(
                "source",
                format!(
                    "{} is not a queue source; use one of {}",
                    crate::text::quoted(text),
                    super::sections::source_names()
                ),
            )
        })?,
    };
    let secret_names_queue = secret_names_queue.contains(&source);
    let queue = queue(&pool, defaults, source, secret_names_queue, &invalid)?;
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
        source,
        queue,
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

/// The pool's queue: `queue`, or for CircleCI `resource_class` (its name
/// there, still accepted), or for a CircleCI pool whose token comes from
/// a secret that names the queue (the original tool's), none. Bounded, no
/// spaces.
fn queue(
    pool: &RawPool,
    defaults: &RawPool,
    source: SourceKind,
    secret_names_queue: bool,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<String>, ConfigError> {
    let (queue, resource_class) = (
        pool.queue.clone().or_else(|| defaults.queue.clone()),
        pool.resource_class
            .clone()
            .or_else(|| defaults.resource_class.clone()),
    );
    let (field, value) = match (queue, resource_class) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "queue",
                "and resource_class are both set: give the queue once (resource_class is \
                 CircleCI's name for it)"
                    .into(),
            ))
        }
        (None, Some(_)) if source != SourceKind::CircleCi => {
            return Err(invalid(
                "resource_class",
                format!("is CircleCI's; a {source} pool names its queue: queue = \"linux\""),
            ))
        }
        (Some(queue), None) => ("queue", Some(queue)),
        (None, Some(class)) => ("resource_class", Some(class)),
        (None, None) if source == SourceKind::CircleCi => ("resource_class", None),
        (None, None) => ("queue", None),
    };
    let Some(value) = value else {
        if secret_names_queue {
            return Ok(None);
        }
        let example = match source {
            SourceKind::CircleCi => "resource_class = \"my-namespace/linux-large\"",
            _ => "queue = \"linux\"",
        };
        return Err(invalid(field, format!("is missing; e.g. {example}")));
    };
    check_text(&value, field, MAX_QUEUE_CHARS, invalid)?;
    if value.chars().any(char::is_whitespace) {
        let what = match source {
            SourceKind::CircleCi => "a resource class is namespace/name, e.g. \"acme/linux-large\"",
            _ => "a queue name has none, e.g. \"linux\"",
        };
        return Err(invalid(
            field,
            format!("{} has spaces; {what}", crate::text::quoted(&value)),
        ));
    }
    Ok(Some(value))
}

/// The longest pool name: it labels every metric and log line.
pub const MAX_NAME_CHARS: usize = 128;
/// The longest Auto Scaling group name AWS accepts.
pub const MAX_GROUP_CHARS: usize = 255;
/// The longest queue name (CircleCI's resource classes are
/// `namespace/name`, each far shorter; Buildkite's queues too).
pub const MAX_QUEUE_CHARS: usize = 255;
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
