//! CircleCI's self-hosted runner API as a [`QueueSource`]: the unclaimed and
//! running task counts of a resource class, read with bounded retries.

use super::{QueueSource, SourceError};
use crate::observation::Queue;
use crate::secret::Secret;
use rand::Rng;
use reqwest::header::{HeaderValue, RETRY_AFTER};
use reqwest::{redirect, StatusCode, Url};
use std::fmt;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Where CircleCI cloud serves the runner API.
pub const DEFAULT_BASE_URL: &str = "https://runner.circleci.com";

/// The header the runner API reads a personal API token from.
const TOKEN_HEADER: &str = "Circle-Token";

/// The name errors carry in [`SourceError`].
const SOURCE_NAME: &str = "CircleCI";

/// The answers are a few bytes of JSON; anything bigger is not one of them.
const MAX_BODY: usize = 64 * 1024;

/// How requests to the runner API are timed and retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// The most one request may take, connection and body included.
    pub timeout: Duration,
    /// Tries per count and tick, the first one included (at least 1).
    pub attempts: u32,
    /// The backoff before the second try; it doubles with each further try
    /// and is drawn at random below that bound (full jitter).
    pub base_delay: Duration,
    /// The upper bound of the backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` (on 429 and 503) that is waited for; a longer
    /// one ends this tick's reading with an error, the next tick tries again.
    pub max_retry_after: Duration,
    /// The most requests in flight at once (at least 1), and so the most
    /// connections open to the runner API: the others wait their turn
    /// rather than open a connection of their own. See
    /// [`DEFAULT_MAX_CONCURRENT`].
    pub max_concurrent: usize,
}

/// Requests in flight at once by default. CircleCI publishes no figure for
/// the runner API, and throttles bursts; six connections, what browsers
/// open to one host, read the 200 counts of 100 pools in about 34 round
/// trips, and fit even a small listen backlog: no burst of dozens of new
/// connections.
pub const DEFAULT_MAX_CONCURRENT: usize = 6;

/// How long an idle connection is kept for the next request: longer than
/// the default interval between ticks.
const IDLE_CONNECTION: Duration = Duration::from_secs(90);

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(5),
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
        }
    }
}

/// A [`CircleCi`] source could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The base URL is not an absolute `http` or `https` URL.
    #[error(
        "the CircleCI base URL {url:?} is not usable: {why} (expected e.g. {DEFAULT_BASE_URL})"
    )]
    BaseUrl { url: String, why: String },
    /// The token cannot be sent as an HTTP header value.
    #[error("the CircleCI token contains characters an HTTP header cannot carry (a line break or a control character?): check how it was stored")]
    Token,
    /// The HTTP client could not be set up (TLS roots, for instance). The
    /// cause is in the message, and so not also the `source`: the error
    /// chain would print it twice.
    #[error("could not set up the HTTP client for CircleCI: {0}")]
    Client(reqwest::Error),
}

/// The runner API of CircleCI cloud or server, read with a personal API token.
pub struct CircleCi {
    /// One client, built once: its connections are kept alive and reused.
    client: reqwest::Client,
    /// A permit per request in flight ([`HttpOptions::max_concurrent`]).
    in_flight: Semaphore,
    base: Url,
    token: Secret,
    header: HeaderValue,
    options: HttpOptions,
}

impl fmt::Debug for CircleCi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircleCi")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The two counts the runner API gives for a resource class.
#[derive(Debug, Clone, Copy)]
enum Count {
    Unclaimed,
    Running,
}

impl Count {
    fn path(self) -> &'static str {
        match self {
            Count::Unclaimed => "/api/v3/runner/tasks",
            Count::Running => "/api/v3/runner/tasks/running",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Count::Unclaimed => "unclaimed_task_count",
            Count::Running => "running_runner_tasks",
        }
    }
}

/// What one try came to.
enum Outcome {
    Count(u32),
    /// Retrying will not help.
    Refused(String),
    /// Worth another try, after `after` when the server said how long.
    Retry {
        why: String,
        after: Option<Duration>,
    },
}

impl CircleCi {
    /// A source for CircleCI cloud ([`DEFAULT_BASE_URL`]) with default timing.
    pub fn cloud(token: Secret) -> Result<Self, BuildError> {
        CircleCi::new(DEFAULT_BASE_URL, token, HttpOptions::default())
    }

