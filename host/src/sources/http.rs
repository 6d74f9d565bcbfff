//! The HTTP client every queue source reads its CI's API with: one
//! connection pool kept alive, at most `max_concurrent` requests in flight,
//! a timeout per request, bounded retries with jittered backoff that honour
//! `Retry-After`, bodies read up to a cap, no redirects (they would carry
//! the token elsewhere), and every message cleared of the token. A source
//! says where to send its token and what an answer means; this file does
//! the rest.

use super::SourceError;
use crate::secret::Secret;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{redirect, StatusCode, Url};
use std::fmt;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The answers are a few bytes of JSON; anything bigger is not one of them.
pub const MAX_BODY: usize = 64 * 1024;

/// How requests are timed, retried and spread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// The most one request may take, connection and body included.
    pub timeout: Duration,
    /// Tries per reading and tick, the first one included (at least 1).
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
    /// connections open to the API: the others wait their turn rather than
    /// open a connection of their own. See [`DEFAULT_MAX_CONCURRENT`].
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

/// A client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The base URL is not an absolute `http` or `https` URL.
    #[error(
        "the {api} base URL {} is not usable: {why} (expected e.g. {example})",
        crate::text::quoted(url)
    )]
    BaseUrl {
        api: &'static str,
        url: String,
        why: String,
        example: &'static str,
    },
    /// The token cannot be sent as an HTTP header value.
    #[error("the {api} token contains characters an HTTP header cannot carry (a line break or a control character?): check how it was stored")]
    Token { api: &'static str },
    /// The HTTP client could not be set up (TLS roots, for instance). The
    /// cause is in the message, and so not also the `source`: the error
    /// chain would print it twice.
    #[error("could not set up the HTTP client for {api}: {error}")]
    Client {
        api: &'static str,
        error: reqwest::Error,
    },
}

/// Who the client talks to, and how it authenticates.
pub struct Api {
    /// The API's name in messages: `CircleCI`, `Buildkite`.
    pub name: &'static str,
    /// Its default base URL, the example a bad one is refused with.
    pub default_base_url: &'static str,
    /// The header the token goes in, and what comes before it there
    /// (`Token ` for `Authorization: Token …`).
    pub token_header: &'static str,
    pub token_prefix: &'static str,
}

