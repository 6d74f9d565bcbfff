//! The simulator: hand-computed scenarios through the production tick,
//! invariants over seeded random traces and random scaling, determinism of
//! the chart, and the `simulate` command line.
//!
//! The invariants run over a seeded loop of random cases rather than
//! proptest: no new dependency, and a failure names its seed to replay.

use crate::support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use runner_scaler::groups::{Groups, Write};
use runner_scaler::policy::{BuiltinRule, Limits, Policy, PolicyEngine};
use runner_scaler::simulate::trace::Job;
use runner_scaler::simulate::world::{self, InstanceRecord, JobRecord, Leave};
use runner_scaler::simulate::{
    chart, run, Boot, Exit, Run, Scenario, Summary, Trace, World, WorldSettings,
};
use std::process::Command;

fn trace(jobs: &[(u64, u64)]) -> Trace {
    Trace {
        origin: "test".into(),
        start: "2026-11-23T00:00:00Z".parse().unwrap(),
        jobs: jobs
            .iter()
            .enumerate()
            .map(|(i, &(submit, duration))| Job {
                submit,
                duration,
                resource_class: None,
                line: i + 1,
            })
            .collect(),
    }
}

fn scenario(policy: Policy, exit: Exit, max: u32) -> Scenario {
    Scenario {
        label: format!("{} ({})", policy.name(), exit.name()),
        policy,
        params: vec![],
        fallback: BuiltinRule::Hold,
        tick: 60,
        time_zone: jiff::tz::TimeZone::UTC,
        world: WorldSettings {
            boot: Boot::Fixed(90),
            idle_timeout: 300,
            exit,
            min: 0,
            max,
            seed: 1,
        },
    }
}

const QUEUE: Policy = Policy::Builtin(BuiltinRule::Queue);

async fn simulate(jobs: &[(u64, u64)], scenario: &Scenario) -> Run {
    let run = run(&trace(jobs), scenario, &mut || {}).await;
    check_invariants(&run, scenario.world.max, jobs.len())
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.label));
    run
}

fn waits(run: &Run) -> Vec<u64> {
    let mut waits: Vec<u64> = run.jobs.iter().map(|j| j.wait(run.end)).collect();
    waits.sort_unstable();
    waits
}

// One job at t=0 for 600 s. The first tick is at 60 s: the queue rule sets
// desired 1, the instance boots 60..150 and claims the job at 150 (wait
// 150 s), runs it until 750 and leaves: 690 s, 11.5 instance-minutes.
#[tokio::test]
async fn one_job_waits_for_the_first_tick_and_the_boot() {
    let r = simulate(&[(0, 600)], &scenario(QUEUE, Exit::Decrement, 3)).await;
    assert_eq!(waits(&r), vec![150]);
    assert_eq!(r.instances.len(), 1);
    let i = &r.instances[0];
    assert_eq!(
        (i.launched, i.ready, i.left),
        (60, Some(150), Some((750, Leave::JobDone)))
    );
    let s = Summary::of(&r, 0.60, 300);
    assert_eq!((s.instance_seconds, s.instance_minutes()), (690, 11.5));
    assert!((s.cost - 0.115).abs() < 1e-9, "{}", s.cost);
    assert_eq!((s.launches, s.replacements, s.peak), (1, 0, 1));
    assert_eq!(
        r.end, 780,
        "the first tick with every job done and no instance"
    );
}

// The same job with `poweroff`: at 750 the instance leaves without lowering
// desired (1), so the group launches a replacement at once; the tick at 780
// sees an empty queue, sets desired 0, and terminates the booting
// replacement after 30 s — billed as EC2's one-minute minimum.
#[tokio::test]
async fn poweroff_makes_a_replacement_launch_that_decrement_avoids() {
    let decrement = simulate(&[(0, 600)], &scenario(QUEUE, Exit::Decrement, 3)).await;
    let poweroff = simulate(&[(0, 600)], &scenario(QUEUE, Exit::Poweroff, 3)).await;
    let (d, p) = (
        Summary::of(&decrement, 1.0, 300),
        Summary::of(&poweroff, 1.0, 300),
    );
    assert_eq!(
        (d.replacements, d.idle_replacements, d.instance_seconds),
        (0, 0, 690)
    );
    assert_eq!(
        (
            p.replacements,
            p.idle_replacements,
            p.idle_replacement_seconds
        ),
        (1, 1, 60)
    );
    assert_eq!(p.instance_seconds, 690 + 60);
    assert_eq!(waits(&poweroff), vec![150]);
    let replacement = &poweroff.instances[1];
    assert_eq!(
        (
            replacement.launched,
            replacement.replacement,
            replacement.left
        ),
        (750, true, Some((780, Leave::ScaleIn)))
    );
}