    /// A source for the runner API at `base_url` (CircleCI server's runner
    /// host, or a fake in tests), authenticated with a personal API `token`.
    pub fn new(base_url: &str, token: Secret, options: HttpOptions) -> Result<Self, BuildError> {
        let base = parse_base_url(base_url)?;
        let mut header = HeaderValue::from_str(token.expose()).map_err(|_| BuildError::Token)?;
        // Keeps the value out of any Debug of the request's headers.
        header.set_sensitive(true);
        let max_concurrent = options.max_concurrent.max(1);
        let client = reqwest::Client::builder()
            .connect_timeout(options.timeout)
            // Every connection the permits let open stays open for the next
            // request (HTTP/1.1 keep-alive), tick after tick.
            .pool_max_idle_per_host(max_concurrent)
            .pool_idle_timeout(IDLE_CONNECTION)
            // A redirect would carry the token to wherever it points:
            // reqwest strips only the headers it knows to be credentials.
            .redirect(redirect::Policy::none())
            .user_agent(concat!("runner-scaler/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError::Client)?;
        Ok(CircleCi {
            client,
            in_flight: Semaphore::new(max_concurrent),
            base,
            token,
            header,
            options,
        })
    }

    /// The URL of one count for `resource_class`, the class encoded as a
    /// query value (its `/` included).
    fn url(&self, count: Count, resource_class: &str) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}{}", count.path()));
        url.query_pairs_mut()
            .append_pair("resource-class", resource_class);
        url
    }

    /// One count, with retries.
    async fn count(&self, count: Count, resource_class: &str) -> Result<u32, SourceError> {
        let attempts = self.options.attempts.max(1);
        let url = self.url(count, resource_class);
        let mut attempt = 1;
        loop {
            let (why, after) = match self.attempt(count, resource_class, url.clone()).await {
                Outcome::Count(n) => return Ok(n),
                Outcome::Refused(message) => {
                    return Err(SourceError::Refused {
                        source_name: SOURCE_NAME,
                        message: self.redact(message),
                    })
                }
                Outcome::Retry { why, after } => (self.redact(why), after),
            };
            if let Some(after) = after {
                if after > self.options.max_retry_after {
                    return Err(SourceError::Unavailable {
                        source_name: SOURCE_NAME,
                        attempts: attempt,
                        last: format!(
                            "{why}; it asked to retry after {}, longer than the {} a tick waits, so this tick gives up (the next one tries again)",
                            secs(after),
                            secs(self.options.max_retry_after)
                        ),
                    });
                }
            }
            if attempt >= attempts {
                return Err(SourceError::Unavailable {
                    source_name: SOURCE_NAME,
                    attempts: attempt,
                    last: why,
                });
            }
            let delay = after.unwrap_or_else(|| backoff(&self.options, attempt));
            tracing::warn!(
                resource_class,
                endpoint = count.path(),
                attempt,
                attempts,
                delay_ms = delay.as_millis() as u64,
                why = %why,
                "CircleCI gave no usable answer; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One request, classified. It waits for a permit first, and holds it
    /// until its answer is read (not through a retry's backoff).
    async fn attempt(&self, count: Count, resource_class: &str, url: Url) -> Outcome {
        let path = count.path();
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let sent = self
            .client
            .get(url)
            .header(TOKEN_HEADER, self.header.clone())
            .timeout(self.options.timeout)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Outcome::Retry {
                    why: self.describe(path, e),
                    after: None,
                }
            }
        };
        let status = response.status();
        if !status.is_success() {
            let outcome = self.refusal_or_retry(status, &response, path, resource_class);
            // Read to its end (within bounds), the connection can serve the
            // next request.
            let _ = read_body(&mut response).await;
            return outcome;
        }
        let body = match read_body(&mut response).await {
            Ok(body) => body,
            Err(BodyError::TooLong) => {
                return Outcome::Retry {
                    why: format!(
                        "{path} answered with a body over {} KiB, not a task count",
                        MAX_BODY / 1024
                    ),
                    after: None,
                }
            }
            Err(BodyError::Read(e)) => {
                return Outcome::Retry {
                    why: self.describe(path, e),
                    after: None,
                }
            }
        };
        match parse_count(&body, count.field()) {
            Ok(n) => Outcome::Count(n),
            Err(why) => Outcome::Retry {
                why: format!("{path} answered HTTP {status} with {why}"),
                after: None,
            },
        }
    }

    fn refusal_or_retry(
        &self,
        status: StatusCode,
        response: &reqwest::Response,
        path: &str,
        resource_class: &str,
    ) -> Outcome {
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let namespace = resource_class.split('/').next().unwrap_or(resource_class);
                Outcome::Refused(format!(
                    "the token was refused (HTTP {status} from {path}) for resource class {resource_class:?}: \
                     use a CircleCI personal API token (not a runner resource-class token) of a user \
                     with access to the namespace {namespace:?}"
                ))
            }
            StatusCode::NOT_FOUND => Outcome::Refused(format!(
                "resource class {resource_class:?} was not found (HTTP {status} from {path}): \
                 check that it is written namespace/name and exists \
                 (`circleci runner resource-class list <namespace>`), and that the base URL {} \
                 is the runner API of your CircleCI",
                self.base
            )),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                let header = response.headers().get(RETRY_AFTER);
                let after = header
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, jiff::Timestamp::now()));
                let hint = match (header, after) {
                    (None, _) => String::new(),
                    (Some(_), Some(after)) => format!(", Retry-After {}", secs(after)),
                    (Some(_), None) => ", with a Retry-After it could not read".to_string(),
                };
                Outcome::Retry {
                    why: format!("{path} answered HTTP {status}{hint}"),
                    after,
                }
            }
            s if s.is_server_error() => Outcome::Retry {
                why: format!("{path} answered HTTP {status}"),
                after: None,
            },
            s if s.is_redirection() => Outcome::Refused(format!(
                "{path} answered HTTP {status} (a redirect, to {:?}): the base URL {} is probably \
                 not the runner API; the token is not sent on to another address",
                response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("nowhere"),
                self.base
            )),
            _ => Outcome::Refused(format!(
                "{path} answered HTTP {status} for resource class {resource_class:?}"
            )),
        }
    }

    /// A transport error in words, without the URL (the path is named instead).
    fn describe(&self, path: &str, error: reqwest::Error) -> String {
        if error.is_timeout() {
            return format!(
                "{path} gave no answer within {}",
                secs(self.options.timeout)
            );
        }
        let kind = if error.is_connect() {
            "could not connect to"
        } else {
            "failed reading"
        };
        let mut text = format!("{kind} {path}");
        let error = error.without_url();
        let mut source: Option<&dyn std::error::Error> = Some(&error);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }

    /// Every message leaving this module passes here: whatever a server or a
    /// library echoed, the token does not get through.
    fn redact(&self, message: String) -> String {
        let token = self.token.expose();
        if token.is_empty() || !message.contains(token) {
            message
        } else {
            message.replace(token, "***")
        }
    }
}

