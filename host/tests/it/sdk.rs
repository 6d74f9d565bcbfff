//! The policy SDK (`sdk/`, the `runner-scaler-policy` crate) against the
//! host: the same contract, packaged with the crate, and the same sample
//! observation defaults, so that a policy built and tested with the SDK
//! meets the host it runs in.

use runner_scaler::sample::SampleObservation;
use runner_scaler_policy as sdk;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_sdk_binds_the_hosts_contract() {
    let host = std::fs::read_to_string(workspace().join("wit/policy.wit")).unwrap();
    assert!(
        sdk::WIT == host,
        "sdk/wit/policy.wit differs from wit/policy.wit: it must be a link to it, \
         not a copy (`ln -sf ../../wit/policy.wit sdk/wit/policy.wit`)"
    );
    assert_eq!(sdk::CONTRACT, runner_scaler::policy::CONTRACT);
}

#[test]
fn the_published_sdk_carries_the_contract() {
    // What `cargo publish` would upload, without uploading or building it;
    // with its derives, which it needs at their exact version.
    let target = tempfile::tempdir().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["package", "--no-verify", "--allow-dirty", "--offline"])
        .args(["--package", "runner-scaler-policy"])
        .args(["--package", "runner-scaler-policy-macros"])
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", target.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo package failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The SDK's version is its contract's, not the host's.
    let version = runner_scaler_policy::CONTRACT.rsplit('@').next().unwrap();
    let name = format!("runner-scaler-policy-{version}");
    let crate_file = target.path().join(format!("package/{name}.crate"));
    let output = Command::new("tar")
        .arg("-xzOf")
        .arg(&crate_file)
        .arg(format!("{name}/wit/policy.wit"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} has no wit/policy.wit: {}",
        crate_file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout == sdk::WIT.as_bytes(),
        "the packaged wit/policy.wit is not the contract the SDK binds"
    );
}

#[test]
fn sample_observations_have_the_sample_files_defaults() {
    let host = SampleObservation::default().resolve().unwrap();
    let ours = sdk::Observation::sample();
    assert_eq!(same(&ours), host);

    // A local time in a time zone, a daylight-saving day in Berlin.
    let host = SampleObservation {
        at: Some("2026-03-29T03:00:00".into()),
        time_zone: Some("Europe/Berlin".into()),
        ..SampleObservation::default()
    }
    .resolve()
    .unwrap();
    let ours = sdk::Observation::sample()
        .in_time_zone("Europe/Berlin", 7200)
        .at("2026-03-29T03:00:00");
    assert_eq!(same(&ours), host);
}

/// The SDK's observation as the host's.
fn same(o: &sdk::Observation) -> runner_scaler::Observation {
    let c = &o.capacity;
    let clock = &o.clock;
    runner_scaler::Observation {
        pool: o.pool.clone(),
        queue: runner_scaler::Queue {
            waiting: o.queue.waiting,
            running: o.queue.running,
            blocked: o.queue.blocked,
        },
        capacity: runner_scaler::Capacity {
            desired: c.desired,
            min: c.min,
            max: c.max,
            pending: c.pending,
            in_service: c.in_service,
            terminating: c.terminating,
            protected: c.protected,
            warm_pool: c.warm_pool.map(|w| runner_scaler::WarmPool {
                instances: w.instances,
                size: w.size,
                max: w.max,
            }),
        },
        clock: runner_scaler::Clock {
            unix_seconds: clock.unix_seconds,
            year: clock.year,
            month: clock.month,
            day: clock.day,
            hour: clock.hour,
            minute: clock.minute,
            weekday: weekday(clock.weekday.index()),
            utc_offset_seconds: clock.utc_offset_seconds,
            time_zone: clock.time_zone.clone(),
        },
        params: o.params.clone(),
        state: o.state.clone(),
    }
}

/// The host's weekday `index` days after Monday.
fn weekday(index: usize) -> runner_scaler::Weekday {
    use runner_scaler::Weekday::*;
    [
        Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
    ][index]
}
