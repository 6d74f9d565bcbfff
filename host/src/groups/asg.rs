//! The EC2 Auto Scaling group: [`AsgGroups`] reads groups with
//! `DescribeAutoScalingGroups` and writes them with `SetDesiredCapacity`,
//! `UpdateAutoScalingGroup` and the tag calls.

use super::write_outcome::WriteOutcome;
use super::{GroupError, GroupId, GroupState, Groups, Write, DESCRIBE_BATCH};
use crate::aws::{call_error, AwsOptions};
use crate::iam::{Action, Call};
use crate::state::STATE_TAG;
use aws_sdk_autoscaling::types::{
    AutoScalingGroup, InstanceReusePolicy, LifecycleState, Tag, WarmPoolState, WarmPoolStatus,
};
use aws_sdk_autoscaling::Client;
use futures::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell};

/// `DescribeAutoScalingGroups` calls a region's describe makes at once. A
/// few hide the API's latency; more would spend the account's request rate
/// (shared with everything else calling Auto Scaling) on one burst.
pub const DESCRIBE_PARALLEL: usize = 4;

/// EC2 Auto Scaling, one client per region, each made on first use.
#[derive(Debug)]
pub struct AsgGroups {
    options: AwsOptions,
    clients: Mutex<HashMap<String, Arc<OnceCell<Client>>>>,
    describe_calls: AtomicUsize,
    write_calls: AtomicUsize,
}

/// The calls an [`AsgGroups`] has made (requests, retries not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiCalls {
    /// `DescribeAutoScalingGroups` calls, one per page.
    pub describe: usize,
    /// `SetDesiredCapacity`, `UpdateAutoScalingGroup`, `CreateOrUpdateTags`
    /// and `DeleteTags` calls.
    pub write: usize,
}

impl AsgGroups {
    /// Groups reached through `options`; nothing is called until first use.
    pub fn new(options: AwsOptions) -> Self {
        AsgGroups {
            options,
            clients: Mutex::default(),
            describe_calls: AtomicUsize::new(0),
            write_calls: AtomicUsize::new(0),
        }
    }

    /// The calls made so far.
    pub fn calls(&self) -> ApiCalls {
        ApiCalls {
            describe: self.describe_calls.load(Ordering::Relaxed),
            write: self.write_calls.load(Ordering::Relaxed),
        }
    }

    /// One batch of at most [`DESCRIBE_BATCH`] names, every page of it: the
    /// groups found among `batch`.
    async fn describe_batch(
        &self,
        client: &Client,
        region: &str,
        batch: &[&String],
    ) -> Result<HashMap<String, GroupState>, GroupError> {
        let failed = |message: String| GroupError::Describe {
            region: region.to_owned(),
            message,
        };
        let call = Call::new(Action::DescribeGroups, region, None);
        let mut found = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            self.describe_calls.fetch_add(1, Ordering::Relaxed);
            let answer = client
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(Some(
                    batch.iter().map(|name| (*name).clone()).collect(),
                ))
                .max_records(DESCRIBE_BATCH as i32)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|err| failed(call_error(&err, &call)))?;
            for group in answer.auto_scaling_groups() {
                if let Some(name) = group.auto_scaling_group_name() {
                    if batch.iter().any(|asked| *asked == name) {
                        found.insert(name.to_owned(), group_state(group));
                    }
                }
            }
            match answer.next_token().filter(|next| !next.is_empty()) {
                // A token that does not move would loop forever.
                Some(next) if token.as_deref() == Some(next) => {
                    return Err(failed(format!(
                        "the API answered the same NextToken twice ({next})"
                    )));
                }
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(found),
            }
        }
    }

    /// The client for `region`, made once.
    pub async fn client(&self, region: &str) -> Client {
        // The map's lock is held only to find the cell, so regions being set
        // up at the same time do not wait for each other.
        let cell = self
            .clients
            .lock()
            .await
            .entry(region.to_owned())
            .or_default()
            .clone();
        cell.get_or_init(|| self.options.autoscaling(region))
            .await
            .clone()
    }
}

