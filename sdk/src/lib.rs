//! Write a runner-scaler scaling policy in Rust: the rule is one plain
//! function, this crate is the rest.
//!
//! ```
//! use runner_scaler_policy::{export, Decision, Observation, Params};
//!
//! /// The pool's params: all optional, an unknown one is refused.
//! #[derive(Params)]
//! pub struct Params {
//!     /// Idle instances to keep while there are jobs.
//!     #[param(default = "0", example = "2")]
//!     pub spare: u32,
//! }
//!
//! /// One instance per job, plus `spare` while there is work.
//! pub fn decide(observation: &Observation) -> Result<Decision, String> {
//!     let params: Params = observation.params()?;
//!     let jobs = observation.queue.jobs();
//!     let wanted = if jobs > 0 { jobs.saturating_add(params.spare) } else { 0 };
//!     Ok(observation.decision(wanted, format!("{}", observation.queue)))
//! }
//!
//! export!(decide);
//!
//! // Native tests need nothing more:
//! let observation = Observation::sample().with_queue(3, 1).with_param("spare", "2");
//! assert_eq!(decide(&observation).unwrap().desired, 6);
//! ```
//!
//! What it gives a policy:
//!
//! - **The contract**, `runner-scaler:policy` at this crate's version (its
//!   `wit/policy.wit`): the types ([`Observation`], [`Decision`]...) and
//!   [`export!`], which makes a `fn(&Observation) -> Result<Decision, String>`
//!   the component's `decide` when built for WebAssembly, and only checks its
//!   type in a native build, so `cargo test` links.
//! - **Typed params**: [`derive(Params)`](derive@Params) on a struct, one
//!   field per param with its default; unknown names are refused and a
//!   malformed value is named with an example. Units are types:
//!   [`Days`] (`mon-fri`), [`Hours`] (`08-18`), [`Duration`](std::time::Duration)
//!   (`10m`).
//! - **State that fits**: [`derive(State)`](derive@State) keeps a small struct
//!   in the 256 bytes the host stores between ticks, as `name=value` pairs; a
//!   struct that might not fit does not compile.
//! - **Helpers** the rules need again and again: [`Queue::jobs`],
//!   [`Observation::decision`] (clamped to the pool's bounds, and says so),
//!   [`Days::contains`], [`Hours::contains`], `Display` for the queue and the
//!   clock, and [`Observation::sample`] to build test inputs.
//!
//! - **Small policies**: built for `wasm32-unknown-unknown`, a policy gets an
//!   allocator fitted to its one-decision instances instead of the standard
//!   library's (the default feature `bump-allocator`), and the helpers keep
//!   Unicode tables and generic code out ([`Quoted`] instead of `{:?}`).
//!
//! A policy crate has `crate-type = ["cdylib", "rlib"]` (the component, and
//! the library its native tests use) and is built with `runner-scaler policy
//! build`.

// The derives name this crate by its path, in its own tests too.
extern crate self as runner_scaler_policy;

#[cfg(all(
    target_arch = "wasm32",
    target_os = "unknown",
    feature = "bump-allocator"
))]
mod allocator;
mod clock;
mod observation;
pub mod params;
mod quoted;
mod sample;
pub mod state;

/// The bindings wit-bindgen generates for the contract. Policies use the
/// re-exports at the crate root; this module is public for [`export!`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "policy",
        // `export!` below wraps it; the name stays out of the way.
        export_macro_name: "__export_policy",
        pub_export_macro: true,
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::runner_scaler::policy::types::{
    Capacity, Clock, Decision, Level, Observation, Queue, WarmPool, Weekday,
};
pub use clock::{Days, Hours};
pub use params::FromParams;
pub use quoted::Quoted;
pub use state::{CompactState, StateField, MAX_STATE_BYTES};

