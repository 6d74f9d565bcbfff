//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `test`: everything CI checks, on a fresh machine: formatting, a WASM
//!   toolchain (found or installed), every policy built, the whole test
//!   suite, every example policy's `cases.toml` (`runner-scaler policy
//!   test`), clippy, the user-data tests, cfn-lint on the CloudFormation
//!   template (installed from PyPI when missing).
//! - `policies`: only find the toolchain and build the policies into
//!   `target/policies/` (what `cargo test` and `cargo bench` read).
//! - `bundle [--arch x86_64|arm64]`: only build the Lambda bundle, with
//!   `scripts/package-lambda.sh` (CI builds the x86_64 one in `test`, before
//!   the tests that check it and deploy it to moto).
//!
//! The WASM toolchain: a rustup target if one is installed; otherwise
//! Debian's `rustc-web` with its library source, building `std` for
//! `wasm32-unknown-unknown` (installed with apt-get when missing). Policies
//! build in `target/wasm` so the two compilers never rebuild each other's
//! output. `rustup target add` is never called: it hangs without internet.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match task.as_str() {
        "test" => test(&root),
        "policies" => build_policies(&root, &find_wasm_toolchain()?).map(|_| ()),
        "bundle" => {
            let arch = match std::env::args().nth(2).as_deref() {
                None => "x86_64".to_string(),
                Some("--arch") => std::env::args()
                    .nth(3)
                    .context("--arch needs x86_64 or arm64")?,
                Some(other) => {
                    bail!("usage: cargo xtask bundle [--arch x86_64|arm64], not {other}")
                }
            };
            build_policies(&root, &find_wasm_toolchain()?)?;
            build_lambda_bundle(&root, &arch).map(|_| ())
        }
        _ => bail!("usage: cargo xtask test | policies | bundle [--arch x86_64|arm64]"),
    }
}

