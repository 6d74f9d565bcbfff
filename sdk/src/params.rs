//! Params: the strings a pool's configuration gives a policy, parsed into a
//! struct by [`derive(Params)`](derive@crate::Params), with the errors an
//! operator can act on.
//!
//! The messages: `` param `warm`: expected a whole number, e.g. `2`, got "lots" ``
//! for a malformed value, and `` param `wram`: unknown; this policy takes
//! `warm`, `days` and `hours` `` for a name the policy does not take (a typo
//! must not be ignored silently).

use crate::Quoted;
use std::fmt;
use std::time::Duration;

/// A struct of params, from `#[derive(Params)]`.
pub trait FromParams: Sized {
    /// The params' names, in the order declared.
    const NAMES: &'static [&'static str];
    /// Each param's name, default and documentation, for documentation
    /// generators (the table in runner-scaler's README is one).
    const PARAMS: &'static [ParamInfo];

    /// Parses the pool's params: the ones given, in order (a name given twice
    /// takes the last value), and the defaults of the others.
    fn from_params(params: &[(String, String)]) -> Result<Self, String>;
}

/// One param of a [`FromParams`] struct, as documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: &'static str,
    /// The default, as a pool would write it.
    pub default: &'static str,
    /// The field's doc comment, on one line.
    pub doc: &'static str,
}

/// A type a param's value can be: how to read it, and what it looks like.
pub trait Param: Sized {
    /// What a value looks like, for the error that refuses one: "a whole
    /// number", "day names mon..sun ...".
    const EXPECTED: &'static str;

    /// The value `text` (trimmed of ASCII spaces) stands for, if any.
    fn parse(text: &str) -> Option<Self>;
}

