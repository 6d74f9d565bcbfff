//! The CircleCI source against a fake runner API on loopback: counts, every
//! scripted fault, encoding of the resource class, and redaction of the token.

use crate::support;

use runner_scaler::groups::{GroupState, MemoryGroups};
use runner_scaler::policy::{BuiltinRule, Policy};
use runner_scaler::secret::Secret;
use runner_scaler::sources::circleci::{CircleCi, HttpOptions};
use runner_scaler::sources::SourceError;
use runner_scaler::tick::{tick, Pool, TickOptions};
use runner_scaler::Queue;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::fake_circleci::{Endpoint, FakeCircleCi, Fault, Listen};

const TOKEN: &str = "CCIPAT_test_token";
const CLASS: &str = "acme/linux-large";

/// Fast timing, so the suite stays quick.
fn options() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_millis(300),
        attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
        ..HttpOptions::default()
    }
}

fn source(fake: &FakeCircleCi, token: &str) -> CircleCi {
    CircleCi::new(&fake.base_url(), Secret::new(token), options()).unwrap()
}

async fn fake_with_queue() -> FakeCircleCi {
    let fake = FakeCircleCi::start(TOKEN).await;
    fake.set_queue(CLASS, 7, 3);
    fake
}

fn requests(fake: &FakeCircleCi) -> (usize, usize) {
    (
        fake.requests(Endpoint::Unclaimed),
        fake.requests(Endpoint::Running),
    )
}

#[tokio::test]
async fn reads_both_counts_with_the_token_and_the_query() {
    let fake = fake_with_queue().await;
    let queue = source(&fake, TOKEN).queue(CLASS).await.unwrap();
    assert_eq!(
        queue,
        Queue {
            waiting: 7,
            running: 3,
            blocked: None,
        }
    );
    assert_eq!(requests(&fake), (1, 1));
    assert_eq!(fake.strays(), 0);
}

#[tokio::test]
async fn a_resource_class_with_a_slash_is_encoded_as_a_query_value() {
    let fake = FakeCircleCi::start(TOKEN).await;
    let class = "my-org/gpu large&fast";
    fake.set_queue(class, 1, 2);
    let queue = source(&fake, TOKEN).queue(class).await.unwrap();
    assert_eq!(
        queue,
        Queue {
            waiting: 1,
            running: 2,
            blocked: None,
        }
    );
    let queries = fake.queries();
    assert_eq!(queries.len(), 2);
    for query in queries {
        assert_eq!(query, "resource-class=my-org%2Fgpu+large%26fast");
    }
}

