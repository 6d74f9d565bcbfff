//! What a case expects of the policy's answer, and the check of an answer
//! against it.

use super::list;
use crate::policy::{Evaluation, PolicyError};
use serde::Serialize;

/// The expectation keys of a case.
pub const EXPECT_FIELDS: &[&str] = &[
    "desired",
    "desired_between",
    "error",
    "reason_contains",
    "kept_state",
    "warm",
];

/// What a case expects. Every given part must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectation {
    /// The desired capacity, exactly (the policy's own answer, before the host clamps it).
    pub desired: Option<u32>,
    /// The desired capacity within `[low, high]`, both included.
    pub desired_between: Option<(u32, u32)>,
    /// The policy fails, with an error that contains this text.
    pub error: Option<String>,
    /// The decision's reason contains this text.
    pub reason_contains: Option<String>,
    /// The state the policy keeps.
    pub kept_state: Option<KeptState>,
    /// The warm pool size the policy asks for: a number, or `false` for
    /// none (the pool left as it is).
    pub warm: Option<Option<u32>>,
}

/// An expectation of the kept state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptState {
    /// `kept_state = "text"`: exactly this state.
    Exactly(String),
    /// `kept_state = true`: some state, whatever it is.
    Some,
    /// `kept_state = false`: no state.
    None,
}

/// One part of an expectation that the answer does not meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The expectation key, e.g. `desired`.
    pub field: &'static str,
    pub expected: String,
    pub actual: String,
}

impl Expectation {
    /// Sets the expectation `key` from its TOML value, or says what is wrong
    /// with the value.
    pub fn set(&mut self, key: &str, value: &toml::Value) -> Result<(), String> {
        match key {
            "desired" => self.desired = Some(count(value).ok_or("expected a whole number 0 or more, e.g. desired = 3")?),
            "desired_between" => {
                let bad = "expected two whole numbers, low then high, e.g. desired_between = [2, 4]";
                let items = value.as_array().ok_or(bad)?;
                let [low, high] = items.as_slice() else {
                    return Err(bad.into());
                };
                let (low, high) = (count(low).ok_or(bad)?, count(high).ok_or(bad)?);
                if low > high {
                    return Err(format!("[{low}, {high}] is empty: write the lower bound first, [{high}, {low}]"));
                }
                self.desired_between = Some((low, high));
            }
            "error" => self.error = Some(text(value).ok_or("expected a non-empty string, a part of the policy's error, e.g. error = \"param `warm`\"")?),
            "reason_contains" => self.reason_contains = Some(text(value).ok_or("expected a non-empty string, a part of the reason, e.g. reason_contains = \"3 waiting\"")?),
            "kept_state" => {
                self.kept_state = Some(match value {
                    toml::Value::String(state) => KeptState::Exactly(state.clone()),
                    toml::Value::Boolean(true) => KeptState::Some,
                    toml::Value::Boolean(false) => KeptState::None,
                    _ => return Err("expected the state as a string, `true` (some state) or `false` (no state)".into()),
                });
            }
            "warm" => {
                self.warm = Some(match value {
                    toml::Value::Boolean(false) => None,
                    other => Some(count(other).ok_or("expected a whole number 0 or more (the warm pool size asked for), or `false` (none asked), e.g. warm = 2")?),
                });
            }
            _ => return Err(format!("not an expectation; a case expects {}", list(EXPECT_FIELDS))),
        }
        Ok(())
    }

    /// Why the expectation cannot be checked, if it cannot: it expects
    /// nothing, or both an error and a decision.
    pub fn problem(&self) -> Option<String> {
        let decision_parts = [
            self.desired.is_some(),
            self.desired_between.is_some(),
            self.reason_contains.is_some(),
            self.kept_state.is_some(),
            self.warm.is_some(),
        ];
        let expects_decision = decision_parts.iter().any(|&given| given);
        if self.error.is_some() && expects_decision {
            return Some(
                "expects both an `error` and a decision: a failing policy returns no decision, \
                 so keep only `error`, or drop it"
                    .into(),
            );
        }
        if self.error.is_none() && !expects_decision {
            return Some(format!(
                "expects nothing: add at least one of {}",
                list(EXPECT_FIELDS)
            ));
        }
        None
    }

