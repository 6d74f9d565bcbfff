//! CircleCI's Usage API, end to end: an export job per window of at most
//! 31 days, polled until its files are ready, every file downloaded.
//!
//! What CircleCI documents (API v2 reference, "Usage"; the support article
//! "How to use the CircleCI v2 API to create and retrieve usage reports"):
//! - `POST /api/v2/organizations/{org_id}/usage_export_job` with the JSON
//!   body `{"start": ..., "end": ...}` (both inclusive; start "no more than
//!   one year ago", 13 months of data kept; end "no more than 31 days after
//!   start", a "max date window of 32 days") answers 201 with
//!   `usage_export_job_id` and `state`;
//! - `GET .../usage_export_job/{id}` answers `state` and, once done,
//!   `download_urls`: pre-signed URLs of one or more CSV files "that need
//!   to be merged after download";
//! - rate limits: the POST 10 times an hour per organization, the GET 10
//!   times a minute; a query runs for up to 4 hours;
//! - a personal API token in the `Circle-Token` header.
//!
//! Not documented, read as CircleCI's own MCP server reads it: the states
//! `created`, `pending` and `processing` (go on polling) and `completed`;
//! any state naming a failure ends the fetch with the answer's words.
//!
//! The client is this module's own, small: reqwest with a timeout per
//! request, bodies read up to a cap, transient failures (no connection, a
//! 5xx) retried with jittered backoff, a 429 or 503 waited out for as long
//! as its `Retry-After` asks (within the whole fetch's deadline). The token
//! goes only to the API's own address: never in a redirect (none is
//! followed) and never to the download URLs, which carry their own
//! signature; no message prints a download URL's query (that signature).

use super::cut;
use crate::secret::Secret;
use rand::Rng;
use reqwest::header::{HeaderValue, RETRY_AFTER};
use reqwest::{redirect, StatusCode, Url};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// CircleCI cloud, where the Usage API is.
pub const DEFAULT_API_URL: &str = "https://circleci.com";
/// The longest window one export job may cover, in days.
pub const MAX_WINDOW_DAYS: i64 = 31;
/// The most export jobs one fetch creates: the POST's limit per hour.
pub const MAX_WINDOWS: usize = 10;
/// How far back CircleCI keeps usage data (13 months), in days.
pub const HISTORY_DAYS: i64 = 396;
/// The GET's limit is 10 a minute: never poll more often than this.
pub const MIN_POLL: Duration = Duration::from_secs(6);
/// The most bytes one download may have (a gzip file; the import bounds
/// what it holds once gunzipped).
pub const MAX_DOWNLOAD_BYTES: u64 = 512 * 1024 * 1024;
/// The API's JSON answers are small.
const MAX_ANSWER: usize = 64 * 1024;
/// The most 429s or 503s waited out per request.
const MAX_THROTTLED: u32 = 10;

/// How a fetch runs.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The API's base, `https://circleci.com` (a fake in tests).
    pub api_url: String,
    pub org_id: String,
    /// The window, both ends included.
    pub start: jiff::Timestamp,
    pub end: jiff::Timestamp,
    /// Between two polls of an export job.
    pub poll_interval: Duration,
    /// The most the whole fetch may take, downloads included.
    pub deadline: Duration,
    /// The most one API request may take.
    pub request_timeout: Duration,
    /// The most one download may take.
    pub download_timeout: Duration,
    /// Tries per request on a transient failure, the first included.
    pub attempts: u32,
    /// The backoff before the second try; it doubles with each further try.
    pub base_delay: Duration,
}

impl FetchOptions {
    /// Defaults for `org_id` and the window.
    pub fn new(org_id: String, start: jiff::Timestamp, end: jiff::Timestamp) -> FetchOptions {
        FetchOptions {
            api_url: DEFAULT_API_URL.into(),
            org_id,
            start,
            end,
            poll_interval: Duration::from_secs(15),
            deadline: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
            download_timeout: Duration::from_secs(600),
            attempts: 4,
            base_delay: Duration::from_secs(1),
        }
    }
}

