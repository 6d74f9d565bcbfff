//! The languages a policy can be written in, and how a policy's directory
//! says which one it is: by the file that marks it.

use anyhow::bail;
use clap::ValueEnum;
use std::path::Path;

/// A language `policy new` scaffolds and `policy build` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    /// A Rust crate (`Cargo.toml`), built with cargo.
    Rust,
    /// A Python app (`app.py`), built with componentize-py.
    Python,
    /// A JavaScript module (`package.json`), built with componentize-js.
    #[value(name = "js", alias = "javascript")]
    JavaScript,
}

impl Language {
    const ALL: [Language; 3] = [Language::Rust, Language::Python, Language::JavaScript];

    /// The file whose presence makes a directory a policy in this language.
    pub fn marker(self) -> &'static str {
        match self {
            Language::Rust => "Cargo.toml",
            Language::Python => "app.py",
            Language::JavaScript => "package.json",
        }
    }

    /// The language of the policy in `dir`.
    pub fn of_dir(dir: &Path) -> anyhow::Result<Language> {
        let found: Vec<Language> = Language::ALL
            .into_iter()
            .filter(|language| dir.join(language.marker()).is_file())
            .collect();
        match found.as_slice() {
            [language] => Ok(*language),
            [] => bail!(
                "{} holds no policy: `policy build` takes the directory of a Rust crate \
                 (Cargo.toml), a Python app (app.py) or a JavaScript package (package.json); \
                 `runner-scaler policy new NAME --lang rust|python|js` creates one",
                dir.display()
            ),
            several => bail!(
                "{} holds {}: keep one policy, in one language, per directory",
                dir.display(),
                several
                    .iter()
                    .map(|language| language.marker())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_known_by_its_marker_file() {
        for language in Language::ALL {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(language.marker()), "").unwrap();
            assert_eq!(Language::of_dir(dir.path()).unwrap(), language);
        }
        let empty = tempfile::tempdir().unwrap();
        let err = Language::of_dir(empty.path()).unwrap_err().to_string();
        assert!(err.contains("--lang rust|python|js"), "{err}");

        let both = tempfile::tempdir().unwrap();
        std::fs::write(both.path().join("Cargo.toml"), "").unwrap();
        std::fs::write(both.path().join("package.json"), "").unwrap();
        let err = Language::of_dir(both.path()).unwrap_err().to_string();
        assert!(err.contains("Cargo.toml and package.json"), "{err}");
    }
}
