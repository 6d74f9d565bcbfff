//! Everything that can go wrong with a policy, as one error type whose
//! messages name the policy and say what to do.

use std::path::PathBuf;
use std::time::Duration;

/// A policy could not be loaded, or could not decide.
///
/// Load errors (`Read` to `Compile`) happen at start; decision errors
/// (`Deadline` to `BadOutput`) happen on a tick and make the pool fall back.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {}", error.reason())]
    Read {
        path: PathBuf,
        error: crate::input_file::ReadError,
    },

    #[error(
        "policy {path} is larger than {} MiB, more than any policy needs (Rust policies are \
         ~100 KiB, Python and JavaScript ones ~10 to 40 MB): is it the file you meant?",
        limit / (1024 * 1024)
    )]
    TooLarge { path: PathBuf, limit: u64 },

    #[error(
        "policy {path} is not a WebAssembly file\n\
         build it with `runner-scaler policy build` and point to the .wasm it writes"
    )]
    NotWasm { path: PathBuf },

    #[error(
        "policy {path} is a core WebAssembly module that cannot be made into a component: {message}\n\
         build it with the runner-scaler-policy SDK, or wit-bindgen against runner-scaler's wit/, with `runner-scaler policy build`"
    )]
    Componentize { path: PathBuf, message: String },

    #[error(
        "policy {path} does not implement {expected}: it exports {found}\n\
         rebuild it with the runner-scaler-policy SDK of that version (`runner-scaler policy new` writes a crate that uses it), or against this runner-scaler's wit/policy.wit"
    )]
    WrongContract {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("policy {path} cannot be compiled: {message}")]
    Compile { path: PathBuf, message: String },

    #[error(
        "policy {path} has SHA-256 {found}, but the pool pins {expected} ({field}): it is \
         not the file that was reviewed. If it is the one you mean, set {field} = \"{found}\""
    )]
    Digest {
        path: PathBuf,
        /// The setting that pins it: `policy_sha256` or `shadow_sha256`.
        field: &'static str,
        expected: String,
        found: String,
    },

    #[error(
        "policy {path}: the precompiled directory {dir} holds code for it that must not run: \
         {message}\nrun `runner-scaler policy precompile` again into a directory only the deployer may \
         write (or leave --precompiled out to compile it)"
    )]
    Precompiled {
        path: PathBuf,
        dir: PathBuf,
        message: String,
    },

    #[error("policy {policy} ran past its deadline of {} ms and was stopped", limit.as_millis())]
    Deadline { policy: String, limit: Duration },

    #[error("policy {policy} tried to use more than its memory limit of {} MiB and was stopped", limit / (1024 * 1024))]
    OutOfMemory { policy: String, limit: usize },

    /// `message` is one line: the trap and the policy's innermost frame;
    /// `backtrace`, every frame, is for debug logs.
    #[error("policy {policy} crashed: {message}")]
    Trap {
        policy: String,
        message: String,
        backtrace: Option<String>,
    },

    #[error("policy {policy} returned an error: {message}")]
    Refused { policy: String, message: String },

    #[error("policy {policy} returned a decision the host cannot use: {message}")]
    BadOutput { policy: String, message: String },
}

impl PolicyError {
    /// A short, stable name for the kind of failure (metrics label, JSON).
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::Read { .. } => "read",
            PolicyError::TooLarge { .. } => "too_large",
            PolicyError::Digest { .. } => "digest",
            PolicyError::NotWasm { .. } => "not_wasm",
            PolicyError::Componentize { .. } => "componentize",
            PolicyError::WrongContract { .. } => "wrong_contract",
            PolicyError::Compile { .. } => "compile",
            PolicyError::Precompiled { .. } => "precompiled",
            PolicyError::Deadline { .. } => "deadline",
            PolicyError::OutOfMemory { .. } => "out_of_memory",
            PolicyError::Trap { .. } => "trap",
            PolicyError::Refused { .. } => "refused",
            PolicyError::BadOutput { .. } => "bad_output",
        }
    }
}

/// An error and its causes on one line.
pub(super) fn chain(err: &wasmtime::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
