//! The `runner-scaler` binary as users run it, against moto and the fake
//! runner API: a configuration for them, `once`, the daemon and its
//! `/metrics`, what it printed.

use super::fake_circleci::FakeCircleCi;
use super::moto::Moto;
use std::process::Output;
use std::time::Duration;

/// The region the tests' groups are in.
pub const REGION: &str = "eu-west-1";
/// The CircleCI token the tests give the binary: a canary that must never
/// show in its output.
pub const TOKEN: &str = "CCIPAT_redaction_canary_0123456789";

/// Run the binary with `args`, the test token and moto's credentials.
pub async fn runner_scaler(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(args)
        .env("CIRCLECI_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env(
            "RUNNER_SCALER_CACHE_DIR",
            std::env::temp_dir().join("runner-scaler-test-cache"),
        )
        .env("RUST_LOG", "debug")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run runner-scaler")
}

pub async fn desired(moto: &Moto, name: &str) -> i32 {
    moto.group(REGION, name)
        .await
        .unwrap()
        .desired_capacity()
        .unwrap()
}

pub async fn state_tag(moto: &Moto, name: &str) -> Option<String> {
    let group = moto.group(REGION, name).await.unwrap();
    group
        .tags()
        .iter()
        .find(|t| t.key() == Some(runner_scaler::state::STATE_TAG))
        .and_then(|t| t.value().map(String::from))
}

pub fn config(moto: &Moto, circleci: &FakeCircleCi, pools: &str) -> tempfile::NamedTempFile {
    let text = format!(
        "[circleci]\nbase_url = \"{}\"\n[aws]\nendpoint_url = \"{}\"\n[defaults]\nregion = \"{REGION}\"\n{pools}",
        circleci.base_url(),
        moto.endpoint()
    );
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

pub fn pool(name: &str, policy: &str, params: &str) -> String {
    let policy = match policy {
        "queue" | "hold" => policy.to_string(),
        file => super::policies_dir()
            .join(format!("{file}.wasm"))
            .display()
            .to_string(),
    };
    format!(
        "[[pool]]\nname = \"{name}\"\nresource_class = \"acme/{name}\"\ngroup = \"ci-{name}\"\npolicy = \"{policy}\"\nparams = {{ {params} }}\nmax = 10\n"
    )
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `once --config config` with `args` and `env`, with an empty compile
/// cache and debug logs, which must decide the pool: its output.
pub async fn once_decides(config: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path().to_str().unwrap();
    let mut all = vec!["once", "--config", config];
    all.extend(args);
    let mut env = env.to_vec();
    env.push(("RUNNER_SCALER_CACHE_DIR", cache));
    let output = runner_scaler(&all, &env).await;
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("1 of 1 pools decided"), "{log}");
    log
}

pub async fn http_get(listen: &str, path: &str) -> Option<(u16, String)> {
    let answer = reqwest::get(format!("http://{listen}{path}")).await.ok()?;
    Some((answer.status().as_u16(), answer.text().await.ok()?))
}

/// The body of `path` once `check` accepts it (within 30 s).
pub async fn wait_until(listen: &str, path: &str, check: impl Fn(u16, &str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((status, body)) = http_get(listen, path).await {
            if check(status, &body) {
                return body;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never as expected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A loopback address no one listens on, for the daemon's `/metrics`.
pub fn free_listen() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// `runner-scaler run` on `config`, serving `/metrics` on `listen`, its log
/// on a pipe (read it after it exits), killed when dropped.
pub fn start_daemon(config: &std::path::Path, listen: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args(["run", "--listen", listen, "--config"])
        .arg(config)
        .env("CIRCLECI_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The SHA-256 of a file, lowercase hex, computed here rather than by the
/// code under test.
pub fn sha256_of(path: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SIGTERM to the daemon; its exit status (within 15 s) and its log.
pub async fn stop_daemon(child: &mut tokio::process::Child) -> (std::process::ExitStatus, String) {
    let pid = child.id().expect("the daemon is running").to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("run did not stop on SIGTERM")
        .unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    (exit, stderr)
}

/// The value of metric `name` for `pool`, read with a Prometheus parser.
pub fn sample(body: &str, pool: &str, name: &str) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get("pool") == Some(pool))
        .and_then(|s| match s.value {
            // OpenMetrics names counter samples `_total`; the parser then
            // reads them as untyped.
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}