/// What the error for a malformed value says was expected.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Expected {
    /// The type's [`Param::EXPECTED`].
    Type,
    /// The type's, with an example: "a whole number, e.g. `2`".
    Example(&'static str),
    /// This phrase instead.
    Text(&'static str),
}

/// Parses the value of param `name`, or says what was expected. For the
/// derive's generated code.
#[doc(hidden)]
pub fn parse<T: Param>(
    name: &str,
    value: &str,
    expected: Expected,
    check: impl Fn(&T) -> bool,
) -> Result<T, String> {
    match T::parse(value.trim_ascii()) {
        Some(parsed) if check(&parsed) => Ok(parsed),
        _ => Err(malformed(name, value, expected, T::EXPECTED)),
    }
}

/// The error for a malformed value. Not generic, and out of line: one copy
/// serves every param of a policy, which keeps policies small.
#[cold]
#[inline(never)]
fn malformed(name: &str, value: &str, expected: Expected, type_expects: &str) -> String {
    let (expects, (open, example, close)) = match expected {
        Expected::Type => (type_expects, ("", "", "")),
        Expected::Example(example) => (type_expects, (", e.g. `", example, "`")),
        Expected::Text(text) => (text, ("", "", "")),
    };
    let value = Quoted(value);
    format!("param `{name}`: expected {expects}{open}{example}{close}, got {value}")
}

/// The error for a param the policy does not take.
#[doc(hidden)]
#[cold]
#[inline(never)]
pub fn unknown(name: &str, names: &[&str]) -> String {
    format!(
        "param `{name}`: unknown; this policy takes {}",
        Names(names)
    )
}

/// `` `a`, `b` and `c` ``, or `no params`.
struct Names<'a>(&'a [&'a str]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no params");
        }
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(if i + 1 == self.0.len() { " and " } else { ", " })?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

macro_rules! whole_numbers {
    ($expected:literal: $($t:ty),*) => {$(
        impl Param for $t {
            const EXPECTED: &'static str = $expected;
            fn parse(text: &str) -> Option<$t> {
                text.parse().ok()
            }
        }
    )*};
}

whole_numbers!("a whole number": u8, u16, u32, u64, usize);
whole_numbers!("an integer": i8, i16, i32, i64);

/// Finite numbers only: `inf` and `NaN` are refused.
impl Param for f64 {
    const EXPECTED: &'static str = "a number";
    fn parse(text: &str) -> Option<f64> {
        text.parse().ok().filter(|f: &f64| f.is_finite())
    }
}

/// Finite numbers only: `inf` and `NaN` are refused.
impl Param for f32 {
    const EXPECTED: &'static str = "a number";
    fn parse(text: &str) -> Option<f32> {
        text.parse().ok().filter(|f: &f32| f.is_finite())
    }
}

impl Param for bool {
    const EXPECTED: &'static str = "`true` or `false`";
    fn parse(text: &str) -> Option<bool> {
        text.parse().ok()
    }
}

/// Any text, trimmed of spaces.
impl Param for String {
    const EXPECTED: &'static str = "text";
    fn parse(text: &str) -> Option<String> {
        Some(text.to_string())
    }
}

/// A whole number of days, hours, minutes and seconds with their units, in
/// that order: `90s`, `10m`, `2h`, `1h30m`, `1d`. A bare number is refused:
/// `10` could be either.
impl Param for Duration {
    const EXPECTED: &'static str = "a duration with a unit, e.g. `90s`, `10m` or `1h30m`";

    fn parse(text: &str) -> Option<Duration> {
        let mut seconds: u64 = 0;
        let mut rest = text;
        let mut last_unit = u64::MAX;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit())?;
            let number: u64 = rest.get(..digits)?.parse().ok()?;
            let unit = match rest.as_bytes().get(digits)? {
                b'd' => 86_400,
                b'h' => 3_600,
                b'm' => 60,
                b's' => 1,
                _ => return None,
            };
            // Largest unit first, each once: `30m1h` and `1m1m` are typos.
            if unit >= last_unit {
                return None;
            }
            last_unit = unit;
            seconds = seconds.checked_add(number.checked_mul(unit)?)?;
            rest = rest.get(digits + 1..)?;
        }
        (last_unit != u64::MAX).then(|| Duration::from_secs(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Days, Observation, Params, Weekday};

    /// Every kind of field and attribute.
    #[derive(Params, Debug, PartialEq)]
    struct Example {
        /// Instances to keep
        /// while the queue is busy.
        #[param(default = "1", example = "2")]
        warm: u32,
        #[param(default = "10m")]
        idle: Duration,
        #[param(
            default = "1.0",
            expected = "a number above 0, e.g. `0.5`",
            check = |f| *f > 0.0
        )]
        factor: f64,
        /// Business days.
        #[param(default = "mon-fri")]
        days: Days,
    }

    fn example(params: &[(&str, &str)]) -> Result<Example, String> {
        let mut observation = Observation::sample();
        for (name, value) in params {
            observation = observation.with_param(name, value);
        }
        observation.params()
    }

    #[test]
    fn the_derive_takes_defaults_and_given_values() {
        let defaults = example(&[]).unwrap();
        assert_eq!(defaults.warm, 1);
        assert_eq!(defaults.idle, Duration::from_secs(600));
        assert_eq!(defaults.factor, 1.0);
        assert!(
            defaults.days.contains(Weekday::Friday) && !defaults.days.contains(Weekday::Sunday)
        );

        let given = example(&[("idle", "1h30m"), ("warm", " 3 "), ("days", "sun")]).unwrap();
        assert_eq!((given.warm, given.idle.as_secs()), (3, 5_400));
        assert!(given.days.contains(Weekday::Sunday));
        let params = [
            ("warm".to_string(), "3".to_string()),
            ("warm".to_string(), "4".to_string()),
        ];
        assert_eq!(
            Example::from_params(&params).unwrap().warm,
            4,
            "the last value wins"
        );
    }

    #[test]
    fn the_derive_refuses_what_it_cannot_use() {
        let cases = [
            (("warm", "lots"), "param `warm`: expected a whole number, e.g. `2`, got \"lots\""),
            (("idle", "10"), "param `idle`: expected a duration with a unit, e.g. `90s`, `10m` or `1h30m`, got \"10\""),
            (("factor", "0"), "param `factor`: expected a number above 0, e.g. `0.5`, got \"0\""),
            (("factor", "NaN"), "param `factor`: expected a number above 0, e.g. `0.5`, got \"NaN\""),
            (("days", "weekdays"), "param `days`: expected day names mon..sun in ranges or a comma list, e.g. `mon-fri` or `mon,wed,fri`, got \"weekdays\""),
            (("wram", "2"), "param `wram`: unknown; this policy takes `warm`, `idle`, `factor` and `days`"),
            (("warm", "a\"b\n"), "param `warm`: expected a whole number, e.g. `2`, got \"a\\\"b\\n\""),
        ];
        for ((name, value), want) in cases {
            assert_eq!(
                example(&[(name, value)]),
                Err(want.to_string()),
                "{name}={value:?}"
            );
        }
    }

    #[test]
    fn the_derive_documents_each_param() {
        assert_eq!(Example::NAMES, ["warm", "idle", "factor", "days"]);
        let warm = Example::PARAMS[0];
        assert_eq!(
            (warm.name, warm.default, warm.doc),
            ("warm", "1", "Instances to keep while the queue is busy.")
        );
        assert_eq!(
            (Example::PARAMS[1].default, Example::PARAMS[1].doc),
            ("10m", "")
        );
    }

    #[test]
    fn malformed_values_say_what_was_expected() {
        let error = parse::<u32>("warm", "lots", Expected::Example("2"), |_| true).unwrap_err();
        assert_eq!(
            error,
            "param `warm`: expected a whole number, e.g. `2`, got \"lots\""
        );
        let error = parse::<u32>("n", "0", Expected::Text("1 or more"), |n| *n >= 1).unwrap_err();
        assert_eq!(error, "param `n`: expected 1 or more, got \"0\"");
        let error = parse::<i64>("n", "1.5", Expected::Type, |_| true).unwrap_err();
        assert_eq!(error, "param `n`: expected an integer, got \"1.5\"");
        assert_eq!(parse::<u32>("n", " 7 ", Expected::Type, |_| true), Ok(7));
    }

    #[test]
    fn unknown_names_list_what_the_policy_takes() {
        assert_eq!(
            unknown("wram", &["warm", "days", "hours"]),
            "param `wram`: unknown; this policy takes `warm`, `days` and `hours`"
        );
        assert_eq!(
            unknown("x", &["minutes"]),
            "param `x`: unknown; this policy takes `minutes`"
        );
        assert_eq!(
            unknown("x", &[]),
            "param `x`: unknown; this policy takes no params"
        );
    }

    #[test]
    fn numbers_are_finite() {
        assert_eq!(f64::parse("0.5"), Some(0.5));
        for bad in ["inf", "-inf", "NaN", "infinity", "1e999", "50%"] {
            assert_eq!(f64::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_take_units() {
        let cases = [
            ("90s", Some(90)),
            ("10m", Some(600)),
            ("2h", Some(7_200)),
            ("1h30m", Some(5_400)),
            ("1d2h3m4s", Some(93_784)),
            ("0s", Some(0)),
            ("10", None),
            ("", None),
            ("m", None),
            ("10 m", None),
            ("30m1h", None),
            ("1m1m", None),
            ("-5m", None),
            ("1.5h", None),
            ("10M", None),
            ("99999999999999999999s", None),
            ("999999999999999999d", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                Duration::parse(text),
                want.map(Duration::from_secs),
                "{text:?}"
            );
        }
    }
}