/// A fetch that did not complete. Messages name the request and never
/// carry the token or a download URL's signature.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Setup(String),
    #[error("the window {start} to {end} {why}")]
    Window {
        start: jiff::Timestamp,
        end: jiff::Timestamp,
        why: String,
    },
    #[error("{what} was refused: {why}")]
    Refused { what: String, why: String },
    #[error("{what} gave no usable answer after {attempts} tries; the last: {last}")]
    Unavailable {
        what: String,
        attempts: u32,
        last: String,
    },
    #[error("the export job {id} failed: state {state:?}{detail}")]
    Failed {
        id: String,
        state: String,
        detail: String,
    },
    #[error(
        "gave up after {waited}: {doing}; CircleCI runs an export for up to 4 hours: \
         run again with a longer --timeout"
    )]
    Deadline { waited: String, doing: String },
    #[error("cannot save the download to {path}: {error}")]
    Save { path: String, error: std::io::Error },
}

/// The windows of at most [`MAX_WINDOW_DAYS`] that cover `start..=end`.
pub fn windows(
    start: jiff::Timestamp,
    end: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Result<Vec<(jiff::Timestamp, jiff::Timestamp)>, FetchError> {
    let bad = |why: String| FetchError::Window { start, end, why };
    if end <= start {
        return Err(bad("is empty: the end must come after the start".into()));
    }
    if end > now {
        return Err(bad(format!(
            "ends in the future ({now} now); the Usage API refuses that"
        )));
    }
    let oldest = now - jiff::SignedDuration::from_hours(24 * HISTORY_DAYS);
    if start < oldest {
        return Err(bad(format!(
            "starts before {oldest}: CircleCI keeps 13 months of usage data"
        )));
    }
    let step = jiff::SignedDuration::from_hours(24 * MAX_WINDOW_DAYS);
    let mut out = Vec::new();
    let mut from = start;
    while from < end {
        let to = (from + step).min(end);
        out.push((from, to));
        from = to;
    }
    if out.len() > MAX_WINDOWS {
        return Err(bad(format!(
            "needs {} export jobs of at most {MAX_WINDOW_DAYS} days, and the Usage API creates \
             at most {MAX_WINDOWS} an hour: fetch at most {} days at once (--since, --until)",
            out.len(),
            MAX_WINDOWS as i64 * MAX_WINDOW_DAYS
        )));
    }
    Ok(out)
}

/// The Usage API client.
struct Client {
    api: reqwest::Client,
    downloads: reqwest::Client,
    base: Url,
    header: HeaderValue,
    token: Secret,
    options: FetchOptions,
    started: Instant,
}

/// Run the export for `options`' window with `token`, save every file in
/// `dir`, and return their paths in order. `progress` hears each step.
pub async fn fetch(
    options: &FetchOptions,
    token: Secret,
    dir: &Path,
    progress: &mut dyn FnMut(String),
) -> Result<Vec<PathBuf>, FetchError> {
    let windows = windows(options.start, options.end, jiff::Timestamp::now())?;
    let client = Client::new(options.clone(), token)?;
    let mut files = Vec::new();
    for (index, (start, end)) in windows.iter().enumerate() {
        let id = client.create(*start, *end).await?;
        progress(format!(
            "export job {id} created for {start} to {end} ({} of {})",
            index + 1,
            windows.len()
        ));
        let urls = client.wait_for(&id, progress).await?;
        progress(format!("export job {id}: {} files to download", urls.len()));
        for (n, url) in urls.iter().enumerate() {
            let path = dir.join(format!("usage-export-{}-{}", index + 1, n + 1));
            let bytes = client.download(url, &path).await?;
            progress(format!(
                "downloaded {} ({} bytes) to {}",
                shown(url),
                bytes,
                path.display()
            ));
            files.push(path);
        }
    }
    Ok(files)
}

/// A URL for messages: scheme, host and path; never its query, which for
/// a pre-signed URL is its credential.
fn shown(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

impl Client {
    fn new(options: FetchOptions, token: Secret) -> Result<Client, FetchError> {
        let base = crate::sources::circleci::parse_base_url(&options.api_url)
            .map_err(|e| FetchError::Setup(format!("--api-url: {e}")))?;
        let mut header = HeaderValue::from_str(token.expose()).map_err(|_| {
            FetchError::Setup(
                "the CircleCI token contains characters an HTTP header cannot carry (a line \
                 break?): check how it was stored"
                    .into(),
            )
        })?;
        header.set_sensitive(true);
        let user_agent = concat!("runner-scaler/", env!("CARGO_PKG_VERSION"));
        let setup = |e: reqwest::Error| FetchError::Setup(format!("cannot set up HTTP: {e}"));
        let api = reqwest::Client::builder()
            .connect_timeout(options.request_timeout)
            // A redirect would carry the token wherever it points.
            .redirect(redirect::Policy::none())
            .user_agent(user_agent)
            .build()
            .map_err(setup)?;
        let downloads = reqwest::Client::builder()
            .connect_timeout(options.request_timeout)
            .redirect(redirect::Policy::limited(3))
            .user_agent(user_agent)
            .build()
            .map_err(setup)?;
        Ok(Client {
            api,
            downloads,
            base,
            header,
            token,
            options,
            started: Instant::now(),
        })
    }

    /// The API URL of `segments` under the base, each one percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The export jobs' segments, and their path for messages.
    fn jobs<'a>(&'a self, id: Option<&'a str>) -> (Vec<&'a str>, String) {
        let mut segments = vec![
            "api",
            "v2",
            "organizations",
            self.options.org_id.as_str(),
            "usage_export_job",
        ];
        segments.extend(id);
        let path = format!("/{}", segments.join("/"));
        (segments, cut(&path, 200))
    }

    /// Create the export job for one window; its id.
    async fn create(
        &self,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
    ) -> Result<String, FetchError> {
        let (segments, path) = self.jobs(None);
        let what = format!("POST {path}");
        let body = json!({
            "start": start.round(jiff::Unit::Second).unwrap_or(start).to_string(),
            "end": end.round(jiff::Unit::Second).unwrap_or(end).to_string(),
        });
        let answer = self
            .call(reqwest::Method::POST, &segments, Some(&body), &what)
            .await?;
        answer
            .get("usage_export_job_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| FetchError::Refused {
                what,
                why: format!(
                    "the answer has no usage_export_job_id: {}",
                    cut(&answer.to_string(), 200)
                ),
            })
    }

    /// Poll the job until it is done; its download URLs.
    async fn wait_for(
        &self,
        id: &str,
        progress: &mut dyn FnMut(String),
    ) -> Result<Vec<Url>, FetchError> {
        let (segments, path) = self.jobs(Some(id));
        let what = format!("GET {path}");
        let mut last_state = String::new();
        loop {
            let answer = self
                .call(reqwest::Method::GET, &segments, None, &what)
                .await?;
            let state = answer
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            match state.as_str() {
                "completed" | "complete" | "succeeded" | "success" => {
                    return self.download_urls(&answer, &what);
                }
                "created" | "pending" | "processing" | "queued" | "running" => {}
                _ => {
                    let detail = answer
                        .get("error_reason")
                        .or_else(|| answer.get("message"))
                        .map(|v| format!(": {}", cut(&v.to_string(), 200)))
                        .unwrap_or_default();
                    return Err(FetchError::Failed {
                        id: id.to_string(),
                        state: cut(&state, 40),
                        detail,
                    });
                }
            }
            if state != last_state {
                progress(format!("export job {id} is {state}"));
                last_state = state.clone();
            }
            self.sleep(
                self.options.poll_interval,
                &format!("export job {id} was still {state}"),
            )
            .await?;
        }
    }

    fn download_urls(&self, answer: &Value, what: &str) -> Result<Vec<Url>, FetchError> {
        let refused = |why: String| FetchError::Refused {
            what: what.to_string(),
            why,
        };
        let urls = answer
            .get("download_urls")
            .and_then(Value::as_array)
            .filter(|urls| !urls.is_empty())
            .ok_or_else(|| refused("the completed job has no download_urls".into()))?;
        urls.iter()
            .map(|url| {
                let text = url.as_str().unwrap_or("");
                match Url::parse(text) {
                    Ok(url) if matches!(url.scheme(), "https" | "http") => Ok(url),
                    _ => Err(refused(format!(
                        "a download URL is not an http(s) URL: {}",
                        cut(text.split('?').next().unwrap_or(""), 100)
                    ))),
                }
            })
            .collect()
    }

    /// Wait `delay`, or fail if that passes the deadline.
    async fn sleep(&self, delay: Duration, doing: &str) -> Result<(), FetchError> {
        if self.started.elapsed() + delay > self.options.deadline {
            return Err(FetchError::Deadline {
                waited: seconds(self.started.elapsed()),
                doing: doing.to_string(),
            });
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// One API request with retries; its JSON answer.
    async fn call(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, FetchError> {
        let url = self.url(segments);
        let attempts = self.options.attempts.max(1);
        let (mut attempt, mut throttled) = (1, 0);
        loop {
            let mut request = self
                .api
                .request(method.clone(), url.clone())
                .header("Circle-Token", self.header.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(self.options.request_timeout);
            if let Some(body) = body {
                request = request.json(body);
            }
            let why = match request.send().await {
                Err(error) => describe(error, self.options.request_timeout),
                Ok(mut response) => {
                    let status = response.status();
                    let after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry_after(v, jiff::Timestamp::now()));
                    let answer = read_capped(&mut response, MAX_ANSWER as u64).await;
                    let text = match &answer {
                        Ok(bytes) => cut(&String::from_utf8_lossy(bytes), 200),
                        Err(why) => why.clone(),
                    };
                    if status.is_success() {
                        let bytes = answer.map_err(|why| FetchError::Refused {
                            what: what.into(),
                            why: self.redact(why),
                        })?;
                        return serde_json::from_slice(&bytes).map_err(|e| FetchError::Refused {
                            what: what.into(),
                            why: format!(
                                "HTTP {status} with a body that is not JSON ({e}): {text}"
                            ),
                        });
                    }
                    if matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    ) && throttled < MAX_THROTTLED
                    {
                        throttled += 1;
                        let delay = after.unwrap_or_else(|| self.backoff(throttled));
                        tracing::warn!(
                            request = what,
                            status = status.as_u16(),
                            delay_s = delay.as_secs_f64(),
                            "the Usage API asks to wait (its rate limits: 10 exports an hour, 10 polls a minute)"
                        );
                        self.sleep(delay, &format!("{what} answered HTTP {status}"))
                            .await?;
                        continue;
                    }
                    if !status.is_server_error() {
                        return Err(FetchError::Refused {
                            what: what.into(),
                            why: self.redact(refusal(status, &text, &self.options.org_id)),
                        });
                    }
                    format!("HTTP {status}: {text}")
                }
            };
            let why = self.redact(why);
            if attempt >= attempts {
                return Err(FetchError::Unavailable {
                    what: what.into(),
                    attempts: attempt,
                    last: why,
                });
            }
            let delay = self.backoff(attempt);
            tracing::warn!(request = what, attempt, why = %why, "retrying");
            self.sleep(delay, &format!("{what} failed: {why}")).await?;
            attempt += 1;
        }
    }

    /// Download `url` to `path` (no token sent); its size.
    async fn download(&self, url: &Url, path: &Path) -> Result<u64, FetchError> {
        let what = format!("downloading {}", shown(url));
        let attempts = self.options.attempts.max(1);
        let mut attempt = 1;
        loop {
            let why = match self.download_once(url, path).await {
                Ok(bytes) => return Ok(bytes),
                Err(Download::Fatal(error)) => return Err(error),
                Err(Download::Retry(why)) => why,
            };
            if attempt >= attempts {
                return Err(FetchError::Unavailable {
                    what,
                    attempts: attempt,
                    last: why,
                });
            }
            self.sleep(self.backoff(attempt), &format!("{what} failed: {why}"))
                .await?;
            attempt += 1;
        }
    }

    async fn download_once(&self, url: &Url, path: &Path) -> Result<u64, Download> {
        let mut response = self
            .downloads
            .get(url.clone())
            .timeout(self.options.download_timeout)
            .send()
            .await
            .map_err(|e| Download::Retry(describe(e, self.options.download_timeout)))?;
        let status = response.status();
        if !status.is_success() {
            let text = read_capped(&mut response, MAX_ANSWER as u64)
                .await
                .map(|b| cut(&String::from_utf8_lossy(&b), 200))
                .unwrap_or_default();
            let why = format!("HTTP {status}: {text}");
            return Err(
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    Download::Retry(why)
                } else {
                    Download::Fatal(FetchError::Refused {
                        what: format!("downloading {}", shown(url)),
                        why: format!(
                            "{why} (a pre-signed URL expires: run the fetch again for fresh ones)"
                        ),
                    })
                },
            );
        }
        let save = |error| {
            Download::Fatal(FetchError::Save {
                path: path.display().to_string(),
                error,
            })
        };
        let mut file = tokio::fs::File::create(path).await.map_err(save)?;
        let mut bytes = 0u64;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| Download::Retry(describe(e, self.options.download_timeout)))?;
            let Some(chunk) = chunk else { break };
            bytes += chunk.len() as u64;
            if bytes > MAX_DOWNLOAD_BYTES {
                return Err(Download::Fatal(FetchError::Refused {
                    what: format!("downloading {}", shown(url)),
                    why: format!(
                        "more than {} MiB, more than an export holds (CircleCI caps one at \
                         100 MB): fetch a shorter window",
                        MAX_DOWNLOAD_BYTES / (1024 * 1024)
                    ),
                }));
            }
            file.write_all(&chunk).await.map_err(save)?;
        }
        file.flush().await.map_err(save)?;
        Ok(bytes)
    }

    /// Full jitter: random below `base_delay × 2^(attempt-1)`, at most 30 s.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .options
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(Duration::from_secs(30));
        let millis = cap.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
    }

    /// Whatever a server echoed, the token does not get through.
    fn redact(&self, message: String) -> String {
        let token = self.token.expose();
        if token.is_empty() || !message.contains(token) {
            message
        } else {
            message.replace(token, "***")
        }
    }
}