impl Groups for AsgGroups {
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, GroupState>, GroupError> {
        let mut found = HashMap::new();
        // No names would ask for every group of the account.
        if names.is_empty() {
            return Ok(found);
        }
        let mut unique: Vec<&String> = Vec::with_capacity(names.len());
        let mut seen = HashSet::new();
        unique.extend(names.iter().filter(|name| seen.insert(name.as_str())));
        let client = self.client(region).await;
        // The batches of a region are independent: described a few at a
        // time, not one after another, so a thousand groups cost about as
        // many round trips as two hundred. The first failure fails the
        // whole describe (and drops the batches still under way).
        let batches: Vec<_> = unique
            .chunks(DESCRIBE_BATCH)
            .map(|batch| self.describe_batch(&client, region, batch))
            .collect();
        let mut answers = stream::iter(batches).buffer_unordered(DESCRIBE_PARALLEL);
        while let Some(answer) = answers.next().await {
            found.extend(answer?);
        }
        Ok(found)
    }

    async fn apply(&self, group: &GroupId, write: &Write) -> Result<(), GroupError> {
        let failed = |message: String| GroupError::Apply {
            group: group.clone(),
            message,
        };
        let count = |value: u32, what: &str| {
            i32::try_from(value).map_err(|_| failed(format!("{what} {value} is too large")))
        };
        let client = self.client(&group.region).await;
        let name = group.name.as_str();
        // Tells a write that was refused from one that may have been made.
        let outcome = WriteOutcome::default();
        let call = |action| Call::new(action, &group.region, Some(name));
        self.write_calls.fetch_add(1, Ordering::Relaxed);
        let sent = match write {
            Write::Desired(desired) => client
                .set_desired_capacity()
                .auto_scaling_group_name(name)
                .desired_capacity(count(*desired, "desired capacity")?)
                .honor_cooldown(false)
                .customize()
                .interceptor(outcome.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| call_error(&err, &call(Action::SetDesiredCapacity))),
            Write::DesiredAndBounds { desired, min, max } => client
                .update_auto_scaling_group()
                .auto_scaling_group_name(name)
                .min_size(count(*min, "minimum size")?)
                .max_size(count(*max, "maximum size")?)
                .desired_capacity(count(*desired, "desired capacity")?)
                .customize()
                .interceptor(outcome.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| call_error(&err, &call(Action::UpdateGroup))),
            Write::State(Some(value)) => client
                .create_or_update_tags()
                .tags(
                    state_tag(name)
                        .value(value)
                        .propagate_at_launch(false)
                        .build(),
                )
                .customize()
                .interceptor(outcome.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| call_error(&err, &call(Action::CreateOrUpdateTags))),
            Write::WarmPool {
                size,
                pool_state,
                reuse_on_scale_in,
            } => client
                .put_warm_pool()
                .auto_scaling_group_name(name)
                .min_size(count(*size, "warm pool size")?)
                .max_group_prepared_capacity(count(*size, "warm pool size")?)
                .set_pool_state(pool_state.as_deref().map(WarmPoolState::from))
                .set_instance_reuse_policy(reuse_on_scale_in.map(|reuse| {
                    InstanceReusePolicy::builder()
                        .reuse_on_scale_in(reuse)
                        .build()
                }))
                .customize()
                .interceptor(outcome.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| call_error(&err, &call(Action::PutWarmPool))),
            Write::State(None) => client
                .delete_tags()
                .tags(state_tag(name).build())
                .customize()
                .interceptor(outcome.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| call_error(&err, &call(Action::DeleteTags))),
        };
        sent.map_err(|message| {
            if outcome.maybe_made() {
                GroupError::Unknown {
                    group: group.clone(),
                    message,
                }
            } else {
                failed(message)
            }
        })
    }
}

/// The [`STATE_TAG`] tag of group `name`, without its value.
fn state_tag(name: &str) -> aws_sdk_autoscaling::types::builders::TagBuilder {
    Tag::builder()
        .resource_type("auto-scaling-group")
        .resource_id(name)
        .key(STATE_TAG)
}