// Ten jobs of 300 s at t=0, at most 3 instances, `decrement`.
// Tick 60: desired 3; boot until 150, jobs 1-3 run 150..450; each leaves
// with a decrement, so desired is 0 until the tick at 480 sees 7 waiting:
// 3 launches, jobs 4-6 at 570..870; tick 900: jobs 7-9 at 990..1290;
// tick 1320: desired 1, job 10 at 1410..1710. Ten instances of 390 s.
#[tokio::test]
async fn ten_simultaneous_jobs_with_max_3_decrement() {
    let jobs = [(0, 300); 10];
    let r = simulate(&jobs, &scenario(QUEUE, Exit::Decrement, 3)).await;
    assert_eq!(
        waits(&r),
        vec![150, 150, 150, 570, 570, 570, 990, 990, 990, 1410]
    );
    let s = Summary::of(&r, 1.0, 600);
    assert_eq!((s.instance_seconds, s.instance_minutes()), (3900, 65.0));
    assert_eq!((s.launches, s.replacements, s.peak), (10, 0, 3));
    assert_eq!(
        (s.wait_p50, s.wait_p95, s.wait_max, s.slow),
        (570, 1410, 1410, 4)
    );
    assert_eq!(r.end, 1740);
}

// The same with `poweroff`: desired stays 3, so each batch's instances are
// replaced the second they leave and the replacements take the next jobs
// (450 → jobs 4-6 at 540, 840 → jobs 7-9 at 930). The three launched at
// 1230 meet the tick at 1260, which wants 1 (one job waits): the two
// youngest go after 30 s; the third runs job 10 at 1320..1620. Its
// replacement (1620) is scaled in by the tick at the same second.
#[tokio::test]
async fn ten_simultaneous_jobs_with_max_3_poweroff() {
    let jobs = [(0, 300); 10];
    let r = simulate(&jobs, &scenario(QUEUE, Exit::Poweroff, 3)).await;
    assert_eq!(
        waits(&r),
        vec![150, 150, 150, 540, 540, 540, 930, 930, 930, 1320]
    );
    let s = Summary::of(&r, 1.0, 600);
    assert_eq!(
        (s.launches, s.replacements, s.idle_replacements),
        (13, 10, 3)
    );
    // Ten instances ran a job for 390 s; three ran none (30, 30 and 0 s),
    // each billed one minute.
    assert_eq!(
        (s.instance_seconds, s.idle_replacement_seconds),
        (3900 + 180, 180)
    );
    assert_eq!(r.end, 1620);
    let scaled_in: Vec<(usize, u64)> = r
        .instances
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i.left, Some((_, Leave::ScaleIn))))
        .map(|(id, i)| (id, i.left.unwrap().0))
        .collect();
    assert_eq!(scaled_in, vec![(10, 1260), (11, 1260), (12, 1620)]);
}

// A policy that never scales out: the job never runs, and the run gives up
// a day after the last submission.
#[tokio::test]
async fn jobs_that_never_run_are_counted_until_the_run_gives_up() {
    let r = simulate(
        &[(0, 60)],
        &scenario(Policy::Builtin(BuiltinRule::Hold), Exit::Decrement, 3),
    )
    .await;
    let s = Summary::of(&r, 1.0, 300);
    assert_eq!((s.jobs, s.never_ran, s.launches), (1, 1, 0));
    assert_eq!(r.end, 24 * 3600);
    assert_eq!(s.wait_max, 24 * 3600);
}

/// Everything that must hold of any run: every job ran at most once, on one
/// instance, from its claim for its duration, oldest first; no job lost;
/// never more than `max` instances; a scale-in never took a busy instance.
fn check_invariants(run: &Run, max: u32, jobs: usize) -> Result<(), String> {
    check_records(&run.jobs, &run.instances, run.end, max)?;
    if run.jobs.len() != jobs {
        return Err(format!("{} jobs in, {} out", jobs, run.jobs.len()));
    }
    if run.peak > max {
        return Err(format!("peak {} above max {max}", run.peak));
    }
    Ok(())
}

