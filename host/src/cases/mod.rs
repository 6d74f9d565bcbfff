//! Case files (`cases.toml`): sample observations with what the policy should
//! answer, run by `runner-scaler policy test`. The format is documented in
//! `docs/writing-a-policy.md`:
//!
//! ```toml
//! [defaults]                      # optional: fields every case starts from
//! time_zone = "Europe/Berlin"
//! params = { warm = "2" }
//!
//! [[case]]
//! name = "monday 09:00 is open"   # required, unique in the file
//! at = "2026-11-23T09:00:00"      # any sample observation field
//! desired = 2                     # and at least one expectation
//! ```
//!
//! Every error names the file, the line and the field.

mod expect;
mod run;

pub use expect::{Expectation, KeptState, Mismatch, EXPECT_FIELDS};
pub use run::{run_case, CaseResult, LogLine};

use crate::observation::Observation;
use crate::sample::{self, Fields, InputError, SampleObservation, FIELDS};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One case: an observation and what the policy should answer.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// The case file.
    pub file: PathBuf,
    /// The line of the case's `[[case]]` header.
    pub line: usize,
    pub observation: Observation,
    pub expect: Expectation,
}

/// A case file as written: shared defaults, then the cases, each a table of
/// fields that remember their place.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    defaults: Fields,
    #[serde(default)]
    case: Vec<toml::Spanned<Fields>>,
}

/// The cases in `file`.
pub fn load(file: &Path) -> Result<Vec<Case>, InputError> {
    let text = sample::read(file)?;
    parse(file, &text)
}

/// The cases in `text`, the contents of `file`.
pub fn parse(file: &Path, text: &str) -> Result<Vec<Case>, InputError> {
    let document: Document = sample::parse_toml(file, text)?;
    let error = |offset: usize, field: Option<&str>, message: String| {
        InputError::at(file, text, Some(offset), field, message)
    };

    let mut defaults = SampleObservation::default();
    for (key, value) in &document.defaults {
        if !FIELDS.contains(&key.as_str()) {
            let what = if EXPECT_FIELDS.contains(&key.as_str()) {
                "an expectation; expectations belong in each [[case]]".to_string()
            } else {
                format!(
                    "unknown; [defaults] takes the observation fields {}",
                    list(FIELDS)
                )
            };
            return Err(error(value.span().start, Some(key), what));
        }
        defaults = defaults.merge(sample::field(file, text, key, value)?);
    }

    if document.case.is_empty() {
        return Err(InputError::at(
            file,
            text,
            None,
            None,
            "no cases: add one, e.g.\n\n[[case]]\nname = \"an empty queue needs no instance\"\nqueue = { waiting = 0 }\ndesired = 0\n",
        ));
    }

    let mut cases: Vec<Case> = Vec::with_capacity(document.case.len());
    for spanned in &document.case {
        let start = spanned.span().start;
        let fields = spanned.get_ref();
        let name = match fields.get("name") {
            Some(name) => match name.get_ref().as_str() {
                Some(text) if !text.trim().is_empty() => text.to_string(),
                _ => {
                    return Err(error(
                        name.span().start,
                        Some("name"),
                        "expected a non-empty string, e.g. name = \"an empty queue needs no instance\"".into(),
                    ))
                }
            },
            None => {
                return Err(error(
                    start,
                    Some("name"),
                    "missing: every case needs a name, e.g. name = \"an empty queue needs no instance\"".into(),
                ))
            }
        };
        if let Some(earlier) = cases.iter().find(|c| c.name == name) {
            return Err(error(
                fields["name"].span().start,
                Some("name"),
                format!(
                    "{name:?} is already the name of the case at line {}: give each case its own name",
                    earlier.line
                ),
            ));
        }

        let mut observed = defaults.clone();
        let mut expect = Expectation::default();
        for (key, value) in fields {
            let key = key.as_str();
            if key == "name" {
                continue;
            } else if FIELDS.contains(&key) {
                observed = observed.merge(sample::field(file, text, key, value)?);
            } else if EXPECT_FIELDS.contains(&key) {
                expect
                    .set(key, value.get_ref())
                    .map_err(|message| error(value.span().start, Some(key), message))?;
            } else {
                return Err(error(
                    value.span().start,
                    Some(key),
                    format!(
                        "unknown in case {name:?}; a case takes `name`, the observation fields {} \
                         and the expectations {}",
                        list(FIELDS),
                        list(EXPECT_FIELDS)
                    ),
                ));
            }
        }
        if let Some(problem) = expect.problem() {
            return Err(error(start, None, format!("case {name:?} {problem}")));
        }
        let observation = sample::resolve(&observed, file, text, &[fields, &document.defaults])?;
        cases.push(Case {
            name,
            file: file.to_path_buf(),
            line: sample::error::line_of(text, start),
            observation,
            expect,
        });
    }
    Ok(cases)
}

