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

    /// Compiled code for `bytes`: from the cache when it holds an intact entry
    /// for this engine, else compiled (and stored).
    pub fn component(
        &self,
        engine: &Engine,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Component, PolicyError> {
        let started = std::time::Instant::now();
        if let Some(precompiled) = &self.precompiled {
            let at = precompiled.path_for(engine, bytes);
            if let Some(compiled) = precompiled.read(&at) {
                // SAFETY: as for the cache below: the entry is intact, and
                // wasmtime checks the version and settings in its header.
                match unsafe { Component::deserialize(engine, &compiled) } {
                    Ok(component) => {
                        tracing::debug!(policy = %path.display(), from = %at.display(), ms = started.elapsed().as_secs_f64() * 1e3, "loaded precompiled policy");
                        return Ok(component);
                    }
                    Err(err) => {
                        tracing::warn!(path = %at.display(), err = %chain(&err), "precompiled policy does not fit this engine; run `runner-scaler policy precompile` again for this version and architecture")
                    }
                }
            } else {
                tracing::warn!(policy = %path.display(), dir = %precompiled.dir().display(), "no precompiled code for this policy, engine and architecture; compiling it (slower start). Run `runner-scaler policy precompile` when packaging");
            }
        }
        let entry = self
            .cache
            .as_ref()
            .map(|cache| (cache, cache.path_for(engine, bytes)));
        if let Some((cache, at)) = &entry {
            if let Some(compiled) = cache.read(at) {
                // SAFETY: the entry's checksum matched, so these are the bytes
                // this engine's configuration precompiled; wasmtime checks the
                // version and settings in their header itself.
                match unsafe { Component::deserialize(engine, &compiled) } {
                    Ok(component) => return Ok(component),
                    Err(err) => {
                        tracing::warn!(path = %at.display(), err = %chain(&err), "stale compile cache entry; compiling again")
                    }
                }
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

/// Compile the policy at `path` for this engine's target and store it in
/// `out` under the key this engine's twin will look for; the entry's
/// path. Used with a cross-target engine, which cannot load what it
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

/// `bytes` (a component or a core module with its contract) compiled
/// by this engine.
fn precompile(engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, PolicyError> {
    let component = load::to_component(path, bytes)?;
    engine
        .precompile_component(&component)
        .map_err(|err| PolicyError::Compile {
            path: path.into(),
            message: chain(&err),
        })
}
