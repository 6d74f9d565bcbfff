//! A policy as people name it — a built-in rule or a WebAssembly file — and
//! the one way from that name to a [`Policy`]: the configuration, `policy
//! eval`/`test` and `simulate` all go through [`PolicyRef::parse`] and a
//! [`PolicyLoader`].

use super::{BuiltinRule, Policy, PolicyEngine, PolicyError, WasmPolicy};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A policy by name: a built-in rule, or a WebAssembly file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRef {
    Builtin(BuiltinRule),
    File(PathBuf),
}

impl PolicyRef {
    /// `name` as a built-in rule's name (`queue`, `hold`), else as a policy
    /// file, relative to `base` (a configuration's directory; `""` for the
    /// working directory).
    pub fn parse(name: &str, base: &Path) -> PolicyRef {
        match BuiltinRule::from_name(name) {
            Some(rule) => PolicyRef::Builtin(rule),
            None => PolicyRef::File(base.join(name)),
        }
    }
}

/// The SHA-256 a policy file must have, and the setting that says so
/// (`policy_sha256`, `shadow_sha256`).
#[derive(Debug, Clone, Copy)]
pub struct Pin<'a> {
    pub field: &'static str,
    pub sha256: &'a str,
}

/// Turns [`PolicyRef`]s into [`Policy`]s: a built-in rule as it is, a file
/// through one engine, each file loaded once however many pools name it. A
/// lazy loader makes its engine only when a file first needs one, so a
/// command that names only built-in rules reserves no sandbox.
pub struct PolicyLoader<'e> {
    engine: Engine<'e>,
    loaded: HashMap<PathBuf, WasmPolicy>,
}

enum Engine<'e> {
    Given(&'e PolicyEngine),
    Lazy {
        made: Option<Box<PolicyEngine>>,
        make: Box<dyn Fn() -> Result<PolicyEngine, PolicyError> + Send + 'e>,
    },
}

impl<'e> PolicyLoader<'e> {
    /// Files load through `engine`.
    pub fn new(engine: &'e PolicyEngine) -> Self {
        PolicyLoader {
            engine: Engine::Given(engine),
            loaded: HashMap::new(),
        }
    }

    /// Files load through the engine `make` builds, the first time one is
    /// needed.
    pub fn lazy(make: impl Fn() -> Result<PolicyEngine, PolicyError> + Send + 'e) -> Self {
        PolicyLoader {
            engine: Engine::Lazy {
                made: None,
                make: Box::new(make),
            },
            loaded: HashMap::new(),
        }
    }

    /// The policy `policy` names.
    pub fn load(&mut self, policy: &PolicyRef) -> Result<Policy, PolicyError> {
        self.load_pinned(policy, None)
    }

    /// The policy `policy` names, whose file must have the SHA-256 of `pin`
    /// (lowercase hex) if one is given: checked before anything is
    /// compiled or loaded from a cache, and bound to the compiled code
    /// (see `cache.rs`).
    pub fn load_pinned(
        &mut self,
        policy: &PolicyRef,
        pin: Option<Pin<'_>>,
    ) -> Result<Policy, PolicyError> {
        let path = match policy {
            PolicyRef::Builtin(rule) => return Ok(Policy::Builtin(*rule)),
            PolicyRef::File(path) => path,
        };
        let check = |found: &str| match pin {
            Some(Pin { field, sha256 }) if sha256 != found => Err(PolicyError::Digest {
                path: path.clone(),
                field,
                expected: sha256.to_string(),
                found: found.to_string(),
            }),
            _ => Ok(()),
        };
        if let Some(loaded) = self.loaded.get(path) {
            check(loaded.sha256())?;
            return Ok(Policy::Wasm(loaded.clone()));
        }
        let bytes = super::load::read_policy_file(path)?;
        check(&super::engine::sha256_hex(&bytes))?;
        let engine: &PolicyEngine = match &mut self.engine {
            Engine::Given(engine) => engine,
            Engine::Lazy { made, make } => {
                if made.is_none() {
                    *made = Some(Box::new(make()?));
                }
                made.as_ref().expect("made above")
            }
        };
        let loaded = engine.load_bytes(path, &bytes)?;
        self.loaded.insert(path.clone(), loaded.clone());
        Ok(Policy::Wasm(loaded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn names_are_rules_or_files_relative_to_the_base() {
        let base = Path::new("/etc/runner-scaler");
        assert_eq!(
            PolicyRef::parse("queue", base),
            PolicyRef::Builtin(BuiltinRule::Queue)
        );
        assert_eq!(
            PolicyRef::parse("hold", base),
            PolicyRef::Builtin(BuiltinRule::Hold)
        );
        assert_eq!(
            PolicyRef::parse("policies/p.wasm", base),
            PolicyRef::File("/etc/runner-scaler/policies/p.wasm".into())
        );
        assert_eq!(
            PolicyRef::parse("/abs/p.wasm", base),
            PolicyRef::File("/abs/p.wasm".into())
        );
        assert_eq!(
            PolicyRef::parse("queue-depth", Path::new("")),
            PolicyRef::File("queue-depth".into())
        );
    }

    #[test]
    fn a_lazy_loader_makes_no_engine_for_built_in_rules() {
        let made = AtomicUsize::new(0);
        let mut loader = PolicyLoader::lazy(|| {
            made.fetch_add(1, Ordering::Relaxed);
            PolicyEngine::new(Default::default(), None)
        });
        let policy = loader
            .load(&PolicyRef::Builtin(BuiltinRule::Queue))
            .unwrap();
        assert!(matches!(policy, Policy::Builtin(BuiltinRule::Queue)));
        assert_eq!(made.load(Ordering::Relaxed), 0);
        // A file that cannot be read needs no engine: it is read first.
        let missing = PolicyRef::File("/nonexistent/p.wasm".into());
        assert!(loader.load(&missing).is_err());
        assert_eq!(made.load(Ordering::Relaxed), 0);
        // One that can (here not WebAssembly) is compiled: one engine, made
        // when a file needed it, and kept for the next.
        let dir = tempfile::tempdir().unwrap();
        let file = PolicyRef::File(dir.path().join("p.wasm"));
        std::fs::write(dir.path().join("p.wasm"), b"not wasm").unwrap();
        assert!(loader.load(&file).is_err());
        assert!(loader.load(&file).is_err());
        assert_eq!(
            made.load(Ordering::Relaxed),
            1,
            "one engine, made when a file needed it"
        );
    }
}