/// Everything CI runs.
fn test(root: &Path) -> Result<()> {
    let started = Instant::now();
    step("formatting", cargo(["fmt", "--all", "--check"]))?;
    let toolchain = find_wasm_toolchain()?;
    let policies = build_policies(root, &toolchain)?;
    // The scaffold test (host/tests/policy_cli.rs) builds WebAssembly: it gets
    // the toolchain under names of its own, so the host's build is untouched.
    let wasm_env: Vec<String> = toolchain
        .env
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    ensure_moto()?;
    ensure_aws_cli()?;
    let bundle = build_lambda_bundle(root, "x86_64")?;
    step(
        "tests",
        cargo(["test", "--workspace"])
            .env("RUNNER_SCALER_TEST_POLICIES", &policies)
            .env("RUNNER_SCALER_TEST_BUNDLE", &bundle)
            .env("RUNNER_SCALER_TEST_WASM_TARGET", toolchain.target)
            .env("RUNNER_SCALER_TEST_WASM_ENV", wasm_env.join(";")),
    )?;
    // Every example policy's cases, through the command users run.
    let binary = root.join("target/debug/runner-scaler");
    for dir in crate_dirs(&root.join("policies"))? {
        let name = dir_name(&dir);
        let cases = dir.join("cases.toml");
        if !cases.is_file() {
            bail!(
                "{} is missing: every example policy ships a cases.toml",
                cases.display()
            );
        }
        step(
            &format!("policy test {name}"),
            Command::new(&binary)
                .args(["policy", "test"])
                .arg(policies.join(format!("{name}.wasm")))
                .arg(&cases),
        )?;
    }
    step(
        "clippy",
        cargo([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "user data",
        Command::new("bash").arg("userdata/tests/run.sh"),
    )?;
    ensure_cfn_lint()?;
    step(
        "cfn-lint",
        Command::new("cfn-lint").arg("examples/cloudformation/runner-scaler.yaml"),
    )?;
    println!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// moto's server, the local AWS the host's tests start
/// (`host/tests/support/moto.rs`).
fn ensure_moto() -> Result<()> {
    ensure_from_pypi(
        "moto[server]",
        Command::new("python3").args(["-c", "import moto.server"]),
    )
}

/// The AWS CLI, which `scripts/deploy.sh` drives and `host/tests/deploy.rs`
/// runs against moto. Pinned to the version deploy.sh installs.
fn ensure_aws_cli() -> Result<()> {
    ensure_from_pypi("awscli==1.45.11", Command::new("aws").arg("--version"))
}

/// The Lambda bundle for `arch`, built as users build it
/// (`scripts/package-lambda.sh`: cargo-zigbuild against Amazon Linux 2023's
/// glibc, installed from PyPI when missing; the example policies,
/// precompiled). Its own release build: a debug binary is not what ships.
fn build_lambda_bundle(root: &Path, arch: &str) -> Result<PathBuf> {
    let zip = root.join(format!("target/lambda/runner-scaler-lambda-{arch}.zip"));
    step(
        &format!("lambda bundle ({arch})"),
        Command::new("bash")
            .arg("scripts/package-lambda.sh")
            .args(["--arch", arch, "--out"])
            .arg(&zip),
    )?;
    Ok(zip)
}

/// cfn-lint, which checks the CloudFormation template against AWS's resource
/// schemas.
fn ensure_cfn_lint() -> Result<()> {
    ensure_from_pypi("cfn-lint", Command::new("cfn-lint").arg("--version"))
}

/// Install `package` from PyPI unless `works` already succeeds, then check
/// that it does.
fn ensure_from_pypi(package: &str, works: &mut Command) -> Result<()> {
    let mut works = || {
        works
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if works() {
        return Ok(());
    }
    let pip = ["-m", "pip", "install", "--quiet", package];
    // A Debian python refuses installs outside a venv (PEP 668) unless told.
    if step(
        &format!("install {package}"),
        Command::new("python3").args(pip),
    )
    .is_err()
    {
        step(
            &format!("install {package} (system python)"),
            Command::new("python3")
                .args(pip)
                .arg("--break-system-packages"),
        )?;
    }
    if !works() {
        bail!("{package} is installed but still does not run: is pip's script directory on PATH?");
    }
    Ok(())
}

/// How to build for WebAssembly on this machine.
struct WasmToolchain {
    target: &'static str,
    env: Vec<(&'static str, String)>,
}

fn find_wasm_toolchain() -> Result<WasmToolchain> {
    // A rustup target, if one is installed (asked with a timeout: rustup may
    // try the network).
    if let Some(installed) = output_within(
        Command::new("rustup").args(["target", "list", "--installed"]),
        Duration::from_secs(20),
    ) {
        for target in ["wasm32-wasip2", "wasm32-unknown-unknown"] {
            if installed.lines().any(|line| line.trim() == target) {
                println!("xtask: using rustup's {target}");
                return Ok(WasmToolchain {
                    target,
                    env: vec![],
                });
            }
        }
    }
    let debian_ready = || {
        Path::new("/usr/bin/rustc").exists()
            && Path::new("/usr/lib/rustlib/src/rust/library").is_dir()
            && Path::new("/usr/bin/wasm-ld").exists()
    };
    if !debian_ready() {
        println!(
            "xtask: no WASM target installed; installing Debian's rustc-web, rust-web-src and lld"
        );
        step(
            "apt-get update",
            Command::new("apt-get").args(["update", "-qq"]),
        )?;
        step(
            "apt-get install",
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "rustc-web", "rust-web-src", "lld"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        if !debian_ready() {
            bail!("Debian's rustc-web route is still incomplete after apt-get install");
        }
    }
    println!("xtask: using Debian's rustc-web with build-std for wasm32-unknown-unknown");
    Ok(WasmToolchain {
        target: "wasm32-unknown-unknown",
        env: vec![
            ("RUSTC", "/usr/bin/rustc".into()),
            ("RUSTC_BOOTSTRAP", "1".into()),
            ("CARGO_UNSTABLE_BUILD_STD", "std,panic_abort".into()),
            (
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER",
                "wasm-ld".into(),
            ),
        ],
    })
}

/// Build every policy crate into `target/policies/<crate dir>.wasm`: the
/// examples with `runner-scaler policy build` (so the test suite exercises
/// the command users run), the hostile test policies as plain core modules
/// (one of them is built for the wrong contract on purpose, which `policy
/// build` would refuse; the host must refuse it at load time).
fn build_policies(root: &Path, toolchain: &WasmToolchain) -> Result<PathBuf> {
    let out = root.join("target/policies");
    std::fs::create_dir_all(&out)?;
    let examples = crate_dirs(&root.join("policies"))?;
    let hostile = crate_dirs(&root.join("host/tests/policies"))?;
    step(
        "build runner-scaler",
        cargo(["build", "--package", "runner-scaler"]),
    )?;

    // One cargo run compiles every policy, in parallel.
    let mut all = wasm_cargo(toolchain);
    all.args(["build", "--release", "--target", toolchain.target]);
    for dir in examples.iter().chain(&hostile) {
        all.arg("--package").arg(package_name(dir)?);
    }
    step("build policies", &mut all)?;

    let binary = root.join("target/debug/runner-scaler");
    for dir in &examples {
        let name = dir_name(dir);
        let mut build = Command::new(&binary);
        build
            .args(["policy", "build", "--target", toolchain.target, "--out"])
            .arg(out.join(format!("{name}.wasm")))
            .arg(dir)
            .env("CARGO_TARGET_DIR", root.join("target/wasm"))
            .envs(toolchain.env.iter().map(|(k, v)| (*k, v)));
        step(&format!("policy build {name}"), &mut build)?;
    }
    for dir in &hostile {
        let name = dir_name(dir);
        let crate_file = package_name(dir)?.replace('-', "_");
        let core = root.join(format!(
            "target/wasm/{}/release/{crate_file}.wasm",
            toolchain.target
        ));
        std::fs::copy(&core, out.join(format!("{name}.wasm")))
            .with_context(|| format!("cannot copy {}", core.display()))?;
    }
    println!(
        "xtask: {} policies in {}",
        examples.len() + hostile.len(),
        out.display()
    );
    Ok(out)
}

/// `cargo` for WebAssembly: the toolchain's environment and its own target dir.
fn wasm_cargo(toolchain: &WasmToolchain) -> Command {
    let mut command = Command::new("cargo");
    command
        .env("CARGO_TARGET_DIR", "target/wasm")
        .envs(toolchain.env.iter().map(|(k, v)| (*k, v)));
    command
}

fn cargo<const N: usize>(args: [&str; N]) -> Command {
    let mut command = Command::new("cargo");
    command.args(args);
    command
}

/// Run `command`, failing with the step's name if it fails.
fn step(name: &str, mut command: impl std::borrow::BorrowMut<Command>) -> Result<()> {
    let command = command.borrow_mut();
    println!("xtask: == {name}");
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("{name}: cannot start {command:?}"))?;
    if !status.success() {
        bail!("{name} failed ({status}): {command:?}");
    }
    println!("xtask: {name}: ok in {:.1?}", started.elapsed());
    Ok(())
}

/// The stdout of `command` if it succeeds within `limit`; None otherwise
/// (the process is killed when it overruns).
fn output_within(command: &mut Command, limit: Duration) -> Option<String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().ok()? {
            Some(status) if status.success() => {
                let mut out = String::new();
                std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
                return Some(out);
            }
            Some(_) => return None,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                println!("xtask: {command:?} did not answer within {limit:?}; ignoring it");
                return None;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The crate directories directly under `dir`, sorted.
fn crate_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn dir_name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// The `name` in a crate's Cargo.toml `[package]` table.
fn package_name(dir: &Path) -> Result<String> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|line| {
            line.strip_prefix("name = ")
                .map(|v| v.trim().trim_matches('"').to_string())
        })
        .with_context(|| format!("no package name in {}/Cargo.toml", dir.display()))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}
