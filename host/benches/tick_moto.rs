//! One tick of 1,000 pools in one region against local services — moto's
//! server as Auto Scaling and a fake CircleCI runner API, started as the
//! tests start them: `cargo bench --bench tick_moto` (after `cargo xtask
//! policies`; moto comes with `cargo xtask test`, or `python3 -m pip install
//! 'moto[server]'`).
//!
//! Every pool runs the compiled `queue-depth` policy on a group of two
//! instances, protected from scale-in. Prints the median wall time of a tick
//! when nothing changes and when a third of the groups change (up and down
//! in turn), next to the targets, with the CPU time moto and this process
//! spent meanwhile; then where the time goes: the tick's reads and writes
//! on their own, moto's time per call (through the SDK and as a bare HTTP
//! request), whether moto serves calls in parallel, and the SDK's own cost
//! per call. A figure limited by moto rather than by the scaler shows as
//! such: moto's CPU time close to the wall time.

// The tests' fixtures, as the tests start them; not every helper is used.
#[allow(dead_code)]
#[path = "../tests/it/support/mod.rs"]
mod support;

use futures::stream::{self, StreamExt};
use runner_scaler::groups::asg::{AsgGroups, DESCRIBE_PARALLEL};
use runner_scaler::groups::{Groups, Write, DESCRIBE_BATCH};
use runner_scaler::policy::{Limits, Policy, PolicyEngine};
use runner_scaler::secret::Secret;
use runner_scaler::sources::circleci::{CircleCi, HttpOptions};
use runner_scaler::tick::{tick, Action, Pool, TickOptions, PARALLEL_POOLS};
use std::future::Future;
use std::time::{Duration, Instant};
use support::fake_circleci::FakeCircleCi;
use support::moto::{Moto, TestGroup};

const POOLS: usize = 1000;
const REGION: &str = "eu-west-1";
const TOKEN: &str = "CCIPAT_bench";
/// Instances in each group, and so the jobs its queue holds when nothing
/// changes.
const DESIRED: u32 = 2;
/// Runs per figure (the medians are printed).
const RUNS: usize = 5;

