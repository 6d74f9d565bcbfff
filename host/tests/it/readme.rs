//! The README's simulated tables are the output of the commands printed
//! above them: each `runner-scaler simulate --markdown ...` line in the
//! README is run (the example policies from `target/policies/`), and its
//! output must be the block between the `<!-- output -->` and
//! `<!-- end output -->` markers that follow it.
//!
//! `cargo xtask readme-table` rewrites those blocks instead of comparing
//! (it runs this test with `RUNNER_SCALER_BLESS=1`).

use crate::support;

use std::path::PathBuf;
use std::process::Command;

const COMMAND: &str = "runner-scaler simulate --markdown";
const START: &str = "<!-- output -->";
const END: &str = "<!-- end output -->";

fn readme() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

/// What the README's `line` prints, run as a user would from the
/// repository's root.
fn run(line: &str) -> String {
    let args: Vec<String> = line
        .split_whitespace()
        .skip(2)
        .map(|arg| match arg.strip_prefix("target/policies/") {
            Some(file) => support::policies_dir().join(file).display().to_string(),
            None => arg.to_string(),
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(["simulate"])
        .args(&args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{line}` failed (build the policies first: cargo xtask policies):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The README with every output block replaced by its command's output, and
/// how many blocks there were.
fn regenerated(text: &str) -> (String, usize) {
    let mut out = String::new();
    let mut rest = text;
    let mut blocks = 0;
    while let Some(at) = rest.find(COMMAND) {
        let line_end = at + rest[at..].find('\n').expect("a line");
        let line = &rest[at..line_end];
        let start = line_end
            + rest[line_end..]
                .find(START)
                .unwrap_or_else(|| panic!("README: no {START} after `{line}`"))
            + START.len();
        let end = start
            + rest[start..]
                .find(END)
                .unwrap_or_else(|| panic!("README: no {END} after `{line}`"));
        out += &rest[..start];
        out += "\n";
        out += &run(line);
        rest = &rest[end..];
        blocks += 1;
    }
    out += rest;
    (out, blocks)
}

#[test]
fn the_readme_tables_are_the_output_of_their_commands() {
    let text = std::fs::read_to_string(readme()).unwrap();
    let (expected, blocks) = regenerated(&text);
    assert!(blocks >= 2, "the README lost its simulated tables");
    if std::env::var_os("RUNNER_SCALER_BLESS").is_some() {
        std::fs::write(readme(), &expected).unwrap();
        return;
    }
    if text != expected {
        let first = text
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "README.md's simulated tables are stale from line {}: run `cargo xtask readme-table`\n\
             README:   {:?}\ncommand:  {:?}",
            first + 1,
            text.lines().nth(first).unwrap_or(""),
            expected.lines().nth(first).unwrap_or("")
        );
    }
}

/// Issue 27: the README said `run` ticks every 60 s; it ticks every
/// `config::DEFAULT_INTERVAL`. Every "tick every N s" in the README says
/// the default.
#[test]
fn the_readme_gives_the_default_tick_interval() {
    let text = std::fs::read_to_string(readme()).unwrap();
    let default = runner_scaler::config::DEFAULT_INTERVAL.as_secs();
    let said: Vec<u64> = text
        .match_indices("tick every ")
        .filter_map(|(at, found)| {
            let rest = &text[at + found.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            rest[digits.len()..]
                .starts_with(" s")
                .then(|| digits.parse().unwrap())
        })
        .collect();
    assert!(
        said.len() >= 2,
        "the README no longer says how often run ticks"
    );
    assert!(
        said.iter().all(|&s| s == default),
        "the README says ticks every {said:?} s; the default is {default} s"
    );
}
