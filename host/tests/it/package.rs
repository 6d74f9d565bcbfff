//! `scripts/package-lambda.sh`'s assembly step, with this test build's
//! binary as a stand-in bootstrap for the host's architecture (a release
//! build would take minutes): the zip holds an executable `bootstrap`, the
//! configuration, the policies, and precompiled code the Lambda engine finds.

use crate::support;

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_zip_holds_bootstrap_config_policies_and_precompiled_code() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("bundle.zip");
    let config = dir.path().join("scaler.toml");
    std::fs::write(
        &config,
        "[[pool]]\nname = \"p\"\nresource_class = \"acme/p\"\ngroup = \"g\"\nregion = \"eu-west-1\"\npolicy = \"policies/queue-depth.wasm\"\nmax = 3\n",
    )
    .unwrap();
    let arch = std::env::consts::ARCH;
    let output = Command::new("bash")
        .arg(repo().join("scripts/package-lambda.sh"))
        .args([
            "--arch",
            arch,
            "--binary",
            env!("CARGO_BIN_EXE_runner-scaler"),
        ])
        .arg("--config")
        .arg(&config)
        .arg("--policy")
        .arg(support::policies_dir().join("queue-depth.wasm"))
        .arg("--policy")
        .arg(support::policies_dir().join("business-hours.wasm"))
        .arg("--out")
        .arg(&zip)
        .output()
        .expect("run bash");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");

    // The zip's entries, with their Unix modes, read by Python's zipfile
    // (no extra crate for one listing).
    let listing = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist():\n    print(oct(i.external_attr >> 16), i.filename)",
        ])
        .arg(&zip)
        .output()
        .expect("run python3");
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let entries: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, name)| !name.ends_with('/'))
        .collect();
    let find = |name: &str| entries.iter().find(|(_, n)| *n == name).map(|(m, _)| *m);
    assert_eq!(find("bootstrap"), Some("0o100755"), "{listing}");
    assert!(find("runner-scaler.toml").is_some(), "{listing}");
    assert!(find("policies/queue-depth.wasm").is_some(), "{listing}");
    assert!(find("policies/business-hours.wasm").is_some(), "{listing}");
    let precompiled: Vec<_> = entries
        .iter()
        .filter(|(_, n)| n.starts_with("precompiled/") && n.ends_with(".cwasm"))
        .collect();
    assert_eq!(precompiled.len(), 2, "{listing}\n{log}");

    // Unpacked as Lambda does, the bundled configuration is valid and its
    // policy paths resolve inside the bundle.
    let unpacked = dir.path().join("task");
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&zip)
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    let check = Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(["check", "--config"])
        .arg(unpacked.join("runner-scaler.toml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
