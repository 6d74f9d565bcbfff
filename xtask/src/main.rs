//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `test`: everything CI checks, on a fresh machine: formatting, a WASM
//!   toolchain (found or installed), the Python and JavaScript policy tools
//!   (installed into `target/tools/`), the workspace's tests built once and
//!   linted by clippy as they build, every policy built, the whole test
//!   suite, the Python and JavaScript examples' native tests, every example
//!   policy's cases (`runner-scaler policy test`), the user-data
//!   tests, cfn-lint on the CloudFormation templates (installed from PyPI
//!   when missing), `packer validate` on the Packer template (Debian's
//!   packer, installed with apt-get when missing), the release files with
//!   their checksums, Prometheus (Debian's, for the rules' and the alerts'
//!   tests), the systemd unit (`systemd-analyze`) and the container image
//!   (podman). Chromium (Debian's package, installed with apt-get when
//!   missing) draws the simulator's HTML report in the tests; jq (Debian's,
//!   the same way) runs the docs' `jq` examples on recorded decision records.
//! - `policies`: only find the toolchains and build the policies into
//!   `target/policies/` (what `cargo test` and `cargo bench` read).
//! - `bundle [--arch x86_64|arm64]`: only build the Lambda bundle, with
//!   `scripts/package-lambda.sh` (CI builds the x86_64 one in `test`, before
//!   the tests that check it and deploy it to moto).
//! - `dist [--arch x86_64|arm64]...`: the release's files in `target/dist/`:
//!   the `runner-scaler` binary for Linux (the Lambda bundle's bootstrap:
//!   glibc 2.34 at most), the Lambda zip, the example policies and a
//!   `SHA256SUMS` over them (CI writes and checks the x86_64 set in `test`,
//!   from the bundle it builds anyway).
//! - `packaging`: only the systemd unit's and the container image's checks
//!   (`systemd-analyze`, podman), against the release files of `dist`.
//! - `policy-table [--write]`: print the README's table of example policies,
//!   generated from their params structs (`--write` puts it in README.md; a
//!   test checks that README.md has it).
//! - `readme-table`: build the policies, then rewrite the README's
//!   simulated tables with the output of the commands printed above them
//!   (`host/tests/it/readme.rs` checks them; this runs it in rewrite mode).
//!
//! The WASM toolchain: a rustup target if one is installed; otherwise
//! Debian's `rustc-web` with its library source, building `std` for
//! `wasm32-unknown-unknown` (installed with apt-get when missing). Policies
//! build in `target/wasm` so the two compilers never rebuild each other's
//! output. `rustup target add` is never called: it hangs without internet.
//!
//! Python and JavaScript policies (a directory with `app.py` or
//! `package.json`, beside the Rust crates) are built with componentize-py
//! and componentize-js, pinned and installed into `target/tools/` (a venv
//! from PyPI, `npm ci` from `xtask/js-tools/`): nothing global is assumed,
//! and a machine that cannot install them fails the run, saying why.

mod policy_table;

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
        "policies" => {
            let toolchain = find_wasm_toolchain()?;
            build_host()?;
            let policies = build_policies(&root, &toolchain)?;
            build_interpreted_policies(&root, &ensure_policy_tools(&root)?, &policies)
        }
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
            let toolchain = find_wasm_toolchain()?;
            build_host()?;
            build_policies(&root, &toolchain)?;
            build_lambda_bundle(&root, &arch).map(|_| ())
        }
        "dist" => {
            let mut arches = vec![];
            let mut args = std::env::args().skip(2);
            while let Some(arg) = args.next() {
                match (arg.as_str(), args.next()) {
                    ("--arch", Some(arch)) => arches.push(arch),
                    _ => bail!("usage: cargo xtask dist [--arch x86_64|arm64]..., not {arg}"),
                }
            }
            if arches.is_empty() {
                arches.push("x86_64".into());
            }
            let toolchain = find_wasm_toolchain()?;
            build_host()?;
            let policies = build_policies(&root, &toolchain)?;
            build_interpreted(&root, &ensure_policy_tools(&root)?, &policies, false)?;
            let mut bundles = vec![];
            for arch in &arches {
                bundles.push((arch.clone(), build_lambda_bundle(&root, arch)?));
            }
            dist(&root, &bundles, &policies).map(|_| ())
        }
        "packaging" => {
            let dist = root.join("target/dist");
            if !dist.join("runner-scaler-linux-x86_64").is_file() {
                bail!("{} has no x86_64 binary: run `cargo xtask dist` first", dist.display());
            }
            build_host()?;
            check_systemd_unit(&root)?;
            check_container(&root, &dist)
        }
        "readme-table" => readme_table(&root),
        "policy-table" => policy_table::run(&root, std::env::args().nth(2).as_deref()),
        _ => bail!(
            "usage: cargo xtask test | policies | bundle [--arch x86_64|arm64] | dist [--arch x86_64|arm64]... | packaging | policy-table [--write] | readme-table"
        ),
    }
}

