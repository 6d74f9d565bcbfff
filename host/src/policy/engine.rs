//! The WebAssembly policy engine: one wasmtime `Engine` and `Linker` for the
//! process, a pre-instantiated policy per file, and a fresh, limited store
//! for every decision.

use super::bindings::{self, PolicyPre};
use super::cache::CompileCache;
use super::compile::{self, Compiler};
use super::error::chain;
use super::limits::{self, Limits, MAX_ERROR_BYTES, MAX_POLICY_FILE_BYTES, MAX_REASON_BYTES};
use super::output::{self, BoundedOutput, Level, PolicyLog};
use super::wasi::{ObservedClock, Seeds, VirtualClock, VirtualTime, VirtualTimeView};
use super::{load, PolicyError};
use crate::observation::{Decision, Observation};
use crate::state::state_problem;
use crate::text::cut;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    WasmBacktrace,
};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// WASI resources (streams, pollables...) one decision may hold at once.
/// wasmtime's default, a million, would let a policy spend the host's memory
/// outside its own memory limit.
const MAX_RESOURCES: usize = 10_000;

/// Loads policies and runs their decisions under [`Limits`].
pub struct PolicyEngine {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    compiler: Compiler,
    epoch_period: Duration,
}

/// How the engine is built, beyond the sandbox's limits.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Compile for this target triple with its baseline CPU features instead
    /// of the host's detected ones. Set it (to [`linux_target`] of the host's
    /// architecture) where code compiled elsewhere must be found by its
    /// cache key: `policy precompile --target` builds with the same triple,
    /// so both engines have the same compatibility hash.
    pub target: Option<String>,
    /// A directory of entries written by `policy precompile`, consulted
    /// before the cache and never written.
    pub precompiled: Option<PathBuf>,
}

impl EngineOptions {
    /// An engine that reads `policy precompile`'s entries for this machine
    /// from `dir` before the cache: this architecture's baseline target,
    /// which is the key `policy precompile` writes them under (the Lambda
    /// engine, and `once`/`run` with `--precompiled`).
    pub fn precompiled(dir: PathBuf) -> Self {
        EngineOptions {
            target: Some(linux_target(std::env::consts::ARCH)),
            precompiled: Some(dir),
        }
    }
}

/// The Linux target triple wasmtime compiles for on `arch` (`x86_64`,
/// `aarch64`): what `policy precompile --target` and the Lambda engine use.
pub fn linux_target(arch: &str) -> String {
    format!("{arch}-unknown-linux-gnu")
}

/// The wasmtime configuration every policy engine uses; `target` as in
/// [`EngineOptions::target`]. One function, so an engine that precompiles
/// for another machine cannot drift from the one that loads the code.
fn engine_config(limits: &Limits, target: Option<&str>) -> Result<Config, PolicyError> {
    let mut config = Config::new();
    if let Some(target) = target {
        config.target(target).map_err(engine_error)?;
    }
    config.epoch_interruption(true);
    // Instances come from a pool reserved up front: a decision's fresh
    // instance then costs microseconds, not an mmap. Each decision gets an
    // equal share, capped per component so that one policy cannot take the
    // pool from the others.
    let mut pool = PoolingAllocationConfig::new();
    let n = limits.concurrent_decisions;
    let share = limits::PER_DECISION;
    pool.total_component_instances(n)
        .max_core_instances_per_component(share.core_instances)
        .total_core_instances(n * share.core_instances)
        .max_memories_per_component(share.memories)
        .total_memories(n * share.memories)
        .max_tables_per_component(share.tables)
        .total_tables(n * share.tables)
        .table_elements(share.table_elements)
        .total_stacks(n)
        .max_memory_size(limits.memory_bytes)
        // Give finished slots back to the kernel in batches, not with one
        // madvise per decision.
        .decommit_batch_size((n as usize / 4).max(1));
    // Where the kernel can tell which pages a decision touched (PAGEMAP_SCAN,
    // Linux 6.7+), reset those in place instead of unmapping them, so the
    // next decision takes no page faults: half the cost of a decision.
    // Without it, keeping memory resident means clearing all of it every
    // time, which costs more than it saves.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(64 << 10);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(config)
}