fn main() {
    let policies = support::policies_dir();
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let policy = engine
        .load(&policies.join("queue-depth.wasm"))
        .expect("build the policies first: cargo xtask policies");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let moto = Moto::start();
    let cpu = Cpu { moto: moto.pid() };
    runtime.block_on(async {
        let fake = FakeCircleCi::start(TOKEN).await;
        let pools: Vec<Pool> = (0..POOLS)
            // Class acme/N, group ci-N in eu-west-1 (REGION), max 10.
            .map(|i| support::pool(&i.to_string(), Policy::Wasm(policy.clone())))
            .collect();

        let started = Instant::now();
        stream::iter(&pools)
            .for_each_concurrent(8, |pool| async {
                let group = TestGroup::new(&pool.group.name)
                    .desired(DESIRED as i32)
                    .protected();
                moto.create_group(REGION, &group).await;
            })
            .await;
        eprintln!(
            "set-up: {POOLS} groups of {DESIRED} instances created on moto in {:.1?}",
            started.elapsed()
        );

        let queues =
            CircleCi::new(&fake.base_url(), Secret::new(TOKEN), HttpOptions::default()).unwrap();
        let groups = moto.groups();
        let set_queues = |changing: Option<u32>| {
            for (i, pool) in pools.iter().enumerate() {
                let waiting = match changing {
                    Some(jobs) if i % 3 == 0 => jobs,
                    _ => DESIRED,
                };
                fake.set_queue(&pool.queue.name, waiting, 0);
            }
        };
        // When, into each tick, its first and its last pool were done.
        let spans = std::cell::RefCell::new(Vec::new());
        // One tick; checks that every pool was decided and `written` of
        // them written.
        let one_tick = |written: usize| {
            let (pools, queues, groups, spans) = (&pools, &queues, &groups, &spans);
            async move {
                let reports = tick(
                    pools,
                    queues,
                    groups,
                    jiff::Timestamp::now(),
                    TickOptions::default(),
                )
                .await;
                let held: Vec<_> = reports.iter().filter(|r| !r.decided()).collect();
                assert!(held.is_empty(), "{} pools not decided: {:?}", held.len(), held[0]);
                let applied = reports
                    .iter()
                    .filter(|r| r.action == Action::Applied)
                    .count();
                assert_eq!(applied, written, "pools written");
                let done = reports.iter().map(|r| r.duration_ms);
                let first = done.clone().fold(f64::INFINITY, f64::min);
                spans.borrow_mut().push((first, done.fold(0.0, f64::max)));
            }
        };

        set_queues(None);
        let before = groups.calls();
        let first = cpu.once(one_tick(0)).await;
        let describes = groups.calls().describe - before.describe;
        spans.borrow_mut().clear();
        let unchanged = cpu.measure(RUNS, || one_tick(0)).await;
        let unchanged_spans = spans.take();
        // A third of the groups go up one instance, and down again the next
        // tick (the instances are protected: moto keeps them, AWS would too).
        let changing_pools = pools.len().div_ceil(3);
        let mut up = true;
        let before = groups.calls();
        let changing = cpu
            .measure(RUNS, || {
                set_queues(Some(if up { DESIRED + 1 } else { DESIRED }));
                up = !up;
                one_tick(changing_pools)
            })
            .await;
        let writes = (groups.calls().write - before.write) / (RUNS + 1);
        let changing_spans = spans.take();
        // Back to where they were.
        set_queues(None);
        one_tick(if up { 0 } else { changing_pools }).await;

        println!(
            "One tick, {POOLS} pools in one region (groups of {DESIRED} instances), moto + fake runner API,"
        );
        println!("medians of {RUNS} ticks; CPU: moto's, and this process's (the scaler and the fake runner API):");
        println!("                                       wall   moto CPU    own CPU   target");
        println!("  first tick (clients made)       {first}");
        println!("  nothing changes                 {unchanged}   ≤ 500 ms   ({describes} describe calls, no write)");
        println!("  a third change                  {changing}   ≤ 1 s      ({describes} describe calls, {writes} writes)");

        println!("Where the time goes:");
        println!(
            "  in a tick, first and last pool done: nothing changes {}, a third change {}",
            span(unchanged_spans),
            span(changing_spans)
        );
        let names: Vec<String> = pools.iter().map(|p| p.group.name.clone()).collect();
        let describe_all = cpu
            .measure(RUNS, || async {
                groups.describe(REGION, &names).await.unwrap();
            })
            .await;
        println!(
            "  the region's describe           {describe_all}   ({} calls of {DESCRIBE_BATCH}, {DESCRIBE_PARALLEL} at once)",
            names.len().div_ceil(DESCRIBE_BATCH),
        );
        let classes: Vec<&str> = pools.iter().map(|p| p.queue.name.as_str()).collect();
        let read_queues = cpu
            .measure(RUNS, || async {
                stream::iter(&classes)
                    .for_each_concurrent(PARALLEL_POOLS, |class| async {
                        queues.queue(class).await.unwrap();
                    })
                    .await;
            })
            .await;
        println!(
            "  the queue reads                 {read_queues}   ({} requests, {} at once)",
            classes.len() * 2,
            HttpOptions::default().max_concurrent,
        );
        let mut up = true;
        let writes_alone = cpu
            .measure(RUNS, || {
                let desired = if up { DESIRED + 1 } else { DESIRED };
                up = !up;
                let (pools, groups) = (&pools, &groups);
                async move {
                    stream::iter(pools.iter().step_by(3))
                        .for_each_concurrent(PARALLEL_POOLS, |pool| async {
                            groups
                                .apply(&pool.group, &Write::Desired(desired))
                                .await
                                .unwrap();
                        })
                        .await;
                }
            })
            .await;
        if !up {
            // Leave the groups as they were.
            for pool in pools.iter().step_by(3) {
                groups.apply(&pool.group, &Write::Desired(DESIRED)).await.unwrap();
            }
        }
        println!(
            "  the writes alone                {writes_alone}   ({changing_pools} SetDesiredCapacity, {PARALLEL_POOLS} at once)"
        );

        println!("moto, one call at a time (medians of 20):");
        let batch: Vec<String> = names[..DESCRIBE_BATCH].to_vec();
        let sdk = cpu
            .measure(20, || async {
                groups.describe(REGION, &batch).await.unwrap();
            })
            .await;
        println!("  DescribeAutoScalingGroups of {DESCRIBE_BATCH}, SDK  {sdk}");
        let (bare, answer) = bare_describe(&moto, &batch, &cpu).await;
        println!("  the same, bare HTTP             {bare}");
        let one = &pools[0].group;
        let set = cpu
            .measure(20, || async {
                groups.apply(one, &Write::Desired(DESIRED)).await.unwrap();
            })
            .await;
        println!("  SetDesiredCapacity (no change)  {set}");
        println!("moto, calls at once (does it serve them in parallel?):");
        for parallel in [1, 4, 16] {
            let calls = 16;
            let wall = cpu
                .measure(3, || async {
                    stream::iter(0..calls)
                        .for_each_concurrent(parallel, |_| async {
                            groups.describe(REGION, &batch).await.unwrap();
                        })
                        .await;
                })
                .await;
            println!("  {calls} describes of {DESCRIBE_BATCH}, {parallel:>2} at once {wall}");
        }
        let alone = sdk_alone(answer, &cpu).await;
        println!(
            "the SDK alone, moto's answer replayed by a local server: a describe of {DESCRIBE_BATCH} {alone}"
        );
    });
}

