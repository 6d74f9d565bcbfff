//! A fake of CircleCI's Usage API on loopback, which also serves the export
//! files as the pre-signed download URLs would: `POST
//! /api/v2/organizations/{org}/usage_export_job` (refused with 429 and
//! `Retry-After` as often as scripted first), `GET .../{id}` (`processing`
//! as often as scripted, then `completed` with a URL per file), `GET
//! /downloads/{name}?X-Amz-Signature=...`. It checks the token on the API
//! and records every request, so a test can tell that downloads carry no
//! token and that polls keep their distance. Runs until dropped.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::task::JoinHandle;

/// What the fake is told to do.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// POSTs answered 429 with `Retry-After: 1` before one is accepted.
    pub posts_throttled: u32,
    /// GETs of a job answered `processing` before it is `completed`.
    pub polls_processing: u32,
    /// The job ends `failed` instead of `completed`.
    pub fails: bool,
    /// The export's files: name and bytes.
    pub files: Vec<(String, Vec<u8>)>,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The `Circle-Token` header, if any.
    pub token: Option<String>,
    pub body: String,
    pub at: Instant,
}

struct Shared {
    token: String,
    script: Mutex<Script>,
    polls: Mutex<u32>,
    received: Mutex<Vec<Received>>,
    addr: SocketAddr,
}

/// The running fake.
pub struct FakeUsageApi {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeUsageApi {
    /// Serve on 127.0.0.1 on a port the OS picks, accepting only `token`.
    pub async fn start(token: &str, script: Script) -> FakeUsageApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            token: token.to_string(),
            script: Mutex::new(script),
            polls: Mutex::new(0),
            received: Mutex::default(),
            addr,
        });
        let server = tokio::spawn(super::serve_http(listener, shared.clone(), answer));
        FakeUsageApi { shared, server }
    }

    /// The API's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }
}

impl Drop for FakeUsageApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let token = request
        .headers()
        .get("circle-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    shared.received.lock().unwrap().push(Received {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        token: token.clone(),
        body: body.clone(),
        at: Instant::now(),
    });

    if let Some(name) = path.strip_prefix("/downloads/") {
        // A pre-signed URL: its signature is in the query, no token.
        if !query.contains("X-Amz-Signature=") {
            return Ok(json(
                StatusCode::FORBIDDEN,
                serde_json::json!({"message": "no signature"}),
            ));
        }
        let script = shared.script.lock().unwrap();
        return Ok(match script.files.iter().find(|(n, _)| n == name) {
            Some((_, bytes)) => Response::builder()
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(Bytes::from(bytes.clone())))
                .unwrap(),
            None => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"message": "NoSuchKey"}),
            ),
        });
    }
    if token.as_deref() != Some(shared.token.as_str()) {
        return Ok(json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"message": "You must log in first."}),
        ));
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::POST, ["api", "v2", "organizations", _, "usage_export_job"]) => {
            {
                let mut script = shared.script.lock().unwrap();
                if script.posts_throttled > 0 {
                    script.posts_throttled -= 1;
                    let mut response = json(
                        StatusCode::TOO_MANY_REQUESTS,
                        serde_json::json!({"message": "Rate limit exceeded"}),
                    );
                    response.headers_mut().insert(RETRY_AFTER, 1.into());
                    return Ok(response);
                }
            }
            let window: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let (Some(start), Some(end)) = (
                window["start"]
                    .as_str()
                    .and_then(|s| s.parse::<jiff::Timestamp>().ok()),
                window["end"]
                    .as_str()
                    .and_then(|s| s.parse::<jiff::Timestamp>().ok()),
            ) else {
                return Ok(json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"message": "start and end are required"}),
                ));
            };
            if end.duration_since(start).as_hours() > 32 * 24 {
                return Ok(json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"message": "The date range must not exceed 32 days"}),
                ));
            }
            Ok(json(
                StatusCode::CREATED,
                serde_json::json!({
                    "usage_export_job_id": "e8235eed-f121-4ae3-9c72-2719d6572818",
                    "state": "created",
                    "start": start.to_string(),
                    "end": end.to_string(),
                    "download_urls": [],
                }),
            ))
        }
        (Method::GET, ["api", "v2", "organizations", _, "usage_export_job", id]) => {
            let script = shared.script.lock().unwrap();
            let mut polls = shared.polls.lock().unwrap();
            *polls += 1;
            if *polls <= script.polls_processing {
                return Ok(json(
                    StatusCode::OK,
                    serde_json::json!({"usage_export_job_id": id, "state": "processing", "download_urls": []}),
                ));
            }
            if script.fails {
                return Ok(json(
                    StatusCode::OK,
                    serde_json::json!({"usage_export_job_id": id, "state": "failed", "error_reason": "query timed out"}),
                ));
            }
            let urls: Vec<String> = script
                .files
                .iter()
                .map(|(name, _)| {
                    format!(
                        "http://{}/downloads/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=5ec2e7",
                        shared.addr
                    )
                })
                .collect();
            Ok(json(
                StatusCode::OK,
                serde_json::json!({"usage_export_job_id": id, "state": "completed", "download_urls": urls}),
            ))
        }
        _ => Ok(json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"message": "Not found"}),
        )),
    }
}
