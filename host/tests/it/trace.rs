//! `runner-scaler trace import` on the sample export (`examples/usage-export/`,
//! two files as the Usage API serves them: one plain with upper-case
//! headers, one gzipped with lower-case headers in another order), the
//! trace it writes back through `simulate` with its calibration, and
//! `trace fetch` against a fake Usage API that is slow, throttles and
//! serves two files.

use crate::support::fake_usage_api::{FakeUsageApi, Script};
use std::path::{Path, PathBuf};
use std::process::Output;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/usage-export")
        .join(name)
}

fn runner_scaler(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The summary's lines for the sample export, as a user reads them.
const SUMMARY: &[&str] = &[
    "read 192 rows from 2 files: PART1 (92 rows), PART2 (gzip, 100 rows)",
    "kept 123 jobs from 121 rows of self-hosted runner classes, queued Tue 2026-11-24 07:15 UTC to Tue 2026-11-24 18:50 UTC",
    "  acme/linux        106",
    "  acme/linux-large  17",
    "  (1 row with parallelism above 1 became 3 jobs, one per parallel task)",
    "skipped 71 rows:",
    "      63  not a self-hosted runner class (arm.medium 12, large 13, macos.m2pro.medium 8, medium 30): PART1:14, PART1:15, PART1:25, ...",
    "       1  no queued time: PART1:31",
    "       2  cancelled before it started: PART1:5, PART1:13",
    "       1  never started (not_run 1): PART1:20",
    "       1  no stop time (running when exported): PART2:101",
    "       1  the same job run twice (overlapping exports): PART2:2",
    "       2  malformed:",
    "          PART1:45: JOB_RUN_STOPPED_AT \"2026-11-24 09:23:57.404\" is before JOB_RUN_STARTED_AT \"2026-11-24 09:24:27.404\"",
    "          PART1:56: JOB_RUN_STOPPED_AT \"2026-11-24 25:61:00\" is not a time; expected e.g. 2026-11-23 09:00:03.123 (UTC) or 2026-11-23T09:00:03Z",
];

fn expected_summary(part1: &Path, part2: &Path) -> String {
    SUMMARY
        .iter()
        .map(|line| {
            line.replace("PART1", &part1.display().to_string())
                .replace("PART2", &part2.display().to_string())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The trace's jobs of `class`: (submit, duration, wait).
fn jobs(trace: &str, class: &str) -> Vec<(String, u64, u64)> {
    trace
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("submit"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2] == class).then(|| {
                (
                    f[0].to_string(),
                    f[1].parse().unwrap(),
                    f[3].parse().unwrap(),
                )
            })
        })
        .collect()
}

fn nearest_rank(sorted: &[u64], p: usize) -> u64 {
    sorted[(p * sorted.len()).div_ceil(100).max(1) - 1]
}

#[test]
fn import_reads_both_files_and_the_trace_round_trips_through_simulate() {
    let dir = tempfile::tempdir().unwrap();
    let (part1, part2) = (example("part-1.csv"), example("part-2.csv.gz"));
    let trace = dir.path().join("trace.csv");
    let out = runner_scaler(&[
        "trace",
        "import",
        part1.to_str().unwrap(),
        part2.to_str().unwrap(),
        "--out",
        trace.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&expected_summary(&part1, &part2)),
        "the summary:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("wrote 123 jobs to {}", trace.display())),
        "{stdout}"
    );
    let written = std::fs::read_to_string(&trace).unwrap();
    let linux = jobs(&written, "acme/linux");
    assert_eq!(linux.len(), 106);
    // The first job of the day, row 2 of part-1.csv: queued 07:15:39.622,
    // started 07:17:15.xxx, stopped 2 minutes after.
    assert_eq!(linux[0].0, "2026-11-24T07:15:39Z");
    assert!(written
        .lines()
        .any(|l| l == "submit,duration,resource_class,wait"));
    // The job with parallelism 3 is three jobs alike.
    let alike = |j: &(String, u64, u64)| linux.iter().filter(|k| *k == j).count();
    assert_eq!(linux.iter().filter(|j| alike(j) == 3).count(), 3);
    assert_eq!(linux.iter().filter(|j| alike(j) == 2).count(), 0);

    // Through simulate: the calibration sets the recorded waits beside
    // the simulated ones, p50 p95 and max of the same 106 jobs.
    let out = runner_scaler(&[
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--resource-class",
        "acme/linux",
        "--policy",
        "queue",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(": 106 jobs from Tue 2026-11-24 07:15 UTC;"),
        "{stdout}"
    );
    let mut waits: Vec<u64> = linux.iter().map(|j| j.2).collect();
    waits.sort_unstable();
    let duration = runner_scaler::simulate::report::duration;
    assert!(
        stdout.contains("calibration: what 106 jobs waited in reality"),
        "{stdout}"
    );
    for (row, value) in [
        ("wait p50", nearest_rank(&waits, 50)),
        ("wait p95", nearest_rank(&waits, 95)),
        ("wait max", *waits.last().unwrap()),
    ] {
        let line = stdout
            .lines()
            .skip_while(|l| !l.starts_with("calibration"))
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row} in the calibration:\n{stdout}"));
        let cells: Vec<&str> = line[row.len()..].split_whitespace().collect();
        assert_eq!(cells[0], duration(value), "{line}");
    }
    assert!(stdout.contains("median gap per job"), "{stdout}");
}

#[test]
fn import_writes_the_trace_to_stdout_and_fails_only_when_nothing_is_usable() {
    let part1 = example("part-1.csv");
    let out = runner_scaler(&["trace", "import", part1.to_str().unwrap()]);
    assert!(out.status.success());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains("\nsubmit,duration,resource_class,wait\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("kept "),
        "the summary goes to stderr: {stdout}"
    );
    assert!(stderr.contains("read 92 rows from 1 file"), "{stderr}");

    let out = runner_scaler(&[
        "trace",
        "import",
        part1.to_str().unwrap(),
        "--resource-class",
        "acme/windows",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: nothing usable: no row is a finished job of a self-hosted runner class named \
             by --resource-class (acme/windows)\nread 92 rows"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("another runner class than --resource-class (acme/linux"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("export.csv");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = runner_scaler(&["trace", "import", fifo.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "a FIFO with no writer must not block"
    );
    assert!(
        text(&out.stderr).contains("it is a FIFO (named pipe), not a regular file"),
        "{}",
        text(&out.stderr)
    );
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "name,value\nx,1\n").unwrap();
    let out = runner_scaler(&["trace", "import", other.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a CircleCI usage export: it has no resource_class"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn fetch_waits_out_a_429_and_a_slow_export_and_merges_two_files() {
    let token = "CCIPAT_fake_token_for_tests";
    let files = vec![
        (
            "part-1.csv".to_string(),
            std::fs::read(example("part-1.csv")).unwrap(),
        ),
        (
            "part-2.csv.gz".to_string(),
            std::fs::read(example("part-2.csv.gz")).unwrap(),
        ),
    ];
    let fake = FakeUsageApi::start(
        token,
        Script {
            posts_throttled: 1,
            polls_processing: 3,
            fails: false,
            files,
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    let saved = dir.path().join("exports");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args([
            "trace",
            "fetch",
            "--org-id",
            "9d6e1f7a-0c55-4b39-a4f2-6a9f3b2c8e11",
        ])
        .args(["--since", "14d", "--token-env", "TEST_CIRCLE_TOKEN"])
        .args(["--api-url", &fake.base_url(), "--test-interval-ms", "300"])
        .arg("--out")
        .arg(&trace)
        .arg("--save-exports")
        .arg(&saved)
        .env("TEST_CIRCLE_TOKEN", token)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(token) && !stderr.contains(token),
        "the token leaked"
    );
    assert!(
        !stderr.contains("X-Amz-Signature"),
        "a signed URL leaked: {stderr}"
    );
    assert!(
        stderr.contains("export job e8235eed-f121-4ae3-9c72-2719d6572818 is processing"),
        "{stderr}"
    );
    assert!(stdout.contains("read 192 rows from 2 files"), "{stdout}");
    assert!(stdout.contains("kept 123 jobs"), "{stdout}");

    let received = fake.received();
    let posts: Vec<_> = received.iter().filter(|r| r.method == "POST").collect();
    let polls: Vec<_> = received
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/"))
        .collect();
    let downloads: Vec<_> = received
        .iter()
        .filter(|r| r.path.starts_with("/downloads/"))
        .collect();
    assert_eq!(posts.len(), 2, "one 429, then created");
    assert!(
        posts[1].at.duration_since(posts[0].at) >= std::time::Duration::from_millis(950),
        "Retry-After: 1 was waited out"
    );
    let window: serde_json::Value = serde_json::from_str(&posts[1].body).unwrap();
    let start: jiff::Timestamp = window["start"].as_str().unwrap().parse().unwrap();
    let end: jiff::Timestamp = window["end"].as_str().unwrap().parse().unwrap();
    assert_eq!(end.duration_since(start).as_hours(), 14 * 24);
    assert!(end < jiff::Timestamp::now(), "never a window in the future");
    assert_eq!(polls.len(), 4, "three times processing, then completed");
    for pair in polls.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= std::time::Duration::from_millis(290));
    }
    assert!(posts
        .iter()
        .chain(&polls)
        .all(|r| r.token.as_deref() == Some(token)));
    assert_eq!(downloads.len(), 2);
    assert!(
        downloads.iter().all(|r| r.token.is_none()),
        "the token went to a download URL"
    );
    assert!(
        downloads
            .iter()
            .all(|r| r.query.contains("X-Amz-Signature=")),
        "a pre-signed URL is fetched with its signature"
    );

    // What was saved imports to the same trace.
    let mut names: Vec<PathBuf> = std::fs::read_dir(&saved)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2);
    let again = dir.path().join("again.csv");
    let mut args = vec!["trace", "import"];
    args.extend(names.iter().map(|n| n.to_str().unwrap()));
    args.extend(["--out", again.to_str().unwrap()]);
    assert!(runner_scaler(&args).status.success());
    let body = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(body(&trace), body(&again));
}

#[tokio::test]
async fn fetch_names_a_refused_token_and_a_failed_export() {
    let fake = FakeUsageApi::start("right", Script::default()).await;
    let run = |token: &'static str| {
        let url = fake.base_url();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
                .args(["trace", "fetch", "--org-id", "acme", "--since", "2d"])
                .args(["--api-url", &url, "--test-interval-ms", "50"])
                .env("CIRCLECI_TOKEN", token)
                .env_remove("RUST_LOG")
                .output()
                .await
                .unwrap()
        }
    };
    let out = run("wrong").await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("POST /api/v2/organizations/acme/usage_export_job was refused: HTTP 401 Unauthorized: the token was refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong"), "the token leaked: {stderr}");

    let failing = FakeUsageApi::start(
        "right",
        Script {
            fails: true,
            ..Script::default()
        },
    )
    .await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(["trace", "fetch", "--org-id", "acme", "--since", "2d"])
        .args(["--api-url", &failing.base_url(), "--test-interval-ms", "50"])
        .env("CIRCLECI_TOKEN", "right")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the export job e8235eed-f121-4ae3-9c72-2719d6572818 failed: state \"failed\": \"query timed out\""),
        "{stderr}"
    );
}