/// What the tick needs of one described group.
fn group_state(group: &AutoScalingGroup) -> GroupState {
    let size = |value: Option<i32>| value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    let mut state = GroupState {
        desired: size(group.desired_capacity()),
        min_size: size(group.min_size()),
        max_size: size(group.max_size()),
        new_instances_protected: group.new_instances_protected_from_scale_in() == Some(true),
        policy_state: group
            .tags()
            .iter()
            .find(|tag| tag.key() == Some(STATE_TAG))
            .and_then(|tag| tag.value())
            .map(str::to_owned),
        warm_pool: group.warm_pool_configuration().map(|pool| {
            let count = |value: Option<i32>| value.and_then(|v| u32::try_from(v).ok());
            super::WarmPoolState {
                instances: count(group.warm_pool_size()),
                min_size: count(pool.min_size()).unwrap_or(0),
                // AWS answers -1 (or nothing) for "not set".
                max_prepared: count(pool.max_group_prepared_capacity()),
                pool_state: pool.pool_state().map(|s| s.as_str().to_owned()),
                reuse_on_scale_in: pool
                    .instance_reuse_policy()
                    .and_then(|policy| policy.reuse_on_scale_in()),
                deleting: pool.status() == Some(&WarmPoolStatus::PendingDelete),
            }
        }),
        ..GroupState::default()
    };
    for instance in group.instances() {
        let protected = instance.protected_from_scale_in() == Some(true);
        // Pending* and InService instances count toward the desired
        // capacity, so a lower one can terminate them when they are not
        // protected.
        let counted = match instance.lifecycle_state() {
            Some(
                LifecycleState::Pending
                | LifecycleState::PendingWait
                | LifecycleState::PendingProceed,
            ) => &mut state.pending,
            Some(LifecycleState::InService) => &mut state.in_service,
            // Terminating*, Detaching, Standby, Warmed:*, and states newer
            // than this SDK: none of them will take a task, and scale-in
            // does not pick them.
            _ => {
                state.terminating += 1;
                state.protected += u32::from(protected);
                continue;
            }
        };
        *counted += 1;
        if protected {
            state.protected += 1;
        } else {
            state.unprotected += 1;
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_autoscaling::types::{Instance, TagDescription};

    fn instance(state: &str, protected: bool) -> Instance {
        Instance::builder()
            .instance_id("i-1")
            .lifecycle_state(LifecycleState::from(state))
            .protected_from_scale_in(protected)
            .build()
    }

    #[test]
    fn instances_are_counted_by_lifecycle_state_and_protection() {
        let group = AutoScalingGroup::builder()
            .auto_scaling_group_name("g")
            .desired_capacity(9)
            .min_size(1)
            .max_size(20)
            .new_instances_protected_from_scale_in(true)
            .set_instances(Some(
                [
                    ("Pending", true),
                    ("Pending:Wait", true),
                    ("Pending:Proceed", false),
                    ("InService", true),
                    ("InService", false),
                    ("Terminating:Wait", true),
                    ("Detaching", false),
                    ("Standby", false),
                    ("Warmed:Running", false),
                    ("Something:New", false),
                ]
                .into_iter()
                .map(|(state, protected)| instance(state, protected))
                .collect(),
            ))
            .tags(TagDescription::builder().key("team").value("ci").build())
            .tags(
                TagDescription::builder()
                    .key(STATE_TAG)
                    .value("{\"n\":1}")
                    .build(),
            )
            .build();
        assert_eq!(
            group_state(&group),
            GroupState {
                desired: 9,
                min_size: 1,
                max_size: 20,
                pending: 3,
                in_service: 2,
                terminating: 5,
                protected: 4,
                // Pending:Proceed and the second InService.
                unprotected: 2,
                new_instances_protected: true,
                policy_state: Some("{\"n\":1}".into()),
                warm_pool: None,
            }
        );
    }

    #[test]
    fn a_sparse_answer_gives_zeros_not_a_panic() {
        let group = AutoScalingGroup::builder().build();
        assert_eq!(group_state(&group), GroupState::default());
    }
}
