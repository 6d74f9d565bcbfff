//! How the scaler reaches AWS: the endpoint (AWS itself, or a local stand-in
//! such as moto in the tests), the credentials, the HTTPS client, and the
//! timeouts and retries every AWS client shares, and the cap on the size of
//! every answer (`crate::aws_answer_cap`); and how a failed call is told (a
//! refusal names what to grant, `crate::iam`).

use crate::aws_answer_cap::{AnswerCap, AnswerTooLarge};
use crate::iam::{Call, Refusal};
use crate::secret::Secret;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::config::http::HttpResponse;
use aws_sdk_autoscaling::config::ConfigBag;
use aws_sdk_autoscaling::config::Credentials;
use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The longest one AWS call may take, its retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one attempt of an AWS call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per AWS call, the first included.
pub const MAX_ATTEMPTS: u32 = 3;

/// Where and as whom to call AWS. The default is AWS itself with the
/// standard credential chain (environment, profile, instance role, ...).
///
/// Every client made from one `AwsOptions` (and its clones), whatever its
/// service or region, shares one loaded SDK configuration — one credential
/// chain, so one credential fetch — and one HTTPS client, so the system's CA
/// certificates are read and parsed into a root store once, when the first
/// request needs a connection (see `SharedConnectors`).
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Another endpoint than AWS's (moto in the tests); `None` for AWS.
    endpoint_url: Option<String>,
    /// Fixed credentials instead of the standard chain (the tests' `testing`).
    credentials: Option<StaticCredentials>,
    /// The configuration loaded once, for the first region asked for; each
    /// region's is derived from it.
    loaded: Arc<OnceCell<SdkConfig>>,
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
    /// AWS at `endpoint_url` (`None`: AWS's own endpoints) with the standard
    /// credential chain.
    pub fn new(endpoint_url: Option<String>) -> Self {
        AwsOptions {
            endpoint_url,
            ..AwsOptions::default()
        }
    }

    /// Options for a local endpoint with fixed credentials.
    pub fn local(endpoint_url: impl Into<String>, access_key_id: &str, secret: &str) -> Self {
        AwsOptions {
            endpoint_url: Some(endpoint_url.into()),
            credentials: Some(StaticCredentials {
                access_key_id: access_key_id.into(),
                secret_access_key: Secret::new(secret),
            }),
            ..AwsOptions::default()
        }
    }

    /// The SDK configuration for `region`: these options, the timeouts and
    /// the standard retry mode (exponential backoff with jitter, at most
    /// [`MAX_ATTEMPTS`] attempts). The scaler's clients are made by
    /// [`AwsOptions::autoscaling`] and its siblings, which add the cap on an
    /// answer's size (an `SdkConfig` cannot carry an interceptor).
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        let loaded = self.loaded.get_or_init(|| self.load(region)).await;
        if loaded.region().is_some_and(|r| r.as_ref() == region) {
            return loaded.clone();
        }
        loaded
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build()
    }

    /// The Auto Scaling client for `region`.
    pub async fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        let sdk = self.sdk_config(region).await;
        aws_sdk_autoscaling::Client::from_conf(
            aws_sdk_autoscaling::config::Builder::from(&sdk)
                .interceptor(AnswerCap)
                .retry_classifier(AnswerCap)
                .build(),
        )
    }

    /// The Secrets Manager client for `region`.
    pub async fn secrets_manager(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        let sdk = self.sdk_config(region).await;
        aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&sdk)
                .interceptor(AnswerCap)
                .retry_classifier(AnswerCap)
                .build(),
        )
    }

    /// The SSM client for `region`.
    pub async fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        let sdk = self.sdk_config(region).await;
        aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(&sdk)
                .interceptor(AnswerCap)
                .retry_classifier(AnswerCap)
                .build(),
        )
    }

    /// The STS client for `region`.
    pub async fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        let sdk = self.sdk_config(region).await;
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&sdk)
                .interceptor(AnswerCap)
                .retry_classifier(AnswerCap)
                .build(),
        )
    }

    async fn load(&self, region: &str) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(OPERATION_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .http_client(SharedConnectors::https());
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

/// The HTTP client of every AWS call: rustls on *ring*, the crypto provider
/// reqwest uses for CircleCI, so the binary carries one TLS stack, not two
/// (the SDK's default client brings aws-lc-rs), with the system's CA
/// certificates as the SDK's own client has them.
///
/// The SDK's client keeps one connector per timeout setting, but it also
/// builds a whole throwaway connector — a TLS configuration with a root
/// store parsed from every CA certificate — each time a client is made
/// (`validate_base_client_config`, to load the certificates early), and
/// each `aws_config::load` makes two clients (the credential chain's STS
/// client and the service's): a cold `once` parsed the certificates into
/// six root stores and used one. This wrapper skips that early build: a
/// connector is built when a request first needs it, once per timeout
/// setting for all the clients that share the wrapper, and the TLS one only
/// for an `https://` request ([`ByScheme`]): a plain `http://` endpoint (a
/// local one, such as moto or LocalStack) reads no certificate. Verification
/// is the SDK client's own, unchanged.
#[derive(Debug, Clone)]
struct SharedConnectors {
    /// For `https://` requests: every AWS endpoint.
    tls: SharedHttpClient,
    /// For plain `http://` requests, which the TLS client would also make
    /// without TLS, but only after loading the certificates.
    plain: SharedHttpClient,
}

impl SharedConnectors {
    fn https() -> SharedHttpClient {
        SharedHttpClient::new(SharedConnectors {
            tls: aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https(),
            // The SDK's own plain client (hidden from its docs, as test
            // clients are): the same hyper client, settings and timeouts.
            plain: aws_smithy_http_client::Builder::new().build_http(),
        })
    }
}

impl HttpClient for SharedConnectors {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ByScheme {
            clients: self.clone(),
            settings: settings.clone(),
            components: components.clone(),
        })
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.tls.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.tls.connector_metadata()
    }
}