/// A loaded policy, ready to decide. Cheap to clone; safe to share between
/// pools, since every decision gets an instance of its own.
#[derive(Clone)]
pub struct WasmPolicy {
    inner: Arc<Loaded>,
}

struct Loaded {
    name: String,
    path: PathBuf,
    /// SHA-256 of the file's bytes, lowercase hex.
    sha256: String,
    pre: PolicyPre<HostState>,
    engine: Engine,
    limits: Limits,
    deadline_ticks: u64,
}

/// What a decision's store holds: the WASI context (nothing granted), its
/// monotonic clock, the memory cap and the policy's log.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    clock: VirtualClock,
    memory: MemoryCap,
    log: PolicyLog,
}

impl PolicyEngine {
    /// An engine whose decisions run under `limits`, caching compiled code in
    /// `cache` when one is given.
    pub fn new(limits: Limits, cache: Option<CompileCache>) -> Result<Self, PolicyError> {
        PolicyEngine::with_options(limits, cache, EngineOptions::default())
    }

    /// [`PolicyEngine::new`], built as `options` say.
    pub fn with_options(
        limits: Limits,
        cache: Option<CompileCache>,
        options: EngineOptions,
    ) -> Result<Self, PolicyError> {
        let config = engine_config(&limits, options.target.as_deref())?;
        let engine = Engine::new(&config).map_err(|err| match &options.target {
            Some(target) => PolicyError::Compile {
                path: PathBuf::from("<engine>"),
                message: format!(
                    "cannot compile for {target}: {}; this build of runner-scaler has only its own \
                     architecture's code generator: precompile on a machine of that architecture, \
                     or build runner-scaler with `--features cross-arch`",
                    chain(&err)
                ),
            },
            None => engine_error(err),
        })?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        // The decision's own monotonic clock replaces the real one: sleeping
        // must not make the host wait (see `wasi.rs`).
        linker.allow_shadowing(true);
        monotonic_clock::add_to_linker::<_, VirtualTime>(&mut linker, |state: &mut HostState| {
            VirtualTimeView {
                clock: &state.clock,
                table: &mut state.table,
            }
        })
        .map_err(engine_error)?;
        linker.allow_shadowing(false);
        // The contract's own import, `log`, of every version the host
        // loads, goes to the decision's log.
        bindings::add_to_linker(&mut linker, |state: &mut HostState| &mut state.log)
            .map_err(engine_error)?;

        // The deadline is counted in epochs; ten per deadline keeps the
        // overshoot within a tenth of it.
        let epoch_period =
            (limits.deadline / 10).clamp(Duration::from_millis(1), Duration::from_millis(50));
        start_epoch_ticker(&engine, epoch_period);
        Ok(PolicyEngine {
            engine,
            linker,
            limits,
            compiler: Compiler::new(cache, options.precompiled),
            epoch_period,
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Load the policy at `path`: a component, or a core module carrying its
    /// contract. Fails if it does not implement this host's contract.
    pub fn load(&self, path: &Path) -> Result<WasmPolicy, PolicyError> {
        self.load_bytes(path, &load::read_policy_file(path)?)
    }

    /// Load a policy from `bytes`; `path` names it in messages.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<WasmPolicy, PolicyError> {
        if bytes.len() as u64 > MAX_POLICY_FILE_BYTES {
            return Err(PolicyError::TooLarge {
                path: path.into(),
                limit: MAX_POLICY_FILE_BYTES,
            });
        }
        let component = self.compiler.component(&self.engine, path, bytes)?;
        load::check_contract(path, &self.engine, &component)?;
        let pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|err| PolicyError::WrongContract {
                    path: path.into(),
                    expected: format!("{} (and optionally WASI 0.2)", contracts()),
                    found: format!("a component that cannot be linked: {}", chain(&err)),
                })?;
        // Names alone are not the contract: a `decide` whose types differ
        // would fail on every tick. Refuse it now.
        let pre = match PolicyPre::new(pre) {
            Some(Ok(pre)) => pre,
            Some(Err(mismatch)) => {
                return Err(PolicyError::WrongContract {
                    path: path.into(),
                    expected: format!("`decide` as written in {}", contracts()),
                    found: mismatch,
                })
            }
            None => {
                return Err(PolicyError::WrongContract {
                    path: path.into(),
                    expected: contracts(),
                    found: "no decider interface of a version this host knows".into(),
                })
            }
        };
        let ticks = self
            .limits
            .deadline
            .as_nanos()
            .div_ceil(self.epoch_period.as_nanos()) as u64;
        Ok(WasmPolicy {
            inner: Arc::new(Loaded {
                name: policy_name(path),
                path: path.into(),
                sha256: sha256_hex(bytes),
                pre,
                engine: self.engine.clone(),
                limits: self.limits,
                // One more than the deadline: the current epoch may be nearly over.
                deadline_ticks: ticks + 1,
            }),
        })
    }

    /// Compile the policy at `path` for this engine's target and store it in
    /// `out` under the key this engine's twin will look for; the entry's
    /// path. Used with a cross-target engine, which cannot load what it
    /// compiles, so the contract is not checked here: load the policy with a
    /// host engine first.
    pub fn precompile_into(&self, path: &Path, out: &CompileCache) -> Result<PathBuf, PolicyError> {
        let bytes = load::read_policy_file(path)?;
        compile::precompile_into(&self.engine, path, &bytes, out)
    }
}

impl WasmPolicy {
    /// The policy's name: its file name without extension.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// SHA-256 of the file it was loaded from (what `policy_sha256` pins).
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// The contract it was built for (`runner-scaler:policy@0.2.0`).
    pub fn contract(&self) -> &'static str {
        self.inner.pre.contract()
    }

