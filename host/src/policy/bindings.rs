//! The generated bindings of `wit/policy.wit`: the conversions between them
//! and the host's own types, and the host's side of the contract's imports.
//! Generated types never leave this module.

use super::output::{self, PolicyLog};
use crate::observation as host;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    exports: { default: async },
});

// `self::`: the generated module shares its name with this crate.
use self::runner_scaler::policy::host::Host;
use self::runner_scaler::policy::types as wit;

/// The fully qualified name of the interface every policy must export.
pub const DECIDER_EXPORT: &str = "runner-scaler:policy/decider@0.1.0";

/// The contract this host implements, as written at the top of `wit/policy.wit`.
pub const CONTRACT: &str = "runner-scaler:policy@0.1.0";

/// Fails, saying what differs, unless the component's `decide` has the
/// contract's parameter and result types. wasmtime checks them only when a
/// decision is asked for; the host checks them when it loads the policy.
pub fn typecheck_decide<T>(pre: &wasmtime::component::InstancePre<T>) -> Result<(), String> {
    use wasmtime::component::types::ComponentItem;
    let component = pre.component();
    let func = component
        .get_export_index(None, DECIDER_EXPORT)
        .and_then(|decider| component.get_export(Some(&decider), "decide"));
    match func {
        Some((ComponentItem::ComponentFunc(func), _)) => func
            .typecheck::<(&wit::Observation,), (Result<wit::Decision, String>,)>(
                &pre.instance_type(),
            )
            .map_err(|err| {
                let why: Vec<String> = err.chain().map(|cause| cause.to_string()).collect();
                format!(
                    "a function `decide` of another type ({}); the contract's is \
                     `decide: func(observation: observation) -> result<decision, string>`",
                    why.join(": ")
                )
            }),
        Some(_) => Err("an export `decide` that is not a function".to_string()),
        None => Err("no function `decide`".to_string()),
    }
}

impl From<&host::Observation> for wit::Observation {
    fn from(o: &host::Observation) -> Self {
        let (q, c, t) = (&o.queue, &o.capacity, &o.clock);
        wit::Observation {
            pool: o.pool.clone(),
            queue: wit::Queue {
                waiting: q.waiting,
                running: q.running,
            },
            capacity: wit::Capacity {
                desired: c.desired,
                min: c.min,
                max: c.max,
                pending: c.pending,
                in_service: c.in_service,
                terminating: c.terminating,
                protected: c.protected,
            },
            clock: wit::Clock {
                unix_seconds: t.unix_seconds,
                year: t.year,
                month: t.month,
                day: t.day,
                hour: t.hour,
                minute: t.minute,
                weekday: t.weekday.into(),
                utc_offset_seconds: t.utc_offset_seconds,
                time_zone: t.time_zone.clone(),
            },
            params: o.params.clone(),
            state: o.state.clone(),
        }
    }
}

impl From<host::Weekday> for wit::Weekday {
    fn from(day: host::Weekday) -> Self {
        match day {
            host::Weekday::Monday => wit::Weekday::Monday,
            host::Weekday::Tuesday => wit::Weekday::Tuesday,
            host::Weekday::Wednesday => wit::Weekday::Wednesday,
            host::Weekday::Thursday => wit::Weekday::Thursday,
            host::Weekday::Friday => wit::Weekday::Friday,
            host::Weekday::Saturday => wit::Weekday::Saturday,
            host::Weekday::Sunday => wit::Weekday::Sunday,
        }
    }
}

impl From<wit::Decision> for host::Decision {
    fn from(d: wit::Decision) -> Self {
        host::Decision {
            desired: d.desired,
            reason: d.reason,
            state: d.state,
        }
    }
}

/// The contract's `host` interface: a policy's `log` lines go to the
/// decision's bounded log.
impl Host for PolicyLog {
    fn log(&mut self, level: wit::Level, message: String) {
        self.push(level.into(), &message);
    }
}

/// The `types` interface has no functions of its own to provide.
impl wit::Host for PolicyLog {}

impl From<wit::Level> for output::Level {
    fn from(level: wit::Level) -> Self {
        match level {
            wit::Level::Debug => output::Level::Debug,
            wit::Level::Info => output::Level::Info,
            wit::Level::Warn => output::Level::Warn,
            wit::Level::Error => output::Level::Error,
        }
    }
}
