//! A simulation set up the way a user names it — a trace, policies by name
//! or file, their params, the group's settings — shared by
//! `runner-scaler simulate`, the README's tables (which are that command's
//! output) and the tests that check what each example policy claims.

use super::report::{self, Summary};
use super::run::{run, Run, Scenario};
use super::trace::Trace;
use super::world::{Boot, Exit, Protection, WarmPool, WorldSettings, STOPPED_PRICE_PER_HOUR};
use crate::policy::{
    BuiltinRule, CompileCache, Limits, Policy, PolicyEngine, PolicyLoader, PolicyRef,
};
use anyhow::Context;
use std::path::Path;

/// Everything about a simulation but the trace and the policies; the
/// defaults are `runner-scaler simulate`'s.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds between ticks.
    pub tick: u64,
    pub boot: Boot,
    pub warm_pool: WarmPool,
    /// Seconds a runner waits for a job before it exits.
    pub idle_timeout: u64,
    /// The pool's and the group's bounds.
    pub min: u32,
    pub max: u32,
    pub exit: Exit,
    pub protection: Protection,
    /// The pool's `allow_unprotected_scale_in`.
    pub allow_unprotected_scale_in: bool,
    /// Seeds random boot times.
    pub seed: u64,
    /// The pool's time zone, as policies see the clock.
    pub time_zone: jiff::tz::TimeZone,
    pub price_per_hour: f64,
    /// What a stopped instance in the warm pool costs per hour (its volume).
    pub stopped_price_per_hour: f64,
    /// Jobs that waited longer than this many seconds are counted.
    pub slow_wait: u64,
}

/// How long an instance of a runner image takes to take its first job: a
/// launch from nothing (`boot`), and a start from the warm pool (`start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image {
    /// Its name on the command line (`--image`).
    pub name: &'static str,
    pub boot: u64,
    pub warm_start: u64,
    /// Where the figures come from.
    pub source: &'static str,
}

/// A stock Ubuntu AMI: the user data installs the runner at every launch.
/// Boot 90 s (the figure this project has used since its first release:
/// EC2's launch to login plus the install, an estimate, not a
/// measurement); a warm start 25 s (EC2's start from stopped, ~21 s, plus
/// the runner's start: the install was done when the instance entered the
/// pool).
pub const STOCK: Image = Image {
    name: "stock",
    boot: 90,
    warm_start: 25,
    source: "launch to login ~26 s and start from stopped ~21 s (published EC2 measurements), \
             plus the user data's install (~60 s, an estimate) at launch",
};

/// The baked image (`examples/cloudformation/runner-image.yaml`): the
/// runner installed ahead of time, the user data's boot phase only. Boot
/// 30 s: EC2's launch to login, ~26 s as published, plus ~4 s for the boot
/// phase (0.2 s of its own work measured in the user-data harness, an AWS
/// call or two for the token) and the runner's first claim; a warm start
/// as the stock image's, which skips the install too.
pub const BAKED: Image = Image {
    name: "baked",
    boot: 30,
    warm_start: 25,
    source: "launch to login ~26 s and start from stopped ~21 s (published EC2 measurements), \
             plus ~4 s for the boot phase and the runner's first claim",
};

/// The images `--image` names.
pub const IMAGES: [Image; 2] = [STOCK, BAKED];

/// The default time between ticks: production's (the configuration's
/// default interval).
pub const DEFAULT_TICK: u64 = crate::config::DEFAULT_INTERVAL.as_secs();

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tick: DEFAULT_TICK,
            boot: Boot::Fixed(STOCK.boot),
            warm_pool: WarmPool::NONE,
            idle_timeout: 300,
            min: 0,
            max: 20,
            exit: Exit::Decrement,
            protection: Protection::All,
            allow_unprotected_scale_in: false,
            seed: 1,
            time_zone: jiff::tz::TimeZone::UTC,
            price_per_hour: 0.10,
            stopped_price_per_hour: STOPPED_PRICE_PER_HOUR,
            slow_wait: 300,
        }
    }
}

