//! Reading sample observations from files: JSON (`.json`, which includes the
//! full observation format) or TOML (`.toml`), chosen by the extension. TOML
//! fields are read one at a time from a table of spanned values, so that an
//! error names its field and its line; case files read their cases the same way.

use super::error::key_before;
use super::{FieldError, InputError, SampleObservation, FIELDS};
use crate::observation::Observation;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;

/// A TOML table whose values remember where they were written.
pub type Fields = BTreeMap<String, toml::Spanned<toml::Value>>;

/// The observation in `file`, a sample observation in JSON or TOML.
pub fn load_observation(file: &Path) -> Result<Observation, InputError> {
    let text = read(file)?;
    match file.extension().and_then(|e| e.to_str()) {
        Some("toml") => {
            let fields: Fields = parse_toml(file, &text)?;
            let sample = sample_from_fields(file, &text, &fields)?;
            resolve(&sample, file, &text, &[&fields])
        }
        Some("json") => {
            let sample: SampleObservation = serde_json::from_str(&text).map_err(|err| {
                let message = err.to_string();
                let suffix = format!(" at line {} column {}", err.line(), err.column());
                let message = message.strip_suffix(&suffix).unwrap_or(&message);
                InputError::Invalid {
                    file: file.to_path_buf(),
                    line: Some(err.line()),
                    field: None,
                    message: format!("{message}; {}", fields_hint()),
                }
            })?;
            sample.resolve().map_err(|err| {
                let line = text
                    .find(&format!("\"{}\"", err.field))
                    .map(|offset| super::error::line_of(&text, offset));
                InputError::Invalid {
                    file: file.to_path_buf(),
                    line,
                    field: Some(err.field.to_string()),
                    message: err.message,
                }
            })
        }
        _ => Err(InputError::at(
            file,
            &text,
            None,
            None,
            "an observation is a .json or .toml file: rename it to say which it is",
        )),
    }
}

/// The contents of `file`.
pub(crate) fn read(file: &Path) -> Result<String, InputError> {
    crate::input_file::read_text(file, crate::input_file::MAX_SAMPLE_BYTES)
        .map_err(InputError::Read)
}

/// `text` parsed as TOML into `T`, or an error with the line and, when it can
/// be told, the field.
pub(crate) fn parse_toml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, InputError> {
    toml::from_str(text).map_err(|err| {
        let offset = err.span().map(|span| span.start);
        let field = offset.and_then(|offset| key_before(text, offset));
        InputError::at(file, text, offset, field.as_deref(), err.message().trim())
    })
}

/// The sample observation written as `fields`, each field checked on its own.
/// Every key must be an observation field.
pub(crate) fn sample_from_fields(
    file: &Path,
    text: &str,
    fields: &Fields,
) -> Result<SampleObservation, InputError> {
    let mut sample = SampleObservation::default();
    for (key, value) in fields {
        if !FIELDS.contains(&key.as_str()) {
            return Err(InputError::at(
                file,
                text,
                Some(value.span().start),
                Some(key),
                format!("unknown; {}", fields_hint()),
            ));
        }
        sample = sample.merge(field(file, text, key, value)?);
    }
    Ok(sample)
}

/// One observation field, `key = value`, as a sample observation.
pub(crate) fn field(
    file: &Path,
    text: &str,
    key: &str,
    value: &toml::Spanned<toml::Value>,
) -> Result<SampleObservation, InputError> {
    let one = |value: toml::Value| {
        let mut table = toml::Table::new();
        table.insert(key.to_string(), value);
        toml::Value::Table(table).try_into::<SampleObservation>()
    };
    one(value.get_ref().clone()).map_err(|err| {
        // In a table (`queue = { waiting = "x" }`), name the member at fault.
        let member = value.get_ref().as_table().and_then(|members| {
            members.iter().find_map(|(name, member)| {
                let alone = toml::Table::from_iter([(name.clone(), member.clone())]);
                one(toml::Value::Table(alone)).is_err().then_some(name)
            })
        });
        let field = match member {
            Some(member) => format!("{key}.{member}"),
            None => key.to_string(),
        };
        InputError::at(
            file,
            text,
            Some(value.span().start),
            Some(&field),
            format!("{}{}", err.message().trim(), field_hint(key)),
        )
    })
}

/// `sample` resolved; an error is placed on the line of its field in the
/// first of `fields` that has it.
pub(crate) fn resolve(
    sample: &SampleObservation,
    file: &Path,
    text: &str,
    fields: &[&Fields],
) -> Result<Observation, InputError> {
    sample.resolve().map_err(|FieldError { field, message }| {
        let offset = fields
            .iter()
            .find_map(|f| f.get(field))
            .map(|value| value.span().start);
        InputError::at(file, text, offset, Some(field), message)
    })
}

fn fields_hint() -> String {
    format!(
        "a sample observation has the fields {}",
        FIELDS
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// What a field looks like, to append to a type error.
fn field_hint(key: &str) -> &'static str {
    match key {
        "queue" => "; write e.g. queue = { waiting = 3, running = 1 }",
        "capacity" => "; write e.g. capacity = { desired = 2, min = 0, max = 10 }",
        "params" => "; write e.g. params = { warm = \"2\" }",
        "at" => "; write e.g. at = \"2026-11-23T09:00:00\"",
        "time_zone" => "; write e.g. time_zone = \"Europe/Berlin\"",
        "state" => "; write e.g. state = \"empty_since=1795424400\"",
        "pool" => "; write e.g. pool = \"linux-large\"",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn toml_and_json_samples_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let toml = write(
            dir.path(),
            "o.toml",
            "queue = { waiting = 3 }\nparams = { warm = 2 }\n",
        );
        let o = load_observation(&toml).unwrap();
        assert_eq!((o.queue.waiting, o.params.len()), (3, 1));
        let json = write(dir.path(), "o.json", r#"{"queue": {"running": 2}}"#);
        assert_eq!(load_observation(&json).unwrap().queue.running, 2);
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let toml = write(
            dir.path(),
            "o.toml",
            "pool = \"p\"\nqueue = { waiting = \"x\" }\n",
        );
        let err = load_observation(&toml).unwrap_err().to_string();
        assert!(err.contains("o.toml:2: field `queue.waiting`"), "{err}");
        let toml = write(dir.path(), "o.toml", "pool = \"p\"\n\nwaiting = 3\n");
        let err = load_observation(&toml).unwrap_err().to_string();
        assert!(err.contains("o.toml:3: field `waiting`: unknown"), "{err}");
        let toml = write(dir.path(), "o.toml", "\ntime_zone = \"Berlin\"\n");
        let err = load_observation(&toml).unwrap_err().to_string();
        assert!(err.contains("o.toml:2: field `time_zone`"), "{err}");
        let json = write(dir.path(), "o.json", "{\n  \"waiting\": 3\n}");
        let err = load_observation(&json).unwrap_err().to_string();
        assert!(err.contains("o.json:2: unknown field `waiting`"), "{err}");
    }
}
