//! `check --probe`: every AWS call the scaler makes, tried with the
//! credentials it would run with, so a missing permission shows before the
//! first tick, with the statement to add. Reads are made for real; writes
//! in a form that changes nothing, since Auto Scaling has no dry run:
//! `UpdateAutoScalingGroup` with the group's name only, `SetDesiredCapacity`
//! above the group's maximum (which Auto Scaling refuses with
//! `ValidationError` once it has authorized the call), and a
//! `runner-scaler:probe` tag that is removed again. Each pool's queue is
//! read from its CI with the token the scaler would use.

use crate::aws::{error_message, refusal, AwsOptions};
use crate::config::{Config, SourceConfig, TokenSource};
use crate::iam::{Action, Call};
use crate::policy::PolicyRef;
use crate::sources::{Source, SourceError};
use crate::token_secret::{self, SecretError};
use aws_sdk_autoscaling::types::Tag;
use serde::Serialize;
use std::collections::BTreeMap;

/// The tag the probe writes and removes; never the state tag.
pub const PROBE_TAG: &str = "runner-scaler:probe";

/// What one tried call showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// The call is allowed; the detail says how that was seen when it is
    /// not plain.
    Allowed(Option<String>),
    /// AWS refused it for want of permission: what to grant.
    Refused(String),
    /// It failed for another reason (a missing group, no network, ...).
    Failed(String),
    /// Not tried, and why.
    Skipped(String),
}

/// One call and what trying it showed.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// The IAM action, or the source's API (`circleci API`).
    pub action: String,
    /// The group, secret or parameter, and its region; or the queue and
    /// the API's address.
    pub target: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Everything the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Who the calls were made as (`sts:GetCallerIdentity`), if known.
    pub principal: Option<String>,
    pub probes: Vec<Probe>,
}

impl Report {
    /// Whether every needed call is allowed.
    pub fn ok(&self) -> bool {
        self.probes
            .iter()
            .all(|p| matches!(p.outcome, Outcome::Allowed(_) | Outcome::Skipped(_)))
    }

    /// The report as lines for a terminal.
    pub fn text(&self) -> String {
        let mut out = format!(
            "probe as {}\n",
            self.principal.as_deref().unwrap_or("an unknown principal")
        );
        for probe in &self.probes {
            let (word, detail) = match &probe.outcome {
                Outcome::Allowed(detail) => ("ok", detail.clone()),
                Outcome::Refused(detail) => ("REFUSED", Some(detail.clone())),
                Outcome::Failed(detail) => ("FAILED", Some(detail.clone())),
                Outcome::Skipped(detail) => ("skipped", Some(detail.clone())),
            };
            out.push_str(&format!("  {word:<8} {} on {}", probe.action, probe.target));
            if let Some(detail) = detail {
                out.push_str(&format!(": {detail}"));
            }
            out.push('\n');
        }
        let bad = self
            .probes
            .iter()
            .filter(|p| !matches!(p.outcome, Outcome::Allowed(_) | Outcome::Skipped(_)))
            .count();
        if bad == 0 {
            out.push_str(&format!("probe: all {} calls allowed", self.probes.len()));
        } else {
            out.push_str(&format!(
                "probe: {bad} of {} calls refused or failed; every statement the scaler needs: docs/deploying.md#the-role",
                self.probes.len()
            ));
        }
        out
    }
}