#[tokio::test]
async fn a_server_error_is_retried_then_succeeds() {
    let fake = fake_with_queue().await;
    fake.push_faults(CLASS, Endpoint::Unclaimed, [Fault::Status(500)]);
    fake.push_faults(CLASS, Endpoint::Running, [Fault::Status(502)]);
    let queue = source(&fake, TOKEN).queue(CLASS).await.unwrap();
    assert_eq!(queue.waiting, 7);
    assert_eq!(queue.running, 3);
    assert_eq!(requests(&fake), (2, 2));
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_then_succeeds() {
    let fake = fake_with_queue().await;
    fake.push_faults(
        CLASS,
        Endpoint::Running,
        [Fault::TooMany {
            retry_after_secs: 1,
        }],
    );
    let started = Instant::now();
    let queue = source(&fake, TOKEN).queue(CLASS).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(queue.running, 3);
    assert_eq!(requests(&fake), (1, 2));
}

#[tokio::test]
async fn unavailable_with_an_http_date_waits_until_then() {
    let fake = fake_with_queue().await;
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&at)
        .unwrap();
    fake.push_faults(
        CLASS,
        Endpoint::Unclaimed,
        [Fault::Unavailable { retry_after: date }],
    );
    let started = Instant::now();
    let queue = source(&fake, TOKEN).queue(CLASS).await.unwrap();
    // The date has whole seconds: "now + 2 s" truncated is at least 1 s away.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(queue.waiting, 7);
    assert_eq!(requests(&fake), (2, 1));
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_gives_up_on_this_tick() {
    let fake = fake_with_queue().await;
    fake.push_faults(
        CLASS,
        Endpoint::Unclaimed,
        [Fault::TooMany {
            retry_after_secs: 30,
        }],
    );
    let started = Instant::now();
    let err = source(&fake, TOKEN).queue(CLASS).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let SourceError::Unavailable { attempts, last, .. } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert_eq!(*attempts, 1);
    assert!(last.contains("30 s"), "{last}");
    assert!(last.contains("gives up"), "{last}");
    assert_eq!(fake.requests(Endpoint::Unclaimed), 1);
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_retried() {
    let fake = fake_with_queue().await;
    fake.push_faults(
        CLASS,
        Endpoint::Unclaimed,
        [Fault::Slow(Duration::from_secs(2))],
    );
    let started = Instant::now();
    let queue = source(&fake, TOKEN).queue(CLASS).await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(queue.waiting, 7);
    assert_eq!(requests(&fake), (2, 1));
}

#[tokio::test]
async fn persistent_timeouts_end_unavailable_saying_so() {
    let fake = fake_with_queue().await;
    fake.push_faults(
        CLASS,
        Endpoint::Running,
        vec![Fault::Slow(Duration::from_secs(2)); 4],
    );
    let err = source(&fake, TOKEN).queue(CLASS).await.unwrap_err();
    let SourceError::Unavailable { attempts, last, .. } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert_eq!(*attempts, 4);
    assert!(last.contains("no answer within 300 ms"), "{last}");
    assert_eq!(fake.requests(Endpoint::Running), 4);
}

#[tokio::test]
async fn malformed_json_is_retried_then_succeeds() {
    let fake = fake_with_queue().await;
    fake.push_faults(CLASS, Endpoint::Unclaimed, [Fault::Malformed]);
    let queue = source(&fake, TOKEN).queue(CLASS).await.unwrap();
    assert_eq!(queue.waiting, 7);
    assert_eq!(requests(&fake), (2, 1));
}

#[tokio::test]
async fn persistent_malformed_json_ends_unavailable() {
    let fake = fake_with_queue().await;
    fake.push_faults(CLASS, Endpoint::Unclaimed, vec![Fault::Malformed; 10]);
    let err = source(&fake, TOKEN).queue(CLASS).await.unwrap_err();
    let SourceError::Unavailable { attempts, last, .. } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert_eq!(*attempts, 4);
    assert!(last.contains("not JSON"), "{last}");
    assert_eq!(fake.requests(Endpoint::Unclaimed), 4);
}

#[tokio::test]
async fn a_missing_field_is_retried_then_succeeds() {
    let fake = fake_with_queue().await;
    fake.push_faults(CLASS, Endpoint::Running, [Fault::MissingField]);
    let queue = source(&fake, TOKEN).queue(CLASS).await.unwrap();
    assert_eq!(queue.running, 3);
    assert_eq!(requests(&fake), (1, 2));
}

#[tokio::test]
async fn a_persistent_missing_field_ends_unavailable() {
    let fake = fake_with_queue().await;
    fake.push_faults(CLASS, Endpoint::Running, vec![Fault::MissingField; 10]);
    let err = source(&fake, TOKEN).queue(CLASS).await.unwrap_err();
    let SourceError::Unavailable { attempts, last, .. } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert_eq!(*attempts, 4);
    assert!(last.contains("running_runner_tasks"), "{last}");
    assert_eq!(fake.requests(Endpoint::Running), 4);
}

#[tokio::test]
async fn negative_and_fractional_counts_are_not_counts() {
    for body in [
        r#"{"unclaimed_task_count": -2}"#,
        r#"{"unclaimed_task_count": 2.5}"#,
        r#"{"unclaimed_task_count": "2"}"#,
    ] {
        let fake = fake_with_queue().await;
        fake.push_faults(
            CLASS,
            Endpoint::Unclaimed,
            vec![Fault::Body(body.to_string()); 4],
        );
        let err = source(&fake, TOKEN).queue(CLASS).await.unwrap_err();
        assert!(
            matches!(err, SourceError::Unavailable { attempts: 4, .. }),
            "{body}: {err}"
        );
        assert!(err.to_string().contains("not a whole number"), "{err}");
    }
}

/// Issue 24: an answer that names the count twice took the last value; it
/// is malformed, so the queue is not read (the pool is held).
#[tokio::test]
async fn an_answer_that_names_a_field_twice_is_malformed() {
    let fake = fake_with_queue().await;
    fake.push_faults(
        CLASS,
        Endpoint::Unclaimed,
        vec![Fault::Body(r#"{"unclaimed_task_count": 0, "unclaimed_task_count": 40}"#.into()); 4],
    );
    let err = source(&fake, TOKEN).queue(CLASS).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Unavailable { attempts: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("twice"), "{err}");
}

#[tokio::test]
async fn a_refused_token_fails_at_once_without_retries() {
    let fake = fake_with_queue().await;
    let err = source(&fake, "CCIPAT_wrong")
        .queue(CLASS)
        .await
        .unwrap_err();
    let SourceError::Refused { message, .. } = &err else {
        panic!("expected Refused, got {err:?}");
    };
    assert!(message.contains("token was refused"), "{message}");
    assert!(message.contains("personal API token"), "{message}");
    assert!(message.contains("\"acme\""), "{message}");
    // Both counts start together; the refusal of one may cancel the other
    // before it is sent, but neither is ever retried.
    let (unclaimed, running) = requests(&fake);
    assert!(unclaimed <= 1 && running <= 1, "{unclaimed} {running}");
    assert!(unclaimed + running >= 1);
}

#[tokio::test]
async fn forbidden_is_refused_too() {
    let fake = fake_with_queue().await;
    fake.push_faults(CLASS, Endpoint::Unclaimed, [Fault::Status(403)]);
    fake.push_faults(CLASS, Endpoint::Running, [Fault::Status(403)]);
    let err = source(&fake, TOKEN).queue(CLASS).await.unwrap_err();
    assert!(matches!(err, SourceError::Refused { .. }), "{err}");
    let (unclaimed, running) = requests(&fake);
    assert!(unclaimed <= 1 && running <= 1, "{unclaimed} {running}");
}

#[tokio::test]
async fn an_unknown_resource_class_is_refused_by_name() {
    let fake = fake_with_queue().await;
    let err = source(&fake, TOKEN).queue("acme/nope").await.unwrap_err();
    let SourceError::Refused { message, .. } = &err else {
        panic!("expected Refused, got {err:?}");
    };
    assert!(message.contains("\"acme/nope\""), "{message}");
    assert!(message.contains("not found"), "{message}");
    let (unclaimed, running) = requests(&fake);
    assert!(unclaimed <= 1 && running <= 1, "{unclaimed} {running}");
}

#[tokio::test]
async fn a_server_that_is_gone_ends_unavailable() {
    let fake = fake_with_queue().await;
    let source = source(&fake, TOKEN);
    drop(fake);
    // Let the server task see its abort and close the listener.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = source.queue(CLASS).await.unwrap_err();
    let SourceError::Unavailable { attempts, last, .. } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert_eq!(*attempts, 4);
    assert!(last.contains("could not connect"), "{last}");
}

/// A tracing writer into memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn the_token_appears_in_no_log_line_and_no_error() {
    const CANARY: &str = "CCIPAT_redaction_canary";
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test's runtime is single-threaded: every task, the fake's and the
    // client's, runs on this thread under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeCircleCi::start(CANARY).await;
    fake.set_queue(CLASS, 1, 1);
    fake.push_faults(
        CLASS,
        Endpoint::Unclaimed,
        [
            Fault::Status(500),
            Fault::TooMany {
                retry_after_secs: 0,
            },
            Fault::Malformed,
            Fault::Slow(Duration::from_secs(1)),
        ],
    );
    let accepted = source(&fake, CANARY);
    let unavailable = accepted.queue(CLASS).await.unwrap_err();
    assert!(matches!(unavailable, SourceError::Unavailable { .. }));

    let refused_fake = FakeCircleCi::start("CCIPAT_another").await;
    refused_fake.set_queue(CLASS, 1, 1);
    let refused = source(&refused_fake, CANARY)
        .queue(CLASS)
        .await
        .unwrap_err();
    assert!(matches!(refused, SourceError::Refused { .. }));

    let logs = captured.text();
    assert!(logs.contains("retrying"), "the capture saw nothing: {logs}");
    assert!(logs.contains(CLASS), "{logs}");
    assert!(!logs.contains(CANARY), "the token is in the logs:\n{logs}");
    for err in [&unavailable, &refused] {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(CANARY), "the token is in an error: {shown}");
    }
    assert!(!format!("{accepted:?}").contains(CANARY));
}

#[tokio::test]
async fn the_fake_stops_when_dropped() {
    let fake = FakeCircleCi::start(TOKEN).await;
    let addr = fake.addr();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(fake);
    // The abort lands when the runtime next polls the server task.
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "still accepting connections on {addr}");
}

/// `n` pools with the `queue` rule, their classes known to `fake` and their
/// groups to the returned in-memory groups.
fn many_pools(fake: &FakeCircleCi, n: usize) -> (Vec<Pool>, MemoryGroups) {
    let groups = MemoryGroups::new();
    let pools: Vec<Pool> = (0..n)
        .map(|i| support::pool(&format!("p{i}"), Policy::Builtin(BuiltinRule::Queue)))
        .collect();
    for pool in &pools {
        fake.set_queue(&pool.queue.name, 2, 1);
        groups.insert(
            pool.group.clone(),
            GroupState {
                desired: 3,
                max_size: 10,
                new_instances_protected: true,
                ..GroupState::default()
            },
        );
    }
    (pools, groups)
}

/// A runner API that takes few connections: a listen backlog of 5, new
/// connections taken slowly, at most 8 served at once (a server with a
/// fixed pool of workers). A tick of 100 pools used to open 64 connections
/// at once: those the server never took waited out their timeout (the tick
/// took 5.2 s), and the attempts the backlog could not hold were dropped.
/// With requests waiting for one of the few connections the default
/// allows, every connection is taken: with a short timeout and a single
/// try, every pool is still decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_api_that_takes_few_connections_decides_every_pool_without_timeouts() {
    let fake = FakeCircleCi::start_listening(
        TOKEN,
        Listen {
            backlog: 5,
            accept_pause: Duration::from_millis(20),
            max_open: Some(8),
        },
    )
    .await;
    let (pools, groups) = many_pools(&fake, 100);
    let options = HttpOptions {
        // A request the server never takes fails, and with one try its pool
        // is held.
        timeout: Duration::from_secs(1),
        attempts: 1,
        ..HttpOptions::default()
    };
    let queues = CircleCi::new(&fake.base_url(), Secret::new(TOKEN), options).unwrap();
    let reports = tick(
        &pools,
        &queues,
        &groups,
        jiff::Timestamp::now(),
        TickOptions::default(),
    )
    .await;
    let held: Vec<_> = reports
        .iter()
        .filter(|r| !r.decided())
        .map(|r| format!("{}: {}", r.pool, r.why.as_deref().unwrap_or("")))
        .collect();
    assert!(held.is_empty(), "{} pools held: {held:#?}", held.len());
    assert_eq!(requests(&fake), (100, 100));
    assert!(
        fake.connections() <= 2 * runner_scaler::sources::circleci::DEFAULT_MAX_CONCURRENT,
        "{} connections",
        fake.connections()
    );
}