/// The median of the first and of the last pool's time, "at 840 and 990 ms".
fn span(mut spans: Vec<(f64, f64)>) -> String {
    let middle = spans.len() / 2;
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = spans[middle].0;
    spans.sort_by(|a, b| a.1.total_cmp(&b.1));
    format!("at {first:.0} and {:.0} ms", spans[middle].1)
}

/// Wall time and the CPU time spent meanwhile, by moto and by this process.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    moto: Duration,
    own: Duration,
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        write!(
            f,
            "{:>10} {:>10} {:>10}",
            ms(self.wall),
            ms(self.moto),
            ms(self.own)
        )
    }
}

/// Reads CPU times from `/proc`.
struct Cpu {
    moto: u32,
}

impl Cpu {
    /// The medians (each on its own) over `runs` runs of `f`, after one
    /// more to warm up.
    async fn measure<F, Fut>(&self, runs: usize, mut f: F) -> Sample
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        f().await;
        let mut samples = Vec::new();
        for _ in 0..runs {
            samples.push(self.once(f()).await);
        }
        let median = |pick: fn(&Sample) -> Duration| {
            let mut values: Vec<Duration> = samples.iter().map(pick).collect();
            values.sort();
            values[values.len() / 2]
        };
        Sample {
            wall: median(|s| s.wall),
            moto: median(|s| s.moto),
            own: median(|s| s.own),
        }
    }

    /// One run of `work`.
    async fn once(&self, work: impl Future<Output = ()>) -> Sample {
        let (moto, own) = (self.of(self.moto), self.own());
        let started = Instant::now();
        work.await;
        Sample {
            wall: started.elapsed(),
            moto: self.of(self.moto) - moto,
            own: self.own() - own,
        }
    }

    fn own(&self) -> Duration {
        self.of(std::process::id())
    }

    /// User + system time of process `pid`, all its threads.
    fn of(&self, pid: u32) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command name, which is in parentheses;
        // utime and stime are the 14th and 15th of the line.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks: u64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        // USER_HZ, 100 on every Linux this runs on.
        Duration::from_millis(ticks * 10)
    }
}

/// moto's time for a describe of `names` with no SDK involved: the query as
/// a bare HTTP request (moto checks no signature). Also moto's answer.
async fn bare_describe(moto: &Moto, names: &[String], cpu: &Cpu) -> (Sample, String) {
    let client = reqwest::Client::new();
    let mut body =
        format!("Action=DescribeAutoScalingGroups&Version=2011-01-01&MaxRecords={DESCRIBE_BATCH}");
    for (i, name) in names.iter().enumerate() {
        body.push_str(&format!("&AutoScalingGroupNames.member.{}={name}", i + 1));
    }
    let send = || async {
        let answer = client
            .post(moto.endpoint())
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/20260101/{REGION}/autoscaling/aws4_request, SignedHeaders=host, Signature=0",
                    support::moto::KEY
                ),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        answer.text().await.unwrap()
    };
    let answer = send().await;
    assert!(
        answer.contains(&names[0]),
        "moto did not describe the groups"
    );
    let sample = cpu
        .measure(20, || async {
            send().await;
        })
        .await;
    (sample, answer)
}

/// The SDK's own cost per describe: `answer` (moto's answer to a describe)
/// replayed by a local server, so every byte is parsed as from moto.
async fn sdk_alone(answer: String, cpu: &Cpu) -> Sample {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(support::serve_http(
        listener,
        std::sync::Arc::new(Bytes::from(answer)),
        |answer, _| async move {
            Ok::<_, std::convert::Infallible>(
                hyper::Response::builder()
                    .header("content-type", "text/xml")
                    .body(Full::new((*answer).clone()))
                    .unwrap(),
            )
        },
    ));
    let replay = AsgGroups::new(runner_scaler::aws::AwsOptions::local(
        format!("http://{addr}"),
        support::moto::KEY,
        support::moto::KEY,
    ));
    let names: Vec<String> = (0..DESCRIBE_BATCH).map(|i| format!("ci-{i}")).collect();
    let sample = cpu
        .measure(200, || async {
            let found = replay.describe(REGION, &names).await.unwrap();
            assert_eq!(found.len(), DESCRIBE_BATCH);
        })
        .await;
    server.abort();
    sample
}