enum Download {
    Retry(String),
    Fatal(FetchError),
}

/// What a refusal means, and the fix.
fn refusal(status: StatusCode, text: &str, org_id: &str) -> String {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
            "HTTP {status}: the token was refused; use a CircleCI personal API token of a user \
             who belongs to the organization {org_id:?} (not a project or runner token). CircleCI \
             said: {text}"
        ),
        StatusCode::NOT_FOUND => format!(
            "HTTP {status}: no organization {org_id:?}; --org-id is the organization's ID \
             (Organization Settings > Overview in the CircleCI app), not its name. CircleCI \
             said: {text}"
        ),
        _ => format!("HTTP {status}: {text}"),
    }
}

/// A transport error in words, without the URL.
fn describe(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {}", seconds(timeout));
    }
    let mut text = if error.is_connect() {
        "could not connect".to_string()
    } else {
        "the transfer failed".to_string()
    };
    let error = error.without_url();
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The body, up to `cap` bytes.
async fn read_capped(response: &mut reqwest::Response, cap: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the answer could not be read: {}", e.without_url()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > cap {
            return Err(format!("an answer over {} KiB", cap / 1024));
        }
    }
    Ok(body)
}

/// The wait a `Retry-After` value asks for: seconds, or an HTTP date.
fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    Some(at.duration_since(now).try_into().unwrap_or(Duration::ZERO))
}

