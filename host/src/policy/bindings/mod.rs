//! The contract's generated bindings, one module per version the host
//! loads — `v0_2` (the current one, `wit/policy.wit`) and `v0_1`
//! (`wit/0.1.0/policy.wit`) — as hosts of versioned plugin contracts keep
//! each version's bindings side by side. A policy is bound to the version it
//! exports ([`PolicyPre`]); the conversions between each version's types and
//! the host's own live in its module, and generated types never leave here.

use super::output::PolicyLog;
use crate::observation as host;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{ComponentNamedList, InstancePre, Lift, Linker, Lower};
use wasmtime::Store;

/// The contract this host implements, as written at the top of
/// `wit/policy.wit`: what `policy new` and `policy build` target.
pub const CONTRACT: &str = v0_2::CONTRACT;

/// The interface a policy of the current contract exports.
pub const DECIDER_EXPORT: &str = v0_2::DECIDER_EXPORT;

/// Every contract this host loads, newest first, and the interface a
/// policy of each exports.
pub const CONTRACTS: [(&str, &str); 2] = [
    (v0_2::CONTRACT, v0_2::DECIDER_EXPORT),
    (v0_1::CONTRACT, v0_1::DECIDER_EXPORT),
];

/// A policy ready to be instantiated, bound to the contract version it was
/// built for.
pub enum PolicyPre<T: 'static> {
    V0_1(v0_1::PolicyPre<T>),
    V0_2(v0_2::PolicyPre<T>),
}

impl<T: Send + 'static> PolicyPre<T> {
    /// `pre` bound to the version whose `decider` it exports, once its
    /// `decide` is checked to have that version's types: wasmtime checks
    /// them only when a decision is asked for, the host when it loads the
    /// policy. `Err` says what is wrong; `None` when it exports no known
    /// `decider` at all.
    pub fn new(pre: InstancePre<T>) -> Option<Result<Self, String>> {
        let exports = |name| pre.component().get_export_index(None, name).is_some();
        if exports(v0_2::DECIDER_EXPORT) {
            return Some(
                typecheck::<T, (&v0_2::wit::Observation,), (Result<v0_2::wit::Decision, String>,)>(
                    &pre,
                    v0_2::DECIDER_EXPORT,
                )
                .and_then(|()| {
                    v0_2::PolicyPre::new(pre)
                        .map(PolicyPre::V0_2)
                        .map_err(|err| err.to_string())
                }),
            );
        }
        if exports(v0_1::DECIDER_EXPORT) {
            return Some(
                typecheck::<T, (&v0_1::wit::Observation,), (Result<v0_1::wit::Decision, String>,)>(
                    &pre,
                    v0_1::DECIDER_EXPORT,
                )
                .and_then(|()| {
                    v0_1::PolicyPre::new(pre)
                        .map(PolicyPre::V0_1)
                        .map_err(|err| err.to_string())
                }),
            );
        }
        None
    }

    /// The contract the policy was built for.
    pub fn contract(&self) -> &'static str {
        match self {
            PolicyPre::V0_1(_) => v0_1::CONTRACT,
            PolicyPre::V0_2(_) => v0_2::CONTRACT,
        }
    }

    /// A fresh instance in `store`, asked to decide on `observation` (as its
    /// version sees it).
    pub async fn decide(
        &self,
        store: &mut Store<T>,
        observation: &host::Observation,
    ) -> wasmtime::Result<Result<host::Decision, String>> {
        Ok(match self {
            PolicyPre::V0_1(pre) => {
                let input = observation.into();
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .runner_scaler_policy_decider()
                    .call_decide(&mut *store, &input)
                    .await?
                    .map(Into::into)
            }
            PolicyPre::V0_2(pre) => {
                let input = observation.into();
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .runner_scaler_policy_decider()
                    .call_decide(&mut *store, &input)
                    .await?
                    .map(Into::into)
            }
        })
    }
}

/// Every version's imports (`log`) in `linker`, each going to the
/// decision's log that `log` finds in the store.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    log: fn(&mut T) -> &mut PolicyLog,
) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_1::Policy::add_to_linker::<_, HasSelf<PolicyLog>>(linker, log)?;
    v0_2::Policy::add_to_linker::<_, HasSelf<PolicyLog>>(linker, log)
}

/// Fails, saying what differs, unless the function `decide` of `export`
/// has the parameter and result types `P` and `R`.
fn typecheck<T, P, R>(pre: &InstancePre<T>, export: &str) -> Result<(), String>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift,
{
    let component = pre.component();
    let func = component
        .get_export_index(None, export)
        .and_then(|decider| component.get_export(Some(&decider), "decide"));
    match func {
        Some((ComponentItem::ComponentFunc(func), _)) => {
            func.typecheck::<P, R>(&pre.instance_type()).map_err(|err| {
                let why: Vec<String> = err.chain().map(|cause| cause.to_string()).collect();
                format!(
                    "a function `decide` of another type ({}); the contract's is \
                     `decide: func(observation: observation) -> result<decision, string>`",
                    why.join(": ")
                )
            })
        }
        Some(_) => Err("an export `decide` that is not a function".to_string()),
        None => Err("no function `decide`".to_string()),
    }
}

/// The clock, the same record in every version: `clock!(wit, o.clock)`.
macro_rules! clock {
    ($wit:ident, $clock:expr) => {{
        let t = &$clock;
        $wit::Clock {
            unix_seconds: t.unix_seconds,
            year: t.year,
            month: t.month,
            day: t.day,
            hour: t.hour,
            minute: t.minute,
            weekday: t.weekday.into(),
            utc_offset_seconds: t.utc_offset_seconds,
            time_zone: t.time_zone.clone(),
        }
    }};
}
use clock;

/// The conversions of what every version has alike (the weekday, the log
/// level) and its `host` interface: a policy's `log` lines go to the
/// decision's bounded log.
macro_rules! weekday_and_level {
    ($wit:ident) => {
        impl From<crate::observation::Weekday> for $wit::Weekday {
            fn from(day: crate::observation::Weekday) -> Self {
                use crate::observation::Weekday as W;
                match day {
                    W::Monday => $wit::Weekday::Monday,
                    W::Tuesday => $wit::Weekday::Tuesday,
                    W::Wednesday => $wit::Weekday::Wednesday,
                    W::Thursday => $wit::Weekday::Thursday,
                    W::Friday => $wit::Weekday::Friday,
                    W::Saturday => $wit::Weekday::Saturday,
                    W::Sunday => $wit::Weekday::Sunday,
                }
            }
        }

        impl From<$wit::Level> for crate::policy::output::Level {
            fn from(level: $wit::Level) -> Self {
                use crate::policy::output::Level as L;
                match level {
                    $wit::Level::Debug => L::Debug,
                    $wit::Level::Info => L::Info,
                    $wit::Level::Warn => L::Warn,
                    $wit::Level::Error => L::Error,
                }
            }
        }

        impl Host for crate::policy::output::PolicyLog {
            fn log(&mut self, level: $wit::Level, message: String) {
                self.push(level.into(), &message);
            }
        }

        /// The `types` interface has no functions of its own to provide.
        impl $wit::Host for crate::policy::output::PolicyLog {}
    };
}
use weekday_and_level;

// After the macros they use.
mod v0_1;
mod v0_2;
