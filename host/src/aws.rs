//! How the scaler reaches AWS: the endpoint (AWS itself, or a local stand-in
//! such as moto in the tests), the credentials, the HTTPS client, and the
//! timeouts and retries every AWS client shares; and how a failed call is
//! told (a refusal names what to grant, `crate::iam`).

use crate::iam::{Call, Refusal};
use crate::secret::Secret;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::config::http::HttpResponse;
use aws_sdk_autoscaling::config::Credentials;
use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use std::error::Error;
use std::time::Duration;

/// The longest one AWS call may take, its retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one attempt of an AWS call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per AWS call, the first included.
pub const MAX_ATTEMPTS: u32 = 3;

/// Where and as whom to call AWS. The default is AWS itself with the
/// standard credential chain (environment, profile, instance role, ...).
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Another endpoint than AWS's (moto in the tests); `None` for AWS.
    pub endpoint_url: Option<String>,
    /// Fixed credentials instead of the standard chain (the tests' `testing`).
    pub credentials: Option<StaticCredentials>,
}

/// An access key and its secret.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    /// The access key's id.
    pub access_key_id: String,
    /// Its secret, which never prints.
    pub secret_access_key: Secret,
}

impl AwsOptions {
    /// Options for a local endpoint with fixed credentials.
    pub fn local(endpoint_url: impl Into<String>, access_key_id: &str, secret: &str) -> Self {
        AwsOptions {
            endpoint_url: Some(endpoint_url.into()),
            credentials: Some(StaticCredentials {
                access_key_id: access_key_id.into(),
                secret_access_key: Secret::new(secret),
            }),
        }
    }

    /// The SDK configuration for `region`: these options, the timeouts and
    /// the standard retry mode (exponential backoff with jitter, at most
    /// [`MAX_ATTEMPTS`] attempts).
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(OPERATION_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            // rustls on *ring*, the crypto provider reqwest uses for CircleCI:
            // one TLS stack in the binary, not two (the SDK's default client
            // brings aws-lc-rs). Cheap to make: the connector is built on first
            // use, and the root certificates are read once per process.
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https(),
            );
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(keys) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                &keys.access_key_id,
                keys.secret_access_key.expose(),
                None,
                None,
                "runner-scaler-static",
            ));
        }
        loader.load().await
    }
}

/// What to say of a failed call: when AWS refused it for want of
/// permission, the action, the principal and the statement to add
/// ([`Refusal::explain`]); otherwise [`error_message`].
pub fn call_error<E>(err: &SdkError<E, HttpResponse>, call: &Call) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    refusal(err, call)
        .map(|refusal| refusal.explain(call))
        .unwrap_or_else(|| error_message(err))
}

/// The refusal in a failed call's answer, if it is one.
pub fn refusal<E>(err: &SdkError<E, HttpResponse>, call: &Call) -> Option<Refusal>
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let service = err.as_service_error()?;
    Refusal::from_error(service.code(), service.message(), call)
}

/// A one-line account of a failed AWS call (any service's): the service's
/// error code and message, or the chain of causes of a call that got no
/// answer. Never the response body: `DisplayErrorContext` would append it,
/// and a Secrets Manager answer that fails to parse holds the secret.
pub fn error_message<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            match (service.err().code(), service.err().message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                (None, _) => format!("the service answered HTTP {status} without an error code"),
            }
        }
        SdkError::ResponseError(response) => format!(
            "the service's answer (HTTP {}) could not be read",
            response.raw().status()
        ),
        other => {
            let mut message = other.to_string();
            let mut cause = other.source();
            while let Some(error) = cause {
                message.push_str(": ");
                message.push_str(&error.to_string());
                cause = error.source();
            }
            message
        }
    }
}
