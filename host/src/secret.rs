//! A secret string (an API token) that never prints: `Debug` and `Display`
//! show `***`, so a token cannot reach a log line or an error by accident.

use std::fmt;

/// A token. Read it with [`Secret::expose`], only where it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let token = Secret::new("CCIPAT_very_secret");
        assert_eq!(
            format!("{token} {token:?} {:?}", Some(&token)),
            "*** *** Some(***)"
        );
        assert_eq!(token.expose(), "CCIPAT_very_secret");
    }
}
