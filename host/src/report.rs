//! The decision record: what one tick did to one pool ([`PoolReport`]),
//! and its log line. The tick writes it; the summary table, the metrics and
//! the EMF lines read it.

use crate::observation::{Capacity, Queue};
use crate::sources::{QueueId, SourceKind};
use serde::Serialize;

/// What happened to one pool on one tick: the decision record. A value
/// that is not known (the input was not read, the policy was not asked) is
/// `None`, and absent from the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    /// When the tick decided (the time its policies saw), RFC 3339 in UTC.
    pub time: jiff::Timestamp,
    pub pool: String,
    pub group: String,
    pub region: String,
    /// The CI the pool's queue is in, and the queue's name there.
    pub source: SourceKind,
    pub queue: String,
    /// The queue as CircleCI names it (its resource class), for CircleCI
    /// pools: the field of the records before other sources came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_class: Option<String>,
    /// The pool's bounds, which the decision is clamped to.
    pub min: u32,
    pub max: u32,
    /// The inputs, when they could be read: the queue's jobs (flat:
    /// `waiting`, `running`, `blocked`) and the group's capacity.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Queue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// The policy (or fallback) that decided, its answer and its reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The SHA-256 of the pool's policy file (what `policy_sha256` pins);
    /// absent for a built-in rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_desired: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the pool's policy failed, if it did (the fallback decided).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_error_kind: Option<&'static str>,
    /// The desired capacity after clamping and the safety rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<u32>,
    /// The warm pool size the policy asked for, if it asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_warm: Option<u32>,
    /// The warm pool size after the pool's `warm_max` (what is written, or
    /// was already so); absent when the policy did not ask or the group has
    /// no warm pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm: Option<u32>,
    pub action: Action,
    /// What kept the pool from being decided, when it was held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_because: Option<HeldBecause>,
    /// Why the action: what was clamped or refused, how the group's own
    /// bounds were widened, what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Time the policy (or fallback) took to decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_ms: Option<f64>,
    /// The SHA-256 of the shadow's policy file; absent for a built-in rule
    /// or no shadow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_sha256: Option<String>,
    /// The shadow policy's decision, if the pool has one and it was asked
    /// (its fields flat in the record, `shadow_*`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowReport>,
    pub duration_ms: f64,
}

/// What a pool's shadow policy would have done: its decision after the same
/// clamp and safety rules, its reason, or why it failed, and its time.
/// Never applied.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowReport {
    /// The shadow's name.
    #[serde(rename = "shadow")]
    pub policy: String,
    #[serde(rename = "shadow_desired", skip_serializing_if = "Option::is_none")]
    pub desired: Option<u32>,
    #[serde(rename = "shadow_reason", skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(rename = "shadow_error", skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "shadow_error_kind", skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<&'static str>,
    #[serde(rename = "shadow_ms", skip_serializing_if = "Option::is_none")]
    pub ms: Option<f64>,
}

/// Which input or output failed for a held pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldBecause {
    /// The queue could not be read.
    Queue,
    /// The group could not be read (or does not exist).
    Group,
    /// The decision could not be written.
    Apply,
    /// The tick's deadline passed before the pool's work was done.
    Deadline,
    /// The process stopped before the pool's work was done.
    Stopped,
}

/// What the tick did to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Wrote the change.
    Applied,
    /// Nothing changed, nothing written.
    Unchanged,
    /// Dry run: would have written the change.
    WouldApply,
    /// Inputs missing, the tick cut short before any write, or a write
    /// refused: the pool was not decided, and nothing was written (`why`
    /// names any earlier write of the same tick that was made).
    Held,
    /// A write was sent and its outcome is not known (it timed out, the
    /// connection dropped after sending, the tick was cut while it was under
    /// way): the group may or may not have changed. Neither applied nor held;
    /// the next tick reads the group again before deciding.
    Unknown,
}

impl PoolReport {
    /// A record with only the pool's identity and bounds: held, nothing
    /// known yet. The tick fills it in as it goes.
    pub fn new(
        pool: &str,
        group: &str,
        region: &str,
        queue: &QueueId,
        min: u32,
        max: u32,
    ) -> PoolReport {
        PoolReport {
            time: jiff::Timestamp::now(),
            pool: pool.into(),
            group: group.into(),
            region: region.into(),
            source: queue.source,
            queue: queue.name.clone(),
            resource_class: (queue.source == SourceKind::CircleCi).then(|| queue.name.clone()),
            min,
            max,
            jobs: None,
            capacity: None,
            decided_by: None,
            policy_sha256: None,
            policy_desired: None,
            reason: None,
            policy_error: None,
            policy_error_kind: None,
            desired: None,
            policy_warm: None,
            warm: None,
            action: Action::Held,
            held_because: None,
            why: None,
            policy_ms: None,
            shadow_sha256: None,
            shadow: None,
            duration_ms: 0.0,
        }
    }

