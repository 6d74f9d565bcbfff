//! The command line: arguments in, one subcommand run, the error chain
//! printed once, an exit code out.

mod policy;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

/// Keeps self-hosted CircleCI runner fleets on EC2 Auto Scaling sized to
/// their queue, with scaling policies written as WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "runner-scaler", version, about)]
pub struct Cli {
    /// How log lines are written (to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "RUNNER_SCALER_LOG_FORMAT")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, evaluate and inspect scaling policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

/// Run the command line; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Policy(command) => command.run().await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