/// Run a documented command line from `dir`, the repository's files and
/// the compiled example policies where it names them.
fn documented(line: &str, dir: &Path) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let args: Vec<String> = line
        .split_whitespace()
        .skip(1)
        .map(|arg| {
            if let Some(file) = arg.strip_prefix("target/policies/") {
                crate::support::policy_file(file.trim_end_matches(".wasm"))
                    .display()
                    .to_string()
            } else if arg.starts_with("examples/") {
                root.join(arg).display().to_string()
            } else {
                arg.to_string()
            }
        })
        .collect();
    std::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(&args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn doc(path: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path),
    )
    .unwrap()
}

#[test]
fn the_readme_simulates_a_week_as_it_says() {
    let readme = doc("README.md");
    let line = |start: &str| -> String {
        readme
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("README.md has no `{start}...` line"))
            .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let import = line("runner-scaler trace import examples/");
    let out = documented(&import, dir.path());
    assert!(out.status.success(), "`{import}`: {}", text(&out.stderr));
    let simulate = line("runner-scaler simulate --trace my-week.csv");
    let out = documented(&simulate, dir.path());
    assert!(out.status.success(), "`{simulate}`: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("calibration: what 106 jobs"), "{stdout}");
    assert!(dir.path().join("report.html").is_file(), "{stdout}");
}

#[test]
fn the_calibration_in_the_traces_readme_is_the_sample_exports() {
    let guide = doc("examples/traces/README.md");
    let dir = tempfile::tempdir().unwrap();
    let import = guide
        .lines()
        .find(|l| l.starts_with("runner-scaler trace import examples/"))
        .expect("the sample export's import line");
    assert!(documented(import, dir.path()).status.success());
    let out = documented(
        "runner-scaler simulate --trace my-trace.csv --resource-class acme/linux --policy queue --tick 60s",
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert!(
        guide.contains(
            "runner-scaler simulate --trace my-trace.csv --resource-class acme/linux --policy queue --tick 60s"
        ),
        "the guide shows the command it prints"
    );
    let printed: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("calibration:"))
        .take(7)
        .collect();
    let documented: Vec<&str> = guide
        .lines()
        .skip_while(|l| !l.starts_with("calibration:"))
        .take(7)
        .collect();
    assert_eq!(printed.len(), 7, "{stdout}");
    assert_eq!(
        documented, printed,
        "examples/traces/README.md#calibrating is stale"
    );
}
