//! A cap on the size of every AWS answer. The SDK reads an answer's body
//! whole into memory before it parses it, whatever its size: a broken or
//! hostile endpoint (a proxy, a stand-in at `endpoint_url`) could send
//! gigabytes. [`AnswerCap`] refuses an answer whose `Content-Length` is over
//! [`ANSWER_CAP`] before a byte of its body is read, and makes reading any
//! other (a chunked one) stop with an error past the cap, so no more than
//! the cap is ever held. A refused answer is not retried: the same call
//! would get the same answer.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, InterceptorContext,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::error::Error;

/// The largest AWS answer read, in bytes: 16 MiB.
///
/// The largest answer the scaler asks for is a `DescribeAutoScalingGroups`
/// page: at most 100 groups (`MaxRecords`), each with its tags (at most 50),
/// launch template, subnets and instances. An instance is about 600 bytes of
/// XML, a group without instances about 3 KB, so a page of 100 groups of
/// 100 instances each is about 6.3 MB, and 100 groups at 100 instances is
/// already more than most accounts run. Secrets Manager (a secret is at most
/// 64 KB), SSM (a parameter at most 8 KB) and STS answers are far smaller.
/// 16 MiB leaves room over the largest plausible page and still bounds what
/// one call can make the process hold (a Lambda has 128 MB or more).
pub const ANSWER_CAP: u64 = 16 * 1024 * 1024;

/// The cap, as the error says it.
const ANSWER_CAP_TEXT: &str = "16 MiB";

/// An AWS answer refused for its size.
#[derive(Debug, thiserror::Error)]
#[error("the {service} answer is larger than {ANSWER_CAP_TEXT}: refused")]
pub struct AnswerTooLarge {
    /// The service that answered, as people write it ("Auto Scaling").
    service: String,
}

impl AnswerTooLarge {
    /// The refusal in `error` or one of its causes, if there is one.
    pub fn find<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a AnswerTooLarge> {
        let mut cause = Some(error);
        while let Some(err) = cause {
            if let Some(refused) = err.downcast_ref::<AnswerTooLarge>() {
                return Some(refused);
            }
            cause = err.source();
        }
        None
    }
}

/// The interceptor (and retry classifier) that caps every AWS answer at
/// [`ANSWER_CAP`]; `crate::aws` registers it on every client it makes.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswerCap;

impl Intercept for AnswerCap {
    fn name(&self) -> &'static str {
        "runner-scaler answer cap"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let refused = || AnswerTooLarge {
            service: service_name(cfg.load::<Metadata>().map(Metadata::service)),
        };
        let response = context.response_mut();
        // A length that is not a number is hyper's to refuse; it is not
        // taken as a promise here, and the body's own count still holds.
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|value| value.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > ANSWER_CAP) {
            return Err(refused().into());
        }
        let refusal = refused();
        let body = response.take_body();
        // The cap counts the bytes as they are read, whatever the headers
        // say, and fails the read the moment they pass it.
        let capped = Limited::new(body, ANSWER_CAP as usize).map_err(move |err: BoxError| {
            if err.is::<LengthLimitError>() {
                BoxError::from(AnswerTooLarge {
                    service: refusal.service.clone(),
                })
            } else {
                err
            }
        });
        *response.body_mut() = SdkBody::from_body_1_x(capped);
        Ok(())
    }
}

impl ClassifyRetry for AnswerCap {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(err)) if AnswerTooLarge::find(err).is_some() => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "runner-scaler answer cap"
    }

    /// After the transient-error classifier, which would retry a body that
    /// failed to read.
    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// A service's SDK name ("AutoScaling", "SecretsManager", "SSM") as people
/// write it ("Auto Scaling", "Secrets Manager", "SSM").
fn service_name(sdk_name: Option<&str>) -> String {
    let Some(sdk_name) = sdk_name else {
        return "AWS".to_owned();
    };
    let mut name = String::with_capacity(sdk_name.len() + 4);
    let mut previous: Option<char> = None;
    for c in sdk_name.chars() {
        if c.is_ascii_uppercase() && previous.is_some_and(|p| p.is_ascii_lowercase()) {
            name.push(' ');
        }
        name.push(c);
        previous = Some(c);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_named_as_people_write_them() {
        assert_eq!(service_name(Some("AutoScaling")), "Auto Scaling");
        assert_eq!(service_name(Some("SecretsManager")), "Secrets Manager");
        assert_eq!(service_name(Some("SSM")), "SSM");
        assert_eq!(service_name(Some("STS")), "STS");
        assert_eq!(service_name(None), "AWS");
    }

    #[test]
    fn the_refusal_names_the_service_and_the_cap() {
        let refused = AnswerTooLarge {
            service: "Auto Scaling".into(),
        };
        assert_eq!(
            refused.to_string(),
            "the Auto Scaling answer is larger than 16 MiB: refused"
        );
        assert_eq!(ANSWER_CAP, 16 << 20, "ANSWER_CAP_TEXT says 16 MiB");
    }
}
