//! Text in quotes, for reasons and errors that show a value as given.

use std::fmt::{self, Write};

/// `text` in double quotes, with quotes, backslashes and control characters
/// escaped as Rust's `{:?}` escapes them: `"lots"`, `"a\"b"`, `"\n"`.
///
/// Other characters are written as they are, where `{:?}` also escapes
/// unprintable Unicode: that takes Unicode tables, 3 KB of every policy that
/// uses it. The host escapes what it logs anyway.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\0' => f.write_str("\\0")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::Quoted;

    #[test]
    fn like_debug_for_printable_text() {
        for text in [
            "lots",
            "",
            "a\"b",
            "back\\slash",
            "line\nbreak\ttab\r\0",
            "\u{1b}[31mred",
            "\u{7f}\u{85}",
            "grüße 🎉",
        ] {
            assert_eq!(Quoted(text).to_string(), format!("{text:?}"), "{text:?}");
        }
    }
}
