//! What WASI gives a policy besides nothing: clocks and randomness that are
//! functions of the observation, so a policy stays a deterministic function
//! of its input and cannot make the host wait.
//!
//! - The wall clock is stopped at the observation's time.
//! - The monotonic clock is the decision's own: it starts at 0 and only
//!   sleeping moves it. A sleep (`subscribe-duration`, `subscribe-instant`,
//!   then `pollable.block` or `poll`) that ends within the decision's
//!   deadline is over at once, the clock moved to its end; one that would end
//!   past the deadline never ends, and the decision stops at its deadline.
//! - Random bytes, "secure" and "insecure" alike, come from a generator
//!   seeded with a hash of the observation: the same observation, the same
//!   bytes.

use crate::observation::Observation;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasi_rand::rngs::StdRng;
use wasi_rand::SeedableRng;
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable};

/// Most bytes one `get-random-bytes` call returns. The WASI default (64 MiB)
/// would let one call spend the host's time and memory outside the guest,
/// where the deadline's epochs cannot stop it.
pub const MAX_RANDOM_BYTES: u64 = 64 * 1024;

/// WASI's wall clock, stopped at the observation's time: a policy sees one
/// time, the one the host decided with.
pub struct ObservedClock(pub i64);

impl wasmtime_wasi::HostWallClock for ObservedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::from_secs(self.0.max(0) as u64)
    }
}

/// One decision's monotonic clock, in nanoseconds since the decision began,
/// counting only the time the policy slept.
#[derive(Clone)]
pub struct VirtualClock {
    now: Arc<AtomicU64>,
    /// The decision's deadline: no sleep ends past it.
    deadline: u64,
}

impl VirtualClock {
    pub fn new(deadline: Duration) -> Self {
        VirtualClock {
            now: Arc::default(),
            deadline: u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// A pollable that is ready when the clock reads `until`.
    fn sleep_until(
        &self,
        table: &mut ResourceTable,
        until: u64,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let sleep = table.push(Sleep {
            clock: self.clone(),
            until,
        })?;
        wasmtime_wasi::p2::subscribe(table, sleep)
    }
}

impl wasmtime_wasi::HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        VirtualClock::now(self)
    }
}

/// A sleep on the [`VirtualClock`].
struct Sleep {
    clock: VirtualClock,
    until: u64,
}

impl Pollable for Sleep {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            if self.until > self.clock.deadline {
                // Past the deadline: the decision's timeout ends it.
                std::future::pending::<()>().await;
            }
            self.clock.now.fetch_max(self.until, Ordering::Relaxed);
        })
    }
}

/// `wasi:clocks/monotonic-clock` on a decision's [`VirtualClock`]; it
/// replaces wasmtime-wasi's, which sleeps in real time.
pub struct VirtualTime;

impl HasData for VirtualTime {
    type Data<'a> = VirtualTimeView<'a>;
}

/// What the monotonic clock's functions need of a decision's store.
pub struct VirtualTimeView<'a> {
    pub clock: &'a VirtualClock,
    pub table: &'a mut ResourceTable,
}

impl monotonic_clock::Host for VirtualTimeView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.clock.now())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.clock.sleep_until(self.table, when)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let until = self.clock.now().saturating_add(duration);
        self.clock.sleep_until(self.table, until)
    }
}

/// Where one decision's random bytes come from: a hash of its observation.
/// The generators only need to differ from each other, not to be secret, so
/// each takes the hash with one byte changed.
pub struct Seeds([u8; 32]);

impl Seeds {
    pub fn new(observation: &Observation) -> Self {
        let mut hash = Sha256::new();
        // An observation always serializes: its fields are plain data.
        let _ = serde_json::to_writer(&mut hash, observation);
        Seeds(hash.finalize().into())
    }

    /// The generator behind `wasi:random/random`.
    pub fn secure(&self) -> StdRng {
        StdRng::from_seed(self.variant(1))
    }

    /// The generator behind `wasi:random/insecure`.
    pub fn insecure(&self) -> StdRng {
        StdRng::from_seed(self.variant(2))
    }

    /// The 128 bits `wasi:random/insecure-seed` returns.
    pub fn insecure_seed(&self) -> u128 {
        let bytes = self.variant(3);
        u128::from_le_bytes(bytes[..16].try_into().expect("16 of 32 bytes"))
    }

    fn variant(&self, n: u8) -> [u8; 32] {
        let mut seed = self.0;
        seed[31] ^= n;
        seed
    }
}
