//! A fake of CircleCI's runner API on loopback: checks the path, the
//! `resource-class` query and the `Circle-Token` header, answers each
//! resource class from a script of faults and then its counts, and counts
//! the requests. Runs until dropped.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The two counts the runner API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /api/v3/runner/tasks` → `unclaimed_task_count`.
    Unclaimed,
    /// `GET /api/v3/runner/tasks/running` → `running_runner_tasks`.
    Running,
}

impl Endpoint {
    fn field(self) -> &'static str {
        match self {
            Endpoint::Unclaimed => "unclaimed_task_count",
            Endpoint::Running => "running_runner_tasks",
        }
    }
}

/// One scripted misbehaviour, used up by one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status with an error body.
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    TooMany { retry_after_secs: u64 },
    /// 503 with this `Retry-After` value (an HTTP date, say).
    Unavailable { retry_after: String },
    /// The normal answer, after this long.
    Slow(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with JSON that lacks the count's field.
    MissingField,
    /// 200 with this body.
    Body(String),
}

#[derive(Debug, Default)]
struct Class {
    waiting: u32,
    running: u32,
    faults: HashMap<Endpoint, VecDeque<Fault>>,
}

#[derive(Debug, Default)]
struct State {
    classes: HashMap<String, Class>,
    requests: HashMap<Endpoint, usize>,
    /// Requests to any other path.
    strays: usize,
    /// Raw query strings, as sent, in arrival order.
    queries: Vec<String>,
}

struct Shared {
    token: String,
    state: Mutex<State>,
}

/// The running fake. Dropping it stops the server and its connections.
pub struct FakeCircleCi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

/// How the fake listens.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// The listen backlog: connections the kernel holds until they are
    /// accepted. When it is full, Linux drops new connection attempts (the
    /// client tries again after a second).
    pub backlog: u32,
    /// A pause after each accepted connection.
    pub accept_pause: Duration,
    /// The most connections served at once (a server with a fixed pool of
    /// workers): the others wait in the backlog until one closes. `None`:
    /// no limit.
    pub max_open: Option<usize>,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            backlog: 1024,
            accept_pause: Duration::ZERO,
            max_open: None,
        }
    }
}

impl FakeCircleCi {
    /// Serves on 127.0.0.1 on a port the OS picks, accepting only `token`.
    /// Call it inside a tokio runtime.
    pub async fn start(token: &str) -> FakeCircleCi {
        FakeCircleCi::start_listening(token, Listen::default()).await
    }

    /// [`FakeCircleCi::start`], listening as `listen` says.
    pub async fn start_listening(token: &str, listen: Listen) -> FakeCircleCi {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)))
            .expect("bind loopback");
        let listener = socket.listen(listen.backlog).expect("listen");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            token: token.to_string(),
            state: Mutex::default(),
        });
        let accepting = super::Accepting {
            pause: listen.accept_pause,
            max_open: listen.max_open,
            accepted: Arc::default(),
        };
        let accepted = accepting.accepted.clone();
        let server = tokio::spawn(super::serve_http_accepting(
            listener,
            shared.clone(),
            answer,
            accepting,
        ));
        FakeCircleCi {
            addr,
            shared,
            server,
            accepted,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The base URL to give the client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `resource_class` known, with these counts once its faults are used up.
    pub fn set_queue(&self, resource_class: &str, waiting: u32, running: u32) {
        let mut state = self.shared.state.lock().unwrap();
        let class = state.classes.entry(resource_class.to_string()).or_default();
        class.waiting = waiting;
        class.running = running;
    }

    /// Queues faults for the next requests of `resource_class` to `endpoint`
    /// (the class must have been set). Each request uses up one.
    pub fn push_faults(
        &self,
        resource_class: &str,
        endpoint: Endpoint,
        faults: impl IntoIterator<Item = Fault>,
    ) {
        let mut state = self.shared.state.lock().unwrap();
        let class = state
            .classes
            .get_mut(resource_class)
            .expect("set_queue before push_faults");
        class.faults.entry(endpoint).or_default().extend(faults);
    }

    /// Requests that reached `endpoint`, answered or not.
    pub fn requests(&self, endpoint: Endpoint) -> usize {
        let state = self.shared.state.lock().unwrap();
        state.requests.get(&endpoint).copied().unwrap_or(0)
    }

    /// Requests to paths the runner API does not serve.
    pub fn strays(&self) -> usize {
        self.shared.state.lock().unwrap().strays
    }

    /// The raw query strings received, in order.
    pub fn queries(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().queries.clone()
    }
}

impl Drop for FakeCircleCi {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every
        // connection, slow answers included.
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

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let endpoint = match request.uri().path() {
        "/api/v3/runner/tasks" => Endpoint::Unclaimed,
        "/api/v3/runner/tasks/running" => Endpoint::Running,
        _ => {
            shared.state.lock().unwrap().strays += 1;
            return Ok(message(StatusCode::NOT_FOUND, "Not found"));
        }
    };
    let query = request.uri().query().unwrap_or("").to_string();
    {
        let mut state = shared.state.lock().unwrap();
        *state.requests.entry(endpoint).or_default() += 1;
        state.queries.push(query.clone());
    }
    if request.method() != Method::GET {
        return Ok(message(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
        ));
    }
    let token_ok = request
        .headers()
        .get("circle-token")
        .is_some_and(|v| v.as_bytes() == shared.token.as_bytes());
    if !token_ok {
        return Ok(message(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    let url = reqwest::Url::parse(&format!("http://fake/?{query}")).expect("query parses");
    let Some(resource_class) = url
        .query_pairs()
        .find(|(k, _)| k == "resource-class")
        .map(|(_, v)| v.into_owned())
    else {
        return Ok(message(
            StatusCode::BAD_REQUEST,
            "resource-class is required",
        ));
    };
    let (fault, count) = {
        let mut state = shared.state.lock().unwrap();
        let Some(class) = state.classes.get_mut(&resource_class) else {
            return Ok(message(StatusCode::NOT_FOUND, "Resource class not found"));
        };
        let fault = class
            .faults
            .get_mut(&endpoint)
            .and_then(VecDeque::pop_front);
        let count = match endpoint {
            Endpoint::Unclaimed => class.waiting,
            Endpoint::Running => class.running,
        };
        (fault, count)
    };
    let counted = || {
        reply(
            StatusCode::OK,
            serde_json::json!({ endpoint.field(): count }).to_string(),
        )
    };
    Ok(match fault {
        None => counted(),
        Some(Fault::Status(code)) => message(
            StatusCode::from_u16(code).expect("a valid status"),
            "scripted failure",
        ),
        Some(Fault::TooMany { retry_after_secs }) => {
            let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            response
                .headers_mut()
                .insert(RETRY_AFTER, retry_after_secs.into());
            response
        }
        Some(Fault::Unavailable { retry_after }) => {
            let mut response = message(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable");
            response.headers_mut().insert(
                RETRY_AFTER,
                retry_after.parse().expect("a valid header value"),
            );
            response
        }
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            counted()
        }
        Some(Fault::Malformed) => reply(StatusCode::OK, "{\"unclaimed_task_cou"),
        Some(Fault::MissingField) => reply(StatusCode::OK, r#"{"message":"ok"}"#),
        Some(Fault::Body(body)) => reply(StatusCode::OK, body),
    })
}