    /// A held record of the pool `name` as the unit tests use it (beside
    /// `Pool::example`): group `ci-NAME` in eu-west-1, resource class
    /// `acme/linux`, bounds 0..=10.
    #[cfg(test)]
    pub(crate) fn example(name: &str) -> PoolReport {
        PoolReport::new(
            name,
            &format!("ci-{name}"),
            "eu-west-1",
            &QueueId::new(SourceKind::CircleCi, "acme/linux"),
            0,
            10,
        )
    }

    /// Held for `because`: nothing was written (`why` says what stopped it).
    /// The one place of a held record's wording.
    pub fn hold(&mut self, because: HeldBecause, why: impl std::fmt::Display) {
        self.action = Action::Held;
        self.held_because = Some(because);
        self.why = Some(format!("held: {why}"));
    }

    /// A write's outcome is not known (`why`): the group may or may not have
    /// changed. The one place of that wording.
    pub fn unknown(&mut self, why: impl std::fmt::Display) {
        self.action = Action::Unknown;
        self.why = Some(format!(
            "unknown outcome: {why}; the next tick reads the group again before deciding"
        ));
    }

    /// Whether the pool got a decision whose outcome is known (the tick's
    /// exit code counts these).
    pub fn decided(&self) -> bool {
        matches!(
            self.action,
            Action::Applied | Action::Unchanged | Action::WouldApply
        )
    }
}

/// The `tracing` target of decision records.
pub const TARGET: &str = "decision";

/// The field of a decision's log event that carries the whole record as
/// JSON: the JSON log format writes it as the line (see
/// [`crate::log_format`]), the text format leaves it out.
pub const RECORD_FIELD: &str = "decision_record";

impl Action {
    /// Its name in the record (`would_apply`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Applied => "applied",
            Action::Unchanged => "unchanged",
            Action::WouldApply => "would_apply",
            Action::Held => "held",
            Action::Unknown => "unknown",
        }
    }
}

/// The decision record as one log line: with `--log-format json`, the
/// record itself (the object `once --json` prints, plus `level` and
/// `target`); in text, the main fields after the reason. A value that is
/// not known is left out, never written as 0.
pub(crate) fn log(r: &PoolReport) {
    // Serializing a struct of strings and numbers cannot fail; should it,
    // the line says so rather than going missing.
    let record = serde_json::to_string(r)
        .unwrap_or_else(|err| format!("{{\"pool\":{:?},\"error\":{:?}}}", r.pool, err.to_string()));
    macro_rules! record {
        ($level:ident) => {
            tracing::$level!(
                target: "decision",
                pool = %r.pool,
                group = %r.group,
                region = %r.region,
                source = r.source.name(),
                queue = %r.queue,
                resource_class = r.resource_class.as_deref().map(tracing::field::display),
                min = r.min,
                max = r.max,
                waiting = r.jobs.map(|q| q.waiting),
                running = r.jobs.map(|q| q.running),
                desired_before = r.capacity.map(|c| c.desired),
                decided_by = r.decided_by.as_deref(),
                policy_desired = r.policy_desired,
                desired = r.desired,
                policy_warm = r.policy_warm,
                warm = r.warm,
                action = r.action.name(),
                policy_error = r.policy_error.as_deref(),
                why = r.why.as_deref(),
                shadow = r.shadow.as_ref().map(|s| s.policy.as_str()),
                shadow_desired = r.shadow.as_ref().and_then(|s| s.desired),
                shadow_reason = r.shadow.as_ref().and_then(|s| s.reason.as_deref()),
                shadow_error = r.shadow.as_ref().and_then(|s| s.error.as_deref()),
                duration_ms = r.duration_ms,
                decision_record = record.as_str(),
                "{}",
                r.reason.as_deref().unwrap_or("no decision")
            )
        };
    }
    if r.decided() {
        record!(info);
    } else {
        record!(warn);
    }
}
