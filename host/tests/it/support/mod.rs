//! Test doubles of the services runner-scaler talks to, and helpers the
//! integration tests share.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use runner_scaler::sources::{QueueId, SourceKind};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub mod aws_proxy;
pub mod binary;
pub mod fake_buildkite;
pub mod fake_circleci;
pub mod fake_lambda;
pub mod fake_usage_api;
pub mod moto;
pub mod oversized_aws;
pub mod refusing_proxy;

/// Where `cargo xtask policies` puts the compiled policies:
/// `$RUNNER_SCALER_TEST_POLICIES`, else the workspace's `target/policies/`.
pub fn policies_dir() -> PathBuf {
    std::env::var_os("RUNNER_SCALER_TEST_POLICIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/policies"))
}

/// The compiled policy `name`; fails saying how to build it when missing.
pub fn policy_file(name: &str) -> PathBuf {
    let file = policies_dir().join(format!("{name}.wasm"));
    assert!(
        file.is_file(),
        "{} is missing: build the policies first with `cargo xtask policies`",
        file.display()
    );
    file
}

/// The x86_64 Lambda bundle `cargo xtask test` builds with
/// `scripts/package-lambda.sh`: `$RUNNER_SCALER_TEST_BUNDLE`, else
/// `target/lambda/runner-scaler-lambda-x86_64.zip`; fails saying how to
/// build it when missing.
pub fn bundle_zip() -> PathBuf {
    let zip = std::env::var_os("RUNNER_SCALER_TEST_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/lambda/runner-scaler-lambda-x86_64.zip")
        });
    assert!(
        zip.is_file(),
        "{} is missing: build it first with `cargo xtask bundle` (`cargo xtask test` does)",
        zip.display()
    );
    zip
}

/// `zip` unpacked as Lambda unpacks it, Unix modes kept (Python's zipfile:
/// no extra crate for it).
pub fn unpack(zip: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, os\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n    p = z.extract(i, sys.argv[2])\n    os.chmod(p, (i.external_attr >> 16) & 0o777 or 0o644)",
        ])
        .arg(zip)
        .arg(dir.path())
        .status()
        .expect("run python3");
    assert!(status.success(), "cannot unpack {}", zip.display());
    dir
}

/// The release build of the binary, as a user runs it: the `bootstrap` of
/// the x86_64 Lambda bundle ([`bundle_zip`]), unpacked once per test run.
/// For what a debug build runs too slowly (a simulated month of ticks).
pub fn release_binary() -> PathBuf {
    static UNPACKED: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    UNPACKED
        .get_or_init(|| unpack(&bundle_zip()))
        .path()
        .join("bootstrap")
}

/// The compile cache the test run shares with `cargo xtask`'s `policy
/// build` steps: `$RUNNER_SCALER_CACHE_DIR`, else the workspace's
/// `target/policy-cache/`. A policy that carries an interpreter takes
/// seconds to compile; with the cache, each is compiled once per run.
pub fn compile_cache() -> runner_scaler::policy::CompileCache {
    let dir = std::env::var_os("RUNNER_SCALER_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/policy-cache")
        });
    runner_scaler::policy::CompileCache::new(dir)
}

/// A pool as the tests use it: resource class `acme/NAME`, group `ci-NAME`
/// in eu-west-1, bounds 0..=10, the `hold` fallback, UTC.
pub fn pool(name: &str, policy: runner_scaler::policy::Policy) -> runner_scaler::tick::Pool {
    runner_scaler::tick::Pool {
        name: name.into(),
        queue: QueueId::new(SourceKind::CircleCi, format!("acme/{name}")),
        group: runner_scaler::groups::GroupId {
            region: "eu-west-1".into(),
            name: format!("ci-{name}"),
        },
        policy,
        fallback: runner_scaler::policy::BuiltinRule::Hold,
        bounds: runner_scaler::plan::Bounds {
            min: 0,
            max: 10,
            allow_unprotected_scale_in: false,
            warm_max: 10,
        },
        time_zone: jiff::tz::TimeZone::UTC,
        params: vec![],
        shadow: None,
    }
}

/// Serve HTTP/1 on `listener` for a fake, each request answered by
/// `answer(shared, request)`, until the task is aborted — which drops the
/// connections' JoinSet and so aborts every connection, slow answers included.
/// An `Err` from `answer` closes its connection without a response.
pub async fn serve_http<S, A, F, E>(listener: TcpListener, shared: Arc<S>, answer: A)
where
    S: Send + Sync + 'static,
    A: Fn(Arc<S>, Request<Incoming>) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_http_accepting(listener, shared, answer, Accepting::default()).await
}

/// How a fake accepts connections.
#[derive(Debug, Clone, Default)]
pub struct Accepting {
    /// A pause after each accepted connection: a server slow to take new
    /// connections, whose listen backlog fills.
    pub pause: std::time::Duration,
    /// The most connections served at once, as a server with a fixed pool
    /// of workers: the next is accepted only when one of them closes.
    /// `None`: no limit.
    pub max_open: Option<usize>,
    /// Counts the connections accepted.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
}

/// [`serve_http`], accepting connections as `accepting` says.
pub async fn serve_http_accepting<S, A, F, E>(
    listener: TcpListener,
    shared: Arc<S>,
    answer: A,
    accepting: Accepting,
) where
    S: Send + Sync + 'static,
    A: Fn(Arc<S>, Request<Incoming>) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(
        accepting
            .max_open
            .unwrap_or(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    loop {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        accepting
            .accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shared = shared.clone();
        connections.spawn(async move {
            // Held while the connection is served.
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |request| answer(shared.clone(), request));
            // A client that gives up mid-answer is what the timeout tests do.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
        if !accepting.pause.is_zero() {
            tokio::time::sleep(accepting.pause).await;
        }
    }
}
