//! The on-disk cache of compiled policies, so a second start does not
//! compile again.
//!
//! An entry is named by a hash of the engine's compatibility hash (wasmtime
//! version, target, settings) and the policy's bytes, and stores a SHA-256 of
//! its own payload. Wasmtime trusts the code it deserializes, so an entry
//! whose checksum does not match — truncated, foreign, tampered — is treated
//! as missing and rebuilt, never loaded.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"rscache1";

/// A directory of compiled policies.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CompileCache { dir: dir.into() }
    }

    /// The directory it reads and writes.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache's default home: `$RUNNER_SCALER_CACHE_DIR`, else the user's
    /// cache directory, else (as in Lambda, whose only writable place it is)
    /// the temporary directory.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("RUNNER_SCALER_CACHE_DIR") {
            return dir.into();
        }
        let home_cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")));
        match home_cache {
            Some(dir) if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() => {
                dir.join("runner-scaler")
            }
            _ => std::env::temp_dir().join("runner-scaler-cache"),
        }
    }

    /// The entry's path for `policy_bytes` compiled by `engine`.
    pub fn path_for(&self, engine: &wasmtime::Engine, policy_bytes: &[u8]) -> PathBuf {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let key = Sha256::new()
            .chain_update(engine_hash.finish().to_le_bytes())
            .chain_update(policy_bytes)
            .finalize();
        self.dir.join(format!("{}.cwasm", hex(&key)))
    }

    /// The compiled code stored at `path`, if it is there and intact.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let bytes = std::fs::read(path).ok()?;
        let (header, payload) = bytes.split_at_checked(MAGIC.len() + 32)?;
        let (magic, checksum) = header.split_at(MAGIC.len());
        if magic != MAGIC || checksum != Sha256::digest(payload).as_slice() {
            tracing::warn!(path = %path.display(), "ignoring a damaged or foreign entry in the compile cache");
            return None;
        }
        Some(payload.to_vec())
    }

    /// Store `compiled` at `path`. A cache that cannot be written costs a
    /// compile on the next start, nothing more, so failure is only logged.
    pub fn write(&self, path: &Path, compiled: &[u8]) {
        if let Err(err) = self.write_checked(path, compiled) {
            tracing::warn!(path = %path.display(), %err, "cannot write the compile cache; the policy will be compiled again next start");
        }
    }

    /// Store `compiled` at `path`, or say why not (`policy precompile`,
    /// where the entry is the point).
    pub fn write_checked(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // Write then rename, so a concurrent reader never sees half a file.
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        let mut bytes = Vec::with_capacity(MAGIC.len() + 32 + compiled.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&Sha256::digest(compiled));
        bytes.extend_from_slice(compiled);
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, path)
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