impl QueueSource for CircleCi {
    async fn queue(&self, resource_class: &str) -> Result<Queue, SourceError> {
        let (waiting, running) = tokio::try_join!(
            self.count(Count::Unclaimed, resource_class),
            self.count(Count::Running, resource_class),
        )?;
        Ok(Queue {
            waiting,
            running,
            blocked: None,
        })
    }
}

/// Why a body could not be read.
enum BodyError {
    /// Over [`MAX_BODY`].
    TooLong,
    Read(reqwest::Error),
}

/// The body of `response`, up to [`MAX_BODY`].
async fn read_body(response: &mut reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err(BodyError::TooLong);
        }
    }
    Ok(body)
}

/// `base_url` as the runner API's base: an absolute `http` or `https` URL
/// with a host, and no query or fragment (the configuration checks it too).
pub fn parse_base_url(base_url: &str) -> Result<Url, BuildError> {
    let bad = |why: &str| BuildError::BaseUrl {
        url: base_url.to_string(),
        why: why.to_string(),
    };
    let base = Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if base.cannot_be_a_base() || base.host().is_none() {
        return Err(bad("it has no host"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(bad("it must not have a query or a fragment"));
    }
    Ok(base)
}

/// The count in `field` of a JSON object, or what is wrong with the body.
/// An object that names a field twice is malformed: which of the two
/// values the API meant cannot be known.
fn parse_count(body: &[u8], field: &str) -> Result<u32, String> {
    let value = UniqueKeys::parse(body)?.0;
    let Some(found) = value.get(field) else {
        return Err(format!("JSON without the field {field:?}"));
    };
    found
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("{field} = {found}, not a whole number of tasks"))
}

/// A JSON object whose keys are all different (at the top level, which is
/// what is read of it).
struct UniqueKeys(serde_json::Map<String, serde_json::Value>);

impl UniqueKeys {
    fn parse(body: &[u8]) -> Result<UniqueKeys, String> {
        // Read as any JSON first, to tell a body that is not JSON from an
        // object that repeats a field.
        serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map_err(|e| format!("a body that is not JSON ({e})"))?;
        serde_json::from_slice(body)
            .map_err(|e| format!("JSON that is not an object of distinct fields ({e})"))
    }
}

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut object = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if object.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "the field {} twice",
                            crate::text::quoted(&key)
                        )));
                    }
                    object.insert(key, value);
                }
                Ok(UniqueKeys(object))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The wait a `Retry-After` value asks for: delay-seconds, or an HTTP date
