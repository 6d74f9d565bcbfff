//! The command line: arguments in, one subcommand run, the error chain
//! printed once, an exit code out.

mod componentize;
mod language;
mod policy;
mod scale;
mod simulate;
mod trace;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
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
    /// Run one tick over every pool, print what was decided, and exit
    /// (0 when every pool was decided, 1 otherwise).
    Once(scale::ScaleArgs),
    /// Run as a daemon: a tick every interval until SIGTERM or SIGINT.
    Run(scale::ScaleArgs),
    /// Validate the configuration and load every policy, contacting nothing;
    /// with --probe, also try every AWS call the scaler makes.
    Check(scale::CheckArgs),
    /// Build, evaluate and inspect scaling policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run as an AWS Lambda function's runtime (the `bootstrap` of a
    /// provided.al2023 function): a tick per invocation. Chosen by itself
    /// when AWS_LAMBDA_RUNTIME_API is set and no subcommand is given.
    Lambda,
    /// Replay a day of CI jobs through scaling policies against a simulated
    /// group: job waits and instance cost, side by side, and a chart.
    Simulate(Box<simulate::SimulateArgs>),
    /// Make traces for `simulate` from CircleCI's job history: import its
    /// usage export, or fetch one from the Usage API.
    #[command(subcommand)]
    Trace(trace::TraceCommand),
}

/// Run the command line; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = parse();
    let ca_bundle = match cli.command {
        Command::Once(_)
        | Command::Run(_)
        | Command::Check(_)
        | Command::Lambda
        | Command::Trace(trace::TraceCommand::Fetch(_)) => {
            // SAFETY: no thread but this one exists yet: the runtime is
            // made below, and neither parsing nor logging starts one.
            unsafe { crate::ca_certificates::read_the_bundle_alone() }
        }
        Command::Policy(_) | Command::Simulate(_) | Command::Trace(_) => None,
    };
    let runtime_api_guard = match cli.command {
        // SAFETY: as above, no other thread exists yet.
        Command::Lambda => unsafe { crate::modes::runtime_api_guard::bind() },
        _ => None,
    };
    if !matches!(cli.command, Command::Run(_) | Command::Lambda) {
        // A closed pipe (`policy test --json | head`) ends a command quietly,
        // as it ends other Unix filters, where Rust's default (SIGPIPE
        // ignored) makes `println!` panic. The daemon and the Lambda keep
        // that default: they serve sockets, where EPIPE is an error to handle.
        // SAFETY: as above, no other thread exists yet.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let default_filter = match cli.command {
        Command::Simulate(_) => crate::simulate::LOG_FILTER,
        _ => "info",
    };
    init_logging(cli.log_format, default_filter);
    if let Some(bundle) = ca_bundle {
        tracing::debug!(
            bundle = %bundle.display(),
            "AWS's TLS reads this CA bundle alone (set SSL_CERT_DIR to read a certificate directory)"
        );
    }
    // `once` is one tick: its pools' reads, decisions and writes interleave
    // on one thread as they would on several (the tick spawns no task), and
    // a process started per tick then starts no worker threads and does not
    // wake them for every answer (50 context switches down to 7 in a cold
    // `once`). The long-running modes keep the thread pool.
    let runtime = match &cli.command {
        Command::Once(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Once(args) => scale::once(args).await,
            Command::Run(args) => scale::run(args).await,
            Command::Check(args) => scale::check(args).await,
            Command::Policy(command) => command.run().await,
            Command::Lambda => crate::modes::lambda::run(runtime_api_guard).await,
            Command::Simulate(args) => simulate::simulate(*args).await,
            Command::Trace(command) => command.run().await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            // The chain may quote a policy or an upstream.
            eprintln!(
                "error: {}",
                crate::text::escape_keeping_lines(&format!("{err:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

/// The command line, with Lambda's defaults inside Lambda: a bare
/// `bootstrap` (no arguments) is the `lambda` subcommand, and log lines are
/// JSON, which CloudWatch Logs Insights reads field by field.
fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if !crate::modes::lambda::detected() {
        return Cli::parse_from(args);
    }
    let mut args = args;
    if args.len() == 1 {
        args.push("lambda".into());
    }
    let command = Cli::command().mut_arg("log_format", |arg| arg.default_value("json"));
    let matches = command.get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(colours_wanted())
            .fmt_fields(crate::text::EscapedFields)
            .init(),
        // Decision records flat, as `once --json` prints them.
        LogFormat::Json => builder
            .json()
            .event_format(crate::log_format::JsonLines::default())
            .init(),
    }
}

/// Colours only on a terminal, and not when `NO_COLOR` is set to anything
/// (<https://no-color.org>): log files and CloudWatch get plain text.
fn colours_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
