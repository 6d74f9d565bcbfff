//! runner-scaler keeps a fleet of self-hosted CircleCI runners, an EC2 Auto
//! Scaling group per pool, sized to the work waiting for it.
//!
//! The data path, one tick per pool: sources (queue depth) and groups
//! (capacity) → [`Observation`] → [`policy`] (a WebAssembly component or a
//! built-in rule) → [`Decision`] → clamp and safety rules → apply.

pub mod aws;
pub mod aws_answer_cap;
pub mod bounds;
pub mod ca_certificates;
pub mod cases;
pub mod cli;
pub mod config;
pub mod emf;
pub mod groups;
pub mod iam;
pub mod input_file;
pub mod log_format;
pub mod metrics;
pub mod modes;
pub mod observation;
pub mod params;
pub mod plan;
pub mod policy;
pub mod report;
pub mod sample;
pub mod secret;
pub mod simulate;
pub mod sources;
pub mod state;
pub mod text;
pub mod tick;
pub mod time_zone;
pub mod token_secret;
pub mod trace_import;

pub use observation::{Capacity, Clock, Decision, Observation, Queue, WarmPool, Weekday};