/// `names` as a list for messages: `` `a`, `b` ``.
pub(super) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<Case>, InputError> {
        parse(Path::new("cases.toml"), text)
    }

    fn error(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn cases_start_from_the_defaults() {
        let cases = parse_str(
            r#"
[defaults]
time_zone = "Europe/Berlin"
params = { warm = "2" }
capacity = { max = 5 }

[[case]]
name = "one"
queue = { waiting = 3 }
capacity = { desired = 1 }
desired = 3

[[case]]
name = "two"
time_zone = "UTC"
params = { days = "sat-sun" }
state = "s"
desired_between = [0, 2]
kept_state = false
"#,
        )
        .unwrap();
        assert_eq!(cases.len(), 2);
        let one = &cases[0];
        assert_eq!((one.name.as_str(), one.line), ("one", 7));
        assert_eq!(one.observation.clock.time_zone, "Europe/Berlin");
        assert_eq!(
            (
                one.observation.capacity.desired,
                one.observation.capacity.max
            ),
            (1, 5)
        );
        assert_eq!(one.expect.desired, Some(3));
        let two = &cases[1];
        assert_eq!(two.observation.clock.time_zone, "UTC");
        assert_eq!(two.observation.params.len(), 2);
        assert_eq!(two.observation.state.as_deref(), Some("s"));
        assert_eq!(two.expect.kept_state, Some(KeptState::None));
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let text = "[[case]]\nname = \"a\"\nqueue = { waiting = -1 }\ndesired = 1\n";
        assert!(
            error(text).starts_with("cases.toml:3: field `queue.waiting`: "),
            "{}",
            error(text)
        );

        let text = "[[case]]\nname = \"a\"\ndesired = \"three\"\n";
        assert!(
            error(text).starts_with("cases.toml:3: field `desired`: expected a whole number"),
            "{}",
            error(text)
        );

        let text = "[[case]]\nname = \"a\"\n\nwaiting = 3\ndesired = 1\n";
        assert!(
            error(text).starts_with("cases.toml:4: field `waiting`: unknown"),
            "{}",
            error(text)
        );

        let text = "[[case]]\nname = \"a\"\ntime_zone = \"Nowhere\"\ndesired = 1\n";
        assert!(
            error(text).starts_with("cases.toml:3: field `time_zone`: "),
            "{}",
            error(text)
        );

        let text = "[defaults]\nat = \"soon\"\n\n[[case]]\nname = \"a\"\ndesired = 1\n";
        assert!(
            error(text).starts_with("cases.toml:2: field `at`: "),
            "{}",
            error(text)
        );

        let text = "[[case]]\nqueue = {}\ndesired = 1\n";
        assert!(
            error(text).starts_with("cases.toml:1: field `name`: missing"),
            "{}",
            error(text)
        );

        let text = "[[case]]\nname = \"a\"\nqueue = { waiting = 1 }\n";
        assert!(error(text).contains("expects nothing"), "{}", error(text));

        let text = "[[case]]\nname = \"a\"\ndesired = 1\n[[case]]\nname = \"a\"\ndesired = 1\n";
        assert!(
            error(text).starts_with("cases.toml:5: field `name`: \"a\" is already"),
            "{}",
            error(text)
        );

        let text = "[[case]]\nname = \"a\"\ndesired = 1\ndesired = 2\n";
        assert!(error(text).starts_with("cases.toml:4"), "{}", error(text));

        let text = "[[cases]]\nname = \"a\"\n";
        assert!(error(text).starts_with("cases.toml:1"), "{}", error(text));
        assert!(error(text).contains("cases"), "{}", error(text));

        let text = "[defaults]\ndesired = 1\n[[case]]\nname = \"a\"\ndesired = 1\n";
        assert!(
            error(text).starts_with("cases.toml:2: field `desired`: an expectation"),
            "{}",
            error(text)
        );

        assert!(error("").contains("no cases"));
    }
}