    /// Ask the policy for a decision, in a fresh instance. Returns the
    /// decision (or why there is none) and what the policy logged.
    pub async fn decide(
        &self,
        observation: &Observation,
    ) -> (Result<Decision, PolicyError>, PolicyLog) {
        let loaded = &*self.inner;
        let limits = loaded.limits;
        let stdout = BoundedOutput::new(limits.log_line_bytes * 4);
        let stderr = BoundedOutput::new(limits.log_line_bytes * 4);
        let clock = VirtualClock::new(limits.deadline);
        let seeds = Seeds::new(observation);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(ObservedClock(observation.clock.unix_seconds))
            .monotonic_clock(clock.clone())
            .secure_random(seeds.secure())
            .insecure_random(seeds.insecure())
            .insecure_random_seed(seeds.insecure_seed())
            .max_random_size(super::wasi::MAX_RANDOM_BYTES)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = HostState {
            wasi,
            table,
            clock,
            memory: MemoryCap {
                limit: limits.memory_bytes,
                exceeded: false,
            },
            log: PolicyLog::new(limits.log_lines, limits.log_line_bytes),
        };
        let mut store = Store::new(&loaded.engine, state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(loaded.deadline_ticks);
        store.epoch_deadline_trap();

        // Epochs stop a policy that runs past its deadline in its own code;
        // this timeout stops one that waits in a host call, where epochs
        // never fire.
        let called =
            tokio::time::timeout(limits.deadline, loaded.pre.decide(&mut store, observation)).await;

        let mut log = std::mem::take(&mut store.data_mut().log);
        stdout.drain_into(&mut log, Level::Info);
        stderr.drain_into(&mut log, Level::Warn);
        let result = match called {
            Err(_elapsed) => Err(PolicyError::Deadline {
                policy: loaded.name.clone(),
                limit: limits.deadline,
            }),
            Ok(Ok(Ok(decision))) => checked(&loaded.name, decision),
            // An interpreter may report running out of memory as an error of
            // its own (SpiderMonkey's "out of memory" becomes the result's
            // `err`): the cap was hit, and that is what the operator must read.
            Ok(Ok(Err(_))) if store.data().memory.exceeded => Err(PolicyError::OutOfMemory {
                policy: loaded.name.clone(),
                limit: limits.memory_bytes,
            }),
            Ok(Ok(Err(message))) => Err(PolicyError::Refused {
                policy: loaded.name.clone(),
                message: cut(&message, MAX_ERROR_BYTES),
            }),
            Ok(Err(err)) => Err(classify(
                &loaded.name,
                &limits,
                store.data().memory.exceeded,
                &err,
            )),
        };
        (result, log)
    }
}

/// The contracts this host loads, for messages: "runner-scaler:policy@0.2.0
/// or runner-scaler:policy@0.1.0".
fn contracts() -> String {
    bindings::CONTRACTS
        .iter()
        .map(|(contract, _)| *contract)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The policy's decision if the host can use it: the state is a value the
/// group's tag can hold, the reason is one line of reasonable length.
fn checked(policy: &str, mut decision: Decision) -> Result<Decision, PolicyError> {
    if let Some(problem) = decision.state.as_deref().and_then(state_problem) {
        return Err(PolicyError::BadOutput {
            policy: policy.to_string(),
            message: format!("its state cannot be kept: {problem}"),
        });
    }
    let first_line = decision.reason.lines().next().unwrap_or_default();
    decision.reason = output::truncate(first_line, MAX_REASON_BYTES).to_string();
    Ok(decision)
}

/// Why a call into the policy failed, from the host's point of view.
fn classify(
    policy: &str,
    limits: &Limits,
    memory_exceeded: bool,
    err: &wasmtime::Error,
) -> PolicyError {
    let policy = policy.to_string();
    if memory_exceeded {
        PolicyError::OutOfMemory {
            policy,
            limit: limits.memory_bytes,
        }
    } else if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        PolicyError::Deadline {
            policy,
            limit: limits.deadline,
        }
    } else {
        let (message, backtrace) = trap_summary(err);
        PolicyError::Trap {
            policy,
            message,
            backtrace,
        }
    }
}

/// A trap as one line — what went wrong and in which function of the
/// policy — and its whole backtrace apart, one frame a line.
fn trap_summary(err: &wasmtime::Error) -> (String, Option<String>) {
    let Some(backtrace) = err.downcast_ref::<WasmBacktrace>() else {
        return (chain(err), None);
    };
    // The backtrace is one of the error's causes; its text is left out here.
    let whole = backtrace.to_string();
    let what = err
        .chain()
        .map(|cause| cause.to_string())
        .filter(|cause| *cause != whole)
        .collect::<Vec<_>>()
        .join(": ");
    let frame_name = |frame: &wasmtime::FrameInfo| match frame.func_name() {
        Some(name) => match rustc_demangle::try_demangle(name) {
            Ok(name) => format!("{name:#}"),
            Err(_) => name.to_string(),
        },
        None => format!("function #{}", frame.func_index()),
    };
    // The innermost frame of the policy's own code: past the Rust runtime's
    // panic machinery, which every Rust panic goes through.
    let runtime = [
        "std::",
        "core::",
        "alloc::",
        "__rustc::",
        "<std::",
        "<core::",
        "<alloc::",
    ];
    let names: Vec<String> = backtrace.frames().iter().map(frame_name).collect();
    let top = names
        .iter()
        .find(|name| !runtime.iter().any(|prefix| name.starts_with(prefix)))
        .or(names.first());
    let message = match top {
        Some(top) => format!("{what}, in {top}"),
        None => what,
    };
    let frames = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{i}: {name}"))
        .collect::<Vec<_>>()
        .join("\n");
    (message, Some(frames))
}

fn engine_error(err: wasmtime::Error) -> PolicyError {
    PolicyError::Compile {
        path: PathBuf::from("<engine>"),
        message: chain(&err),
    }
}

fn policy_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Advance the engine's epoch every `period` for as long as the engine lives.
fn start_epoch_ticker(engine: &Engine, period: Duration) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("policy-deadline".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(period);
            }
        })
        .expect("cannot start the policy deadline thread");
}

