//! Whether a failed write to Auto Scaling may have been made anyway. The
//! SDK retries a write (up to three attempts), and its final error tells only
//! of the last attempt: an earlier attempt that timed out after AWS took the
//! request changed the group although the call failed. [`WriteOutcome`] is
//! an interceptor that watches every attempt and remembers whether any was
//! sent without an answer that says it was refused.

use aws_sdk_autoscaling::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_autoscaling::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_autoscaling::error::BoxError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Watches the attempts of one write.
#[derive(Debug, Clone, Default)]
pub(super) struct WriteOutcome {
    inner: Arc<Attempts>,
}

#[derive(Debug, Default)]
struct Attempts {
    /// The attempt under way reached the network.
    sent: AtomicBool,
    /// Some attempt was sent and got no answer saying it was refused.
    maybe_made: AtomicBool,
}

impl WriteOutcome {
    /// Whether some attempt may have reached AWS and been carried out.
    pub(super) fn maybe_made(&self) -> bool {
        self.inner.maybe_made.load(Ordering::SeqCst)
    }
}

impl Intercept for WriteOutcome {
    fn name(&self) -> &'static str {
        "runner-scaler write outcome"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.sent.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Only an attempt that reached the network can have been carried out.
        if !self.inner.sent.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let unknown = match (context.response(), context.output_or_error()) {
            (_, Some(Ok(_))) => false,
            // AWS answered: a 4xx (throttling included) or a 503 means it did
            // not act; a 2xx it could not read, or another 5xx (an internal
            // failure, a gateway's timeout), does not say.
            (Some(response), _) => {
                let status = response.status();
                status.is_success() || (status.is_server_error() && status.as_u16() != 503)
            }
            // No answer: unknown, unless the connection was never made.
            (None, Some(Err(err))) => !err.as_connector_error().is_some_and(never_connected),
            (None, None) => true,
        };
        if unknown {
            self.inner.maybe_made.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Whether `error` says the connection to AWS was never made (refused,
/// unresolvable, timed out while connecting): then nothing was sent.
fn never_connected(error: &aws_sdk_autoscaling::error::ConnectorError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = cause {
        if let Some(client) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
            return client.is_connect();
        }
        cause = err.source();
    }
    false
}
