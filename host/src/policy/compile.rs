//! From a policy's bytes to code the engine runs: a precompiled entry shipped
//! with the binary (a Lambda bundle), else the compile cache, else Cranelift,
//! whose result the cache keeps for the next start.

use super::cache::{CompileCache, EntryKey};
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
            precompiled: precompiled.map(CompileCache::precompiled),
        }
    }

    /// Compiled code for `bytes`: from the precompiled directory or the
    /// cache when one holds the entry of these bytes for `engine`, else
    /// compiled (and stored in the cache). An entry of the precompiled
    /// directory that is there but is not these bytes' code (another
    /// policy's, damaged, another engine's, writable by others) is an
    /// error: whoever packaged the directory must look. Such an entry of
    /// the cache is compiled again and replaced.
    pub fn component(
        &self,
        engine: &Engine,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Component, PolicyError> {
        let started = std::time::Instant::now();
        let key = EntryKey::new(engine, bytes);
        if let Some(precompiled) = &self.precompiled {
            let refused = |message: String| PolicyError::Precompiled {
                path: path.into(),
                dir: precompiled.dir().into(),
                message,
            };
            match precompiled.read(&key) {
                Ok(Some(compiled)) => {
                    let component = deserialize(engine, &compiled).map_err(refused)?;
                    tracing::debug!(policy = %path.display(), dir = %precompiled.dir().display(), ms = started.elapsed().as_secs_f64() * 1e3, "loaded precompiled policy");
                    return Ok(component);
                }
                Ok(None) => {
                    tracing::warn!(policy = %path.display(), dir = %precompiled.dir().display(), "no precompiled code for this policy, engine and architecture; compiling it (slower start). Run `runner-scaler policy precompile` when packaging")
                }
                Err(err) => return Err(refused(err.to_string())),
            }
        }
        if let Some(cache) = &self.cache {
            match cache.read(&key) {
                Ok(Some(compiled)) => match deserialize(engine, &compiled) {
                    Ok(component) => return Ok(component),
                    Err(err) => {
                        tracing::warn!(policy = %path.display(), %err, "stale compile cache entry; compiling again")
                    }
                },
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(policy = %path.display(), %err, "not using this compile cache entry; compiling again")
                }
            }
        }
        let compiled = precompile(engine, path, bytes)?;
        if let Some(cache) = &self.cache {
            cache.write(&key, &compiled);
        }
        tracing::debug!(policy = %path.display(), ms = started.elapsed().as_secs_f64() * 1e3, "compiled policy");
        deserialize(engine, &compiled).map_err(|message| PolicyError::Compile {
            path: path.into(),
            message,
        })
    }
}

/// `compiled` as a component of `engine`.
fn deserialize(engine: &Engine, compiled: &[u8]) -> Result<Component, String> {
    // SAFETY: `compiled` is the payload of an entry whose header names
    // these policy bytes and this engine's settings and whose checksum
    // matched, in a directory only its owner may write (see `cache.rs`),
    // or was produced just now by this engine; wasmtime checks the version
    // and settings in its own header too.
    unsafe { Component::deserialize(engine, compiled) }.map_err(|err| {
        format!(
            "{}; run `runner-scaler policy precompile` again for this version and architecture",
            chain(&err)
        )
    })
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
    out.write_checked(&EntryKey::new(engine, bytes), &compiled)
        .map_err(|err| PolicyError::Compile {
            path: out.dir().into(),
            message: format!("cannot write the precompiled entry: {err}"),
        })
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
    fn a_cache_entry_that_is_not_this_policys_code_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().join("cache"));
        let engine = Engine::default();
        let compiler = Compiler::new(Some(cache.clone()), None);
        let path = Path::new("empty.wasm");
        compiler.component(&engine, path, EMPTY_COMPONENT).unwrap();
        let key = EntryKey::new(&engine, EMPTY_COMPONENT);
        let written = std::fs::read(cache.path_for(&key)).unwrap();

        // Code of an engine with other settings, stored under this policy's
        // key: wasmtime's own header check refuses it, and it is rebuilt.
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        let foreign = precompile(&other, path, EMPTY_COMPONENT).unwrap();
        cache.write(&key, &foreign);
        compiler.component(&engine, path, EMPTY_COMPONENT).unwrap();
        assert_eq!(std::fs::read(cache.path_for(&key)).unwrap(), written);
    }

    #[test]
    fn a_precompiled_entry_that_is_not_this_policys_code_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let out = CompileCache::precompiled(dir.path());
        let path = Path::new("empty.wasm");
        let at = precompile_into(&engine, path, EMPTY_COMPONENT, &out).unwrap();
        let compiler = Compiler::new(None, Some(dir.path().into()));
        compiler.component(&engine, path, EMPTY_COMPONENT).unwrap();

        let mut damaged = std::fs::read(&at).unwrap();
        *damaged.last_mut().unwrap() ^= 0xff;
        std::fs::write(&at, damaged).unwrap();
        let err = compiler
            .component(&engine, path, EMPTY_COMPONENT)
            .unwrap_err();
        assert!(
            matches!(err, PolicyError::Precompiled { .. }) && err.to_string().contains("damaged"),
            "{err}"
        );
    }
}