/// Everything CI runs.
fn test(root: &Path) -> Result<()> {
    let started = Instant::now();
    step("formatting", cargo(["fmt", "--all", "--check"]))?;
    let toolchain = find_wasm_toolchain()?;
    // Everything below runs what this builds: the policies are built with
    // its binary, the tests are its test binaries, and it is linted.
    step(
        "build and clippy",
        linted(["test", "--workspace", "--all-targets", "--no-run"]),
    )?;
    let policies = build_policies(root, &toolchain)?;
    let tools = ensure_policy_tools(root)?;
    build_interpreted_policies(root, &tools, &policies)?;
    test_interpreted_natively(root, &tools)?;
    // The scaffold test (host/tests/it/policy_cli.rs) builds WebAssembly: it gets
    // the toolchain under names of its own, so the host's build is untouched.
    let wasm_env: Vec<String> = toolchain
        .env
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    ensure_moto()?;
    ensure_aws_cli()?;
    ensure_chromium()?;
    ensure_jq()?;
    let bundle = build_lambda_bundle(root, "x86_64")?;
    let dist = dist(root, &[("x86_64".into(), bundle.clone())], &policies)?;
    let prometheus = ensure_prometheus()?;
    step(
        "tests",
        linted(["test", "--workspace"])
            .env("RUNNER_SCALER_TEST_POLICIES", &policies)
            .env("RUNNER_SCALER_TEST_BUNDLE", &bundle)
            .env("RUNNER_SCALER_TEST_DIST", &dist)
            .env("RUNNER_SCALER_TEST_PROMETHEUS", &prometheus)
            .env("RUNNER_SCALER_TEST_WASM_TARGET", toolchain.target)
            .env("RUNNER_SCALER_TEST_WASM_ENV", wasm_env.join(";"))
            .envs(tools.env()),
    )?;
    test_example_cases(root, &tools, &policies)?;
    step(
        "user data",
        Command::new("bash").arg("userdata/tests/run.sh"),
    )?;
    ensure_cfn_lint()?;
    step(
        "cfn-lint",
        Command::new("cfn-lint").args([
            "examples/cloudformation/runner-scaler.yaml",
            "examples/cloudformation/runner-image.yaml",
        ]),
    )?;
    validate_packer_template()?;
    check_systemd_unit(root)?;
    check_container(root, &dist)?;
    println!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// `target/debug/runner-scaler`, which builds the policies, for the tasks
/// that do not build the tests (whose build makes it too).
fn build_host() -> Result<()> {
    step(
        "build runner-scaler",
        cargo(["build", "--package", "runner-scaler"]),
    )
}

/// `cargo ARGS` with clippy as the workspace crates' compiler, warnings
/// denied. `cargo clippy --workspace --all-targets -- -D warnings` runs the
/// same clippy-driver the same way, under `cargo check`, which compiles every
/// dependency once more (as metadata); under `cargo test` the workspace is
/// linted as it builds, and the dependencies are compiled once. Every call
/// must pass the same wrapper, or the workspace crates compile again.
///
/// Why the tests' build is the only one: their dev-dependencies change the
/// features of tokio, regex and getrandom, so a `cargo build` beside them
/// would compile every crate above those a second time.
fn linted<const N: usize>(args: [&str; N]) -> Command {
    let mut command = Command::new("cargo");
    command
        .args([
            "--config",
            "build.rustc-workspace-wrapper=\"clippy-driver\"",
        ])
        .args(args)
        // `-D warnings`, as `cargo clippy` hands it to clippy-driver.
        .env(
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
        );
    command
}

/// Rewrite the README's simulated tables from their commands.
fn readme_table(root: &Path) -> Result<()> {
    let toolchain = find_wasm_toolchain()?;
    build_host()?;
    let policies = build_policies(root, &toolchain)?;
    step(
        "README tables",
        cargo(["test", "-p", "runner-scaler", "--test", "it", "readme::"])
            .env("RUNNER_SCALER_TEST_POLICIES", &policies)
            .env("RUNNER_SCALER_BLESS", "1"),
    )
}

/// moto's server, the local AWS the host's tests start
/// (`host/tests/it/support/moto.rs`).
fn ensure_moto() -> Result<()> {
    ensure_from_pypi(
        "moto[server]",
        Command::new("python3").args(["-c", "import moto.server"]),
    )
}

/// The AWS CLI, which `scripts/deploy.sh` drives and `host/tests/it/deploy.rs`
/// runs against moto. Pinned to the version deploy.sh installs.
fn ensure_aws_cli() -> Result<()> {
    ensure_from_pypi("awscli==1.45.11", Command::new("aws").arg("--version"))
}

/// Chromium, which draws `simulate --report`'s HTML in
/// `host/tests/it/report.rs` (under CI=true that test fails without it):
/// Debian's package with apt-get, without its recommends (desktop
/// services a headless browser does not use). Measured with them on
/// Debian 12 and 2 cores: 49 s and 130 packages; without, about 40.
fn ensure_chromium() -> Result<()> {
    let works = || {
        Command::new("chromium")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if works() {
        return Ok(());
    }
    step(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    step(
        "install chromium",
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    if !works() {
        bail!("chromium is installed but `chromium --version` fails");
    }
    Ok(())
}

/// jq, which `host/tests/it/decision_record.rs` runs on recorded decision
/// records to check the docs' `jq` examples: Debian's package (jq 1.6 on
/// bookworm, with libjq1 and libonig5, about 0.5 MB) with apt-get when
/// missing.
fn ensure_jq() -> Result<()> {
    if !runs("jq", &["--version"]) {
        apt_install(&["jq"])?;
    }
    if !runs("jq", &["--version"]) {
        bail!("jq is installed but `jq --version` fails");
    }
    Ok(())
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

/// The release's files in `target/dist/` (emptied first), for each
/// (architecture, Lambda zip) in `bundles`: `runner-scaler-linux-ARCH`, the
/// zip's own `bootstrap` (one build, already checked by package-lambda.sh:
/// its ELF machine, glibc 2.34 at most), and the zip as
/// `runner-scaler-lambda-ARCH.zip`; then the example policies of
/// `policies/` as `policies/NAME.wasm`, and `SHA256SUMS` over every file
/// (`sha256sum --check SHA256SUMS` in the directory checks them, as the
/// xtask does before it returns the directory).
fn dist(root: &Path, bundles: &[(String, PathBuf)], policies: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    println!("xtask: == release files");
    let started = Instant::now();
    let dir = root.join("target/dist");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("policies"))?;
    for (arch, zip) in bundles {
        let binary = dir.join(format!("runner-scaler-linux-{arch}"));
        let extracted = Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\nopen(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('bootstrap'))",
            ])
            .arg(zip)
            .arg(&binary)
            .status()
            .context("cannot run python3 to read the bundle")?;
        if !extracted.success() {
            bail!("cannot take the bootstrap out of {}", zip.display());
        }
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))?;
        let target = dir.join(format!("runner-scaler-lambda-{arch}.zip"));
        std::fs::copy(zip, &target)
            .with_context(|| format!("cannot copy {} to {}", zip.display(), target.display()))?;
    }
    for (example, _) in policy_dirs(&root.join("policies"))? {
        let name = format!("{}.wasm", dir_name(&example));
        std::fs::copy(policies.join(&name), dir.join("policies").join(&name)).with_context(
            || {
                format!(
                    "{} is missing: `cargo xtask policies` builds it",
                    policies.join(&name).display()
                )
            },
        )?;
    }
    let mut files = vec![];
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path)? {
                files.push(inner?.path());
            }
        } else {
            files.push(path);
        }
    }
    let mut files: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let sums = Command::new("sha256sum")
        .arg("--")
        .args(&files)
        .current_dir(&dir)
        .output()
        .context("cannot run sha256sum (coreutils)")?;
    if !sums.status.success() {
        bail!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&sums.stderr)
        );
    }
    std::fs::write(dir.join("SHA256SUMS"), &sums.stdout)?;
    step(
        "sha256sum --check SHA256SUMS",
        Command::new("sha256sum")
            .args(["--check", "--strict", "--quiet", "SHA256SUMS"])
            .current_dir(&dir),
    )?;
    for file in &files {
        let size = std::fs::metadata(dir.join(file))?.len();
        println!("xtask:   {file} ({:.1} MiB)", size as f64 / 1048576.0);
    }
    println!(
        "xtask: release files: {} and SHA256SUMS in {} ({:.1?})",
        files.len(),
        dir.display(),
        started.elapsed()
    );
    Ok(dir)
}

