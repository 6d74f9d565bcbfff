//! `runner-scaler run`: a tick every interval, never two at once, until
//! SIGTERM or SIGINT — after which the tick in flight has a grace to finish,
//! is cut short when it does not (its pools reported held or unknown), and
//! the process exits. Should even that not happen (a thread blocked), the
//! process exits anyway a little later.

use crate::tick::Cut;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long after the stop grace the process exits even when the tick in
/// flight could not be cut.
pub const HARD_STOP_AFTER_GRACE: Duration = Duration::from_secs(5);

/// Call `tick` every `interval` until `stop` turns true. A tick that runs
/// longer than the interval delays the next one instead of overlapping it.
/// Returns the number of ticks run.
pub async fn run_every<F, Fut>(
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    mut tick: F,
) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = 0;
    loop {
        let started = Instant::now();
        tick().await;
        ticks += 1;
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(started + interval) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    ticks
}

/// Resolves `grace` after `stop` turns true: when the tick in flight is cut.
pub async fn stopped(mut stop: watch::Receiver<bool>, grace: Duration) -> Cut {
    // A dropped sender (no signal handler) never stops the tick.
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(grace).await;
    Cut::Stopping { grace }
}

/// A flag that turns true on SIGTERM or SIGINT. The tick in flight then has
/// `grace` to finish; if the process is still there
/// [`HARD_STOP_AFTER_GRACE`] after that, it exits with status 1.
pub fn stop_on_signals(grace: Duration) -> std::io::Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        #[cfg(unix)]
        let terminate = term.recv();
        #[cfg(not(unix))]
        let terminate = std::future::pending::<Option<()>>();
        let signal = tokio::select! {
            _ = terminate => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        };
        tracing::info!(
            "{signal}: stopping; the tick in flight, if any, has {} s to finish before it is cut",
            grace.as_secs_f64()
        );
        let _ = tx.send(true);
        // A thread of its own: it must fire even if the tick blocks the
        // runtime's threads.
        let hard_stop = grace + HARD_STOP_AFTER_GRACE;
        std::thread::spawn(move || {
            std::thread::sleep(hard_stop);
            tracing::error!(
                "the tick in flight could not be cut {} s after {signal}; exiting without it",
                hard_stop.as_secs_f64()
            );
            std::process::exit(1);
        });
    });
    Ok(rx)
}

/// Raise this process's soft limit of open descriptors to its hard limit,
/// as Go programs do at start: the soft limit (1,024 on most systems) is a
/// default for programs that call `select`, which this one does not. The
/// listener holds at most [`super::http::MAX_CONNECTIONS`] of them whatever
/// the limit; this leaves the rest to the ticks' connections. Returns the
/// limit now in force, when it can be read.
pub fn raise_descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid rlimit for getrlimit to fill in.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: a valid rlimit, no higher than the hard limit.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn ticks_on_the_interval_and_stops_after_the_tick_in_flight() {
        let (tx, rx) = watch::channel(false);
        let count = Arc::new(AtomicU32::new(0));
        let counted = count.clone();
        let started = Instant::now();
        let ticks = run_every(Duration::from_secs(60), rx, move || {
            let count = counted.clone();
            let tx = tx.clone();
            async move {
                // Each tick takes 5 s; the stop arrives during the third.
                tokio::time::sleep(Duration::from_secs(5)).await;
                if count.fetch_add(1, Ordering::SeqCst) == 2 {
                    tx.send(true).unwrap();
                }
            }
        })
        .await;
        assert_eq!(ticks, 3);
        assert_eq!(count.load(Ordering::SeqCst), 3, "the third tick finished");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(125),
            "ticks at 0, 60 and 120 s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_tick_delays_the_next_instead_of_overlapping() {
        let (tx, rx) = watch::channel(false);
        let running = Arc::new(AtomicU32::new(0));
        let r = running.clone();
        let mut n = 0;
        run_every(Duration::from_secs(10), rx, move || {
            n += 1;
            let (r, tx, last) = (r.clone(), tx.clone(), n == 3);
            async move {
                assert_eq!(r.fetch_add(1, Ordering::SeqCst), 0, "ticks overlap");
                tokio::time::sleep(Duration::from_secs(25)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                if last {
                    tx.send(true).unwrap();
                }
            }
        })
        .await;
    }
}
