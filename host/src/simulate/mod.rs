//! The simulator: replay a trace of CI jobs through a policy, with a
//! simulated Auto Scaling group and queue in place of AWS and CircleCI, and
//! report what the jobs waited and what the instances cost.
//!
//! The simulated [`World`] implements the same traits as the real group and
//! queue, so [`run`] drives the production [`tick`](crate::tick::tick) — the
//! policy, its fallback, clamping and the safety rules are the ones that
//! would run in production.
//!
//! - [`trace`]: the CSV format and the embedded traces;
//! - [`world`]: the group, its instances and the queue;
//! - [`run`](mod@run): ticks over simulated time;
//! - [`report`]: the figures and the side-by-side table;
//! - [`chart`]: the SVG;
//! - [`html`]: the self-contained HTML report;
//! - [`stats`]: the percentiles the report and the trace share;
//! - [`window`]: the part of a run a report counts (`--report-from`);
//! - [`experiment`]: a simulation set up by names, as the command line,
//!   the README's tables and the policy tests set it up.

pub mod chart;
pub mod experiment;
pub mod html;
pub mod report;
pub mod run;
pub mod stats;
pub mod trace;
pub mod window;
pub mod world;

pub use experiment::{figures, simulate, Settings};
pub use report::Summary;
pub use run::{run, Run, Scenario};
pub use trace::Trace;
pub use world::{Boot, Exit, Protection, World, WorldSettings};

/// The log filter for `simulate` when `RUST_LOG` is not set: each tick's
/// decision record (info) and a failing policy's error (logged every tick)
/// would flood the terminal; the report counts policy failures instead.
pub const LOG_FILTER: &str = "warn,decision=off,runner_scaler::policy=off";