/// Install Debian's `packages` with apt-get (without their recommends),
/// updating the package lists first only when a first try fails.
fn apt_install(packages: &[&str]) -> Result<()> {
    let install = || {
        step(
            &format!("apt-get install {}", packages.join(" ")),
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install().is_err() {
        step(
            "apt-get update",
            Command::new("apt-get").args(["update", "-qq"]),
        )?;
        install()?;
    }
    Ok(())
}

/// Whether `program ARGS` runs and succeeds.
fn runs(program: &str, args: &[&str]) -> bool {
    output_within(Command::new(program).args(args), Duration::from_secs(60)).is_some()
}

/// The directory of `prometheus` and `promtool`, Debian's (`apt-get install
/// prometheus` when missing): the rules' checks and unit tests and the
/// end-to-end alert test run them (host/tests/it/ops.rs).
fn ensure_prometheus() -> Result<PathBuf> {
    if !runs("prometheus", &["--version"]) || !runs("promtool", &["--version"]) {
        apt_install(&["prometheus"])?;
    }
    let version = output_within(
        Command::new("prometheus").arg("--version"),
        Duration::from_secs(60),
    )
    .context("prometheus does not run after apt-get install prometheus")?;
    println!(
        "xtask: using {}",
        version.lines().next().unwrap_or_default().trim()
    );
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("prometheus").is_file() && dir.join("promtool").is_file())
        .context("prometheus and promtool are not in one directory on PATH")
}

/// `ops/systemd/runner-scaler.service` as systemd reads it: `systemd-analyze
/// verify` (any warning fails: an unknown key is only a warning to systemd)
/// and `systemd-analyze security --offline` with an exposure of 1.5 at most
/// (it is 1.1). The unit names the installed binary, `/usr/local/bin`, which
/// verify requires to exist: the copy checked here names the one just built.
fn check_systemd_unit(root: &Path) -> Result<()> {
    if !runs("systemd-analyze", &["--version"]) {
        apt_install(&["systemd"])?;
    }
    let unit = std::fs::read_to_string(root.join("ops/systemd/runner-scaler.service"))?;
    let installed = "ExecStart=/usr/local/bin/runner-scaler ";
    if !unit.contains(installed) {
        bail!("ops/systemd/runner-scaler.service no longer starts {installed}...: update the xtask's check");
    }
    let dir = root.join("target/tmp/systemd-unit");
    std::fs::create_dir_all(&dir)?;
    let copy = dir.join("runner-scaler.service");
    let binary = root.join("target/debug/runner-scaler");
    std::fs::write(
        &copy,
        unit.replace(installed, &format!("ExecStart={} ", binary.display())),
    )?;
    println!("xtask: == systemd-analyze verify");
    let started = Instant::now();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .context("cannot run systemd-analyze")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    if !verify.status.success() || !said.trim().is_empty() {
        bail!("systemd-analyze verify ops/systemd/runner-scaler.service:\n{said}");
    }
    step(
        "systemd-analyze security --offline",
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=15", "--no-pager"])
            .arg(&copy)
            .stdout(Stdio::null()),
    )?;
    println!("xtask: systemd unit: ok in {:.1?}", started.elapsed());
    Ok(())
}

/// `ops/container/Containerfile` built with podman from the release files
/// in `dist` and run (`--version`) as the user it declares. No registry can
/// be reached from CI, so its pinned base (distroless's cc-debian12) is
/// replaced by a stand-in made here from what the binary links against on
/// this Debian 12 machine (glibc and libgcc, the packages cc-debian12 is
/// made of), passed as `BASE`; the rest of the file is built as written.
/// podman runs containers with runc (crun refuses a host with both cgroup
/// versions mounted, as some CI sandboxes are) and with limits no higher
/// than the caller's (without CAP_SYS_RESOURCE none may be raised).
fn check_container(root: &Path, dist: &Path) -> Result<()> {
    if !runs("podman", &["--version"]) || !runs("runc", &["--version"]) {
        apt_install(&["podman", "runc"])?;
    }
    println!("xtask: == container image");
    let started = Instant::now();
    let binary = dist.join("runner-scaler-linux-x86_64");
    let ldd = Command::new("ldd")
        .arg(&binary)
        .output()
        .context("cannot run ldd")?;
    let libraries: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(|path| path.trim_start_matches('/').to_string())
        .collect();
    if libraries.is_empty() {
        bail!(
            "ldd found no libraries in {}: {}",
            binary.display(),
            String::from_utf8_lossy(&ldd.stderr)
        );
    }
    let dir = root.join("target/tmp/container");
    std::fs::create_dir_all(&dir)?;
    let base = dir.join("base.tar");
    step(
        "container: stand-in base (this machine's glibc and libgcc)",
        Command::new("tar")
            .arg("--dereference")
            .arg("-cf")
            .arg(&base)
            .arg("-C")
            .arg("/")
            .args(&libraries),
    )?;
    let base_image = "localhost/runner-scaler-test-base:latest";
    let image = "localhost/runner-scaler:test";
    step(
        "podman import",
        Command::new("podman")
            .args(["import", "--quiet"])
            .arg(&base)
            .arg(base_image)
            .stdout(Stdio::null()),
    )?;
    step(
        "podman build",
        Command::new("podman")
            .args(["build", "--quiet", "--pull=never", "--build-arg"])
            .arg(format!("BASE={base_image}"))
            .arg("--file")
            .arg(root.join("ops/container/Containerfile"))
            .args(["--tag", image])
            .arg(dist)
            .stdout(Stdio::null()),
    )?;
    let user = output_within(
        Command::new("podman").args(["image", "inspect", "--format", "{{.Config.User}}", image]),
        Duration::from_secs(60),
    )
    .context("podman image inspect failed")?;
    let user = user.trim();
    if user.is_empty() || user == "root" || user.starts_with("0:") || user == "0" {
        bail!("the image runs as root ({user:?}): the Containerfile must set a non-root USER");
    }
    let run = Command::new("podman")
        .args([
            "--runtime",
            "runc",
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            image,
            "--version",
        ])
        .output()
        .context("cannot run podman")?;
    let said = String::from_utf8_lossy(&run.stdout);
    let _ = Command::new("podman")
        .args(["rmi", "--force", image, base_image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !run.status.success() || !said.starts_with("runner-scaler ") {
        bail!(
            "podman run {image} --version: {said}{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    println!(
        "xtask: container image: built, runs as {user}: {} ({:.1?})",
        said.trim(),
        started.elapsed()
    );
    Ok(())
}

/// cfn-lint, which checks the CloudFormation template against AWS's resource
/// schemas.
fn ensure_cfn_lint() -> Result<()> {
    ensure_from_pypi("cfn-lint", Command::new("cfn-lint").arg("--version"))
}

/// The Packer template of the runner image (`examples/packer/`): `packer fmt
/// -check` parses both files, and `packer validate` checks the template's
/// build against the amazon-ebs builder (its settings, the install script's
/// path). Debian's packer (1.6.6, installed with apt-get when missing: about
/// 12 s with the download, and 2 s of `apt-get update`) has that builder built
/// in, so nothing is downloaded from GitHub; a newer Packer needs `packer
/// init` first, and cannot read plugins.pkr.hcl's `required_plugins` in 1.6.
fn validate_packer_template() -> Result<()> {
    let works = || {
        Command::new("packer")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !works() {
        step(
            "apt-get update",
            Command::new("apt-get").args(["update", "-qq"]),
        )?;
        step(
            "install packer",
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "packer"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        if !works() {
            bail!("Debian's packer is installed but `packer version` still fails");
        }
    }
    step(
        "packer fmt",
        Command::new("packer").args(["fmt", "-check", "-diff", "examples/packer"]),
    )?;
    step(
        "packer validate",
        Command::new("packer")
            .args(["validate", "-var", "region=us-east-1"])
            .arg("examples/packer/runner-image.pkr.hcl")
            .env("CHECKPOINT_DISABLE", "1"),
    )
    .context(
        "Debian's packer (1.6) has the amazon builder built in; a newer Packer needs the \
         amazon plugin (`packer init examples/packer`) before it can validate",
    )
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
    let rustup_target = || {
        let list = output_within(
            Command::new("rustup").args(["target", "list", "--installed"]),
            Duration::from_secs(20),
        )?;
        ["wasm32-wasip2", "wasm32-unknown-unknown"]
            .into_iter()
            .find(|target| list.lines().any(|line| line.trim() == *target))
    };
    let mut target = rustup_target();
    if target.is_none() && runs("rustup", &["--version"]) {
        // Added with a timeout (about 3 s here; it once hung without a
        // network); if that fails, Debian's route below.
        println!("xtask: adding rustup's wasm32-unknown-unknown");
        output_within(
            Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]),
            Duration::from_secs(120),
        );
        target = rustup_target();
    }
    if let Some(target) = target {
        println!("xtask: using rustup's {target}");
        return Ok(WasmToolchain {
            target,
            env: vec![],
        });
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

/// Build every policy crate into `target/policies/<crate dir>.wasm` (with
/// `target/debug/runner-scaler`, built before): the
/// examples with `runner-scaler policy build` (so the test suite exercises
/// the command users run), the hostile test policies as plain core modules
/// (one of them is built for the wrong contract on purpose, which `policy
/// build` would refuse; the host must refuse it at load time).
fn build_policies(root: &Path, toolchain: &WasmToolchain) -> Result<PathBuf> {
    let out = root.join("target/policies");
    std::fs::create_dir_all(&out)?;
    let examples = crate_dirs(&root.join("policies"))?;
    let hostile = crate_dirs(&root.join("host/tests/policies"))?;
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

/// Every example policy's cases, through the command users run. A policy in
/// another language than Rust may run another's cases: its `policy.toml`
/// says `cases = "../business-hours/cases.toml"`, so the ports of an example
/// answer the very cases of the original.
fn test_example_cases(root: &Path, tools: &PolicyTools, policies: &Path) -> Result<()> {
    let binary = root.join("target/debug/runner-scaler");
    for (dir, _) in policy_dirs(&root.join("policies"))? {
        let name = dir_name(&dir);
        let cases = cases_file(&dir)?;
        step(
            &format!("policy test {name}"),
            Command::new(&binary)
                .args(["policy", "test"])
                .arg(policies.join(format!("{name}.wasm")))
                .arg(&cases)
                .envs(tools.env()),
        )?;
    }
    Ok(())
}

/// The cases of the example policy in `dir`: the file its `policy.toml`
/// names, else its own `cases.toml`.
fn cases_file(dir: &Path) -> Result<PathBuf> {
    let manifest = dir.join("policy.toml");
    let cases = if manifest.is_file() {
        let text = std::fs::read_to_string(&manifest)?;
        let named = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("cases = "))
            .with_context(|| {
                format!(
                    "{} has no `cases = \"...\"` line naming its case file",
                    manifest.display()
                )
            })?;
        dir.join(named.trim().trim_matches('"'))
    } else {
        dir.join("cases.toml")
    };
    if !cases.is_file() {
        bail!(
            "{} is missing: every example policy ships a cases.toml (or names one in policy.toml)",
            cases.display()
        );
    }
    Ok(cases)
}

/// A policy's language, known by the file that marks its directory (as
/// `runner-scaler policy build` knows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lang {
    Rust,
    Python,
    JavaScript,
}

/// The policy directories directly under `dir` (Rust crates, Python apps,
/// JavaScript packages), sorted.
fn policy_dirs(dir: &Path) -> Result<Vec<(PathBuf, Lang)>> {
    let mut dirs: Vec<(PathBuf, Lang)> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| {
            let lang = if path.join("Cargo.toml").is_file() {
                Lang::Rust
            } else if path.join("app.py").is_file() {
                Lang::Python
            } else if path.join("package.json").is_file() {
                Lang::JavaScript
            } else {
                return None;
            };
            Some((path, lang))
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Where the tools that build Python and JavaScript policies are installed,
/// and the compile cache the runs share.
struct PolicyTools {
    componentize_py: PathBuf,
    componentize_js: PathBuf,
    python: PathBuf,
    cache: PathBuf,
}

/// The versions runner-scaler is tested with; `policy build` warns about
/// others (host/src/cli/componentize.rs).
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

impl PolicyTools {
    /// What `runner-scaler` needs to find the tools, and the compile cache:
    /// an interpreter takes seconds to compile, so every run (`policy build`,
    /// `policy test`, the test suite) compiles each component once.
    fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("COMPONENTIZE_PY", self.componentize_py.clone()),
            ("COMPONENTIZE_JS", self.componentize_js.clone()),
            ("RUNNER_SCALER_CACHE_DIR", self.cache.clone()),
        ]
    }
}

/// componentize-py (a venv in `target/tools/python`, from PyPI) and
/// componentize-js with jco (`npm ci` in `target/tools/js`, from the
/// lockfile in `xtask/js-tools/`), installed unless the pinned versions are
/// already there. Fails, saying what is missing, when they cannot be.
fn ensure_policy_tools(root: &Path) -> Result<PolicyTools> {
    let tools = root.join("target/tools");
    let venv = tools.join("python");
    let componentize_py = venv.join("bin/componentize-py");
    let wanted_py = COMPONENTIZE_PY.replace("==", " ");
    if !reports_version(&componentize_py, &wanted_py) {
        if !venv.join("bin/pip").is_file() {
            step(
                "python venv for componentize-py",
                Command::new("python3").arg("-m").arg("venv").arg(&venv),
            )
            .context(
                "Python policies are built with componentize-py, installed into a venv: \
                 python3 with its venv module is needed (Debian: apt-get install python3-venv)",
            )?;
        }
        step(
            &format!("install {COMPONENTIZE_PY}"),
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                COMPONENTIZE_PY,
            ]),
        )
        .context("cannot install componentize-py from PyPI")?;
        if !reports_version(&componentize_py, &wanted_py) {
            bail!(
                "{} does not report {wanted_py} after installing it",
                componentize_py.display()
            );
        }
    }

    let js = tools.join("js");
    let componentize_js = js.join("node_modules/.bin/componentize-js");
    let lock = root.join("xtask/js-tools/package-lock.json");
    let installed_lock = js.join("package-lock.json");
    let current = std::fs::read(&lock).ok() == std::fs::read(&installed_lock).ok()
        && reports_version(&componentize_js, COMPONENTIZE_JS_VERSION);
    if !current {
        for tool in ["node", "npm"] {
            if output_within(Command::new(tool).arg("--version"), Duration::from_secs(20)).is_none()
            {
                bail!(
                    "{tool} is not installed: JavaScript policies are built with componentize-js, \
                     a Node.js program (Node.js 20 or newer, with npm)"
                );
            }
        }
        std::fs::create_dir_all(&js)?;
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(root.join("xtask/js-tools").join(file), js.join(file))
                .with_context(|| format!("cannot copy xtask/js-tools/{file}"))?;
        }
        step(
            "install componentize-js and jco (npm ci)",
            Command::new("npm")
                .args([
                    "ci",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    "--prefix",
                ])
                .arg(&js),
        )
        .context("cannot install componentize-js from npm")?;
        if !reports_version(&componentize_js, COMPONENTIZE_JS_VERSION) {
            bail!(
                "{} does not report {COMPONENTIZE_JS_VERSION} after npm ci",
                componentize_js.display()
            );
        }
    }
    Ok(PolicyTools {
        componentize_py,
        componentize_js,
        python: venv.join("bin/python"),
        cache: root.join("target/policy-cache"),
    })
}

/// Whether `program --version` prints a line ending in `version`.
fn reports_version(program: &Path, version: &str) -> bool {
    program.is_file()
        && output_within(
            Command::new(program).arg("--version"),
            Duration::from_secs(60),
        )
        .is_some_and(|out| out.trim().ends_with(version))
}

/// Build the Python and JavaScript policies — the examples in `policies/`
/// and the hostile ones in `host/tests/interpreted/` — into `policies`, with
/// `runner-scaler policy build` as users do.
fn build_interpreted_policies(root: &Path, tools: &PolicyTools, policies: &Path) -> Result<()> {
    build_interpreted(root, tools, policies, true)
}

/// [`build_interpreted_policies`], the hostile ones only if `hostile`
/// (what the tests need; a release ships the examples).
fn build_interpreted(
    root: &Path,
    tools: &PolicyTools,
    policies: &Path,
    hostile: bool,
) -> Result<()> {
    let binary = root.join("target/debug/runner-scaler");
    let mut dirs = policy_dirs(&root.join("policies"))?;
    if hostile {
        dirs.extend(policy_dirs(&root.join("host/tests/interpreted"))?);
    }
    for (dir, lang) in dirs {
        if lang == Lang::Rust {
            continue;
        }
        let name = dir_name(&dir);
        step(
            &format!("policy build {name}"),
            Command::new(&binary)
                .args(["policy", "build", "--out"])
                .arg(policies.join(format!("{name}.wasm")))
                .arg(&dir)
                .envs(tools.env()),
        )?;
    }
    Ok(())
}

/// The Python and JavaScript examples' own unit tests, natively (as `cargo
/// test` runs the Rust ones): `python -m unittest` over componentize-py's
/// bindings, `node --test`.
fn test_interpreted_natively(root: &Path, tools: &PolicyTools) -> Result<()> {
    for (dir, lang) in policy_dirs(&root.join("policies"))? {
        let name = dir_name(&dir);
        match lang {
            Lang::Rust => {}
            Lang::Python => {
                let bindings = root.join("target/tools/bindings").join(&name);
                // componentize-py refuses to write over an earlier run's.
                if bindings.exists() {
                    std::fs::remove_dir_all(&bindings)
                        .with_context(|| format!("cannot remove {}", bindings.display()))?;
                }
                step(
                    &format!("python bindings for {name}"),
                    Command::new(&tools.componentize_py)
                        .arg("--wit-path")
                        .arg(root.join("wit"))
                        .args(["--world", "policy", "--quiet", "bindings"])
                        .arg(&bindings),
                )?;
                step(
                    &format!("python unit tests {name}"),
                    Command::new(&tools.python)
                        .args(["-m", "unittest", "--quiet"])
                        .current_dir(&dir)
                        .env("PYTHONPATH", &bindings)
                        .env("PYTHONDONTWRITEBYTECODE", "1"),
                )?;
            }
            Lang::JavaScript => step(
                &format!("node unit tests {name}"),
                Command::new("node").arg("--test").current_dir(&dir),
            )?,
        }
    }
    Ok(())
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
