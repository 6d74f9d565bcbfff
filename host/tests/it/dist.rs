//! The release files `cargo xtask dist` writes, as a user downloads them
//! (`target/dist/`, or `$RUNNER_SCALER_TEST_DIST`: `cargo xtask test` writes
//! the x86_64 set before the tests): `SHA256SUMS` names every file and
//! nothing else, and each sum is right (computed here); the binary is the
//! Lambda bundle's bootstrap, runs, and needs glibc 2.34 at most; the
//! example policies are the ones built; the container image takes the
//! binary by the name dist gives it.

use crate::support;

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const ARCH: &str = "x86_64";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The release directory; fails saying how to make it when missing.
fn dist() -> PathBuf {
    let dir = std::env::var_os("RUNNER_SCALER_TEST_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/dist"));
    assert!(
        dir.join("SHA256SUMS").is_file(),
        "{} has no SHA256SUMS: write the release files first with `cargo xtask dist` (`cargo xtask test` does)",
        dir.display()
    );
    dir
}

fn sha256_hex(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path, under: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, under, out);
        } else {
            out.push(
                path.strip_prefix(under)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
}

#[test]
fn sha256sums_names_every_file_once_and_each_sum_is_right() {
    let dir = dist();
    let text = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut listed = BTreeMap::new();
    for line in text.lines() {
        // sha256sum's format: the hex, two spaces (text mode), the path.
        let (hex, path) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("not a sha256sum line: {line:?}"));
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line:?}"
        );
        assert!(
            !path.starts_with('/') && !path.split('/').any(|part| part == ".."),
            "{path}: paths are relative to the directory"
        );
        assert!(
            listed.insert(path.to_string(), hex.to_string()).is_none(),
            "{path} twice"
        );
    }
    let mut present = vec![];
    files(&dir, &dir, &mut present);
    present.retain(|f| f != "SHA256SUMS");
    present.sort();
    assert_eq!(listed.keys().cloned().collect::<Vec<_>>(), present);
    for (path, hex) in &listed {
        assert_eq!(&sha256_hex(&dir.join(path)), hex, "{path}");
    }
    for wanted in [
        format!("runner-scaler-linux-{ARCH}"),
        format!("runner-scaler-lambda-{ARCH}.zip"),
    ] {
        assert!(
            listed.contains_key(&wanted),
            "{wanted} is not in the release"
        );
    }
}

#[test]
fn the_binary_is_the_bundles_bootstrap_and_runs_on_glibc_2_34() {
    let dir = dist();
    let binary = dir.join(format!("runner-scaler-linux-{ARCH}"));
    let mode = std::fs::metadata(&binary).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "{}", binary.display());
    let unpacked = support::unpack(&dir.join(format!("runner-scaler-lambda-{ARCH}.zip")));
    assert_eq!(
        sha256_hex(&binary),
        sha256_hex(&unpacked.path().join("bootstrap")),
        "the release binary is not the bundle's bootstrap"
    );
    let newest = crate::bundle::newest_glibc(&binary).expect("a glibc-linked binary");
    assert!(
        newest <= crate::bundle::GLIBC_MAX,
        "needs GLIBC_{}.{}",
        newest.0,
        newest.1
    );
    let output = Command::new(&binary).arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("runner-scaler {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_example_policies_are_the_built_ones() {
    let dir = dist();
    let mut examples = vec![];
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if ["Cargo.toml", "app.py", "package.json"]
            .iter()
            .any(|marker| path.join(marker).is_file())
        {
            examples.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(examples.len() >= 4, "{examples:?}");
    for name in examples {
        let shipped = dir.join("policies").join(format!("{name}.wasm"));
        assert!(shipped.is_file(), "{} is missing", shipped.display());
        assert_eq!(
            sha256_hex(&shipped),
            sha256_hex(&support::policy_file(&name)),
            "{name}"
        );
    }
}

/// The container image is built from the release directory: the file it
/// copies is one dist writes, under the name its ARCH argument gives.
#[test]
fn the_container_image_copies_the_release_binary() {
    let containerfile =
        std::fs::read_to_string(repo().join("ops/container/Containerfile")).unwrap();
    let arch = containerfile
        .lines()
        .find_map(|line| line.strip_prefix("ARG ARCH="))
        .expect("ARG ARCH=...");
    let copy = containerfile
        .lines()
        .find_map(|line| line.strip_prefix("COPY "))
        .expect("a COPY");
    let source = copy
        .split_whitespace()
        .next()
        .unwrap()
        .replace("${ARCH}", arch);
    assert!(
        dist().join(&source).is_file(),
        "COPY {source}: dist writes no such file"
    );
}