impl Settings {
    /// `policy` with `params` under these settings, named `label`.
    pub fn scenario(
        &self,
        label: String,
        policy: Policy,
        params: Vec<(String, String)>,
    ) -> Scenario {
        Scenario {
            label,
            policy,
            params,
            fallback: BuiltinRule::Hold,
            tick: self.tick,
            time_zone: self.time_zone.clone(),
            allow_unprotected_scale_in: self.allow_unprotected_scale_in,
            world: WorldSettings {
                boot: self.boot,
                warm_pool: self.warm_pool,
                idle_timeout: self.idle_timeout,
                exit: self.exit,
                protection: self.protection,
                min: self.min,
                max: self.max,
                seed: self.seed,
            },
            shadow: None,
        }
    }

    /// The settings in a line, for the report's heading (the exit behaviour
    /// is in each run's label when runs differ in it).
    pub fn describe(&self, with_exit: bool) -> String {
        let mut text = format!(
            "tick {}, boot {}, idle timeout {}, max {}",
            report::duration(self.tick),
            self.boot,
            report::duration(self.idle_timeout),
            self.max
        );
        if self.warm_pool.sized_by_policy {
            text += &format!(
                ", warm pool sized by the policy (start {})",
                report::duration(self.warm_pool.start)
            );
        } else if self.warm_pool.size > 0 {
            text += &format!(
                ", warm pool {} (start {})",
                self.warm_pool.size,
                report::duration(self.warm_pool.start)
            );
        }
        if self.min > 0 {
            text += &format!(", min {}", self.min);
        }
        if with_exit {
            text += &format!(", exit {}", self.exit.name());
        }
        text += match (self.protection, self.allow_unprotected_scale_in) {
            (Protection::All, _) => ", every instance protected from scale-in",
            (Protection::None, false) => ", no instance protected (the scaler does not scale in)",
            (Protection::None, true) => {
                ", no instance protected (the scaler scales in: allow_unprotected_scale_in)"
            }
        };
        text
    }
}

/// Built-in rules by name, files through one engine (and the compile cache).
pub fn load_policies(names: &[String]) -> anyhow::Result<Vec<Policy>> {
    let mut loader = PolicyLoader::lazy(|| {
        let cache = CompileCache::new(CompileCache::default_dir());
        PolicyEngine::new(Limits::default(), Some(cache))
    });
    names
        .iter()
        .map(|name| {
            loader
                .load(&PolicyRef::parse(name, Path::new("")))
                .with_context(|| {
                    format!(
                        "--policy {name}: not a built-in rule (queue, hold), and not a loadable policy file; \
                         the examples are built into target/policies/ by `cargo xtask policies`"
                    )
                })
        })
        .collect()
}

/// Simulate `policy` (a built-in rule's name or a policy file) with
/// `params` over `trace` (an embedded trace's name or a CSV file) under
/// `settings`, and summarize the run: one call for a test that checks what
/// a policy claims.
pub async fn figures(
    trace: &str,
    policy: &str,
    params: &[(&str, &str)],
    settings: &Settings,
) -> anyhow::Result<Summary> {
    let run = simulate(trace, policy, params, settings).await?;
    Ok(Summary::priced(
        &run,
        settings.price_per_hour,
        settings.stopped_price_per_hour,
        settings.slow_wait,
    ))
}

/// The whole run behind [`figures`], job by job, for a test that looks at
/// part of a day (the morning's waits, say).
pub async fn simulate(
    trace: &str,
    policy: &str,
    params: &[(&str, &str)],
    settings: &Settings,
) -> anyhow::Result<Run> {
    let trace = Trace::find(trace, None)?.for_class(None)?;
    let policy = load_policies(&[policy.to_string()])?.remove(0);
    let params = params
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let scenario = settings.scenario(policy.name().to_string(), policy, params);
    Ok(run(&trace, &scenario, &mut || {}).await)
}
