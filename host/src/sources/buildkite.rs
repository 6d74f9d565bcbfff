//! Buildkite's agent metrics API as a queue source: `GET
//! /v3/metrics/queue?name=QUEUE` on `agent.buildkite.com` with
//! `Authorization: Token <agent token>` answers a queue's jobs (`scheduled`,
//! `running`, `waiting`) and agents. A job waiting for an agent is
//! `scheduled`; `waiting` jobs wait for what they depend on and are not
//! runnable yet (the contract's `blocked`).
//!
//! The server may ask pollers to slow down: its
//! `Buildkite-Agent-Metrics-Poll-Duration` header gives the seconds to wait
//! before the next poll. Until then the source answers the queue's last
//! reading — fresh by the server's own word — and polls again after. A
//! reading older than [`MAX_REUSE`] is not acted on: past that, a tick
//! holds the pool (an error) until the server lets it poll again.

use super::http::{Answer, Api, ApiClient, Reading, UniqueKeys};
use super::http::{BuildError, HttpOptions};
use super::SourceError;
use crate::observation::Queue;
use crate::secret::Secret;
use crate::token_secret::SecretFormat;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where Buildkite serves the agent API (its `v3` metrics).
pub const DEFAULT_BASE_URL: &str = "https://agent.buildkite.com/v3";

/// The header with which the server asks for fewer polls.
pub const POLL_DURATION_HEADER: &str = "buildkite-agent-metrics-poll-duration";

/// The oldest reading a tick acts on while the server asks not to be
/// polled: a minute, six of production's ticks.
pub const MAX_REUSE: Duration = Duration::from_secs(60);

const API: Api = Api {
    name: "Buildkite",
    default_base_url: DEFAULT_BASE_URL,
    token_header: "authorization",
    token_prefix: "Token ",
};

/// The token's secret: the agent token as plain text (as the Elastic CI
/// Stack keeps it), or a JSON object with it.
pub const SECRET: SecretFormat = SecretFormat {
    token_field: "buildkite_agent_token",
    queue_field: None,
    plain_text: true,
    example: r#"the agent token as plain text, or a JSON object {"buildkite_agent_token": "..."}"#,
};

/// The agent metrics API, read with an agent token.
pub struct Buildkite {
    api: ApiClient,
    /// Each queue's last reading, and when the server lets it be polled again.
    readings: Mutex<HashMap<String, Kept>>,
}

#[derive(Debug, Clone, Copy)]
struct Kept {
    queue: Queue,
    read_at: Instant,
    next_poll: Instant,
}

impl fmt::Debug for Buildkite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buildkite").field("api", &self.api).finish()
    }
}

const PATH: &str = "/metrics/queue";

impl Buildkite {
    /// A source for the agent API at `base_url` (Buildkite's, or a fake in
    /// tests), authenticated with an agent `token`.
    pub fn new(base_url: &str, token: Secret, options: HttpOptions) -> Result<Self, BuildError> {
        Ok(Buildkite {
            api: ApiClient::new(&API, base_url, token, options)?,
            readings: Mutex::default(),
        })
    }

    /// The jobs of the queue `name`: scheduled (waiting for an agent),
    /// running, and waiting for their dependencies (blocked).
    pub async fn queue(&self, name: &str) -> Result<Queue, SourceError> {
        let now = Instant::now();
        if let Some(kept) = self.readings.lock().unwrap().get(name).copied() {
            if now < kept.next_poll {
                let age = now - kept.read_at;
                if age <= MAX_REUSE {
                    return Ok(kept.queue);
                }
                return Err(SourceError::Unavailable {
                    source_name: API.name,
                    attempts: 0,
                    last: format!(
                        "the metrics API asked not to be polled for {} more, and the last reading of queue {} is {} old, too old to act on",
                        super::http::secs(kept.next_poll - now),
                        crate::text::quoted(name),
                        super::http::secs(age)
                    ),
                });
            }
        }
        let refused = |status: StatusCode| refusal(status, name);
        let (queue, wait) = self
            .api
            .get(
                self.api.url(PATH, &[("name", name)]),
                PATH,
                name,
                refused,
                read,
            )
            .await?;
        let read_at = Instant::now();
        self.readings.lock().unwrap().insert(
            name.to_string(),
            Kept {
                queue,
                read_at,
                next_poll: read_at + wait,
            },
        );
        Ok(queue)
    }
}

