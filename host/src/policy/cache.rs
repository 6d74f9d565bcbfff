//! Directories of compiled policies: the compile cache, so a second start
//! does not compile again, and a precompiled directory written by `policy
//! precompile` and shipped with the binary (a Lambda bundle).
//!
//! Compiled code is native code that wasmtime maps and runs without
//! checking it, so an entry is bound to what it came from: its header
//! carries the SHA-256 of the policy file it was compiled from (the file a
//! pool's `policy_sha256` pins) and of the engine's compatibility hash
//! (wasmtime version, target, settings), and a SHA-256 of its own payload.
//! All three are checked before a byte of it is deserialized; an entry that
//! fails (damaged, truncated, copied from another policy's entry) is never
//! loaded. The file name only finds an entry; it proves nothing.
//!
//! What the checks cannot stop is someone who may write the directory and
//! forges a header: such a person can run code as the scaler. So the
//! directories are checked too (`docs/operating.md`, "Trust"): the cache is
//! created private (0700) and refused when it is not its user's own or when
//! others may write to it; a precompiled directory, or an entry in either,
//! that others may write to is refused.

use sha2::{Digest, Sha256};
use std::hash::Hash;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"rscache2";
const DIGEST: usize = 32;
const HEADER: usize = MAGIC.len() + 3 * DIGEST;

/// The largest compiled entry read. A Rust policy compiles to ~1 MiB; a
/// Python one, which carries its interpreter, to ~60 MiB.
pub const MAX_ENTRY_BYTES: u64 = 512 * 1024 * 1024;

/// A directory of compiled policies.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    kind: Kind,
}

/// Who writes a directory, and so what is checked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The compile cache: written by this process, private to its user.
    Cache,
    /// `policy precompile`'s output: written by whoever deploys the
    /// scaler, read-only here.
    Precompiled,
}

/// What an entry is the compiled code of: a policy file (its bytes'
/// SHA-256) compiled by an engine (the SHA-256 of its compatibility hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryKey {
    engine: [u8; DIGEST],
    source: [u8; DIGEST],
}

impl EntryKey {
    /// The key of `policy_bytes` compiled by `engine`.
    pub fn new(engine: &wasmtime::Engine, policy_bytes: &[u8]) -> EntryKey {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        EntryKey {
            engine: hasher.0.finalize().into(),
            source: Sha256::digest(policy_bytes).into(),
        }
    }
}

/// A `Hasher` into SHA-256: the engine's compatibility hash is only
/// `Hash`, and its digest must be the same on every machine and build.
struct Sha256Hasher(Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("read with finalize")
    }
}

/// Why an entry that is there cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("{0}")]
    Read(#[from] crate::input_file::ReadError),
    #[error("{path} may be written by others (mode {mode:o}): compiled code runs as the scaler, so only its owner may write it: chmod go-w {path}")]
    Writable { path: PathBuf, mode: u32 },
    #[error("{path} belongs to another user (uid {owner}): the compile cache must be the scaler's own; remove it, or set RUNNER_SCALER_CACHE_DIR to a directory of this user")]
    Foreign { path: PathBuf, owner: u32 },
    #[error("{path} is damaged or not a runner-scaler entry (its checksum does not match)")]
    Damaged { path: PathBuf },
    #[error(
        "{path} was compiled from a policy file with SHA-256 {found}, not from this one ({expected}): \
         it is another policy's code"
    )]
    OtherSource {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path} was compiled by another engine (another runner-scaler version, architecture or sandbox setting)")]
    OtherEngine { path: PathBuf },
}

