//! `policy build` for Python and JavaScript: componentize-py and
//! componentize-js put the app and an interpreter (CPython, SpiderMonkey)
//! into one component. This finds them, hands them the contract, and says
//! exactly how to install them when they are missing.

use super::language::Language;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A build tool, and what runner-scaler is tested with (what `cargo xtask
/// test` installs).
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
    /// A variable that names the tool's path, before any search.
    pub env: &'static str,
    /// How to install it, for the message when it is missing.
    pub install: &'static str,
}

pub const COMPONENTIZE_PY: Tool = Tool {
    name: "componentize-py",
    version: "0.25.1",
    env: "COMPONENTIZE_PY",
    install: "pip install componentize-py==0.25.1",
};

/// componentize-js runs its own tools (compiled to WebAssembly) under Node
/// with `@bytecodealliance/preview2-shim`; from 0.26 that shim grants them no
/// directory, and they cannot read the WIT (`failed to get path metadata`,
/// which is also why `jco componentize` 1.35 fails). 0.25 is pinned beside
/// it for that reason.
pub const COMPONENTIZE_JS: Tool = Tool {
    name: "componentize-js",
    version: "0.23.0",
    env: "COMPONENTIZE_JS",
    install: "npm install --save-dev @bytecodealliance/componentize-js@0.23.0 \
              @bytecodealliance/preview2-shim@0.25.0",
};

/// The engine features a JavaScript policy is built without, and why:
/// - `http`, `fetch-event`: `fetch` and incoming requests need `wasi:http`,
///   which the host does not offer (a policy built with them cannot load;
///   without them `fetch` is a stub that traps);
/// - `random`: `Math.random()` and `crypto` use the engine's own generator,
///   seeded when the component is built, instead of `wasi:random`: the same
///   numbers on every decision.
///
/// `clocks` stays: without it `Date.now()` is frozen at the time the
/// component was built, with it `Date.now()` reads the WASI wall clock, which
/// is the observation's time. `stdio` stays: `console.log` and uncaught
/// errors reach the policy's log.
pub const JS_DISABLED_FEATURES: [&str; 3] = ["http", "fetch-event", "random"];

/// The module componentize-py loads: `app.py`, with a class `Decider`.
const PYTHON_APP: &str = "app";

/// Build the Python or JavaScript policy in `dir` against `wit` (a WIT
/// directory or file holding the `policy` world); the component's bytes.
pub fn build(language: Language, dir: &Path, wit: &Path) -> anyhow::Result<Vec<u8>> {
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let out = scratch.path().join("policy.wasm");
    let mut command = match language {
        Language::Python => {
            let tool = find(&COMPONENTIZE_PY, &[dir.join(".venv/bin/componentize-py")])?;
            let mut command = Command::new(tool);
            command
                .arg("--wit-path")
                .arg(wit)
                .args(["--world", "policy", "componentize", PYTHON_APP])
                .arg("--python-path")
                .arg(dir)
                .arg("--output")
                .arg(&out);
            command
        }
        Language::JavaScript => {
            let entry = js_entry(dir)?;
            require_node()?;
            let tool = find(
                &COMPONENTIZE_JS,
                &[dir.join("node_modules/.bin/componentize-js")],
            )?;
            let mut command = Command::new(tool);
            command
                .arg(entry)
                .arg("--wit")
                .arg(wit)
                .args(["--world-name", "policy", "--disable"])
                .args(JS_DISABLED_FEATURES)
                .arg("--out")
                .arg(&out);
            command
        }
        Language::Rust => unreachable!("Rust policies are built with cargo"),
    };
    command.current_dir(dir).stdin(Stdio::null());
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!(
            "{command:?} could not build {} ({status}); its messages are above",
            dir.display()
        );
    }
    Ok(crate::policy::read_policy_file(&out)?)
}

/// The JavaScript module to build: `main` in package.json, else `app.js`.
fn js_entry(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("package.json");
    let text = crate::input_file::read_text(&manifest, crate::input_file::MAX_MANIFEST_BYTES)?;
    let package: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", manifest.display()))?;
    let entry = match &package["main"] {
        serde_json::Value::String(main) => PathBuf::from(main),
        serde_json::Value::Null => PathBuf::from("app.js"),
        other => bail!(
            "{}: `main` is {other}, expected the path of the policy's module, e.g. \"app.js\"",
            manifest.display()
        ),
    };
    if !dir.join(&entry).is_file() {
        bail!(
            "{} is missing: the policy's module is `main` in {} (app.js when not given)",
            dir.join(&entry).display(),
            manifest.display()
        );
    }
    Ok(entry)
}

/// componentize-js is a Node program.
fn require_node() -> anyhow::Result<()> {
    if on_path("node").is_none() {
        bail!(
            "node is not on PATH: componentize-js, which builds JavaScript policies, runs on \
             Node.js 20 or newer (https://nodejs.org, or your system's nodejs package)"
        );
    }
    Ok(())
}

/// `tool`: the path in its variable, else the first of `local` that exists,
/// else on PATH. Warns when its version is not the one runner-scaler is
/// tested with.
fn find(tool: &Tool, local: &[PathBuf]) -> anyhow::Result<PathBuf> {
    let found = match std::env::var_os(tool.env) {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                bail!(
                    "{}={} is not a file: point it at the {} program, or unset it to search PATH",
                    tool.env,
                    path.display(),
                    tool.name
                );
            }
            path
        }
        None => local
            .iter()
            .find(|path| path.is_file())
            .cloned()
            .or_else(|| on_path(tool.name))
            .with_context(|| {
                format!(
                    "{name} is not installed (not on PATH, nor in the policy's directory): \
                     install it with `{install}`, or set {env} to its path. runner-scaler is \
                     tested with {name} {version}",
                    name = tool.name,
                    install = tool.install,
                    env = tool.env,
                    version = tool.version,
                )
            })?,
    };
    let version = Command::new(&found)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_default();
    if !version.ends_with(tool.version) {
        eprintln!(
            "warning: {} says it is {version:?}; runner-scaler is tested with {} ({})",
            found.display(),
            tool.version,
            tool.install
        );
    }
    Ok(found)
}

/// The first `name` in a PATH directory.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
