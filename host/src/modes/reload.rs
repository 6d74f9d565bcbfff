//! Hot reload for `run`. On SIGHUP, or when the configuration file or a
//! policy file it names changes, the daemon builds a whole new scaler — the
//! configuration validated, every policy loaded and type-checked, the
//! clients made — and swaps it in between two ticks: the tick in flight
//! keeps the scaler it started with. On any error nothing is swapped: the
//! old scaler goes on deciding and the error is logged (with the file, the
//! field and the fix, as `check` prints it).

use crate::config::Config;
use crate::policy::{Policy, PolicyRef};
use crate::tick::Pool;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long file events are gathered before one reload: an editor's save is
/// several events (write, rename, attributes), a deploy several files.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Whether a load started by [`off_the_runtime`] is still running (it may
/// outlive its deadline: a thread cannot be cancelled).
static LOADING: AtomicBool = AtomicBool::new(false);

/// Runs `load` (read the configuration, load and compile the policies) on
/// a thread of its own, never on the runtime's threads, which tick, serve
/// `/healthz` and handle signals: a policy file on a stalled network mount,
/// or a compile of many seconds, must stall none of them. Gives up after
/// `deadline`, leaving the thread to finish (or not) on its own; while it
/// runs, no other load starts.
pub async fn off_the_runtime<T: Send + 'static>(
    deadline: Duration,
    load: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    if LOADING.swap(true, Ordering::AcqRel) {
        anyhow::bail!(
            "an earlier reload is still loading, past its deadline (a policy file that cannot be \
             read, or a compile that does not end); this one is skipped: fix the file, then send \
             SIGHUP again"
        );
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let result = load();
            LOADING.store(false, Ordering::Release);
            let _ = tx.send(result);
        });
    if let Err(err) = spawned {
        LOADING.store(false, Ordering::Release);
        anyhow::bail!("cannot start a thread to load the configuration: {err}");
    }
    match tokio::time::timeout(deadline, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => anyhow::bail!("the loading thread ended without an answer (it panicked)"),
        Err(_) => anyhow::bail!(
            "loading the configuration and its policies took longer than daemon.reload_deadline \
             ({} s): abandoned (a policy file that cannot be read, or a compile that takes too \
             long); raise daemon.reload_deadline if the policies are large",
            deadline.as_secs_f64()
        ),
    }
}

/// What the daemon ticks with, replaced whole by a reload.
pub struct Current<T> {
    inner: Mutex<Arc<T>>,
}

impl<T> Current<T> {
    pub fn new(value: T) -> Self {
        Current {
            inner: Mutex::new(Arc::new(value)),
        }
    }

    /// The value now; a tick holds it to its end, whatever is swapped in.
    pub fn get(&self) -> Arc<T> {
        self.inner.lock().unwrap().clone()
    }

    /// Swap in `value` for the ticks that start from now on.
    pub fn set(&self, value: T) {
        *self.inner.lock().unwrap() = Arc::new(value);
    }
}

/// Why a reload was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Hangup,
    /// A watched file was written, replaced or removed.
    Changed(PathBuf),
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Hangup => write!(f, "SIGHUP"),
            Trigger::Changed(path) => write!(f, "{} changed", path.display()),
        }
    }
}

/// The files a configuration depends on: the file itself (when there is
/// one) and every policy file its pools name, shadows included.
pub fn files_of(config_file: Option<&Path>, config: &Config) -> Vec<PathBuf> {
    let mut files: BTreeSet<PathBuf> = config_file.map(Path::to_path_buf).into_iter().collect();
    for pool in &config.pools {
        let shadow = pool.shadow.as_ref().map(|s| &s.policy);
        for policy in std::iter::once(&pool.policy).chain(shadow) {
            if let PolicyRef::File(path) = policy {
                files.insert(path.clone());
            }
        }
    }
    files.into_iter().collect()
}

/// Reload requests from SIGHUP and from changes to the watched files.
pub struct Triggers {
    events: mpsc::UnboundedReceiver<Trigger>,
    /// The files whose changes count; the watcher watches their
    /// directories, as editors and deploys replace files by renaming.
    files: Arc<Mutex<Vec<PathBuf>>>,
    watcher: RecommendedWatcher,
    directories: BTreeSet<PathBuf>,
}