impl CompileCache {
    /// The compile cache in `dir`, created private (0700) when it is first
    /// written.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CompileCache {
            dir: dir.into(),
            kind: Kind::Cache,
        }
    }

    /// A directory written by `policy precompile`, read-only here.
    pub fn precompiled(dir: impl Into<PathBuf>) -> Self {
        CompileCache {
            dir: dir.into(),
            kind: Kind::Precompiled,
        }
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

    /// Where the entry of `key` is (or would be).
    pub fn path_for(&self, key: &EntryKey) -> PathBuf {
        let name = Sha256::new()
            .chain_update(key.engine)
            .chain_update(key.source)
            .finalize();
        self.dir.join(format!("{}.cwasm", hex(&name)))
    }

    /// The compiled code of `key`: `None` when there is no entry, an error
    /// when there is one that must not be loaded (see the module's doc).
    pub fn read(&self, key: &EntryKey) -> Result<Option<Vec<u8>>, EntryError> {
        let path = self.path_for(key);
        if !path.exists() {
            return Ok(None);
        }
        self.check_dir()?;
        self.check_owner_and_mode(&path)?;
        let bytes = crate::input_file::read(&path, MAX_ENTRY_BYTES)?;
        let damaged = || EntryError::Damaged { path: path.clone() };
        let (header, payload) = bytes.split_at_checked(HEADER).ok_or_else(damaged)?;
        let (magic, digests) = header.split_at(MAGIC.len());
        let (source, rest) = digests.split_at(DIGEST);
        let (engine, checksum) = rest.split_at(DIGEST);
        if magic != MAGIC || checksum != Sha256::digest(payload).as_slice() {
            return Err(damaged());
        }
        if source != key.source {
            return Err(EntryError::OtherSource {
                expected: hex(&key.source),
                found: hex(source),
                path,
            });
        }
        if engine != key.engine {
            return Err(EntryError::OtherEngine { path });
        }
        Ok(Some(payload.to_vec()))
    }

    /// Store `compiled`, the code of `key`. A cache that cannot be written
    /// costs a compile on the next start, nothing more, so failure is only
    /// logged.
    pub fn write(&self, key: &EntryKey, compiled: &[u8]) {
        if let Err(err) = self.write_checked(key, compiled) {
            tracing::warn!(dir = %self.dir.display(), %err, "cannot write the compile cache; the policy will be compiled again next start");
        }
    }

    /// Store `compiled`, the code of `key`, or say why not (`policy
    /// precompile`, where the entry is the point); the entry's path.
    pub fn write_checked(&self, key: &EntryKey, compiled: &[u8]) -> std::io::Result<PathBuf> {
        self.create_dir()?;
        if let Err(err) = self.check_dir() {
            return Err(std::io::Error::other(err.to_string()));
        }
        let path = self.path_for(key);
        // Write then rename, so a concurrent reader never sees half a file.
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        let mut bytes = Vec::with_capacity(HEADER + compiled.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&key.source);
        bytes.extend_from_slice(&key.engine);
        bytes.extend_from_slice(&Sha256::digest(compiled));
        bytes.extend_from_slice(compiled);
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, &path)?;
        Ok(path)
    }

    /// The directory, made if missing: private for the cache.
    fn create_dir(&self) -> std::io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        if self.kind == Kind::Cache {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&self.dir)
    }

    fn check_dir(&self) -> Result<(), EntryError> {
        self.check_owner_and_mode(&self.dir)
    }

    /// Refuse `path` if others may write to it, or, in the cache, if it is
    /// not this user's own. Symbolic links are followed: what counts is
    /// what is read.
    fn check_owner_and_mode(&self, path: &Path) -> Result<(), EntryError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let metadata =
                std::fs::metadata(path).map_err(|error| crate::input_file::ReadError::Io {
                    path: path.into(),
                    error,
                })?;
            let mode = metadata.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(EntryError::Writable {
                    path: path.into(),
                    mode,
                });
            }
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            if self.kind == Kind::Cache && metadata.uid() != me {
                return Err(EntryError::Foreign {
                    path: path.into(),
                    owner: metadata.uid(),
                });
            }
        }
        Ok(())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(engine: &wasmtime::Engine, source: &[u8]) -> EntryKey {
        EntryKey::new(engine, source)
    }

    #[test]
    fn an_entry_is_read_back_only_for_its_own_source_and_engine() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().join("cache"));
        let engine = wasmtime::Engine::default();
        let a = key(&engine, b"policy a");
        assert!(cache.read(&a).unwrap().is_none(), "nothing yet");
        let at = cache.write_checked(&a, b"code of a").unwrap();
        assert_eq!(cache.read(&a).unwrap().unwrap(), b"code of a");
        let mode = std::fs::metadata(cache.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the cache is created private");

        // Another policy's entry copied over this one's name.
        let b = key(&engine, b"policy b");
        let b_at = cache.write_checked(&b, b"code of b").unwrap();
        std::fs::copy(&b_at, &at).unwrap();
        let err = cache.read(&a).unwrap_err();
        assert!(matches!(err, EntryError::OtherSource { .. }), "{err}");
        assert!(err.to_string().contains(&hex(&b.source)), "{err}");

        // The same source, another engine's settings.
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = key(&wasmtime::Engine::new(&config).unwrap(), b"policy a");
        assert_ne!(other, a);
        let other_at = cache.write_checked(&other, b"code").unwrap();
        std::fs::copy(&other_at, &at).unwrap();
        assert!(matches!(
            cache.read(&a).unwrap_err(),
            EntryError::OtherEngine { .. }
        ));

        // A damaged entry.
        cache.write_checked(&a, b"code of a").unwrap();
        let mut bytes = std::fs::read(&at).unwrap();
        *bytes.last_mut().unwrap() ^= 0xff;
        std::fs::write(&at, &bytes).unwrap();
        assert!(matches!(
            cache.read(&a).unwrap_err(),
            EntryError::Damaged { .. }
        ));
        std::fs::write(&at, b"rscache2").unwrap();
        assert!(matches!(
            cache.read(&a).unwrap_err(),
            EntryError::Damaged { .. }
        ));
    }

    #[test]
    fn directories_and_entries_others_may_write_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let engine = wasmtime::Engine::default();
        let a = key(&engine, b"policy a");
        let precompiled = CompileCache::precompiled(dir.path().join("pre"));
        let at = precompiled.write_checked(&a, b"code").unwrap();
        assert!(precompiled.read(&a).unwrap().is_some());

        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = precompiled.read(&a).unwrap_err();
        assert!(
            matches!(err, EntryError::Writable { mode: 0o666, .. })
                && err.to_string().contains("chmod go-w"),
            "{err}"
        );
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(precompiled.dir(), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        assert!(matches!(
            precompiled.read(&a).unwrap_err(),
            EntryError::Writable { mode: 0o777, .. }
        ));
        // The cache refuses a group-writable directory it is handed, and
        // writes nothing into it.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o775)).unwrap();
        let cache = CompileCache::new(&shared);
        assert!(cache.write_checked(&a, b"code").is_err());
        assert!(std::fs::read_dir(&shared).unwrap().next().is_none());
    }
}
