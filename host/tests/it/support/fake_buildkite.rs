//! A fake of Buildkite's agent metrics API on loopback: `GET
//! /v3/metrics/queue?name=QUEUE` with `Authorization: Token <agent token>`,
//! answered as Buildkite answers it (the shape buildkite-agent-scaler and
//! buildkite-agent-metrics read: `organization.slug`, `agents.{idle,busy,
//! total}`, `jobs.{scheduled,running,waiting,total}`), each queue from a
//! script of faults and then its counts, with the
//! `Buildkite-Agent-Metrics-Poll-Duration` header when one is set. It
//! records every request (the queue asked for, whether the token was right,
//! when). Runs until dropped.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The header with which Buildkite asks pollers to slow down.
pub const POLL_DURATION: &str = "buildkite-agent-metrics-poll-duration";

/// The path the metrics API serves, under the base URL's `/v3`.
const PATH: &str = "/v3/metrics/queue";

/// One scripted misbehaviour, used up by one request to its queue.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status with an error body.
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    TooMany { retry_after_secs: u64 },
    /// The normal answer, after this long.
    Slow(Duration),
    /// No answer at all: the connection stays open until the client gives up.
    Hang,
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with JSON without `jobs.scheduled`.
    MissingField,
    /// 200 with this body.
    Body(String),
}

/// A queue's counts, as the API reports them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Jobs waiting for an agent.
    pub scheduled: u32,
    /// Jobs on an agent.
    pub running: u32,
    /// Jobs waiting for what they depend on.
    pub waiting: u32,
}

#[derive(Debug, Default)]
struct QueueState {
    counts: Counts,
    faults: VecDeque<Fault>,
}

/// One request to the metrics path.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The `name` query value (None when missing).
    pub queue: Option<String>,
    /// Whether `Authorization` was `Token <the token>`.
    pub token_ok: bool,
    /// The raw query string.
    pub query: String,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, QueueState>,
    poll_duration: Option<String>,
    requests: Vec<Recorded>,
    /// Requests to any other path.
    strays: usize,
}

struct Shared {
    token: String,
    state: Mutex<State>,
}

/// The running fake. Dropping it stops the server and its connections.
pub struct FakeBuildkite {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeBuildkite {
    /// Serves on 127.0.0.1 on a port the OS picks, accepting only the agent
    /// token `token`. Call it inside a tokio runtime.
    pub async fn start(token: &str) -> FakeBuildkite {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            token: token.to_string(),
            state: Mutex::default(),
        });
        let server = tokio::spawn(super::serve_http(listener, shared.clone(), answer));
        FakeBuildkite {
            addr,
            shared,
            server,
        }
    }

    /// The base URL to give the client, as Buildkite's own ends: `/v3`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    /// Sets the counts of `queue`, served once its faults are used up. A
    /// queue never set is answered with zeros, as Buildkite answers a queue
    /// no agent or job has named.
    pub fn set_queue(&self, queue: &str, scheduled: u32, running: u32, waiting: u32) {
        let mut state = self.shared.state.lock().unwrap();
        state.queues.entry(queue.to_string()).or_default().counts = Counts {
            scheduled,
            running,
            waiting,
        };
    }

    /// Queues faults for the next requests of `queue`; each request uses up one.
    pub fn push_faults(&self, queue: &str, faults: impl IntoIterator<Item = Fault>) {
        let mut state = self.shared.state.lock().unwrap();
        state
            .queues
            .entry(queue.to_string())
            .or_default()
            .faults
            .extend(faults);
    }

    /// Sends `Buildkite-Agent-Metrics-Poll-Duration: <value>` with every
    /// answer from now on (`None`: no header).
    pub fn set_poll_duration(&self, value: Option<&str>) {
        self.shared.state.lock().unwrap().poll_duration = value.map(String::from);
    }

    /// Every request to the metrics path, in arrival order.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Requests to the metrics path for `queue`.
    pub fn requests(&self, queue: &str) -> usize {
        let state = self.shared.state.lock().unwrap();
        state
            .requests
            .iter()
            .filter(|r| r.queue.as_deref() == Some(queue))
            .count()
    }

    /// Requests to paths the metrics API does not serve.
    pub fn strays(&self) -> usize {
        self.shared.state.lock().unwrap().strays
    }
}

impl Drop for FakeBuildkite {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn reply(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.into())))
        .expect("a valid response")
}

fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "message": text }).to_string())
}

/// A queue's answer, as Buildkite shapes it.
fn counted(counts: Counts) -> String {
    serde_json::json!({
        "organization": { "slug": "acme" },
        "agents": { "idle": 0, "busy": counts.running, "total": counts.running },
        "jobs": {
            "scheduled": counts.scheduled,
            "running": counts.running,
            "waiting": counts.waiting,
            "total": counts.scheduled + counts.running + counts.waiting,
        },
    })
    .to_string()
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != PATH {
        shared.state.lock().unwrap().strays += 1;
        return Ok(message(StatusCode::NOT_FOUND, "Not Found"));
    }
    let query = request.uri().query().unwrap_or("").to_string();
    let url = reqwest::Url::parse(&format!("http://fake/?{query}")).expect("query parses");
    let queue = url
        .query_pairs()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.into_owned());
    let token_ok = request
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == format!("Token {}", shared.token).as_bytes());
    shared.state.lock().unwrap().requests.push(Recorded {
        queue: queue.clone(),
        token_ok,
        query,
        at: Instant::now(),
    });
    if request.method() != Method::GET {
        return Ok(message(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ));
    }
    if !token_ok {
        return Ok(message(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    let Some(queue) = queue else {
        return Ok(message(StatusCode::BAD_REQUEST, "name is required"));
    };
    let (fault, counts, poll) = {
        let mut state = shared.state.lock().unwrap();
        let poll = state.poll_duration.clone();
        let entry = state.queues.entry(queue).or_default();
        (entry.faults.pop_front(), entry.counts, poll)
    };
    let mut response = match fault {
        None => reply(StatusCode::OK, counted(counts)),
        Some(Fault::Status(code)) => message(
            StatusCode::from_u16(code).expect("a valid status"),
            "scripted failure",
        ),
        Some(Fault::TooMany { retry_after_secs }) => {
            let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            response
                .headers_mut()
                .insert(RETRY_AFTER, retry_after_secs.into());
            response
        }
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            reply(StatusCode::OK, counted(counts))
        }
        Some(Fault::Hang) => {
            // Until the client gives up, or the fake is dropped.
            std::future::pending::<()>().await;
            unreachable!()
        }
        Some(Fault::Malformed) => reply(StatusCode::OK, "{\"jobs\":{\"schedu"),
        Some(Fault::MissingField) => reply(
            StatusCode::OK,
            r#"{"organization":{"slug":"acme"},"jobs":{"running":0,"waiting":0}}"#,
        ),
        Some(Fault::Body(body)) => reply(StatusCode::OK, body),
    };
    if let Some(poll) = poll {
        response
            .headers_mut()
            .insert(POLL_DURATION, poll.parse().expect("a valid header value"));
    }
    Ok(response)
}