/// The client keeps its connections open and reuses them, tick after tick:
/// a tick of 100 pools (200 requests) opens about as many connections as it
/// may have requests in flight, and the next ticks open (next to) none.
/// The slack: hyper starts a new connection when none is idle, racing one
/// being handed back to its pool, and keeps the loser for later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_few_and_kept_alive_from_tick_to_tick() {
    const AT_ONCE: usize = 4;
    let fake = FakeCircleCi::start(TOKEN).await;
    let (pools, groups) = many_pools(&fake, 100);
    let options = HttpOptions {
        max_concurrent: AT_ONCE,
        ..options()
    };
    let queues = CircleCi::new(&fake.base_url(), Secret::new(TOKEN), options).unwrap();
    let mut opened = Vec::new();
    for _ in 0..3 {
        let reports = tick(
            &pools,
            &queues,
            &groups,
            jiff::Timestamp::now(),
            TickOptions::default(),
        )
        .await;
        assert!(reports.iter().all(|r| r.decided()));
        opened.push(fake.connections());
    }
    assert_eq!(requests(&fake), (300, 300));
    assert!(
        opened[0] <= 2 * AT_ONCE,
        "{} connections for 200 requests, at most {AT_ONCE} at once",
        opened[0]
    );
    assert!(
        opened[2] - opened[0] <= AT_ONCE,
        "the next ticks opened connections again: {opened:?} after each tick"
    );
}
