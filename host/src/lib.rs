//! runner-scaler keeps a fleet of self-hosted CircleCI runners, an EC2 Auto
//! Scaling group per pool, sized to the work waiting for it.
//!
//! The data path, one tick per pool: sources (queue depth) and groups
//! (capacity) → [`Observation`] → [`policy`] (a WebAssembly component or a
//! built-in rule) → [`Decision`] → clamp and safety rules → apply.

pub mod cli;
pub mod observation;
pub mod policy;

pub use observation::{Capacity, Clock, Decision, Observation, Queue, Weekday};