impl Triggers {
    /// Listen for SIGHUP and watch `files`.
    pub fn start(files: Vec<PathBuf>) -> anyhow::Result<Triggers> {
        let (tx, events) = mpsc::unbounded_channel();
        #[cfg(unix)]
        {
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    if tx.send(Trigger::Hangup).is_err() {
                        break;
                    }
                }
            });
        }
        let watched: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let wanted = watched.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            let wanted = wanted.lock().unwrap();
            for path in event.paths {
                if wanted.iter().any(|file| same_file(file, &path)) {
                    let _ = tx.send(Trigger::Changed(path));
                }
            }
        })?;
        let mut triggers = Triggers {
            events,
            files: watched,
            watcher,
            directories: BTreeSet::new(),
        };
        triggers.watch(files);
        Ok(triggers)
    }

    /// Watch `files` from now on, instead of the earlier ones.
    pub fn watch(&mut self, files: Vec<PathBuf>) {
        let directories: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|file| absolute(file).parent().map(Path::to_path_buf))
            .collect();
        for gone in self.directories.difference(&directories) {
            let _ = self.watcher.unwatch(gone);
        }
        for new in directories.difference(&self.directories) {
            if let Err(err) = self.watcher.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!(directory = %new.display(), %err, "cannot watch for changes; SIGHUP still reloads");
            }
        }
        self.directories = directories;
        *self.files.lock().unwrap() = files;
    }

    /// The next reload request, once the events that come with it (within
    /// [`DEBOUNCE`]) are in. `None` when no more can come.
    pub async fn next(&mut self) -> Option<Trigger> {
        let first = self.events.recv().await?;
        tokio::time::sleep(DEBOUNCE).await;
        while self.events.try_recv().is_ok() {}
        Some(first)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn same_file(watched: &Path, event: &Path) -> bool {
    absolute(watched) == absolute(event)
}

/// What a reload changes, for the log: pools added and removed, policies
/// (and shadows) swapped, with their digests.
pub fn changes(old: &[Pool], new: &[Pool]) -> Vec<String> {
    let mut changes = Vec::new();
    for pool in new {
        let Some(before) = old.iter().find(|p| p.name == pool.name) else {
            changes.push(format!(
                "pool {:?} added ({})",
                pool.name,
                identity(&pool.policy)
            ));
            continue;
        };
        let (was, is) = (identity(&before.policy), identity(&pool.policy));
        if was != is {
            changes.push(format!("pool {:?}: policy {was} -> {is}", pool.name));
        }
        let shadow = |p: &Pool| p.shadow.as_ref().map(|s| identity(&s.policy));
        if shadow(before) != shadow(pool) {
            let show = |s: Option<String>| s.unwrap_or_else(|| "none".into());
            changes.push(format!(
                "pool {:?}: shadow {} -> {}",
                pool.name,
                show(shadow(before)),
                show(shadow(pool))
            ));
        }
        if before.params != pool.params {
            changes.push(format!("pool {:?}: params changed", pool.name));
        }
        if before.bounds != pool.bounds || before.group != pool.group {
            changes.push(format!("pool {:?}: group or bounds changed", pool.name));
        }
    }
    for pool in old {
        if !new.iter().any(|p| p.name == pool.name) {
            changes.push(format!("pool {:?} removed", pool.name));
        }
    }
    changes
}

/// A policy as the reload log names it: a built-in rule, or a file's name
/// and digest.
fn identity(policy: &Policy) -> String {
    match policy {
        Policy::Builtin(rule) => format!("built-in {rule}"),
        Policy::Wasm(wasm) => format!("{} (sha256 {})", wasm.name(), wasm.sha256()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::BuiltinRule;

    fn pool(name: &str, rule: BuiltinRule) -> Pool {
        Pool::example(name, Policy::Builtin(rule))
    }

    #[test]
    fn a_reload_says_what_it_changes() {
        let old = [pool("a", BuiltinRule::Queue), pool("b", BuiltinRule::Queue)];
        let mut swapped = pool("a", BuiltinRule::Hold);
        swapped.shadow = Some(crate::tick::Shadow::new(
            Policy::Builtin(BuiltinRule::Queue),
            vec![],
        ));
        let new = [swapped, pool("c", BuiltinRule::Queue)];
        assert_eq!(
            changes(&old, &new),
            [
                "pool \"a\": policy built-in queue -> built-in hold",
                "pool \"a\": shadow none -> built-in queue",
                "pool \"c\" added (built-in queue)",
                "pool \"b\" removed",
            ]
        );
        assert!(changes(&old, &old).is_empty());
    }

    #[tokio::test]
    async fn a_load_that_overruns_is_abandoned_and_blocks_no_other_task() {
        // A load that sleeps far past its deadline, as a compile that does
        // not end: the runtime (one thread here) keeps answering meanwhile.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let ticker = tokio::spawn(async {
            let mut ticks = 0;
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks += 1;
            }
            ticks
        });
        let started = std::time::Instant::now();
        let err = off_the_runtime(Duration::from_millis(200), move || {
            let _ = wait.recv_timeout(Duration::from_secs(30));
            Ok(1)
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("abandoned"), "{err}");
        assert_eq!(ticker.await.unwrap(), 10, "the runtime went on");
        // While the abandoned load runs, the next one is refused at once...
        let err = off_the_runtime(Duration::from_secs(5), || Ok(2))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("still loading"), "{err}");
        // ...and once it ends, loads run again.
        release.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match off_the_runtime(Duration::from_secs(5), || Ok(3)).await {
                Ok(n) => break assert_eq!(n, 3),
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(err) => panic!("{err}"),
            }
        }
    }

    #[test]
    fn the_current_value_is_swapped_whole_and_a_holder_keeps_its_own() {
        let current = Current::new(1);
        let held = current.get();
        current.set(2);
        assert_eq!((*held, *current.get()), (1, 2));
    }

    #[tokio::test]
    async fn a_change_to_a_watched_file_is_one_trigger_and_others_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let (watched, other) = (dir.path().join("c.toml"), dir.path().join("x.txt"));
        std::fs::write(&watched, "a").unwrap();
        let mut triggers = Triggers::start(vec![watched.clone()]).unwrap();
        std::fs::write(&other, "b").unwrap();
        // Saved the way editors do: a new file renamed over the old one.
        let partial = dir.path().join("c.toml.partial");
        std::fs::write(&partial, "b").unwrap();
        std::fs::write(&watched, "b").unwrap();
        std::fs::rename(&partial, &watched).unwrap();
        let trigger = tokio::time::timeout(Duration::from_secs(10), triggers.next())
            .await
            .expect("no trigger for a watched file");
        assert!(
            matches!(&trigger, Some(Trigger::Changed(path)) if same_file(path, &watched)),
            "{trigger:?}"
        );
        // The events of that save were gathered into the one trigger.
        let more = tokio::time::timeout(Duration::from_millis(300), triggers.next()).await;
        assert!(more.is_err(), "{more:?}");
    }
}