    /// The parts of the expectation `evaluation` does not meet; empty when it
    /// passes.
    pub fn check(&self, evaluation: &Evaluation) -> Vec<Mismatch> {
        let mut mismatches = Vec::new();
        let mut miss = |field, expected: String, actual: String| {
            mismatches.push(Mismatch {
                field,
                expected,
                actual,
            })
        };
        let decision = match (&evaluation.result, &self.error) {
            (Err(err), Some(wanted)) => {
                let message = err.to_string();
                if !message.contains(wanted.as_str()) {
                    miss(
                        "error",
                        format!("an error containing {wanted:?}"),
                        error_text(err),
                    );
                }
                return mismatches;
            }
            (Ok(decision), Some(wanted)) => {
                miss(
                    "error",
                    format!("an error containing {wanted:?}"),
                    format!("a decision: desired {}", decision.desired),
                );
                return mismatches;
            }
            (Err(err), None) => {
                miss("decision", "a decision".into(), error_text(err));
                return mismatches;
            }
            (Ok(decision), None) => decision,
        };
        if let Some(wanted) = self.desired {
            if decision.desired != wanted {
                miss("desired", wanted.to_string(), decision.desired.to_string());
            }
        }
        if let Some((low, high)) = self.desired_between {
            if !(low..=high).contains(&decision.desired) {
                miss(
                    "desired_between",
                    format!("[{low}, {high}]"),
                    decision.desired.to_string(),
                );
            }
        }
        if let Some(wanted) = self.warm {
            if decision.warm != wanted {
                let say = |warm: Option<u32>| warm.map_or("none".to_string(), |n| n.to_string());
                miss("warm", say(wanted), say(decision.warm));
            }
        }
        if let Some(wanted) = &self.reason_contains {
            if !decision.reason.contains(wanted.as_str()) {
                miss(
                    "reason_contains",
                    format!("{wanted:?}"),
                    format!("{:?}", decision.reason),
                );
            }
        }
        if let Some(wanted) = &self.kept_state {
            let actual = &decision.state;
            let met = match wanted {
                KeptState::Exactly(state) => actual.as_deref() == Some(state.as_str()),
                KeptState::Some => actual.is_some(),
                KeptState::None => actual.is_none(),
            };
            if !met {
                let expected = match wanted {
                    KeptState::Exactly(state) => format!("{state:?}"),
                    KeptState::Some => "some state".into(),
                    KeptState::None => "no state".into(),
                };
                let actual = match actual {
                    Some(state) => format!("{state:?}"),
                    None => "no state".into(),
                };
                miss("kept_state", expected, actual);
            }
        }
        mismatches
    }
}

fn error_text(err: &PolicyError) -> String {
    format!("error ({}): {err}", err.kind())
}

fn count(value: &toml::Value) -> Option<u32> {
    value.as_integer().and_then(|n| u32::try_from(n).ok())
}

fn text(value: &toml::Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::Decision;
    use crate::policy::PolicyLog;
    use std::time::Duration;

    fn answer(desired: u32, reason: &str, state: Option<&str>) -> Evaluation {
        Evaluation {
            result: Ok(Decision {
                desired,
                reason: reason.into(),
                state: state.map(str::to_string),
                warm: None,
            }),
            log: PolicyLog::default(),
            elapsed: Duration::ZERO,
        }
    }

    fn refusal(message: &str) -> Evaluation {
        Evaluation {
            result: Err(PolicyError::Refused {
                policy: "p".into(),
                message: message.into(),
            }),
            log: PolicyLog::default(),
            elapsed: Duration::ZERO,
        }
    }

    fn expect(pairs: &[(&str, toml::Value)]) -> Expectation {
        let mut e = Expectation::default();
        for (key, value) in pairs {
            e.set(key, value).unwrap();
        }
        e
    }

    #[test]
    fn every_part_is_checked() {
        let e = expect(&[
            ("desired", 3.into()),
            (
                "desired_between",
                toml::Value::Array(vec![2.into(), 4.into()]),
            ),
            ("reason_contains", "waiting".into()),
            ("kept_state", false.into()),
        ]);
        assert_eq!(e.check(&answer(3, "3 waiting", None)), vec![]);
        let fields: Vec<_> = e
            .check(&answer(5, "idle", Some("x")))
            .iter()
            .map(|m| m.field)
            .collect();
        assert_eq!(
            fields,
            [
                "desired",
                "desired_between",
                "reason_contains",
                "kept_state"
            ]
        );
    }

    #[test]
    fn a_mismatch_shows_both_values() {
        let e = expect(&[("desired", 3.into())]);
        let m = &e.check(&answer(5, "", None))[0];
        assert_eq!((m.expected.as_str(), m.actual.as_str()), ("3", "5"));
    }

    #[test]
    fn errors_are_expected_or_not() {
        let e = expect(&[("error", "param `warm`".into())]);
        assert_eq!(e.check(&refusal("param `warm`: bad")), vec![]);
        assert_eq!(e.check(&refusal("other"))[0].field, "error");
        assert_eq!(e.check(&answer(1, "", None))[0].field, "error");
        let e = expect(&[("desired", 1.into())]);
        assert_eq!(e.check(&refusal("no"))[0].field, "decision");
    }

    #[test]
    fn kept_state_forms() {
        let e = expect(&[("kept_state", "a".into())]);
        assert_eq!(e.check(&answer(0, "", Some("a"))), vec![]);
        assert_eq!(e.check(&answer(0, "", Some("b"))).len(), 1);
        let e = expect(&[("kept_state", true.into())]);
        assert_eq!(e.check(&answer(0, "", Some("b"))), vec![]);
        assert_eq!(e.check(&answer(0, "", None)).len(), 1);
    }

    #[test]
    fn bad_expectations_are_refused() {
        let mut e = Expectation::default();
        assert!(e.set("desired", &(-1).into()).is_err());
        assert!(e
            .set(
                "desired_between",
                &toml::Value::Array(vec![4.into(), 2.into()])
            )
            .is_err());
        assert!(e.set("kept_state", &1.into()).is_err());
        assert!(Expectation::default()
            .problem()
            .unwrap()
            .contains("expects nothing"));
        let e = expect(&[("error", "x".into()), ("desired", 1.into())]);
        assert!(e.problem().unwrap().contains("both"));
    }
}
