//! Where a policy's words go: the `log` import and WASI stdout/stderr, both
//! bounded per decision and forwarded to `tracing` tagged with pool and policy.
//!
//! The streams accept every write and keep only the first bytes: a full pipe
//! would trap the guest, and a chatty policy must not fail for talking.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The lines one decision produced, capped in count and length.
#[derive(Debug, Default)]
pub struct PolicyLog {
    pub lines: Vec<(Level, String)>,
    /// Lines that did not fit.
    pub dropped: usize,
    max_lines: usize,
    max_line_bytes: usize,
}

/// How loud a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl PolicyLog {
    pub fn new(max_lines: usize, max_line_bytes: usize) -> Self {
        PolicyLog {
            max_lines,
            max_line_bytes,
            ..PolicyLog::default()
        }
    }

    /// Keep `line` if there is room, cut to the line length limit.
    pub fn push(&mut self, level: Level, line: &str) {
        if self.lines.len() >= self.max_lines {
            self.dropped += 1;
            return;
        }
        self.lines
            .push((level, truncate(line, self.max_line_bytes).to_string()));
    }

    /// Send the kept lines to `tracing`.
    pub fn emit(&self, pool: &str, policy: &str) {
        for (level, line) in &self.lines {
            match level {
                Level::Debug => tracing::debug!(pool, policy, "{line}"),
                Level::Info => tracing::info!(pool, policy, "{line}"),
                Level::Warn => tracing::warn!(pool, policy, "{line}"),
                Level::Error => tracing::error!(pool, policy, "{line}"),
            }
        }
        if self.dropped > 0 {
            tracing::warn!(
                pool,
                policy,
                dropped = self.dropped,
                "policy log lines dropped over the limit"
            );
        }
    }
}

pub use crate::text::truncate;

/// A WASI output stream (stdout or stderr) that keeps its first `cap` bytes.
#[derive(Clone)]
pub struct BoundedOutput {
    buffer: Arc<Mutex<Vec<u8>>>,
    cap: usize,
}

impl BoundedOutput {
    pub fn new(cap: usize) -> Self {
        BoundedOutput {
            buffer: Arc::default(),
            cap,
        }
    }

    /// Move what was written into `log`, a line at a time, at `level`.
    pub fn drain_into(&self, log: &mut PolicyLog, level: Level) {
        let bytes = std::mem::take(&mut *self.buffer.lock().unwrap());
        for line in String::from_utf8_lossy(&bytes).lines() {
            log.push(level, line);
        }
    }
}

impl wasmtime_wasi::cli::IsTerminal for BoundedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for BoundedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for BoundedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut kept = self.buffer.lock().unwrap();
        let room = self.cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_the_first_lines_and_counts_the_rest() {
        let mut log = PolicyLog::new(2, 4);
        for line in ["one", "two-long", "three"] {
            log.push(Level::Info, line);
        }
        assert_eq!(
            log.lines,
            vec![(Level::Info, "one".into()), (Level::Info, "two-".into())]
        );
        assert_eq!(log.dropped, 1);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("ok", 10), "ok");
    }
}
