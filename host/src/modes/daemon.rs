//! `runner-scaler run`: a tick every interval, never two at once, until
//! SIGTERM or SIGINT — after which the tick in flight finishes and the
//! process exits.

use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

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

/// A flag that turns true on SIGTERM or SIGINT.
pub fn stop_on_signals() -> std::io::Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        #[cfg(unix)]
        let terminate = term.recv();
        #[cfg(not(unix))]
        let terminate = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = terminate => tracing::info!("SIGTERM: stopping after the tick in flight"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping after the tick in flight"),
        }
        let _ = tx.send(true);
    });
    Ok(rx)
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