/// The queue's counts, and how long the server asks to wait before the
/// next poll.
fn read(answer: &Answer) -> Reading<(Queue, Duration)> {
    let wait = match answer.headers.get(POLL_DURATION_HEADER) {
        None => Duration::ZERO,
        Some(value) => match value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            // Bounded: a day would stall the pool on a typo.
            Some(seconds) => Duration::from_secs(seconds.min(3600)),
            None => {
                return Reading::Retry(format!(
                    "a {POLL_DURATION_HEADER} header that is not a number of seconds"
                ))
            }
        },
    };
    let jobs = match UniqueKeys::parse(answer.body).and_then(|object| match object.0.get("jobs") {
        Some(serde_json::Value::Object(jobs)) => Ok(jobs.clone()),
        Some(_) => Err("a `jobs` that is not an object".to_string()),
        None => Err("JSON without the field \"jobs\"".to_string()),
    }) {
        Ok(jobs) => jobs,
        Err(why) => return Reading::Retry(why),
    };
    let counted = (|| {
        Ok::<_, String>(Queue {
            waiting: super::http::count(&jobs, "scheduled")?,
            running: super::http::count(&jobs, "running")?,
            // Older answers have no `waiting` (buildkite-agent-metrics'
            // own test answers lack it): unknown, not a malformed answer.
            blocked: if jobs.contains_key("waiting") {
                Some(super::http::count(&jobs, "waiting")?)
            } else {
                None
            },
        })
    })();
    match counted {
        Ok(queue) => Reading::Value((queue, wait)),
        Err(why) => Reading::Retry(format!("jobs: {why}")),
    }
}

/// What a 4xx means for the queue `name`, and the fix.
fn refusal(status: StatusCode, name: &str) -> String {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
            "the token was refused (HTTP {status} from {PATH}) for queue {}: use an agent token \
             of the organization (or of the queue's cluster), the one the agents register with",
            crate::text::quoted(name)
        ),
        _ => format!(
            "{PATH} answered HTTP {status} for queue {}",
            crate::text::quoted(name)
        ),
    }
}

/// `base_url` as the agent API's base (the configuration checks it).
pub fn parse_base_url(base_url: &str) -> Result<reqwest::Url, BuildError> {
    super::http::parse_base_url(&API, base_url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn answer(body: &str, poll: Option<&str>) -> Reading<(Queue, Duration)> {
        let mut headers = HeaderMap::new();
        if let Some(poll) = poll {
            headers.insert(POLL_DURATION_HEADER, HeaderValue::from_str(poll).unwrap());
        }
        read(&Answer {
            status: StatusCode::OK,
            headers: &headers,
            body: body.as_bytes(),
        })
    }

    const BODY: &str = r#"{"organization":{"slug":"acme"},"agents":{"idle":1,"busy":2,"total":3},"jobs":{"scheduled":4,"running":2,"waiting":7,"total":13}}"#;

    #[test]
    fn scheduled_is_waiting_and_waiting_is_blocked() {
        let Reading::Value((queue, wait)) = answer(BODY, Some("15")) else {
            panic!("not read")
        };
        assert_eq!(
            queue,
            Queue {
                waiting: 4,
                running: 2,
                blocked: Some(7)
            }
        );
        assert_eq!(wait, Duration::from_secs(15));
        let Reading::Value((_, wait)) = answer(BODY, None) else {
            panic!("not read")
        };
        assert_eq!(wait, Duration::ZERO);
        let Reading::Value((queue, _)) =
            answer(r#"{"jobs":{"scheduled":3,"running":1,"total":4}}"#, None)
        else {
            panic!("an answer without `waiting` was not read")
        };
        assert_eq!(
            queue,
            Queue {
                waiting: 3,
                running: 1,
                blocked: None
            }
        );
    }

    #[test]
    fn malformed_answers_are_retried_not_read() {
        for (body, poll, words) in [
            (BODY, Some("soon"), "not a number of seconds"),
            (
                r#"{"jobs":{"scheduled":-1,"running":0,"waiting":0}}"#,
                None,
                "scheduled",
            ),
            (r#"{"jobs":{"running":0,"waiting":0}}"#, None, "scheduled"),
            (
                r#"{"jobs":{"scheduled":0,"running":0,"waiting":-2}}"#,
                None,
                "waiting",
            ),
            (r#"{"jobs":3}"#, None, "not an object"),
            (r#"{"agents":{}}"#, None, "jobs"),
            (
                r#"{"jobs":{"scheduled":1,"scheduled":9,"running":0,"waiting":0}}"#,
                None,
                "twice",
            ),
            (
                r#"{"jobs":{},"jobs":{"scheduled":1,"running":0,"waiting":0}}"#,
                None,
                "twice",
            ),
            ("<html>", None, "not JSON"),
        ] {
            match answer(body, poll) {
                Reading::Retry(why) => assert!(why.contains(words), "{body}: {why}"),
                _ => panic!("{body} was read"),
            }
        }
    }

    #[test]
    fn the_queue_is_a_query_value() {
        let source = Buildkite::new(
            DEFAULT_BASE_URL,
            Secret::new("bkua_canary"),
            HttpOptions::default(),
        )
        .unwrap();
        assert_eq!(
            source.api.url(PATH, &[("name", "linux large&x")]).as_str(),
            "https://agent.buildkite.com/v3/metrics/queue?name=linux+large%26x"
        );
        assert!(!format!("{source:?}").contains("bkua_canary"));
    }
}