/// Try every call `config`'s pools need.
pub async fn probe(config: &Config) -> Report {
    let aws = AwsOptions::new(config.aws_endpoint_url.clone());
    let mut probes = vec![];
    let first_region = config
        .pools
        .first()
        .map_or("us-east-1", |p| p.group.region.as_str());
    let principal = caller(&aws, first_region).await;

    for source in &config.sources {
        probes.extend(probe_source(config, source, &aws).await);
    }

    // Each group once, with whether a pool on it keeps state (tags).
    let mut groups: BTreeMap<(String, String), bool> = BTreeMap::new();
    for pool in &config.pools {
        let stateful = matches!(pool.policy, PolicyRef::File(_));
        *groups
            .entry((pool.group.region.clone(), pool.group.name.clone()))
            .or_default() |= stateful;
    }
    let mut regions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (region, name) in groups.keys() {
        regions.entry(region).or_default().push(name);
    }
    for (region, names) in regions {
        let client = aws.autoscaling(region).await;
        let call = Call::new(Action::DescribeGroups, region, None);
        let described = client
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(names.iter().map(|n| n.to_string()).collect()))
            .send()
            .await;
        let found: Option<Vec<_>> = match described {
            Ok(answer) => {
                probes.push(probe_of(&call, Outcome::Allowed(None)));
                Some(answer.auto_scaling_groups().to_vec())
            }
            Err(err) => {
                probes.push(probe_of(&call, failure(&err, &call)));
                None
            }
        };
        for name in names {
            let group = found.as_ref().map(|groups| {
                groups
                    .iter()
                    .find(|g| g.auto_scaling_group_name() == Some(name))
                    .cloned()
            });
            if let Some(None) = group {
                probes.push(Probe {
                    action: Action::DescribeGroups.name().into(),
                    target: format!("{name} ({region})"),
                    outcome: Outcome::Failed(format!(
                        "the group {name} does not exist in {region}: check the pool's group and region"
                    )),
                });
                continue;
            }
            let stateful = groups[&(region.to_owned(), name.to_owned())];
            probes.extend(probe_group(&client, region, name, group.flatten(), stateful).await);
        }
    }
    Report { principal, probes }
}

/// The writes to one group, each in a form that changes nothing.
async fn probe_group(
    client: &aws_sdk_autoscaling::Client,
    region: &str,
    name: &str,
    group: Option<aws_sdk_autoscaling::types::AutoScalingGroup>,
    stateful: bool,
) -> Vec<Probe> {
    let call = |action| Call::new(action, region, Some(name));
    let mut probes = vec![];

    // No bound given: nothing changes.
    let update = call(Action::UpdateGroup);
    let outcome = match client
        .update_auto_scaling_group()
        .auto_scaling_group_name(name)
        .send()
        .await
    {
        Ok(_) => Outcome::Allowed(None),
        Err(err) => failure(&err, &update),
    };
    probes.push(probe_of(&update, outcome));

    let set = call(Action::SetDesiredCapacity);
    let outcome = match group
        .as_ref()
        .and_then(|g| Some((g.max_size()?, g.desired_capacity()?)))
    {
        None => Outcome::Skipped(
            "not tried: it needs the group's maximum, which DescribeAutoScalingGroups gives".into(),
        ),
        Some((max, _)) if max == i32::MAX => {
            Outcome::Skipped("not tried: the group's maximum leaves no value above it".into())
        }
        Some((max, desired)) => probe_set_desired(client, name, max, desired, &set).await,
    };
    probes.push(probe_of(&set, outcome));

    for action in [Action::CreateOrUpdateTags, Action::DeleteTags] {
        if !stateful {
            probes.push(probe_of(
                &call(action),
                Outcome::Skipped(
                    "not needed: the group's pools use built-in rules, which keep no state".into(),
                ),
            ));
        }
    }
    if stateful {
        probes.extend(
            probe_tags(
                client,
                name,
                &call(Action::CreateOrUpdateTags),
                &call(Action::DeleteTags),
            )
            .await,
        );
    }
    let put = call(Action::PutWarmPool);
    let pool = group
        .as_ref()
        .and_then(|g| g.warm_pool_configuration().cloned());
    let outcome = match pool {
        _ if !stateful => Outcome::Skipped(
            "not needed: the group's pools use built-in rules, which never size a warm pool".into(),
        ),
        None => {
            Outcome::Skipped("not needed: the group has no warm pool for a policy to size".into())
        }
        // The pool's own settings, written back: nothing changes.
        Some(pool) => match client
            .put_warm_pool()
            .auto_scaling_group_name(name)
            .set_min_size(pool.min_size())
            .set_max_group_prepared_capacity(pool.max_group_prepared_capacity())
            .set_pool_state(pool.pool_state().cloned())
            .set_instance_reuse_policy(pool.instance_reuse_policy().cloned())
            .send()
            .await
        {
            Ok(_) => Outcome::Allowed(None),
            Err(err) => failure(&err, &put),
        },
    };
    probes.push(probe_of(&put, outcome));
    probes
}