/// One request attempt's connector, chosen by the request's scheme when it
/// is made: the plain client's for `http://`, else the TLS client's.
#[derive(Debug)]
struct ByScheme {
    clients: SharedConnectors,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
}

impl HttpConnector for ByScheme {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = if is_plain_http(request.uri()) {
            &self.clients.plain
        } else {
            &self.clients.tls
        };
        client
            .http_connector(&self.settings, &self.components)
            .call(request)
    }
}

/// Whether `uri` is a plain `http://` one (the scheme in any case).
fn is_plain_http(uri: &str) -> bool {
    uri.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
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

/// A one-line account of a failed AWS call (any service's): an answer
/// refused for its size, the service's error code and message, or the chain
/// of causes of a call that got no answer. Never the response body:
/// `DisplayErrorContext` would append it, and a Secrets Manager answer that
/// fails to parse holds the secret.
pub fn error_message<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    if let Some(refused) = AnswerTooLarge::find(err) {
        return refused.to_string();
    }
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
            if message.contains("UnknownIssuer") {
                message.push_str(" (");
                message.push_str(crate::ca_certificates::UNKNOWN_ISSUER_HINT);
                message.push(')');
            }
            message
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_skips_tls() {
        assert!(is_plain_http("http://127.0.0.1:5000/"));
        assert!(is_plain_http("HTTP://localhost:4566"));
        assert!(!is_plain_http(
            "https://autoscaling.eu-west-1.amazonaws.com/"
        ));
        assert!(!is_plain_http("http:/"));
        assert!(!is_plain_http(""));
    }

    #[test]
    fn an_untrusted_certificate_says_how_to_trust_it() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let failed = |cause: &str| {
            let err: SdkError<aws_sdk_autoscaling::Error, HttpResponse> =
                SdkError::dispatch_failure(ConnectorError::other(cause.to_string().into(), None));
            error_message(&err)
        };
        let message = failed("invalid peer certificate: UnknownIssuer");
        assert!(
            message.contains("invalid peer certificate: UnknownIssuer"),
            "{message}"
        );
        assert!(message.contains("set SSL_CERT_DIR"), "{message}");
        let message = failed("connection refused");
        assert!(!message.contains("SSL_CERT_DIR"), "{message}");
    }

    #[tokio::test]
    async fn every_region_is_derived_from_one_loaded_configuration() {
        let aws = AwsOptions::local("http://127.0.0.1:9", "key", "secret");
        let first = aws.sdk_config("eu-west-1").await;
        let other = aws.clone().sdk_config("us-east-1").await;
        assert!(aws.loaded.initialized(), "clones share what was loaded");
        for (config, region) in [(&first, "eu-west-1"), (&other, "us-east-1")] {
            assert_eq!(config.region().map(|r| r.as_ref()), Some(region));
            assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:9"));
            let timeouts = config.timeout_config().unwrap();
            assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
            assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
            assert_eq!(config.retry_config().unwrap().max_attempts(), MAX_ATTEMPTS);
            assert!(config.credentials_provider().is_some());
            assert!(config.http_client().is_some());
        }
        // Options made apart load apart.
        assert!(!AwsOptions::new(None).loaded.initialized());
    }
}
