//! `runner-scaler policy precompile`: compile policies ahead of time for a
//! target architecture, into a directory a Lambda bundle ships, so a cold
//! start deserializes code instead of compiling it.

use crate::config::Config;
use crate::policy::{linux_target, CompileCache, EngineOptions, Limits, PolicyEngine};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct PrecompileArgs {
    /// The policies (.wasm) to compile.
    #[arg(required = true)]
    policies: Vec<PathBuf>,
    /// The architecture the code will run on (the Lambda function's).
    #[arg(long, value_enum, default_value_t = Arch::host())]
    target: Arch,
    /// The directory to write entries to (created if missing); ship it and
    /// point RUNNER_SCALER_PRECOMPILED at it.
    #[arg(long, short)]
    out: PathBuf,
    /// The configuration the code will run under: its sandbox limits are
    /// part of the engine's settings, so the entry must be built with them
    /// [default: the default limits].
    #[arg(long, short)]
    config: Option<PathBuf>,
}

/// The architectures Lambda offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// arm64 (Graviton).
    #[value(alias = "arm64")]
    Aarch64,
    /// x86-64.
    #[value(name = "x86_64", alias = "x86-64")]
    X86_64,
}

impl Arch {
    fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    fn name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::X86_64 => "x86_64",
        }
    }
}

/// Check each policy with a host engine (so a policy the scaler would refuse
/// is refused here), then compile it with an engine for the target.
pub fn precompile(args: PrecompileArgs) -> anyhow::Result<ExitCode> {
    let limits = match &args.config {
        Some(path) => Config::from_file(path)?.limits,
        None => Limits::default(),
    };
    let checker = PolicyEngine::new(limits, None)?;
    let target = linux_target(args.target.name());
    let engine = PolicyEngine::with_options(
        limits,
        None,
        EngineOptions {
            target: Some(target.clone()),
            precompiled: None,
        },
    )?;
    let out = CompileCache::new(&args.out);
    for policy in &args.policies {
        checker
            .load(policy)
            .with_context(|| format!("{}: not a policy this host can run", policy.display()))?;
        let entry = engine.precompile_into(policy, &out)?;
        println!("{} -> {} ({target})", policy.display(), entry.display());
    }
    Ok(ExitCode::SUCCESS)
}
