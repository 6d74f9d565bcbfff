//! `simulate --report`'s HTML drawn by a real browser: Debian's Chromium,
//! headless, loads the file (nothing else: the page's Content Security
//! Policy refuses any fetch, and a refusal is a console message), and the
//! DOM it dumps after the page's script ran must hold every panel — the
//! queue and the capacity of each run, the waits and the cost of all — each
//! with drawn content, with no console message at all and no script error.
//! A day, and a four-week trace counted from its fourth week (aggregated
//! steps, a warm pool, recorded waits, a time zone with DST).
//!
//! Chromium: `$RUNNER_SCALER_TEST_CHROMIUM`, else `chromium` on PATH
//! (`cargo xtask test` installs Debian's package). Without it the tests
//! pass with a note, except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RUNNER_SCALER_TEST_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Chromium is missing, and CI must run this test: `cargo xtask test` installs it \
             (apt-get install chromium), or set RUNNER_SCALER_TEST_CHROMIUM"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
    }
    found
}

/// What Chromium made of `page`: the DOM after its scripts ran, and every
/// console message it logged.
async fn render(chromium: &Path, page: &Path) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("Chromium rendered within 2 minutes")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    // Every console message, whatever its level, is logged as CONSOLE.
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

/// A panel in the rendered DOM: its kind, its run, the `d` of its paths.
#[derive(Debug)]
struct Panel {
    kind: String,
    run: String,
    paths: Vec<String>,
}

fn attribute(tag: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    tag.split_once(&key)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value.to_string())
        .unwrap_or_default()
}

fn panels(dom: &str) -> Vec<Panel> {
    dom.split("<svg class=\"panel\"")
        .skip(1)
        .map(|chunk| {
            let body = chunk.split("</svg>").next().unwrap();
            let tag = body.split('>').next().unwrap();
            let paths = body
                .split("<path ")
                .skip(1)
                .map(|p| attribute(&format!(" {p}"), "d"))
                .collect();
            Panel {
                kind: attribute(tag, "data-kind"),
                run: attribute(tag, "data-run"),
                paths,
            }
        })
        .collect()
}

/// A path that draws something: moves and at least a few segments.
fn drawn(d: &str) -> bool {
    d.starts_with('M') && d.matches(['H', 'V', 'L']).count() >= 3
}

/// Every panel is there once per run (queue, capacity) or once (waits,
/// cost), each with its series drawn, and nothing went wrong.
fn check(dom: &str, console: &[String], runs: usize, with_recorded: bool) {
    assert!(console.is_empty(), "console messages: {console:#?}");
    let root = dom
        .split_once("<html")
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(tag, _)| tag)
        .expect("an <html> element");
    assert_eq!(attribute(root, "data-errors"), "", "a script error");
    let panels = panels(dom);
    assert_eq!(
        attribute(root, "data-rendered"),
        (2 * runs + 2).to_string(),
        "{panels:#?}"
    );
    for run in 0..runs {
        for kind in ["queue", "capacity"] {
            let panel = panels
                .iter()
                .find(|p| p.kind == kind && p.run == run.to_string())
                .unwrap_or_else(|| panic!("no {kind} panel for run {run}: {panels:#?}"));
            let drawn_paths = panel.paths.iter().filter(|d| drawn(d)).count();
            assert!(
                drawn_paths >= 2,
                "{kind} of run {run} draws {drawn_paths} series"
            );
        }
    }
    let waits = panels
        .iter()
        .find(|p| p.kind == "waits")
        .expect("the waits panel");
    let expected = runs + usize::from(with_recorded);
    assert_eq!(
        waits.paths.len(),
        expected,
        "a distribution per run (and the recorded one)"
    );
    assert!(waits.paths.iter().all(|d| drawn(d)), "{:?}", waits.paths);
    let cost = panels
        .iter()
        .find(|p| p.kind == "cost")
        .expect("the cost panel");
    assert_eq!(cost.paths.iter().filter(|d| drawn(d)).count(), runs);
}

fn simulate(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .arg("simulate")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The series of the report's runs, as the file carries them.
fn report_data(page: &Path) -> serde_json::Value {
    let html = std::fs::read_to_string(page).unwrap();
    let start = html.find("id=\"report-data\">").unwrap() + "id=\"report-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

#[tokio::test]
async fn a_day_renders_every_panel_with_no_console_message() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let stdout = simulate(&["--exit", "both", "--report", page.to_str().unwrap()]);
    assert!(
        stdout.contains(&format!("report: {}", page.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.len() < 200_000,
        "a day's report is {} bytes",
        html.len()
    );
    // Nothing to fetch: no URL but the SVG namespace's name.
    let html_without_namespace = html.replace("http://www.w3.org/2000/svg", "");
    for remote in ["http://", "https://", "src=\"", "href=\""] {
        assert!(
            !html_without_namespace.contains(remote),
            "the report refers to {remote}..."
        );
    }
    let (dom, console) = render(&chromium, &page).await;
    check(&dom, &console, 2, false);
    // The table the terminal prints is there, cell for cell.
    for cell in [
        "wait p50",
        "1m34s",
        "replacement launches",
        "queue (poweroff)",
    ] {
        assert!(dom.contains(cell), "{cell} is not in the table");
    }
}

#[tokio::test]
async fn four_weeks_counted_from_the_last_one_read_like_a_day() {
    let Some(chromium) = chromium() else { return };
    // Four weeks of the embedded weekday (every day, for the load), in
    // Europe/Berlin, with a recorded wait per job as an import has it.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("month.csv");
    let day = runner_scaler::simulate::Trace::find("weekday", None).unwrap();
    let mut csv = String::from("submit,duration,resource_class,wait\n");
    let start: jiff::Timestamp = "2026-10-05T00:00:00Z".parse().unwrap();
    for d in 0..28u64 {
        for (i, job) in day.jobs.iter().enumerate() {
            let at = start + jiff::SignedDuration::from_secs((d * 86_400 + job.submit) as i64);
            csv += &format!("{at},{},acme/linux,{}\n", job.duration, 30 + i % 90);
        }
    }
    std::fs::write(&trace, csv).unwrap();
    let page = dir.path().join("month.html");
    let stdout = simulate(&[
        "--trace",
        trace.to_str().unwrap(),
        "--policy",
        "queue",
        "--exit",
        "both",
        "--tick",
        "10s",
        "--warm-pool",
        "2",
        "--time-zone",
        "Europe/Berlin",
        "--report-from",
        "21d",
        "--report",
        page.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("counted from Mon 2026-10-26 01:15 CET on (3346 jobs submitted from then"),
        "{stdout}"
    );
    let data = report_data(&page);
    assert_eq!(data["aggregated"], true);
    assert_eq!(data["step"], 900, "a week of 10 s ticks in 15-minute steps");
    for run in data["runs"].as_array().unwrap() {
        let steps = run["waiting"].as_array().unwrap().len();
        assert!((600..=1000).contains(&steps), "{steps} steps");
        assert!(run["warmed"].is_array(), "the warm pool is drawn");
    }
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(size < 400_000, "four weeks' report is {size} bytes");
    let (dom, console) = render(&chromium, &page).await;
    check(&dom, &console, 2, true);
    assert!(dom.contains("Calibration"), "the calibration table");
}