fn check_records(
    jobs: &[JobRecord],
    instances: &[InstanceRecord],
    end: u64,
    max: u32,
) -> Result<(), String> {
    let mut ran_on = vec![None; jobs.len()];
    for (id, instance) in instances.iter().enumerate() {
        if let Some(job) = instance.job {
            if let Some(other) = ran_on[job].replace(id) {
                return Err(format!("job {job} ran on instances {other} and {id}"));
            }
            let record = &jobs[job];
            let claimed = record
                .claimed
                .ok_or(format!("job {job} ran but was never claimed"))?;
            if record.instance != Some(id) || claimed < record.submit {
                return Err(format!(
                    "job {job}: {record:?} vs instance {id}: {instance:?}"
                ));
            }
            if instance.ready.is_none_or(|ready| ready > claimed) {
                return Err(format!("instance {id} claimed job {job} before it booted"));
            }
            let finish = claimed + record.duration;
            match instance.left {
                Some((at, Leave::JobDone)) if at == finish => {}
                None if finish > end => {}
                other => {
                    return Err(format!(
                        "instance {id} ran job {job} until {finish} but left {other:?}"
                    ))
                }
            }
        }
        if let Some((_, Leave::ScaleIn)) = instance.left {
            if instance.job.is_some() {
                return Err(format!(
                    "scale-in terminated busy instance {id}: {instance:?}"
                ));
            }
        }
    }
    for (job, record) in jobs.iter().enumerate() {
        if record.claimed.is_some() != ran_on[job].is_some() {
            return Err(format!("job {job} claimed without an instance: {record:?}"));
        }
    }
    // Oldest first: claim times never decrease in submit order.
    let claims: Vec<u64> = jobs.iter().filter_map(|j| j.claimed).collect();
    if claims.windows(2).any(|w| w[0] > w[1])
        || jobs
            .iter()
            .skip_while(|j| j.claimed.is_some())
            .any(|j| j.claimed.is_some())
    {
        return Err("a younger job was claimed before an older one".into());
    }
    // Instances at once: at equal times, leaves come before launches.
    let mut changes: Vec<(u64, i32)> = instances
        .iter()
        .flat_map(|i| [Some((i.launched, 1)), i.left.map(|(at, _)| (at, -1))])
        .flatten()
        .collect();
    changes.sort();
    let mut alive = 0;
    for (at, change) in changes {
        alive += change;
        if alive > max as i32 {
            return Err(format!("{alive} instances at {at}, above max {max}"));
        }
    }
    Ok(())
}

fn random_jobs(rng: &mut StdRng) -> Vec<(u64, u64)> {
    let n = rng.random_range(0..40);
    let mut jobs: Vec<(u64, u64)> = (0..n)
        .map(|_| (rng.random_range(0..3600), rng.random_range(0..1200)))
        .collect();
    jobs.sort_by_key(|j| j.0);
    jobs
}

fn random_settings(rng: &mut StdRng) -> WorldSettings {
    let max = rng.random_range(1..6);
    WorldSettings {
        boot: if rng.random_bool(0.5) {
            Boot::Fixed(rng.random_range(0..200))
        } else {
            Boot::Uniform {
                low: 30,
                high: rng.random_range(30..300),
            }
        },
        idle_timeout: rng.random_range(0..600),
        exit: if rng.random_bool(0.5) {
            Exit::Decrement
        } else {
            Exit::Poweroff
        },
        min: rng.random_range(0..=max.min(2)),
        max,
        seed: rng.random(),
    }
}

// The world alone, driven by random desired capacities at random times
// (above max too, and down to 0 with jobs running), checked after each.
#[test]
fn invariants_hold_under_random_scaling() {
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let jobs: Vec<Job> = trace(&random_jobs(&mut rng)).jobs;
        let settings = random_settings(&mut rng);
        let world = World::new(&jobs, settings);
        let mut now = 0;
        for _ in 0..60 {
            now += rng.random_range(0..200);
            world.advance(now);
            let desired = rng.random_range(0..=settings.max + 2);
            futures::executor::block_on(world.apply(&world::group_id(), &Write::Desired(desired)))
                .unwrap();
            let counts = world.counts();
            assert!(counts.instances <= settings.max, "seed {seed}: {counts:?}");
        }
        world.advance(now + 10_000);
        check_records(&world.jobs(), &world.instances(), world.now(), settings.max)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(world.peak() <= settings.max, "seed {seed}");
    }
}

