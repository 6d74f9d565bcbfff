//! `runner-scaler policy test POLICY CASES...`: runs case files through a
//! policy, in the production engine under the production limits, and reports
//! one line per case and a closing `N passed, M failed`.

use super::SandboxArgs;
use crate::cases::{self, CaseResult};
use crate::text;
use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A policy: a .wasm file, or a built-in rule (`queue`, `hold`).
    policy: String,
    /// Case files (`cases.toml`); see docs/writing-a-policy.md.
    #[arg(required = true)]
    cases: Vec<PathBuf>,
    /// Print the results as one JSON document on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// The `--json` output.
#[derive(Serialize)]
struct Report<'a> {
    policy: &'a str,
    passed: usize,
    failed: usize,
    cases: &'a [CaseResult],
}

pub async fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    // Every file is read before the policy runs: a broken case file is
    // reported at once, not after the cases before it.
    let mut all = Vec::new();
    for file in &args.cases {
        all.extend(cases::load(file)?);
    }
    let policy = args
        .sandbox
        .policy(&args.policy)
        .with_context(|| format!("cannot load the policy {}", args.policy))?;
    let mut results = Vec::with_capacity(all.len());
    for case in &all {
        let result = cases::run_case(&policy, case).await;
        tracing::debug!(case = %result.name, passed = result.passed, elapsed_ms = result.elapsed_ms, "case run");
        if !args.json {
            print_result(&result);
        }
        results.push(result);
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let failed = results.len() - passed;
    if args.json {
        let report = Report {
            policy: &args.policy,
            passed,
            failed,
            cases: &results,
        };
        let json = serde_json::to_string_pretty(&report)?;
        println!("{}", text::escape_json(&json));
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `ok name`, or `FAILED name (file:line)` and why.
fn print_result(result: &CaseResult) {
    if result.passed {
        println!("ok      {}", result.name);
        return;
    }
    println!(
        "FAILED  {}  ({}:{})",
        result.name,
        result.file.display(),
        result.line
    );
    for m in &result.mismatches {
        println!(
            "          {}: expected {}, got {}",
            m.field,
            text::escape(&m.expected),
            text::escape(&m.actual)
        );
    }
    if let Some(decision) = &result.decision {
        println!("          policy decided: desired {}", decision.desired);
        println!("          reason: {}", text::escape(&decision.reason));
        match &decision.state {
            Some(state) => println!("          state: {state:?}"),
            None => println!("          state: none"),
        }
    }
    if let Some(error) = &result.error {
        println!("          policy error: {}", text::escape(error));
    }
    for line in &result.log {
        println!(
            "          log {}: {}",
            line.level,
            text::escape(&line.message)
        );
    }
    if result.log_dropped > 0 {
        println!("          ({} more log lines dropped)", result.log_dropped);
    }
}
