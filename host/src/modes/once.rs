//! `runner-scaler once`: one tick, a summary, an exit code.

use crate::tick::{Action, PoolReport};
use std::fmt::Write;

/// The tick's reports as a table for people.
pub fn summary(reports: &[PoolReport], dry_run: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>7} {:>7} {:>8} {:>7}  {:<12} reason",
        "pool", "waiting", "running", "desired", "→ new", "action"
    );
    for r in reports {
        let queue = r.queue.unwrap_or_default();
        let dash = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        let action = match r.action {
            Action::Applied => "applied",
            Action::Unchanged => "unchanged",
            Action::WouldApply => "would apply",
            Action::Held => "HELD",
        };
        let mut reason = r.reason.clone().unwrap_or_default();
        if let Some(err) = &r.policy_error {
            reason = format!("{reason} [policy failed: {err}]");
        }
        if let Some(why) = &r.why {
            reason = format!("{reason} ({why})").trim().to_string();
        }
        let _ = writeln!(
            out,
            "{:<20} {:>7} {:>7} {:>8} {:>7}  {:<12} {reason}",
            r.pool,
            r.queue.map_or("-".into(), |_| queue.waiting.to_string()),
            r.queue.map_or("-".into(), |_| queue.running.to_string()),
            dash(r.capacity.map(|c| c.desired)),
            dash(r.desired),
            action,
        );
    }
    let decided = reports.iter().filter(|r| r.decided()).count();
    let _ = write!(
        out,
        "{decided} of {} pools decided{}",
        reports.len(),
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    out
}