/// `SetDesiredCapacity` one above the group's maximum: Auto Scaling answers
/// `ValidationError` once the caller may make the call, `AccessDenied`
/// otherwise. An endpoint that takes the value anyway (moto does; AWS would
/// only if the maximum rose in between) gets the described value back.
async fn probe_set_desired(
    client: &aws_sdk_autoscaling::Client,
    name: &str,
    max: i32,
    desired: i32,
    call: &Call,
) -> Outcome {
    let sent = client
        .set_desired_capacity()
        .auto_scaling_group_name(name)
        .desired_capacity(max + 1)
        .honor_cooldown(false)
        .send()
        .await;
    match sent {
        Err(err)
            if err
                .as_service_error()
                .and_then(|e| aws_sdk_autoscaling::error::ProvideErrorMetadata::code(e))
                == Some("ValidationError") =>
        {
            Outcome::Allowed(Some(format!(
                "authorized (Auto Scaling refused {} above the maximum {max}, as it should)",
                max + 1
            )))
        }
        Err(err) => failure(&err, call),
        Ok(_) => {
            let restored = client
                .set_desired_capacity()
                .auto_scaling_group_name(name)
                .desired_capacity(desired)
                .honor_cooldown(false)
                .send()
                .await;
            let back = match restored {
                Ok(_) => format!("set back to {desired}"),
                Err(err) => format!(
                    "setting it back to {desired} failed: {}",
                    error_message(&err)
                ),
            };
            Outcome::Allowed(Some(format!(
                "the endpoint accepted {} above the maximum {max}, which AWS refuses; {back}",
                max + 1
            )))
        }
    }
}

/// Write the probe tag, then remove it.
async fn probe_tags(
    client: &aws_sdk_autoscaling::Client,
    name: &str,
    create: &Call,
    delete: &Call,
) -> Vec<Probe> {
    let tag = || {
        Tag::builder()
            .resource_type("auto-scaling-group")
            .resource_id(name)
            .key(PROBE_TAG)
    };
    let created = client
        .create_or_update_tags()
        .tags(tag().value("probe").propagate_at_launch(false).build())
        .send()
        .await;
    let created_outcome = match &created {
        Ok(_) => Outcome::Allowed(None),
        Err(err) => failure(err, create),
    };
    let deleted = client.delete_tags().tags(tag().build()).send().await;
    let deleted_outcome = match deleted {
        Ok(_) => Outcome::Allowed(None),
        Err(err) => match failure(&err, delete) {
            Outcome::Refused(why) if created.is_ok() => Outcome::Refused(format!(
                "{why}. The probe's tag {PROBE_TAG} stays on the group: remove it by hand"
            )),
            other => other,
        },
    };
    vec![
        probe_of(create, created_outcome),
        probe_of(delete, deleted_outcome),
    ]
}

/// Who the calls are made as, or `None` when that cannot be asked.
async fn caller(aws: &AwsOptions, region: &str) -> Option<String> {
    let client = aws.sts(region).await;
    match client.get_caller_identity().send().await {
        Ok(identity) => identity.arn().map(str::to_owned),
        Err(err) => {
            tracing::debug!(error = %error_message(&err), "sts:GetCallerIdentity failed");
            None
        }
    }
}

