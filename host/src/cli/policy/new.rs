//! `runner-scaler policy new NAME [--lang rust|python|js] [--path DIR]`:
//! scaffolds a policy (a Rust crate, a Python app, a JavaScript package) that
//! builds and passes its own tests out of the box. The contract comes from
//! this binary (the WIT is embedded), so a scaffold works anywhere; the files
//! are the templates in `host/templates/policy/` (Rust),
//! `host/templates/policy-python/` and `host/templates/policy-js/`.

use crate::cli::language::Language;
use crate::policy::CONTRACT;
use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// The contract, as this binary implements it.
pub(super) const WIT: &str = include_str!("../../../../wit/policy.wit");

/// The files of a new Rust policy crate: (path, template).
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../templates/policy/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../templates/policy/lib.rs.tmpl"),
    ),
    (
        "cases.toml",
        include_str!("../../../templates/policy/cases.toml.tmpl"),
    ),
    (
        "observation.toml",
        include_str!("../../../templates/policy/observation.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../../templates/policy/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../../../templates/policy/gitignore.tmpl"),
    ),
    ("wit/policy.wit", WIT),
];

/// The files of a new Python policy: (path, template).
const PYTHON_FILES: &[(&str, &str)] = &[
    (
        "app.py",
        include_str!("../../../templates/policy-python/app.py.tmpl"),
    ),
    (
        "test_app.py",
        include_str!("../../../templates/policy-python/test_app.py.tmpl"),
    ),
    (
        "cases.toml",
        include_str!("../../../templates/policy/cases.toml.tmpl"),
    ),
    (
        "observation.toml",
        include_str!("../../../templates/policy/observation.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../../templates/policy-python/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../../../templates/policy-python/gitignore.tmpl"),
    ),
    ("wit/policy.wit", WIT),
];

/// The files of a new JavaScript policy: (path, template).
const JS_FILES: &[(&str, &str)] = &[
    (
        "package.json",
        include_str!("../../../templates/policy-js/package.json.tmpl"),
    ),
    (
        "app.js",
        include_str!("../../../templates/policy-js/app.js.tmpl"),
    ),
    (
        "app.test.js",
        include_str!("../../../templates/policy-js/app.test.js.tmpl"),
    ),
    (
        "cases.toml",
        include_str!("../../../templates/policy/cases.toml.tmpl"),
    ),
    (
        "observation.toml",
        include_str!("../../../templates/policy/observation.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../../templates/policy-js/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../../../templates/policy-js/gitignore.tmpl"),
    ),
    ("wit/policy.wit", WIT),
];

/// The files of a new policy in `language`.
fn files(language: Language) -> &'static [(&'static str, &'static str)] {
    match language {
        Language::Rust => FILES,
        Language::Python => PYTHON_FILES,
        Language::JavaScript => JS_FILES,
    }
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The policy's name, also its crate or package name: lowercase letters, digits and
    /// dashes, starting with a letter (e.g. `night-shift`).
    name: String,
    /// The directory to create [default: ./NAME].
    #[arg(long)]
    path: Option<PathBuf>,
    /// The language to write the policy in.
    #[arg(long, value_enum, default_value_t = Language::Rust)]
    lang: Language,
}

pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        bail!(
            "{} already exists: `policy new` never overwrites; give another --path, or remove it first",
            dir.display()
        );
    }
    for (file, template) in files(args.lang) {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let text = if *file == "wit/policy.wit" {
            template.to_string()
        } else {
            fill(template, &args.name)
        };
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    tracing::debug!(dir = %dir.display(), lang = ?args.lang, "policy created");
    let (what, test) = match args.lang {
        Language::Rust => ("a policy crate", "cargo test"),
        Language::Python => (
            "a Python policy",
            "componentize-py -d wit -w policy bindings bindings\n  \
             PYTHONPATH=bindings python3 -m unittest",
        ),
        Language::JavaScript => ("a JavaScript policy", "npm install\n  npm test"),
    };
    println!(
        "created {dir}, {what} for {CONTRACT}; next:\n\n  \
         cd {dir}\n  \
         {test}\n  \
         runner-scaler policy build . --out {name}.wasm\n  \
         runner-scaler policy test {name}.wasm cases.toml",
        dir = dir.display(),
        name = args.name,
    );
    Ok(ExitCode::SUCCESS)
}

/// A crate name that is also a fine file name: `[a-z][a-z0-9-]*`.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        bail!(
            "{name:?} is not a policy name: use lowercase letters, digits and dashes, \
             starting with a letter, e.g. `night-shift`"
        );
    }
    Ok(())
}

/// `template` with its placeholders filled for the policy `name`.
fn fill(template: &str, name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{type_name}}", &type_name(name))
        .replace("{{contract}}", CONTRACT)
        .replace("{{host_version}}", env!("CARGO_PKG_VERSION"))
}

/// `night-shift` → `NightShift`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("night-shift").is_ok());
        assert!(check_name("p2").is_ok());
        for bad in ["", "Night", "2p", "a_b", "a-", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(type_name("night-shift-2"), "NightShift2");
    }

    #[test]
    fn every_placeholder_is_filled() {
        for language in [Language::Rust, Language::Python, Language::JavaScript] {
            for (file, template) in files(language) {
                let text = fill(template, "night-shift");
                assert!(
                    !text.contains("{{"),
                    "{language:?} {file} keeps a placeholder"
                );
            }
            assert!(
                files(language)
                    .iter()
                    .any(|(file, _)| *file == language.marker()),
                "{language:?} scaffolds its marker file"
            );
        }
        assert!(FILES
            .iter()
            .any(|(file, text)| *file == "wit/policy.wit" && *text == WIT));
        assert!(WIT.contains(CONTRACT.trim_start_matches("runner-scaler:policy")));
    }

    #[test]
    fn an_existing_directory_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let args = NewArgs {
            name: "p".into(),
            path: Some(dir.path().to_path_buf()),
            lang: Language::Rust,
        };
        let err = new(args).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
    }
}
