//! A fake of the Lambda Runtime API on loopback, as a custom runtime sees
//! it: `invocation/next` hands out the queued events (with the request id
//! and deadline headers), then holds the request open as Lambda does when it
//! freezes an idle function; `response`, `error` and `init/error` are
//! recorded, in order, with the moment they arrived. Runs until dropped.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";

/// What the runtime posted back.
#[derive(Debug, Clone)]
pub enum Posted {
    /// `POST invocation/{id}/response`.
    Response { request_id: String, body: String },
    /// `POST invocation/{id}/error`.
    Error { request_id: String, body: String },
    /// `POST init/error`.
    InitError {
        error_type: Option<String>,
        body: String,
    },
}

impl Posted {
    /// The posted body as JSON (panics, with the body, if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        let body = match self {
            Posted::Response { body, .. }
            | Posted::Error { body, .. }
            | Posted::InitError { body, .. } => body,
        };
        serde_json::from_str(body).unwrap_or_else(|err| panic!("not JSON ({err}): {body}"))
    }
}

/// One invocation to hand out: its event, and the headers to leave out of
/// the answer (to test a runtime against a Runtime API that misbehaves).
#[derive(Debug, Clone)]
pub struct Invocation {
    pub event: serde_json::Value,
    pub without: Vec<&'static str>,
}

impl From<serde_json::Value> for Invocation {
    fn from(event: serde_json::Value) -> Self {
        Invocation {
            event,
            without: vec![],
        }
    }
}

#[derive(Default)]
struct State {
    events: VecDeque<(String, Invocation)>,
    next_id: usize,
    posted: Vec<(Instant, Posted)>,
    /// `invocation/next` requests received, answered or held.
    polls: usize,
    /// An invocation's timeout: its deadline is this long after it is
    /// handed out.
    timeout: Duration,
    /// Each handed-out invocation's deadline, by request id.
    deadlines: Vec<(String, Instant)>,
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

/// The running fake.
pub struct FakeLambda {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// An EventBridge scheduled event, as the original tool's rule sends it.
pub fn scheduled_event() -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-28T02:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/runner-scaler-schedule"],
        "detail": {}
    })
}

impl FakeLambda {
    /// Serves `events` in order on 127.0.0.1 on a port the OS picks, each
    /// with a 5 s timeout (one tick at the default interval). Call it inside
    /// a tokio runtime.
    pub async fn start(events: impl IntoIterator<Item = impl Into<Invocation>>) -> FakeLambda {
        FakeLambda::with_timeout(events, Duration::from_secs(5)).await
    }

    /// [`FakeLambda::start`], each invocation with this timeout.
    pub async fn with_timeout(
        events: impl IntoIterator<Item = impl Into<Invocation>>,
        timeout: Duration,
    ) -> FakeLambda {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            changed: Notify::new(),
        });
        {
            let mut state = shared.state.lock().unwrap();
            state.timeout = timeout;
            for event in events {
                state.next_id += 1;
                let id = format!("req-{:04}", state.next_id);
                state.events.push_back((id, event.into()));
            }
        }
        let server = tokio::spawn(super::serve_http(listener, shared.clone(), answer));
        FakeLambda {
            addr,
            shared,
            server,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// Everything posted so far.
    pub fn posted(&self) -> Vec<Posted> {
        let state = self.shared.state.lock().unwrap();
        state.posted.iter().map(|(_, p)| p.clone()).collect()
    }

    /// Waits until `n` things were posted (or `timeout` passed); returns
    /// them with their arrival times.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<(Instant, Posted)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            {
                let state = self.shared.state.lock().unwrap();
                if state.posted.len() >= n {
                    return state.posted.clone();
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.shared.state.lock().unwrap().posted.clone();
            }
        }
    }

    /// The deadline the invocation `request_id` was handed out with.
    pub fn deadline_of(&self, request_id: &str) -> Option<Instant> {
        let state = self.shared.state.lock().unwrap();
        state
            .deadlines
            .iter()
            .find(|(id, _)| id == request_id)
            .map(|(_, at)| *at)
    }

    /// `invocation/next` requests received.
    pub fn polls(&self) -> usize {
        self.shared.state.lock().unwrap().polls
    }
}

impl Drop for FakeLambda {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("a valid response")
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "{\"errorMessage\":\"unknown path\"}",
        ));
    };
    let method = request.method().clone();
    let error_type = request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if method == Method::GET && rest == "/invocation/next" {
        let next = {
            let mut state = shared.state.lock().unwrap();
            state.polls += 1;
            let next = state.events.pop_front();
            if let Some((id, _)) = &next {
                let at = Instant::now() + state.timeout;
                state.deadlines.push((id.clone(), at));
            }
            (next, state.timeout)
        };
        let (next, timeout) = next;
        shared.changed.notify_waiters();
        let Some((id, invocation)) = next else {
            // Lambda freezes an idle function mid-request; the test ends it.
            std::future::pending::<()>().await;
            unreachable!();
        };
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + timeout.as_millis();
        let mut response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json");
        for (name, value) in [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:runner-scaler".into(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into(),
            ),
        ] {
            if !invocation.without.contains(&name) {
                response = response.header(name, value);
            }
        }
        let response = response
            .body(Full::new(Bytes::from(invocation.event.to_string())))
            .expect("a valid response");
        return Ok(response);
    }
    if method != Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "{}"));
    }
    let body = match request.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "{}")),
    };
    let posted = if rest == "/init/error" {
        Posted::InitError { error_type, body }
    } else if let Some(id) = rest
        .strip_prefix("/invocation/")
        .and_then(|r| r.strip_suffix("/response"))
    {
        Posted::Response {
            request_id: id.to_string(),
            body,
        }
    } else if let Some(id) = rest
        .strip_prefix("/invocation/")
        .and_then(|r| r.strip_suffix("/error"))
    {
        Posted::Error {
            request_id: id.to_string(),
            body,
        }
    } else {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "{\"errorMessage\":\"unknown path\"}",
        ));
    };
    shared
        .state
        .lock()
        .unwrap()
        .posted
        .push((Instant::now(), posted));
    shared.changed.notify_waiters();
    Ok(reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}"))
}