/// A source's token read from AWS (if it is kept there), then each of its
/// pools' queues read with it: a wrong token, or a queue the CI does not
/// know, shows here rather than in the first tick.
async fn probe_source(config: &Config, source: &SourceConfig, aws: &AwsOptions) -> Vec<Probe> {
    let mut probes = vec![];
    let (read, action, name, region) = match &source.token {
        TokenSource::Env(_) => (None, None, "", ""),
        TokenSource::Secret { name, region } => (
            Some(
                token_secret::read_token_secret(source.kind.secret_format(), name, region, aws)
                    .await
                    .map(|s| (s.token, s.queue)),
            ),
            Some(Action::GetSecretValue),
            name.as_str(),
            region.as_str(),
        ),
        TokenSource::Parameter { name, region } => (
            Some(
                token_secret::read_token_parameter(name, region, aws)
                    .await
                    .map(|t| (t, None)),
            ),
            Some(Action::GetParameter),
            name.as_str(),
            region.as_str(),
        ),
    };
    let token = match (read, action) {
        (Some(read), Some(action)) => {
            let (outcome, token) = match read {
                Ok(token) => (Outcome::Allowed(None), Some(token)),
                Err(SecretError::Refused { message, .. }) => (Outcome::Refused(message), None),
                Err(other) => (Outcome::Failed(other.to_string()), None),
            };
            probes.push(Probe {
                action: action.name().into(),
                target: format!("{name} ({region})"),
                outcome,
            });
            token
        }
        _ => crate::modes::source_token(config, source, aws).await.ok(),
    };
    let api = format!("{} API", source.kind);
    let target = |queue: &str| format!("{} ({})", crate::text::quoted(queue), source.base_url);
    let pools = config.pools.iter().filter(|p| p.source == source.kind);
    let Some((token, secret_queue)) = token else {
        let why = match &source.token {
            TokenSource::Env(var) => format!(
                "not tried: the variable {var} is not set; export {} in it",
                source.kind.token_kind()
            ),
            _ => "not tried: the token could not be read (above)".into(),
        };
        let failed = matches!(source.token, TokenSource::Env(_));
        for pool in pools {
            let queue = pool.queue.as_deref().unwrap_or("?");
            probes.push(Probe {
                action: api.clone(),
                target: target(queue),
                outcome: if failed {
                    Outcome::Failed(why.clone())
                } else {
                    Outcome::Skipped(why.clone())
                },
            });
        }
        return probes;
    };
    let client = match Source::build(source.kind, &source.base_url, token, source.http.clone()) {
        Ok(client) => client,
        Err(err) => {
            probes.push(Probe {
                action: api,
                target: source.base_url.clone(),
                outcome: Outcome::Failed(err.to_string()),
            });
            return probes;
        }
    };
    // Each queue once, however many pools share it.
    let mut queues: Vec<&str> = vec![];
    for pool in pools {
        match pool.queue.as_deref().or(secret_queue.as_deref()) {
            Some(queue) if !queues.contains(&queue) => queues.push(queue),
            Some(_) => {}
            None => probes.push(Probe {
                action: api.clone(),
                target: source.base_url.clone(),
                outcome: Outcome::Failed(format!(
                    "pool {} names no queue, and its token's secret names none",
                    crate::text::quoted(&pool.name)
                )),
            }),
        }
    }
    for queue in queues {
        let outcome = match client.queue(queue).await {
            Ok(read) => Outcome::Allowed(Some(format!(
                "{} waiting, {} running",
                read.waiting, read.running
            ))),
            Err(err @ SourceError::Refused { .. }) => Outcome::Refused(err.to_string()),
            Err(err) => Outcome::Failed(err.to_string()),
        };
        probes.push(Probe {
            action: api.clone(),
            target: target(queue),
            outcome,
        });
    }
    probes
}

fn probe_of(call: &Call, outcome: Outcome) -> Probe {
    Probe {
        action: call.action.name().into(),
        target: format!(
            "{} ({})",
            call.target.as_deref().unwrap_or("*"),
            call.region
        ),
        outcome,
    }
}

/// A failed call: refused (with what to grant), or failed otherwise.
fn failure<E>(
    err: &aws_sdk_autoscaling::error::SdkError<E, aws_sdk_autoscaling::config::http::HttpResponse>,
    call: &Call,
) -> Outcome
where
    E: aws_sdk_autoscaling::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match refusal(err, call) {
        Some(refusal) => Outcome::Refused(refusal.explain(call)),
        None => Outcome::Failed(error_message(err)),
    }
}
