//! The bindings of the current contract, `runner-scaler:policy@0.2.0`
//! (`wit/policy.wit`), and their conversions to and from the host's types.

use crate::observation as host;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    exports: { default: async },
});

// `self::`: the generated module shares its name with this crate.
pub use self::runner_scaler::policy::host::Host;
pub use self::runner_scaler::policy::types as wit;

/// The interface every policy of this version exports.
pub const DECIDER_EXPORT: &str = "runner-scaler:policy/decider@0.2.0";

/// The contract, as written at the top of `wit/policy.wit`.
pub const CONTRACT: &str = "runner-scaler:policy@0.2.0";

impl From<&host::Observation> for wit::Observation {
    fn from(o: &host::Observation) -> Self {
        let (q, c) = (&o.queue, &o.capacity);
        wit::Observation {
            pool: o.pool.clone(),
            queue: wit::Queue {
                waiting: q.waiting,
                running: q.running,
                blocked: q.blocked,
            },
            capacity: wit::Capacity {
                desired: c.desired,
                min: c.min,
                max: c.max,
                pending: c.pending,
                in_service: c.in_service,
                terminating: c.terminating,
                protected: c.protected,
                warm_pool: c.warm_pool.map(|w| wit::WarmPool {
                    instances: w.instances,
                    size: w.size,
                    max: w.max,
                }),
            },
            clock: super::clock!(wit, o.clock),
            params: o.params.clone(),
            state: o.state.clone(),
        }
    }
}

impl From<wit::Decision> for host::Decision {
    fn from(d: wit::Decision) -> Self {
        host::Decision {
            desired: d.desired,
            reason: d.reason,
            state: d.state,
            warm: d.warm,
        }
    }
}

super::weekday_and_level!(wit);