fn seconds(duration: Duration) -> String {
    crate::simulate::report::duration(duration.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn windows_of_at_most_31_days_cover_the_range() {
        let now = at("2026-12-31T00:00:00Z");
        let w = windows(at("2026-12-01T00:00:00Z"), at("2026-12-15T00:00:00Z"), now).unwrap();
        assert_eq!(
            w,
            vec![(at("2026-12-01T00:00:00Z"), at("2026-12-15T00:00:00Z"))]
        );
        let w = windows(at("2026-10-01T00:00:00Z"), at("2026-12-15T00:00:00Z"), now).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].1, at("2026-11-01T00:00:00Z"));
        assert_eq!(
            w[1],
            (at("2026-11-01T00:00:00Z"), at("2026-12-02T00:00:00Z"))
        );
        assert_eq!(w[2].1, at("2026-12-15T00:00:00Z"));
        let err = |s, e| windows(at(s), at(e), now).unwrap_err().to_string();
        assert!(err("2026-12-15T00:00:00Z", "2026-12-01T00:00:00Z").contains("is empty"));
        assert!(err("2026-12-15T00:00:00Z", "2027-01-01T00:00:00Z").contains("future"));
        assert!(err("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z").contains("13 months"));
        let long = err("2026-01-01T00:00:00Z", "2026-12-30T00:00:00Z");
        assert!(
            long.contains("needs 12 export jobs") && long.contains("at most 310 days"),
            "{long}"
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = at("2026-11-23T09:00:00Z");
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Mon, 23 Nov 2026 09:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn a_download_url_is_shown_without_its_signature() {
        let url =
            Url::parse("https://bucket.s3.amazonaws.com/exports/1.csv.gz?X-Amz-Signature=abc")
                .unwrap();
        assert_eq!(
            shown(&url),
            "https://bucket.s3.amazonaws.com/exports/1.csv.gz"
        );
    }
}
