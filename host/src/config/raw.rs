//! The configuration as written: the TOML file's tables, and what the
//! environment route fills in, before any check. [`super::sections`]
//! validates them into a [`super::Config`].

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub interval: Option<String>,
    pub tick_deadline: Option<String>,
    /// A section per queue source (`crate::sources::SourceKind`).
    pub circleci: Option<RawSource>,
    pub buildkite: Option<RawSource>,
    #[cfg(test)]
    pub fixed: Option<RawSource>,
    #[serde(default)]
    pub aws: RawAws,
    #[serde(default)]
    pub sandbox: RawSandbox,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default, rename = "pool")]
    pub pools: Vec<RawPool>,
}

/// A queue source's section: where its API is, its token, how it is read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub base_url: Option<String>,
    pub token_env: Option<String>,
    pub token_secret: Option<RawSecretRef>,
    pub token_parameter: Option<RawSecretRef>,
    pub timeout: Option<String>,
    pub attempts: Option<u32>,
    pub requests_per_minute: Option<u32>,
    pub max_concurrent_requests: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecretRef {
    pub name: String,
    pub region: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAws {
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub listen: Option<String>,
    pub unhealthy_after: Option<u32>,
    pub stop_grace: Option<String>,
    pub reload_deadline: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSandbox {
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<usize>,
}

/// One `[[pool]]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub name: Option<String>,
    pub source: Option<String>,
    pub queue: Option<String>,
    pub resource_class: Option<String>,
    pub group: Option<String>,
    pub region: Option<String>,
    pub policy: Option<String>,
    pub policy_sha256: Option<String>,
    pub params: Option<toml::Table>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub time_zone: Option<String>,
    pub fallback: Option<String>,
    pub allow_unprotected_scale_in: Option<bool>,
    pub warm_max: Option<u32>,
    pub shadow: Option<String>,
    pub shadow_sha256: Option<String>,
    pub shadow_params: Option<toml::Table>,
}

/// `[defaults]`: every pool key but `name`, which names one pool only.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub source: Option<String>,
    pub queue: Option<String>,
    pub resource_class: Option<String>,
    pub group: Option<String>,
    pub region: Option<String>,
    pub policy: Option<String>,
    pub policy_sha256: Option<String>,
    pub params: Option<toml::Table>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub time_zone: Option<String>,
    pub fallback: Option<String>,
    pub allow_unprotected_scale_in: Option<bool>,
    pub warm_max: Option<u32>,
    pub shadow: Option<String>,
    pub shadow_sha256: Option<String>,
    pub shadow_params: Option<toml::Table>,
}

impl From<RawDefaults> for RawPool {
    fn from(d: RawDefaults) -> RawPool {
        RawPool {
            name: None,
            source: d.source,
            queue: d.queue,
            resource_class: d.resource_class,
            group: d.group,
            region: d.region,
            policy: d.policy,
            policy_sha256: d.policy_sha256,
            params: d.params,
            min: d.min,
            max: d.max,
            time_zone: d.time_zone,
            fallback: d.fallback,
            allow_unprotected_scale_in: d.allow_unprotected_scale_in,
            warm_max: d.warm_max,
            shadow: d.shadow,
            shadow_sha256: d.shadow_sha256,
            shadow_params: d.shadow_params,
        }
    }
}
