//! `runner-scaler policy new NAME [--lang rust|python|js] [--path DIR]
//! [--sdk DIR]`: scaffolds a policy (a Rust crate, a Python app, a JavaScript
//! package) that builds and passes its own tests out of the box. A Rust crate
//! depends on the policy SDK, `runner-scaler-policy`, at the version of this
//! binary's contract; until that crate is on crates.io the dependency also
//! names a local copy of the SDK (`--sdk`, or the checkout this binary was
//! built from). Python and JavaScript policies get the contract from this
//! binary (the WIT is embedded). The files are the templates in
//! `host/templates/policy/` (Rust), `host/templates/policy-python/` and
//! `host/templates/policy-js/`.

use crate::cli::language::Language;
use crate::input_file::{read_text, MAX_MANIFEST_BYTES};
use crate::policy::CONTRACT;
use anyhow::{bail, Context};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The contract, as this binary implements it.
pub(super) const WIT: &str = include_str!("../../../../wit/policy.wit");

/// The SDK's crate name.
const SDK: &str = "runner-scaler-policy";

/// The SDK in the checkout this binary was built from, which a scaffold
/// uses when it is still there.
const BUILT_WITH_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

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
    /// The policy SDK a Rust policy builds against: a directory holding the
    /// runner-scaler-policy crate (`sdk/` in a runner-scaler checkout)
    /// [default: the checkout this binary was built from, if it still
    /// exists; else the crate's version on crates.io].
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
}

pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let sdk = match &args.sdk {
        Some(dir) => Some(sdk_dir(dir)?),
        None => sdk_dir(Path::new(BUILT_WITH_SDK)).ok(),
    };
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
            fill(template, &args.name, sdk.as_deref())
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
    if args.lang == Language::Rust {
        println!(
            "\nnote: `policy build` needs the WebAssembly target; with rustup, add it once: \
             rustup target add wasm32-unknown-unknown"
        );
    }
    if args.lang == Language::Rust && sdk.is_none() {
        println!(
            "\nnote: it depends on {SDK} {version} from crates.io; if cargo cannot find \
             it there, point it at a runner-scaler checkout's sdk/ directory: run \
             `policy new` again with --sdk DIR, or add `path = \"DIR\"` to the \
             dependency in Cargo.toml",
            version = sdk_version(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The SDK version that implements this binary's contract: the same version
/// (the SDK is versioned with the contract).
fn sdk_version() -> &'static str {
    CONTRACT.rsplit('@').next().unwrap_or_default()
}

/// `dir`, made absolute, if it holds the SDK at [`sdk_version`].
fn sdk_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let text = read_text(&manifest, MAX_MANIFEST_BYTES).map_err(|err| {
        anyhow::anyhow!(
            "--sdk {}: {err}; give the directory of the {SDK} crate, `sdk/` in a runner-scaler checkout",
            dir.display(),
        )
    })?;
    let field = |name: &str| {
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .trim()
                .strip_prefix('=')?
                .trim()
                .strip_prefix('"')?
                .strip_suffix('"')
        })
    };
    if field("name") != Some(SDK) || field("version") != Some(sdk_version()) {
        bail!(
            "--sdk {}: {} is not {SDK} {}, the SDK of this binary's contract {CONTRACT}; \
             give the `sdk/` directory of a runner-scaler checkout of the same version",
            dir.display(),
            manifest.display(),
            sdk_version()
        );
    }
    std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))
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

/// `template` with its placeholders filled for the policy `name`; a Rust
/// crate is built against the SDK in `sdk` or, without one, crates.io's.
fn fill(template: &str, name: &str, sdk: Option<&Path>) -> String {
    let version = sdk_version();
    let dependency = match sdk {
        // TOML basic strings take `\` as an escape: quote the path as JSON,
        // which escapes the same way.
        Some(dir) => format!(
            "{{ version = \"{version}\", path = {} }}",
            serde_json::to_string(&dir.to_string_lossy()).expect("a string serializes")
        ),
        None => format!("\"{version}\""),
    };
    let note = match sdk {
        Some(_) => "`path` is a local copy of the SDK: drop it to build against crates.io's.",
        None => "From crates.io; add `path = \"DIR\"` to build against a local copy.",
    };
    template
        .replace("{{name}}", name)
        .replace("{{contract}}", CONTRACT)
        .replace("{{host_version}}", env!("CARGO_PKG_VERSION"))
        .replace("{{sdk_dependency}}", &dependency)
        .replace("{{sdk_note}}", note)
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
    }

    #[test]
    fn every_placeholder_is_filled() {
        for language in [Language::Rust, Language::Python, Language::JavaScript] {
            for sdk in [None, Some(Path::new("/src/runner-scaler/sdk"))] {
                for (file, template) in files(language) {
                    let text = fill(template, "night-shift", sdk);
                    assert!(
                        !text.contains("{{"),
                        "{language:?} {file} keeps a placeholder"
                    );
                }
            }
            assert!(
                files(language)
                    .iter()
                    .any(|(file, _)| *file == language.marker()),
                "{language:?} scaffolds its marker file"
            );
        }
        assert!(!FILES.iter().any(|(file, _)| *file == "wit/policy.wit"));
        assert!(PYTHON_FILES
            .iter()
            .any(|(file, text)| *file == "wit/policy.wit" && *text == WIT));
        assert!(WIT.contains(CONTRACT.trim_start_matches("runner-scaler:policy")));
    }

    /// The dependency line, as Cargo reads it.
    fn sdk_dependency(sdk: Option<&Path>) -> toml::Value {
        let manifest: toml::Table = fill(FILES[0].1, "p", sdk).parse().unwrap();
        manifest["dependencies"][SDK].clone()
    }

    #[test]
    fn the_scaffold_depends_on_the_sdk_of_its_contract() {
        assert_eq!(sdk_version(), "0.2.0");
        assert_eq!(sdk_dependency(None).as_str(), Some(sdk_version()));
        let windows = Path::new(r"C:\src\runner-scaler\sdk");
        let dependency = sdk_dependency(Some(windows));
        assert_eq!(dependency["version"].as_str(), Some(sdk_version()));
        assert_eq!(
            dependency["path"].as_str(),
            Some(r"C:\src\runner-scaler\sdk")
        );
    }

    #[test]
    fn the_sdk_it_was_built_with_is_found_and_checked() {
        let found = sdk_dir(Path::new(BUILT_WITH_SDK)).unwrap();
        assert!(found.is_absolute() && found.join("src/lib.rs").is_file());
        assert!(!found.to_string_lossy().contains(".."), "{found:?}");
        let err = sdk_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not runner-scaler-policy 0.2.0"),
            "{err}"
        );
        let err = sdk_dir(Path::new("/nonexistent")).unwrap_err();
        assert!(
            err.to_string()
                .contains("sdk/` in a runner-scaler checkout"),
            "{err}"
        );
    }

    #[test]
    fn an_existing_directory_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let args = NewArgs {
            name: "p".into(),
            path: Some(dir.path().to_path_buf()),
            lang: Language::Rust,
            sdk: None,
        };
        let err = new(args).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
    }
}
