//! A pool's params: names and text values, kept in the order they were
//! written, which is the order a policy sees them in. Two formats carry
//! them, and so there are two ways to read them, both here:
//!
//! - [`as_strings`]: the observation ([`crate::Observation`]) as JSON. Its
//!   values are strings, as in the contract's `list<tuple<string, string>>`,
//!   and nothing else is taken: the observation is the contract's data.
//! - [`written`]: what people write, in sample observations and case files:
//!   a string, or a number or boolean taken as its [`text`] (`warm = 2` is
//!   `"2"`). The configuration's `params` are read by the same rule, so
//!   `policy test` shows a policy the params the scaler will.

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

/// The observation's params: a table of strings (`{"warm": "2"}`), kept as
/// ordered pairs.
pub mod as_strings {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(params: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(params.len()))?;
        for (name, value) in params {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of parameter names to string values, e.g. { warm = \"2\" }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(pairs)
            }
        }
        d.deserialize_map(Pairs)
    }
}

/// Params as a table, kept in the order written; a number or boolean value is
/// taken as its text (`warm = 2` is `warm = "2"`).
pub fn written<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a table of parameter names to values, e.g. { warm = \"2\" }")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some((name, value)) = map.next_entry::<String, ParamValue>()? {
                pairs.push((name, value.0));
            }
            Ok(pairs)
        }
    }
    d.deserialize_map(Pairs)
}

/// A param's value as a policy sees it: a string as it is, a number or a
/// boolean as TOML writes it (`2`, `1.5`, `1.0`, `true`); `None` for a
/// table, an array or a date.
pub fn text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
            Some(value.to_string())
        }
        _ => None,
    }
}

/// A param's value, a string or a number or boolean as its [`text`].
struct ParamValue(String);

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = ParamValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<ParamValue, E> {
                Ok(ParamValue(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ParamValue, E> {
                Ok(ParamValue(toml::Value::Integer(v).to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ParamValue, E> {
                // Beyond TOML's integers (JSON): its digits, as TOML would.
                Ok(ParamValue(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ParamValue, E> {
                Ok(ParamValue(toml::Value::Float(v).to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<ParamValue, E> {
                Ok(ParamValue(toml::Value::Boolean(v).to_string()))
            }
        }
        d.deserialize_any(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "written")]
        params: Vec<(String, String)>,
    }

    #[test]
    fn written_params_read_as_the_configuration_reads_them() {
        let written = r#"params = { b = "x", a = 2, f = 1.0, g = 0.5, t = true }"#;
        let table: toml::Table = toml::from_str(written).unwrap();
        let configured: Vec<(String, String)> = table["params"]
            .as_table()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), text(v).unwrap()))
            .collect();
        let sample: Sample = toml::from_str(written).unwrap();
        assert_eq!(sample.params, configured);
        let as_json: Sample = serde_json::from_str(
            r#"{"params": {"b": "x", "a": 2, "f": 1.0, "g": 0.5, "t": true}}"#,
        )
        .unwrap();
        assert_eq!(as_json.params, configured);
        let texts: Vec<&str> = configured.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(texts, ["x", "2", "1.0", "0.5", "true"]);
        assert_eq!(text(&toml::Value::Array(vec![])), None);
    }
}