/// A client of one API.
pub struct ApiClient {
    api: &'static str,
    /// One client, built once: its connections are kept alive and reused.
    client: reqwest::Client,
    /// A permit per request in flight ([`HttpOptions::max_concurrent`]).
    in_flight: Semaphore,
    base: Url,
    token: Secret,
    header: (HeaderName, HeaderValue),
    options: HttpOptions,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("api", &self.api)
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A successful answer, as a source sees it.
pub struct Answer<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What a source makes of an answer.
pub enum Reading<T> {
    Value(T),
    /// Retrying will not help.
    Refused(String),
    /// Worth another try (a malformed body, say).
    Retry(String),
}

/// What one try came to.
enum Outcome<T> {
    Value(T),
    Refused(String),
    Retry {
        why: String,
        after: Option<Duration>,
    },
}

impl ApiClient {
    /// A client of `api` at `base_url`, authenticated with `token`.
    pub fn new(
        api: &Api,
        base_url: &str,
        token: Secret,
        options: HttpOptions,
    ) -> Result<Self, BuildError> {
        let base = parse_base_url(api, base_url)?;
        let mut value = HeaderValue::from_str(&format!("{}{}", api.token_prefix, token.expose()))
            .map_err(|_| BuildError::Token { api: api.name })?;
        // Keeps the value out of any Debug of the request's headers.
        value.set_sensitive(true);
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
            .map_err(|error| BuildError::Client {
                api: api.name,
                error,
            })?;
        Ok(ApiClient {
            api: api.name,
            client,
            in_flight: Semaphore::new(max_concurrent),
            base,
            token,
            header: (HeaderName::from_static(api.token_header), value),
            options,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `path` below the base URL (whose own path is kept), with `query`
    /// pairs encoded as query values.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}{path}"));
        url.query_pairs_mut().extend_pairs(query);
        url
    }

    /// GET `url` (named `path` in messages) until an answer `read` can use,
    /// within the attempts and the backoff: 429 and 503 wait for their
    /// `Retry-After`, 5xx and transport errors are retried, a redirect is
    /// refused, and another 4xx is what `refused` makes of its status.
    /// `subject` (the queue) goes in the log lines of retries.
    pub async fn get<T>(
        &self,
        url: Url,
        path: &str,
        subject: &str,
        refused: impl Fn(StatusCode) -> String,
        read: impl Fn(&Answer) -> Reading<T>,
    ) -> Result<T, SourceError> {
        let attempts = self.options.attempts.max(1);
        let mut attempt = 1;
        loop {
            let (why, after) = match self.attempt(url.clone(), path, &refused, &read).await {
                Outcome::Value(value) => return Ok(value),
                Outcome::Refused(message) => {
                    return Err(SourceError::Refused {
                        source_name: self.api,
                        message: self.redact(message),
                    })
                }
                Outcome::Retry { why, after } => (self.redact(why), after),
            };
            if let Some(after) = after {
                if after > self.options.max_retry_after {
                    return Err(SourceError::Unavailable {
                        source_name: self.api,
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
                    source_name: self.api,
                    attempts: attempt,
                    last: why,
                });
            }
            let delay = after.unwrap_or_else(|| backoff(&self.options, attempt));
            tracing::warn!(
                api = self.api,
                queue = subject,
                endpoint = path,
                attempt,
                attempts,
                delay_ms = delay.as_millis() as u64,
                why = %why,
                "no usable answer; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One request, classified. It waits for a permit first, and holds it
    /// until its answer is read (not through a retry's backoff).
    async fn attempt<T>(
        &self,
        url: Url,
        path: &str,
        refused: &impl Fn(StatusCode) -> String,
        read: &impl Fn(&Answer) -> Reading<T>,
    ) -> Outcome<T> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let sent = self
            .client
            .get(url)
            .header(self.header.0.clone(), self.header.1.clone())
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
            let outcome = self.refusal_or_retry(status, &response, path, refused);
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
                        "{path} answered with a body over {} KiB, not one of its answers",
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
        let answer = Answer {
            status,
            headers: response.headers(),
            body: &body,
        };
        match read(&answer) {
            Reading::Value(value) => Outcome::Value(value),
            Reading::Refused(why) => Outcome::Refused(why),
            Reading::Retry(why) => Outcome::Retry {
                why: format!("{path} answered HTTP {status} with {why}"),
                after: None,
            },
        }
    }

    fn refusal_or_retry<T>(
        &self,
        status: StatusCode,
        response: &reqwest::Response,
        path: &str,
        refused: &impl Fn(StatusCode) -> String,
    ) -> Outcome<T> {
        match status {
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
                "{path} answered HTTP {status} (a redirect, to {}): the base URL {} is probably \
                 not the {} API; the token is not sent on to another address",
                crate::text::quoted(
                    response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("nowhere")
                ),
                self.base,
                self.api
            )),
            _ => Outcome::Refused(refused(status)),
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

    /// Every message leaving a source passes here: whatever a server or a
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

/// `base_url` as an API's base: an absolute `http` or `https` URL with a
/// host, and no query or fragment (the configuration checks it too).
pub fn parse_base_url(api: &Api, base_url: &str) -> Result<Url, BuildError> {
    let bad = |why: &str| BuildError::BaseUrl {
        api: api.name,
        url: base_url.to_string(),
        why: why.to_string(),
        example: api.default_base_url,
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

/// A JSON object in which no object, at any depth, names a field twice:
/// such an answer is malformed, since which of the two values the API meant
/// cannot be known.
pub struct UniqueKeys(pub serde_json::Map<String, serde_json::Value>);

impl UniqueKeys {
    pub fn parse(body: &[u8]) -> Result<UniqueKeys, String> {
        // Read as any JSON first, to tell a body that is not JSON from an
        // object that repeats a field.
        serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map_err(|e| format!("a body that is not JSON ({e})"))?;
        match serde_json::from_slice::<Strict>(body) {
            Ok(Strict(serde_json::Value::Object(object))) => Ok(UniqueKeys(object)),
            Ok(_) => Err("JSON that is not an object".into()),
            Err(e) => Err(format!(
                "JSON that is not an object of distinct fields ({e})"
            )),
        }
    }
}

/// A JSON value read with no field named twice in any of its objects.
struct Strict(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde_json::Value;
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Strict;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                Ok(Strict(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(Value::String(v.to_string())))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Strict, A::Error> {
                let mut items = Vec::new();
                while let Some(Strict(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Strict(Value::Array(items)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Strict, A::Error> {
                let mut object = serde_json::Map::new();
                while let Some((key, Strict(value))) = map.next_entry::<String, Strict>()? {
                    if object.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "the field {} twice",
                            crate::text::quoted(&key)
                        )));
                    }
                    object.insert(key, value);
                }
                Ok(Strict(Value::Object(object)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The whole number `field` of `object` (a count of jobs), or what is wrong.
pub fn count(
    object: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<u32, String> {
    let Some(found) = object.get(field) else {
        return Err(format!(
            "JSON without the field {}",
            crate::text::quoted(field)
        ));
    };
    found
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            format!(
                "{field} = {}, not a whole number of jobs",
                crate::text::quoted(&found.to_string())
            )
        })
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
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_in(body: &[u8], field: &str) -> Result<u32, String> {
        count(&UniqueKeys::parse(body)?.0, field)
    }

    #[test]
    fn counts_are_whole_non_negative_numbers() {
        let field = "unclaimed_task_count";
        assert_eq!(count_in(br#"{"unclaimed_task_count": 7}"#, field), Ok(7));
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
                count_in(bad, field).is_err(),
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
            br#"{"unclaimed_task_count": 9, "x": [{"y": 1, "y": 2}]}"#,
        ] {
            let err = count_in(twice, field).unwrap_err();
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
}
