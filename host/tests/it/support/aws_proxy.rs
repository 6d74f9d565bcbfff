//! A proxy on loopback in front of moto that loses AWS's answers to writes:
//! every request reaches moto (so a write is made), and the answer to a
//! write is passed back, never sent (the client times out), or replaced by
//! a closed connection — the outcomes a client cannot tell from a write
//! that was not made. Runs until dropped.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What becomes of the answer to a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Passed back as moto gave it.
    Pass,
    /// Never sent: the connection stays open and silent.
    Hang,
    /// The connection is closed instead.
    Drop,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    answer: Mutex<Answer>,
    writes: AtomicUsize,
}

/// The running proxy. Dropping it stops it and its connections.
pub struct AwsProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// The Auto Scaling calls that change a group (the query protocol's
/// `Action` in the form body).
const WRITES: [&str; 4] = [
    "Action=SetDesiredCapacity",
    "Action=UpdateAutoScalingGroup",
    "Action=CreateOrUpdateTags",
    "Action=DeleteTags",
];

impl AwsProxy {
    /// A proxy to `upstream` (moto's endpoint) on 127.0.0.1, on a port the
    /// OS picks, answering writes as `answer` says.
    pub async fn start(upstream: &str, answer: Answer) -> AwsProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            answer: Mutex::new(answer),
            writes: AtomicUsize::new(0),
        });
        // An error from `forward` closes the connection: `Answer::Drop`.
        let server = tokio::spawn(super::serve_http(listener, shared.clone(), forward));
        AwsProxy {
            addr,
            shared,
            server,
        }
    }

    /// The endpoint URL to give the client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, answer writes as `answer` says.
    pub fn answer(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = answer;
    }

    /// Writes that reached moto through the proxy.
    pub fn writes(&self) -> usize {
        self.shared.writes.load(Ordering::SeqCst)
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    let write = WRITES.iter().any(|action| text.contains(action));
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = shared
        .client
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body.clone());
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.map_err(std::io::Error::other)?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.map_err(std::io::Error::other)?;
    if write {
        shared.writes.fetch_add(1, Ordering::SeqCst);
        let lost = *shared.answer.lock().unwrap();
        match lost {
            Answer::Pass => {}
            Answer::Hang => std::future::pending::<()>().await,
            Answer::Drop => return Err(std::io::Error::other("answer dropped")),
        }
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if name != hyper::header::TRANSFER_ENCODING
            && name != hyper::header::CONTENT_LENGTH
            && name != hyper::header::CONNECTION
        {
            response = response.header(name, value);
        }
    }
    Ok(response.body(Full::new(bytes)).expect("a valid response"))
}