/// `#[derive(Params)]`: a struct whose fields are the policy's params.
///
/// Each field is one param, named as the field, parsed with its type's
/// [`params::Param`] impl (whole numbers, numbers, `bool`, `String`,
/// [`Duration`](std::time::Duration), [`Days`], [`Hours`], or a type of
/// your own). Its `#[param(...)]` says:
///
/// - `default = "..."` (required): the value a pool gets when it does not set
///   the param, written as a pool would write it; parsed like one, so a
///   default that is not valid fails the policy's own `cargo test`.
/// - `example = "..."`: shown in the error for a malformed value, after what
///   the type expects: `` param `warm`: expected a whole number, e.g. `2`, got "lots" ``.
/// - `expected = "..."`: the whole phrase instead, for values `check` narrows:
///   `` expected = "a whole number of 1 or more, e.g. `2`" ``.
/// - `check = |value| ...`: a closure over `&T`; a value it refuses is malformed.
///
/// The doc comment of each field is its documentation in
/// [`FromParams::PARAMS`], with its name and default.
///
/// Every param has a default:
///
/// ```compile_fail
/// #[derive(runner_scaler_policy::Params)]
/// struct Params {
///     warm: u32,
/// }
/// ```
///
/// A default that does not parse fails every decision, and the policy's own
/// tests (the derive adds one):
///
/// ```
/// use runner_scaler_policy::{FromParams, Params};
///
/// #[derive(Params)]
/// struct Settings {
///     #[param(default = "two")]
///     warm: u32,
/// }
///
/// assert_eq!(
///     Settings::from_params(&[]).err().unwrap(),
///     "param `warm`: expected a whole number, got \"two\""
/// );
/// ```
pub use runner_scaler_policy_macros::Params;

/// `#[derive(State)]`: a struct the policy keeps between ticks.
///
/// Its fields are written as `name=value` pairs separated by spaces
/// (`empty_since=1795424400 streak=3`), in the order declared; a field of type
/// `Option<T>` is left out when `None`. Field types implement [`StateField`]:
/// integers, `bool`, `f32`/`f64`, and `Option` of those. The longest text the
/// struct can take is known when it compiles: over [`MAX_STATE_BYTES`], it
/// does not compile. Eleven `i64` fields with one-letter names take at most
/// 252 bytes:
///
/// ```
/// #[derive(runner_scaler_policy::State)]
/// struct Fits {
///     a: i64, b: i64, c: i64, d: i64, e: i64, f: i64, g: i64, h: i64, i: i64, j: i64, k: i64,
/// }
/// ```
///
/// Twelve may take 275 bytes:
///
/// ```compile_fail
/// #[derive(runner_scaler_policy::State)]
/// struct TooMuch {
///     a: i64, b: i64, c: i64, d: i64, e: i64, f: i64, g: i64, h: i64, i: i64, j: i64, k: i64,
///     l: i64,
/// }
/// ```
pub use runner_scaler_policy_macros::State;

/// The signature of a policy's rule.
pub type Decide = fn(&Observation) -> Result<Decision, String>;

/// Makes `decide`, a `fn(&Observation) -> Result<Decision, String>`, the
/// policy's `decide` export.
///
/// The export exists only in the WebAssembly build: native linkers cannot
/// take the contract's export names, and a native build is the policy's
/// unit tests. Natively the macro only checks `decide`'s type.
#[macro_export]
macro_rules! export {
    ($decide:path) => {
        const _: $crate::Decide = $decide;

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Policy;

            impl $crate::bindings::exports::runner_scaler::policy::decider::Guest for Policy {
                fn decide(
                    observation: $crate::Observation,
                ) -> ::core::result::Result<$crate::Decision, ::std::string::String> {
                    $decide(&observation)
                }
            }

    $crate::bindings::__export_policy!(Policy with_types_in $crate::bindings);
        };
    };
}

/// Writes a line to the host's log, tagged with the pool and the policy. In a
/// native build (the policy's tests) it goes to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::runner_scaler::policy::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?}: {message}");
}

/// The contract this crate implements: its version is the crate's.
pub const CONTRACT: &str = concat!("runner-scaler:policy@", env!("CARGO_PKG_VERSION"));

/// The contract this crate implements, as its WIT text.
pub const WIT: &str = include_str!("../wit/policy.wit");

#[cfg(test)]
mod tests {
    #[test]
    fn the_crate_is_versioned_with_its_contract() {
        let package = format!("package {};", super::CONTRACT);
        assert!(
            super::WIT.lines().any(|line| line == package),
            "wit/policy.wit declares another version than this crate's: give the crate the contract's version"
        );
    }
}
