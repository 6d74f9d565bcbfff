//! [`InputError`]: a sample observation or case file that cannot be used,
//! reported with the file, the line, the field and the fix.

use std::fmt;
use std::path::PathBuf;

/// A file of sample input that cannot be read or used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Read(crate::input_file::ReadError),

    #[error("{}", Located { file, line: *line, field: field.as_deref(), message })]
    Invalid {
        file: PathBuf,
        /// 1-based, when known.
        line: Option<usize>,
        /// The field at fault, when one is.
        field: Option<String>,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl InputError {
    /// An error at `offset` bytes into `text`, the contents of `file`.
    pub fn at(
        file: &std::path::Path,
        text: &str,
        offset: Option<usize>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        InputError::Invalid {
            file: file.to_path_buf(),
            line: offset.map(|offset| line_of(text, offset)),
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    /// The line of the error, if it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            InputError::Invalid { line, .. } => *line,
            InputError::Read(_) => None,
        }
    }
}

/// `file:line: field `f`: message`.
struct Located<'a> {
    file: &'a PathBuf,
    line: Option<usize>,
    field: Option<&'a str>,
    message: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key written just before byte `offset` on its line (`waiting` in
/// `queue = { waiting = "x" }` with `offset` at `"x"`), to name the field of a
/// value the parser refused.
pub fn key_before(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..offset].trim_end();
    let before = before.strip_suffix('=')?.trim_end();
    let key: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"'))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let key = key.trim_matches('"');
    (!key.is_empty()).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn the_key_before_a_value_is_found() {
        let text = "name = \"x\"\nqueue = { waiting = \"x\" }\n";
        let offset = text.find("\"x\" }").unwrap();
        assert_eq!(key_before(text, offset).as_deref(), Some("waiting"));
        assert_eq!(key_before(text, 7).as_deref(), Some("name"));
        assert_eq!(key_before(text, 0), None);
    }

    #[test]
    fn the_message_names_file_line_and_field() {
        let err = InputError::at(
            std::path::Path::new("cases.toml"),
            "a\nb",
            Some(2),
            Some("at"),
            "bad",
        );
        assert_eq!(err.to_string(), "cases.toml:2: field `at`: bad");
    }
}
