//! `runner-scaler policy ...`: the policy author's commands. `build` and
//! `eval` are here; `test`, `new` and `precompile` have a file each.

mod new;
mod precompile;
mod test;

use super::language::Language;
use crate::policy::{self, CompileCache, Limits, Policy, PolicyEngine, PolicyLoader, PolicyRef};
use crate::sample;
use crate::text;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Build a policy (a Rust crate, a Python app or a JavaScript package) to
    /// a WebAssembly component.
    Build(BuildArgs),
    /// Ask a policy for one decision and print it as JSON.
    Eval(EvalArgs),
    /// Run case files (sample observations and expected answers) through a policy.
    Test(test::TestArgs),
    /// Create a new policy (a Rust crate, a Python app or a JavaScript
    /// package) that builds and passes its own tests.
    New(new::NewArgs),
    /// Compile policies ahead of time for an architecture, for a Lambda bundle.
    Precompile(precompile::PrecompileArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The policy's directory: a Rust crate (Cargo.toml), a Python app
    /// (app.py) or a JavaScript package (package.json).
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Where to write the component [default: TARGET_DIR/policies/CRATE.wasm
    /// for Rust, DIR/DIRNAME.wasm for Python and JavaScript].
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// The Rust target to build for [default: wasm32-wasip2 if installed, else
    /// wasm32-unknown-unknown]. Rust only.
    #[arg(long)]
    target: Option<String>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A policy: a .wasm file, or a built-in rule (`queue`, `hold`).
    policy: String,
    /// An observation: a .json or .toml file where any field left out takes
    /// its default (see docs/writing-a-policy.md); the full JSON observation works too.
    observation: PathBuf,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// The sandbox's limits and the compile cache, as flags.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Time one decision may take, in milliseconds.
    #[arg(long, default_value_t = policy::DEFAULT_DEADLINE_MS)]
    deadline_ms: u64,
    /// Memory one decision may use, in MiB.
    #[arg(long, default_value_t = policy::DEFAULT_MEMORY_MIB)]
    memory_mib: usize,
    /// Compile the policy every time instead of caching the compiled code.
    #[arg(long)]
    no_cache: bool,
}

impl SandboxArgs {
    fn limits(&self) -> Limits {
        Limits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mib * 1024 * 1024,
            ..Limits::default()
        }
    }

    fn cache(&self) -> Option<CompileCache> {
        (!self.no_cache).then(|| CompileCache::new(CompileCache::default_dir()))
    }

    /// The policy named `name`: a built-in rule, or a file loaded by a new
    /// engine (made only for a file).
    pub fn policy(&self, name: &str) -> anyhow::Result<Policy> {
        let limits = self.limits();
        let cache = self.cache();
        let mut loader = PolicyLoader::lazy(move || PolicyEngine::new(limits, cache.clone()));
        Ok(loader.load(&PolicyRef::parse(name, Path::new("")))?)
    }
}

impl PolicyCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            PolicyCommand::Build(args) => build(args),
            PolicyCommand::Eval(args) => eval(args).await,
            PolicyCommand::Test(args) => test::test(args).await,
            PolicyCommand::New(args) => new::new(args),
            PolicyCommand::Precompile(args) => precompile::precompile(args),
        }
    }
}

async fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let observation = sample::load_observation(&args.observation)?;
    let policy = args.sandbox.policy(&args.policy)?;
    let evaluation = policy.evaluate(&observation).await;
    // What the policy wrote is escaped: it must not forge lines or drive
    // the terminal.
    for (level, line) in &evaluation.log.lines {
        eprintln!("policy {level:?}: {}", text::escape(line));
    }
    match evaluation.result {
        Ok(decision) => {
            let json = serde_json::to_string_pretty(&decision)?;
            println!("{}", text::escape_json(&json));
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: {}", text::escape(&err.to_string()));
            Ok(ExitCode::FAILURE)
        }
    }
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let language = Language::of_dir(&args.path)?;
    let (component, default_out) = match language {
        Language::Rust => build_rust(&args)?,
        Language::Python | Language::JavaScript => {
            if let Some(target) = &args.target {
                bail!("--target {target} is for Rust policies; a {language:?} policy is built for one target only");
            }
            build_interpreted(language, &args.path)?
        }
    };
    let out = args.out.unwrap_or(default_out);
    // Load it as the host would, so a policy that will not load fails here.
    // The compiled code is cached: an interpreter takes seconds to compile,
    // and `policy test` right after needs the same code.
    let cache = CompileCache::new(CompileCache::default_dir());
    PolicyEngine::new(Limits::default(), Some(cache))?.load_bytes(&out, &component)?;

    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&out, &component).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "built {} ({} KiB, implements {})\nsha256 {}: pin it in the pool with policy_sha256 = \"{}\"",
        out.display(),
        component.len().div_ceil(1024),
        policy::CONTRACT,
        policy::sha256_hex(&component),
        policy::sha256_hex(&component),
    );
    Ok(ExitCode::SUCCESS)
}