// Random traces through the production tick with the built-in rules.
#[tokio::test]
async fn invariants_hold_over_random_traces() {
    for seed in 0..150u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let jobs = random_jobs(&mut rng);
        if jobs.is_empty() {
            continue;
        }
        let mut s = scenario(QUEUE, Exit::Decrement, 1);
        s.world = random_settings(&mut rng);
        s.tick = rng.random_range(10..180);
        if rng.random_bool(0.2) {
            s.policy = Policy::Builtin(BuiltinRule::Hold);
        }
        let r = run(&trace(&jobs), &s, &mut || {}).await;
        check_invariants(&r, s.world.max, jobs.len())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if matches!(s.policy, Policy::Builtin(BuiltinRule::Queue)) {
            assert!(
                r.jobs.iter().all(|j| j.claimed.is_some()),
                "seed {seed}: the queue rule runs every job"
            );
        }
    }
}

#[tokio::test]
async fn same_seed_same_numbers_and_same_svg() {
    let weekday = Trace::find("weekday", None).unwrap();
    let mut s = scenario(QUEUE, Exit::Poweroff, 20);
    s.world.boot = Boot::Uniform { low: 60, high: 180 };
    let draw = |runs: &[Run]| {
        chart::svg(runs, "weekday", weekday.start, &jiff::tz::TimeZone::UTC).unwrap()
    };
    let a = run(&weekday, &s, &mut || {}).await;
    let b = run(&weekday, &s, &mut || {}).await;
    assert_eq!(Summary::of(&a, 0.1, 300), Summary::of(&b, 0.1, 300));
    let svg = draw(std::slice::from_ref(&a));
    assert_eq!(svg, draw(&[b]), "identical SVG bytes");
    assert!(svg.starts_with("<svg") && svg.contains("<text") && svg.contains("desired capacity"));
    s.world.seed = 2;
    let c = run(&weekday, &s, &mut || {}).await;
    assert_ne!(draw(&[c]), svg, "another seed, other boot times");
}

// A compiled policy decides every tick (no fallback), keeping its state on
// the simulated group between ticks.
#[tokio::test]
async fn a_wasm_policy_runs_the_weekday() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    let cooldown = engine
        .load(&support::policies_dir().join("cooldown.wasm"))
        .expect("build the policies first: cargo xtask policies");
    let weekday = Trace::find("weekday", None).unwrap();
    let mut s = scenario(Policy::Wasm(cooldown), Exit::Poweroff, 20);
    s.params = vec![("minutes".into(), "5".into())];
    let r = run(&weekday, &s, &mut || {}).await;
    assert_eq!(r.policy_errors, 0, "{:?}", r.first_policy_error);
    check_invariants(&r, 20, weekday.jobs.len()).unwrap();
    assert!(r.jobs.iter().all(|j| j.claimed.is_some()));
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .arg("simulate")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn no_arguments_compare_both_exits_of_the_queue_rule_on_the_weekday() {
    let (ok, stdout, stderr) = cli(&[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("embedded trace weekday: 478 jobs"),
        "{stdout}"
    );
    for expected in [
        "queue (decrement)",
        "queue (poweroff)",
        "wait p95",
        "replacement launches",
        "estimated cost",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    assert_eq!(stderr, "", "no log lines, no progress bar off a terminal");
    assert_eq!(cli(&[]).1, stdout, "deterministic");
}

#[test]
fn the_chart_is_written_and_a_bad_trace_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("out.svg");
    let trace_file = dir.path().join("mine.csv");
    std::fs::write(&trace_file, "submit,duration\n0,60\n30,90\n").unwrap();
    let (ok, stdout, stderr) = cli(&[
        "--trace",
        trace_file.to_str().unwrap(),
        "--policy",
        "queue",
        "--policy",
        "hold",
        "--min",
        "1",
        "--chart",
        svg.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("queue") && stdout.contains("hold"),
        "{stdout}"
    );
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(
        drawn.matches("jobs (waiting + running)").count(),
        2,
        "a panel per run"
    );

    std::fs::write(&trace_file, "submit,duration\n0,60\n30,ninety\n").unwrap();
    let (ok, _, stderr) = cli(&["--trace", trace_file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("mine.csv:3: duration \"ninety\" is not a whole number of seconds"),
        "{stderr}"
    );
}
