//! The Lambda bundle a user uploads, as `scripts/package-lambda.sh --arch
//! x86_64` builds it (`cargo xtask test` builds it before the tests; its
//! path is `$RUNNER_SCALER_TEST_BUNDLE`): its layout, the bootstrap's
//! executable bit, ELF machine and newest required glibc (readelf), its
//! size; and the bundled bootstrap run as Lambda runs it, against the fake
//! Runtime API, moto and the fake CircleCI API, loading the bundled
//! precompiled policy rather than compiling it.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::fake_circleci::FakeCircleCi;
use support::fake_lambda::{scheduled_event, FakeLambda, Posted};
use support::moto::{Moto, TestGroup};

/// Amazon Linux 2023's glibc (provided.al2023).
pub(crate) const GLIBC_MAX: (u32, u32) = (2, 34);
/// Lambda takes a zip of at most 50 MB uploaded directly, 250 MB unpacked.
const ZIP_LIMIT: u64 = 50 * 1000 * 1000;
const UNPACKED_LIMIT: u64 = 250 * 1000 * 1000;
const REGION: &str = "eu-west-1";
const TOKEN: &str = "CCIPAT_bundle_redaction_canary_77";

/// The zip's entries: (Unix mode, name, size), read by Python's zipfile.
fn entries(zip: &Path) -> Vec<(u32, String, u64)> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist():\n    print(i.external_attr >> 16, i.file_size, i.filename)",
        ])
        .arg(zip)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let mode = parts.next()?.parse().ok()?;
            let size = parts.next()?.parse().ok()?;
            Some((mode, parts.next()?.to_string(), size))
        })
        .filter(|(_, name, _)| !name.ends_with('/'))
        .collect()
}

/// The newest `GLIBC_x.y` version `binary` requires, from readelf's
/// version sections.
pub(crate) fn newest_glibc(binary: &Path) -> Option<(u32, u32)> {
    let output = Command::new("readelf")
        .args(["-V", "--wide"])
        .arg(binary)
        .output()
        .expect("run readelf (binutils)");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
}

fn elf_machine(binary: &Path) -> String {
    let output = Command::new("readelf")
        .arg("-h")
        .arg(binary)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Machine:")
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn the_bundle_holds_an_al2023_bootstrap_and_precompiled_policies() {
    let zip = support::bundle_zip();
    let entries = entries(&zip);
    let find = |name: &str| entries.iter().find(|(_, n, _)| n == name);
    let (mode, _, bootstrap_size) = find("bootstrap").expect("no bootstrap at the zip's root");
    assert_eq!(mode & 0o777, 0o755, "the bootstrap must be executable");
    let policies: Vec<&String> = entries
        .iter()
        .map(|(_, n, _)| n)
        .filter(|n| n.starts_with("policies/") && n.ends_with(".wasm"))
        .collect();
    // The Rust examples; the interpreted ports ship only when asked for.
    let examples = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"))
        .unwrap()
        .filter(|dir| dir.as_ref().unwrap().path().join("Cargo.toml").is_file())
        .count();
    assert_eq!(
        policies.len(),
        examples,
        "every Rust example policy: {entries:?}"
    );
    let precompiled = entries
        .iter()
        .filter(|(_, n, _)| n.starts_with("precompiled/") && n.ends_with(".cwasm"))
        .count();
    assert_eq!(
        precompiled,
        policies.len(),
        "one precompiled entry per policy: {entries:?}"
    );

    let dir = support::unpack(&zip);
    let bootstrap = dir.path().join("bootstrap");
    assert_eq!(elf_machine(&bootstrap), "Advanced Micro Devices X86-64");
    let glibc =
        newest_glibc(&bootstrap).expect("a dynamically linked bootstrap names glibc versions");
    assert!(
        glibc <= GLIBC_MAX,
        "the bootstrap requires GLIBC_{}.{}, newer than provided.al2023's {}.{}",
        glibc.0,
        glibc.1,
        GLIBC_MAX.0,
        GLIBC_MAX.1
    );
    let zip_size = std::fs::metadata(&zip).unwrap().len();
    let unpacked: u64 = entries.iter().map(|(_, _, size)| size).sum();
    assert!(zip_size < ZIP_LIMIT, "{zip_size} bytes zipped");
    assert!(unpacked < UNPACKED_LIMIT, "{unpacked} bytes unpacked");
    println!(
        "bundle {:.1} MiB zipped, {:.1} MiB unpacked; bootstrap {:.1} MiB; needs GLIBC_{}.{}",
        zip_size as f64 / 1048576.0,
        unpacked as f64 / 1048576.0,
        *bootstrap_size as f64 / 1048576.0,
        glibc.0,
        glibc.1
    );
}

#[tokio::test]
async fn the_bundled_bootstrap_runs_a_tick_with_the_precompiled_policy() {
    let dir = support::unpack(&support::bundle_zip());
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    moto.create_group(REGION, &TestGroup::new("ci-bundle").desired(0).protected())
        .await;
    moto.create_secret(
        REGION,
        "bundle-secret",
        &format!("{{\"circle_token\": \"{TOKEN}\", \"resource_class\": \"acme/bundle\"}}"),
    )
    .await;
    circleci.set_queue("acme/bundle", 3, 0);
    let lambda = FakeLambda::start([scheduled_event()]).await;
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let child = tokio::process::Command::new(dir.path().join("bootstrap"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", lambda.runtime_api())
        .env("AWS_LAMBDA_FUNCTION_NAME", "runner-scaler")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("LAMBDA_TASK_ROOT", dir.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("CIRCLECI_RUNNER_API_URL", circleci.base_url())
        .env("SECRET_NAME", "bundle-secret")
        .env("SECRET_REGION", REGION)
        .env("AUTO_SCALING_MAX", "8")
        .env("AUTO_SCALING_GROUP_NAME", "ci-bundle")
        .env("AUTO_SCALING_GROUP_REGION", REGION)
        .env("RUNNER_SCALER_POLICY", "policies/business-hours.wasm")
        .env("RUNNER_SCALER_POLICY_PARAMS", "warm=0")
        .env("RUNNER_SCALER_CACHE_DIR", cache.path())
        .env("RUST_LOG", "info,runner_scaler=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the bundled bootstrap");
    let posted = lambda.wait_for(1, Duration::from_secs(60)).await;
    let answered = started.elapsed();
    let mut child = child;
    let _ = child.start_kill();
    let output = child.wait_with_output().await.unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(posted.len(), 1, "{posted:?}\n{printed}");
    let (_, answer) = &posted[0];
    assert!(
        matches!(answer, Posted::Response { .. }),
        "{answer:?}\n{printed}"
    );
    let body = answer.json();
    assert_eq!(body["pools"][0]["decided_by"], "business-hours", "{body}");
    assert_eq!(body["pools"][0]["desired"], 3, "{body}");
    assert!(
        printed.contains("loaded precompiled policy"),
        "the bundled code was not used:\n{printed}"
    );
    assert!(!printed.contains("\"compiled policy\""), "{printed}");
    // A policy compiled at start lands in the compile cache; this one did not.
    let cached = walk(cache.path());
    assert!(cached.is_empty(), "compiled at start: {cached:?}");
    assert!(!printed.contains(TOKEN));
    assert_eq!(
        moto.group(REGION, "ci-bundle")
            .await
            .unwrap()
            .desired_capacity(),
        Some(3)
    );
    println!(
        "bundled bootstrap: first response {:.0} ms after start",
        answered.as_secs_f64() * 1e3
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
