//! `runner-scaler once`: one tick, a summary, an exit code. The rows come in
//! the configuration's order; a value that is not known shows as `-`.

use crate::report::{Action, PoolReport};
use crate::text;
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
        let dash = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        let action = match r.action {
            Action::Applied => "applied",
            Action::Unchanged => "unchanged",
            Action::WouldApply => "would apply",
            Action::Held => "HELD",
            Action::Unknown => "UNKNOWN",
        };
        let mut reason = r.reason.clone().unwrap_or_default();
        if let Some(err) = &r.policy_error {
            reason = format!("{reason} [policy failed: {err}]");
        }
        if let Some(why) = &r.why {
            reason = format!("{reason} ({why})").trim().to_string();
        }
        // Pool names come from the configuration, reasons and errors from
        // policies and upstreams: none may break the table or the terminal.
        let _ = writeln!(
            out,
            "{:<20} {:>7} {:>7} {:>8} {:>7}  {:<12} {}",
            text::escape(&r.pool),
            dash(r.jobs.map(|q| q.waiting)),
            dash(r.jobs.map(|q| q.running)),
            dash(r.capacity.map(|c| c.desired)),
            dash(r.desired),
            action,
            text::escape(&reason),
        );
        if let Some(shadow) = &r.shadow {
            let name = &shadow.policy;
            // What the shadow would have set, under the pool's row: never
            // applied.
            let said = match (&shadow.error, shadow.desired) {
                (Some(err), _) => format!("failed: {err}"),
                (None, Some(desired)) => format!(
                    "would set {desired}{}: {}",
                    match r.desired {
                        Some(live) if live != desired => " (disagrees)",
                        _ => "",
                    },
                    shadow.reason.as_deref().unwrap_or_default()
                ),
                (None, None) => "not asked (the pool was not decided)".to_string(),
            };
            let _ = writeln!(
                out,
                "  ↳ shadow {}: {}",
                text::escape(name),
                text::escape(&said)
            );
        }
    }
    let decided = reports.iter().filter(|r| r.decided()).count();
    let unknown = reports
        .iter()
        .filter(|r| r.action == Action::Unknown)
        .count();
    let _ = write!(
        out,
        "{decided} of {} pools decided{}{}",
        reports.len(),
        match unknown {
            0 => String::new(),
            n => format!(
                "; {n} written with an unknown outcome (the next tick reads the group again)"
            ),
        },
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{Capacity, Queue};
    use crate::report::ShadowReport;

    fn report(pool: &str, action: Action) -> PoolReport {
        PoolReport {
            action,
            duration_ms: 1.0,
            ..PoolReport::example(pool)
        }
    }

    #[test]
    fn unknown_values_show_as_dashes_and_unknown_outcomes_are_counted_apart() {
        let mut decided = report("decided", Action::Applied);
        decided.jobs = Some(Queue {
            waiting: 0,
            running: 0,
            blocked: None,
        });
        decided.capacity = Some(Capacity::default());
        decided.desired = Some(0);
        let held = report("held", Action::Held);
        let unknown = report("unknown", Action::Unknown);
        let table = summary(&[decided, held, unknown], false);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[1][..6], ["decided", "0", "0", "0", "0", "applied"]);
        assert_eq!(rows[2][..6], ["held", "-", "-", "-", "-", "HELD"]);
        assert_eq!(rows[3][..6], ["unknown", "-", "-", "-", "-", "UNKNOWN"]);
        assert!(
            table.ends_with("1 of 3 pools decided; 1 written with an unknown outcome (the next tick reads the group again)"),
            "{table}"
        );
    }

    #[test]
    fn a_shadow_shows_under_its_pool_and_says_when_it_disagrees() {
        let mut live = report("a", Action::Applied);
        live.desired = Some(3);
        live.shadow = Some(ShadowReport {
            policy: "cooldown".into(),
            desired: Some(5),
            reason: Some("2 jobs, 3 warm\nforged".into()),
            ..Default::default()
        });
        let mut failed = report("b", Action::Unchanged);
        failed.desired = Some(1);
        failed.shadow = Some(ShadowReport {
            policy: "spin".into(),
            error: Some("policy spin ran past its deadline".into()),
            ..Default::default()
        });
        let table = summary(&[live, failed], false);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[2],
            "  ↳ shadow cooldown: would set 5 (disagrees): 2 jobs, 3 warm\\nforged"
        );
        assert_eq!(
            lines[4],
            "  ↳ shadow spin: failed: policy spin ran past its deadline"
        );
    }
}