/// A Rust crate's component, and where it goes by default:
/// `<target-dir>/policies/<crate>.wasm`.
fn build_rust(args: &BuildArgs) -> anyhow::Result<(Vec<u8>, PathBuf)> {
    let manifest = args.path.join("Cargo.toml").canonicalize()?;
    let target = match &args.target {
        Some(target) => target.clone(),
        None => default_target()?,
    };
    // Checked before cargo starts: a missing standard library otherwise
    // shows only after every dependency has compiled (~47 s).
    if let TargetLibrary::Missing(sysroot) = target_library(&args.path, &target) {
        bail!(
            "the Rust target {target} is not installed (no {}/lib/rustlib/{target})\n\
             install it: rustup target add {target}\n\
             (without rustup, a compiler that can build its standard library works too: \
             set CARGO_UNSTABLE_BUILD_STD=std,panic_abort; see docs/writing-a-policy.md)",
            sysroot.display()
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
            "--target",
            &target,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !output.status.success() {
        bail!(
            "cargo could not build {} for {target}\n\
             if the target is missing, install it: rustup target add {target}",
            manifest.display()
        );
    }
    let core = built_wasm(&output.stdout, &manifest).with_context(|| {
        format!(
            "cargo built no .wasm for {}: is its crate-type \"cdylib\"?",
            manifest.display()
        )
    })?;
    let bytes = policy::read_policy_file(&core)?;
    let component = policy::to_component(&core, &bytes)?.into_owned();
    // <target-dir>/<triple>/release/crate.wasm → <target-dir>/policies/crate.wasm
    let target_dir = core
        .ancestors()
        .nth(3)
        .context("unexpected cargo output path")?;
    let out = target_dir.join("policies").join(core.file_name().unwrap());
    Ok((component, out))
}

/// A Python or JavaScript policy's component, and where it goes by default:
/// `<dir>/<dir name>.wasm`. It is built against the policy's own `wit/`
/// when it has one, else against the contract built into this binary.
fn build_interpreted(language: Language, dir: &Path) -> anyhow::Result<(Vec<u8>, PathBuf)> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let own = dir.join("wit");
    let wit = if own.is_dir() {
        own
    } else {
        println!(
            "{} has no wit/: building against {}, the contract of this runner-scaler",
            dir.display(),
            policy::CONTRACT
        );
        let file = scratch.path().join("policy.wit");
        std::fs::write(&file, new::WIT)?;
        file
    };
    let component = super::componentize::build(language, &dir, &wit)?;
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy".into());
    Ok((component, dir.join(format!("{name}.wasm"))))
}

/// The `.wasm` cargo reported building for the package at `manifest`.
fn built_wasm(cargo_json: &[u8], manifest: &Path) -> Option<PathBuf> {
    let manifest = manifest.to_str()?;
    String::from_utf8_lossy(cargo_json)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["manifest_path"] == manifest)
        .flat_map(|msg| msg["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
}

/// Whether the compiler that builds the crate at `dir` has `target`'s
/// standard library.
enum TargetLibrary {
    Installed,
    /// Not in this sysroot.
    Missing(PathBuf),
    /// Not known (no rustc to ask), or not needed: the build compiles it
    /// (`CARGO_UNSTABLE_BUILD_STD`).
    Unknown,
}

fn target_library(dir: &Path, target: &str) -> TargetLibrary {
    if std::env::var_os("CARGO_UNSTABLE_BUILD_STD").is_some() {
        return TargetLibrary::Unknown;
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    // From the crate's directory, so a rust-toolchain file there chooses.
    let Ok(output) = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
    else {
        return TargetLibrary::Unknown;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !output.status.success() || !sysroot.is_dir() {
        TargetLibrary::Unknown
    } else if sysroot.join("lib/rustlib").join(target).is_dir() {
        TargetLibrary::Installed
    } else {
        TargetLibrary::Missing(sysroot)
    }
}

/// wasm32-wasip2 when its standard library is installed (it builds
/// components directly), else wasm32-unknown-unknown.
fn default_target() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc to find the installed targets")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let wasip2 = sysroot.join("lib/rustlib/wasm32-wasip2").is_dir();
    Ok(if wasip2 {
        "wasm32-wasip2"
    } else {
        "wasm32-unknown-unknown"
    }
    .to_string())
}
