//! From a policy's bytes to code the engine runs: a precompiled entry shipped
//! with the binary (a Lambda bundle), else the compile cache, else Cranelift,
//! whose result the cache keeps for the next start.

use super::cache::CompileCache;
use super::error::chain;
use super::{load, PolicyError};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where compiled code is looked for, and kept.
pub(super) struct Compiler {
    cache: Option<CompileCache>,
    /// A read-only directory of compiled policies shipped with the binary
    /// (a Lambda bundle), read before `cache`.
    precompiled: Option<CompileCache>,
}

impl Compiler {
    pub fn new(cache: Option<CompileCache>, precompiled: Option<PathBuf>) -> Self {
        Compiler {
            cache,
            precompiled: precompiled.map(CompileCache::new),
        }
    }

    /// Compiled code for `bytes`: from the precompiled directory or the
    /// cache when one holds an intact entry that fits `engine`, else
    /// compiled (and stored in the cache).
    pub fn component(
        &self,
        engine: &Engine,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Component, PolicyError> {
        let started = std::time::Instant::now();
        if let Some(precompiled) = &self.precompiled {
            let at = precompiled.path_for(engine, bytes);
            match lookup(engine, precompiled, &at) {
                Lookup::Found(component) => {
                    tracing::debug!(policy = %path.display(), from = %at.display(), ms = started.elapsed().as_secs_f64() * 1e3, "loaded precompiled policy");
                    return Ok(component);
                }
                Lookup::Unfit(err) => {
                    tracing::warn!(path = %at.display(), %err, "precompiled policy does not fit this engine; run `runner-scaler policy precompile` again for this version and architecture")
                }
                Lookup::Missing => {
                    tracing::warn!(policy = %path.display(), dir = %precompiled.dir().display(), "no precompiled code for this policy, engine and architecture; compiling it (slower start). Run `runner-scaler policy precompile` when packaging")
                }
            }
        }
        let entry = self
            .cache
            .as_ref()
            .map(|cache| (cache, cache.path_for(engine, bytes)));
        if let Some((cache, at)) = &entry {
            match lookup(engine, cache, at) {
                Lookup::Found(component) => return Ok(component),
                Lookup::Unfit(err) => {
                    tracing::warn!(path = %at.display(), %err, "stale compile cache entry; compiling again")
                }
                Lookup::Missing => {}
            }
        }
        let compiled = precompile(engine, path, bytes)?;
        if let Some((cache, at)) = &entry {
            cache.write(at, &compiled);
        }
        tracing::debug!(policy = %path.display(), ms = started.elapsed().as_secs_f64() * 1e3, "compiled policy");
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &compiled) }.map_err(|err| PolicyError::Compile {
            path: path.into(),
            message: chain(&err),
        })
    }
}

/// What a directory of compiled code holds for a policy.
enum Lookup {
    /// An intact entry that fits the engine.
    Found(Component),
    /// No entry, or a damaged or foreign one (the cache warns of those).
    Missing,
    /// An intact entry that this engine cannot load (another wasmtime
    /// version or settings): why.
    Unfit(String),
}

/// The entry at `at` in `dir`, deserialized for `engine`.
fn lookup(engine: &Engine, dir: &CompileCache, at: &Path) -> Lookup {
    let Some(compiled) = dir.read(at) else {
        return Lookup::Missing;
    };
    // SAFETY: the entry's checksum matched, so these are the bytes an engine
    // of this configuration precompiled (its compatibility hash is part of
    // the entry's name); wasmtime checks the version and settings in their
    // header itself.
    match unsafe { Component::deserialize(engine, &compiled) } {
        Ok(component) => Lookup::Found(component),
        Err(err) => Lookup::Unfit(chain(&err)),
    }
}

/// Compile the policy `bytes` (read from `path`) for `engine`'s target and
/// store it in `out` under the key `engine`'s twin will look for; the
/// entry's path. Used with a cross-target engine, which cannot load what it
/// compiles, so the contract is not checked here: load the policy with a
/// host engine first.
pub(super) fn precompile_into(
    engine: &Engine,
    path: &Path,
    bytes: &[u8],
    out: &CompileCache,
) -> Result<PathBuf, PolicyError> {
    let compiled = precompile(engine, path, bytes)?;
    let at = out.path_for(engine, bytes);
    out.write_checked(&at, &compiled)
        .map_err(|err| PolicyError::Compile {
            path: at.clone(),
            message: format!("cannot write the precompiled entry: {err}"),
        })?;
    Ok(at)
}

/// `bytes` (a component or a core module with its contract) compiled by
/// `engine`.
fn precompile(engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, PolicyError> {
    let component = load::to_component(path, bytes)?;
    engine
        .precompile_component(&component)
        .map_err(|err| PolicyError::Compile {
            path: path.into(),
            message: chain(&err),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: the preamble alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn lookup_finds_only_intact_entries_that_fit_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path());
        let engine = Engine::default();
        let at = cache.path_for(&engine, EMPTY_COMPONENT);
        assert!(matches!(lookup(&engine, &cache, &at), Lookup::Missing));

        let compiled = precompile(&engine, Path::new("empty.wasm"), EMPTY_COMPONENT).unwrap();
        cache.write(&at, &compiled);
        assert!(matches!(lookup(&engine, &cache, &at), Lookup::Found(_)));

        // Code of an engine with other settings, stored intact under this
        // engine's key: wasmtime's own header check refuses it.
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        let foreign = precompile(&other, Path::new("empty.wasm"), EMPTY_COMPONENT).unwrap();
        cache.write(&at, &foreign);
        assert!(matches!(lookup(&engine, &cache, &at), Lookup::Unfit(_)));

        // A damaged entry is no entry.
        let mut damaged = std::fs::read(&at).unwrap();
        *damaged.last_mut().unwrap() ^= 0xff;
        std::fs::write(&at, damaged).unwrap();
        assert!(matches!(lookup(&engine, &cache, &at), Lookup::Missing));
    }
}