/// (IMF-fixdate, which RFC 2822 parsing covers) relative to `now`.
fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.duration_since(now);
    // A date already past means "now".
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Full jitter: a random wait below `base_delay · 2^(attempt-1)`, capped.
fn backoff(options: &HttpOptions, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    let cap = options
        .base_delay
        .saturating_mul(factor)
        .min(options.max_delay);
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// A duration for people: "1.5 s", "300 ms".
fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_whole_non_negative_numbers() {
        let field = "unclaimed_task_count";
        assert_eq!(parse_count(br#"{"unclaimed_task_count": 7}"#, field), Ok(7));
        for bad in [
            &br#"{"unclaimed_task_count": -1}"#[..],
            br#"{"unclaimed_task_count": 1.5}"#,
            br#"{"unclaimed_task_count": "3"}"#,
            br#"{"unclaimed_task_count": 5000000000}"#,
            br#"{"other": 1}"#,
            br#"[1]"#,
            b"not json",
        ] {
            assert!(
                parse_count(bad, field).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A field named twice is malformed, whichever comes first; so is
        // any other repeated field, since the object cannot be trusted.
        for twice in [
            &br#"{"unclaimed_task_count": 0, "unclaimed_task_count": 9}"#[..],
            br#"{"unclaimed_task_count": 9, "unclaimed_task_count": 0}"#,
            br#"{"unclaimed_task_count": 9, "x": 1, "x": 2}"#,
        ] {
            let err = parse_count(twice, field).unwrap_err();
            assert!(err.contains("twice"), "{err}");
        }
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now: jiff::Timestamp = "2026-11-28T08:49:30Z".parse().unwrap();
        assert_eq!(retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Sat, 28 Nov 2026 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after("Sat, 28 Nov 2026 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[test]
    fn backoff_stays_under_its_doubling_cap() {
        let options = HttpOptions {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            ..HttpOptions::default()
        };
        for _ in 0..200 {
            assert!(backoff(&options, 1) <= Duration::from_millis(100));
            assert!(backoff(&options, 2) <= Duration::from_millis(200));
            assert!(backoff(&options, 3) <= Duration::from_millis(300));
            assert!(backoff(&options, 40) <= Duration::from_millis(300));
        }
    }

    #[test]
    fn the_resource_class_is_a_query_value_and_base_paths_are_kept() {
        let token = Secret::new("t");
        let cloud = CircleCi::cloud(token.clone()).unwrap();
        assert_eq!(
            cloud.url(Count::Running, "acme/linux large&x").as_str(),
            "https://runner.circleci.com/api/v3/runner/tasks/running?resource-class=acme%2Flinux+large%26x"
        );
        let server = CircleCi::new(
            "https://ci.example.com/runner/",
            token,
            HttpOptions::default(),
        )
        .unwrap();
        assert_eq!(
            server.url(Count::Unclaimed, "a/b").as_str(),
            "https://ci.example.com/runner/api/v3/runner/tasks?resource-class=a%2Fb"
        );
    }

    #[test]
    fn bad_settings_are_explained_without_the_token() {
        let options = HttpOptions::default();
        for url in ["runner.circleci.com", "ftp://x", "https://x/?a=b"] {
            let err = CircleCi::new(url, Secret::new("t"), options.clone()).unwrap_err();
            assert!(matches!(err, BuildError::BaseUrl { .. }), "{url}: {err}");
        }
        let err = CircleCi::new(
            DEFAULT_BASE_URL,
            Secret::new("CCIPAT_canary\n"),
            options.clone(),
        )
        .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("CCIPAT_canary"));
        let source =
            CircleCi::new(DEFAULT_BASE_URL, Secret::new("CCIPAT_canary"), options).unwrap();
        assert!(!format!("{source:?}").contains("CCIPAT_canary"));
    }
}
