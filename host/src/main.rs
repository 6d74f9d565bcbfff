//! The `runner-scaler` binary: parse the command line, run, print the error
//! chain once and pick the exit code.

fn main() -> std::process::ExitCode {
    runner_scaler::cli::main()
}
