//! The integration tests, as one test binary: a module for each part of
//! the scaler, and `support` for the fakes and helpers they share. One
//! binary links wasmtime and the AWS SDK once, not once per test file.
//!
//! Run one part with its module's name: `cargo test --test it engine::`.

mod support;

mod asg;
mod buildkite;
mod bundle;
mod circleci;
mod claims;
mod cloudformation;
mod contract;
mod control_loop;
mod decision_record;
mod deploy;
mod dist;
mod docs;
mod engine;
mod hardening;
mod lambda;
mod metrics;
mod migration;
mod ops;
mod package;
mod policy_cli;
mod readme;
mod report;
mod sdk;
mod simulate;
mod stack_sources;
mod tick;
mod trace;