/// Refuses memory growth past the limit and remembers that it did, so the
/// trap that follows can be reported as what it is.
struct MemoryCap {
    limit: usize,
    exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit;
        self.exceeded |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// SHA-256 of `bytes`, lowercase hex: a policy file's digest as
/// `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    super::cache::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(reason: &str, state: Option<&str>) -> Decision {
        Decision {
            desired: 3,
            reason: reason.into(),
            state: state.map(str::to_string),
            warm: None,
        }
    }

    #[test]
    fn a_failed_call_is_classified_by_what_the_host_saw() {
        let limits = Limits::default();
        let interrupt = wasmtime::Error::new(Trap::Interrupt);
        let crash = wasmtime::Error::new(Trap::UnreachableCodeReached).context("in decide");
        // (name, the memory cap refused growth, the error, the kind expected)
        let cases = [
            ("refused growth, then a trap", true, &crash, "out_of_memory"),
            (
                "refused growth, then the deadline",
                true,
                &interrupt,
                "out_of_memory",
            ),
            ("the epoch deadline", false, &interrupt, "deadline"),
            ("any other trap", false, &crash, "trap"),
        ];
        for (name, memory_exceeded, err, kind) in cases {
            let error = classify("greedy", &limits, memory_exceeded, err);
            assert_eq!(error.kind(), kind, "{name}: {error}");
            assert!(
                error.to_string().contains("policy greedy"),
                "{name}: {error}"
            );
        }
        match classify("greedy", &limits, false, &crash) {
            PolicyError::Trap {
                message, backtrace, ..
            } => {
                assert!(message.starts_with("in decide: "), "{message}");
                assert_eq!(backtrace, None, "no wasm frames in this error");
            }
            other => panic!("{other}"),
        }
        let limit = match classify("greedy", &limits, true, &crash) {
            PolicyError::OutOfMemory { limit, .. } => limit,
            other => panic!("{other}"),
        };
        assert_eq!(limit, limits.memory_bytes);
    }

    #[test]
    fn a_decision_is_used_only_when_its_state_fits_and_its_reason_is_one_short_line() {
        let fine = decision("3 waiting", Some("empty_since=1795424400"));
        assert_eq!(checked("p", fine.clone()).unwrap(), fine);

        let err = checked("p", decision("ok", Some("a\nb"))).unwrap_err();
        assert_eq!(err.kind(), "bad_output");
        assert!(
            err.to_string().contains("its state cannot be kept"),
            "{err}"
        );
        let too_long = "x".repeat(crate::state::MAX_STATE_BYTES + 1);
        assert!(checked("p", decision("ok", Some(&too_long))).is_err());

        let reason = checked("p", decision("first\nsecond\r\nthird", None))
            .unwrap()
            .reason;
        assert_eq!(reason, "first");
        // Cut on a character boundary, within the limit.
        let long = "é".repeat(MAX_REASON_BYTES);
        let reason = checked("p", decision(&long, None)).unwrap().reason;
        assert_eq!(reason.len(), MAX_REASON_BYTES);
        assert!(long.starts_with(&reason));
    }

    #[test]
    fn a_long_error_is_cut_saying_how_much() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("0123456789abc", 10), "0123456789… [3 more bytes cut]");
        // Never inside a character: "é" is two bytes.
        assert_eq!(cut("ééé", 3), "é… [4 more bytes cut]");
    }
}
