//! A guard in front of the Lambda Runtime API, on loopback, for the
//! `lambda_runtime` crate (1.5.0, the newest): it takes an invocation's
//! request id and deadline from the answer to `invocation/next` with
//! `expect`, so an answer without them panics the bootstrap (exit 101), and
//! an answer whose other headers do not parse ends its run loop. Every
//! version published so far does this, so no pin avoids it; the guard
//! checks each answer before the crate sees it:
//!
//! - one it can use is passed on unchanged;
//! - one with a usable request id but a missing or malformed deadline (or
//!   another header the crate cannot parse) is failed at the Runtime API,
//!   `POST invocation/{id}/error`, as `RunnerScaler.MalformedInvocation`,
//!   and the guard asks for the next one;
//! - one without a usable request id (or not a 200) cannot be answered: it
//!   is logged, and the guard asks for the next one after a short wait.
//!
//! Every other request (responses, errors, init errors) is forwarded as it
//! is. `main` binds the guard's port and points `AWS_LAMBDA_RUNTIME_API` at
//! it before any thread starts ([`bind`]); [`serve`] runs it.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::time::Duration;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
const DEADLINE: &str = "lambda-runtime-deadline-ms";

/// The largest request or answer body passed through: Lambda's payloads
/// are at most 6 MB.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// The longest request id passed on (Lambda's are 36-character UUIDs).
const MAX_REQUEST_ID: usize = 256;

/// How long to wait before asking again after an answer that could not be
/// used or reported: an API that answers garbage at once must not be
/// polled in a hot loop.
const RETRY_AFTER_UNUSABLE: Duration = Duration::from_secs(1);

/// The guard's listener, bound before the runtime starts, and the Runtime
/// API it stands in front of.
pub struct Guard {
    listener: std::net::TcpListener,
    upstream: String,
}

/// Bind the guard on 127.0.0.1 and point `AWS_LAMBDA_RUNTIME_API` at it,
/// when that variable names the Runtime API. `None` when it does not, or
/// when the port cannot be bound (logged: the runtime then talks to the API
/// itself).
///
/// # Safety
///
/// Sets an environment variable: call it before any other thread exists.
pub unsafe fn bind() -> Option<Guard> {
    let upstream = std::env::var(super::lambda::RUNTIME_API_VAR)
        .ok()
        .filter(|v| !v.is_empty())?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener));
    let listener = match listener {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("warning: cannot start the Runtime API guard ({err}); invocations the Runtime API sends without a request id or deadline will stop the runtime");
            return None;
        }
    };
    let addr = listener.local_addr().ok()?;
    // SAFETY: the caller promises no other thread exists.
    unsafe { std::env::set_var(super::lambda::RUNTIME_API_VAR, addr.to_string()) };
    Some(Guard { listener, upstream })
}

/// Serve the guard until the process ends.
pub async fn serve(guard: Guard) {
    let listener = match tokio::net::TcpListener::from_std(guard.listener) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%err, "the Runtime API guard cannot listen");
            return;
        }
    };
    let proxy = Arc::new(Proxy {
        upstream: guard.upstream,
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let proxy = proxy.clone();
                async move { Ok::<_, std::convert::Infallible>(proxy.answer(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

struct Proxy {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A request or answer read whole: its head and its body.
type Whole<T> = (T, Bytes);

impl Proxy {
    /// The answer to one request of the runtime crate.
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) => return plain(StatusCode::PAYLOAD_TOO_LARGE, &err.to_string()),
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        if parts.method == Method::GET && path == NEXT {
            return self.next_usable(&parts.headers).await;
        }
        match self
            .forward(parts.method, &path, &parts.headers, body)
            .await
        {
            Ok((head, body)) => Response::from_parts(head, Full::new(body)),
            Err(err) => plain(StatusCode::BAD_GATEWAY, &err),
        }
    }

    /// The next invocation the runtime crate can use, failing or skipping
    /// the others.
    async fn next_usable(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        loop {
            let (head, body) = match self.forward(Method::GET, NEXT, headers, Bytes::new()).await {
                Ok(answer) => answer,
                Err(err) => return plain(StatusCode::BAD_GATEWAY, &err),
            };
            match check(head.status, &head.headers) {
                Ok(()) => return Response::from_parts(head, Full::new(body)),
                Err(Unusable::Reportable { request_id, why }) => {
                    tracing::error!(request_id = %request_id, why = %why, "the Runtime API sent an invocation that cannot be run; failing it");
                    self.fail(&request_id, &why).await;
                }
                Err(Unusable::Unanswerable(why)) => {
                    tracing::error!(why = %why, "the Runtime API sent an answer to invocation/next that cannot be run or answered; asking again");
                    tokio::time::sleep(RETRY_AFTER_UNUSABLE).await;
                }
            }
        }
    }

    /// Report the invocation `request_id` as failed.
    async fn fail(&self, request_id: &str, why: &str) {
        let body = serde_json::json!({
            "errorType": "RunnerScaler.MalformedInvocation",
            "errorMessage": format!("the Runtime API's invocation cannot be run: {why}"),
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            "lambda-runtime-function-error-type",
            hyper::header::HeaderValue::from_static("RunnerScaler.MalformedInvocation"),
        );
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        let path = format!("/2018-06-01/runtime/invocation/{request_id}/error");
        if let Err(err) = self
            .forward(Method::POST, &path, &headers, body.to_string().into())
            .await
        {
            tracing::error!(request_id = %request_id, %err, "cannot report the invocation as failed");
        }
    }

    /// `method path` sent to the Runtime API with `headers` and `body`, and
    /// its answer read whole.
    async fn forward(
        &self,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Whole<hyper::http::response::Parts>, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.upstream));
        for (name, value) in headers {
            if name != hyper::header::HOST {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(Full::new(body))
            .map_err(|err| format!("cannot forward to the Runtime API: {err}"))?;
        let answer = self
            .client
            .request(request)
            .await
            .map_err(|err| format!("the Runtime API cannot be reached: {err}"))?;
        let (head, body) = answer.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|err| format!("the Runtime API's answer could not be read: {err}"))?
            .to_bytes();
        Ok((head, body))
    }
}

/// Why an answer to `invocation/next` cannot go to the runtime crate.
#[derive(Debug, PartialEq, Eq)]
enum Unusable {
    /// It names an invocation, which can be failed.
    Reportable { request_id: String, why: String },
    /// It names none.
    Unanswerable(String),
}

/// Whether the runtime crate can run the invocation these are the status
/// and headers of: what it parses, parsed here first.
fn check(status: StatusCode, headers: &HeaderMap) -> Result<(), Unusable> {
    if status != StatusCode::OK {
        return Err(Unusable::Unanswerable(format!("status {status}")));
    }
    let request_id = match headers.get(REQUEST_ID).map(|v| v.to_str()) {
        None => return Err(Unusable::Unanswerable(format!("no {REQUEST_ID} header"))),
        Some(Err(_)) => {
            return Err(Unusable::Unanswerable(format!(
                "a {REQUEST_ID} header that is not text"
            )))
        }
        Some(Ok(id)) => id,
    };
    // It becomes part of the paths the answer is posted to.
    if request_id.is_empty()
        || request_id.len() > MAX_REQUEST_ID
        || !request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(Unusable::Unanswerable(format!(
            "a {REQUEST_ID} that cannot name an invocation: {}",
            crate::text::quoted(request_id)
        )));
    }
    let reportable = |why: String| Unusable::Reportable {
        request_id: request_id.to_string(),
        why,
    };
    let deadline = headers
        .get(DEADLINE)
        .map(|v| v.to_str().map(str::parse::<u64>));
    match deadline {
        None => return Err(reportable(format!("no {DEADLINE} header"))),
        Some(Ok(Ok(_))) => {}
        Some(_) => {
            return Err(reportable(format!(
                "a {DEADLINE} header that is not a number of milliseconds"
            )))
        }
    }
    // The rest of what the crate reads (client context, Cognito identity,
    // function ARN), read by the crate's own parser.
    lambda_runtime::Context::new(request_id, Default::default(), headers)
        .map(|_| ())
        .map_err(|err| reportable(format!("headers the runtime cannot read: {err}")))
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(message.to_string())))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_what_the_runtime_crate_can_parse_passes() {
        let good = [
            (REQUEST_ID, "8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
            (DEADLINE, "1542409706888"),
        ];
        assert_eq!(check(StatusCode::OK, &headers(&good)), Ok(()));
        let reportable = |why: &str| {
            Err(Unusable::Reportable {
                request_id: "r-1".into(),
                why: why.into(),
            })
        };
        assert_eq!(
            check(StatusCode::OK, &headers(&[(REQUEST_ID, "r-1")])),
            reportable("no lambda-runtime-deadline-ms header")
        );
        assert_eq!(
            check(
                StatusCode::OK,
                &headers(&[(REQUEST_ID, "r-1"), (DEADLINE, "soon")])
            ),
            reportable("a lambda-runtime-deadline-ms header that is not a number of milliseconds")
        );
        let bad_context = headers(&[
            (REQUEST_ID, "r-1"),
            (DEADLINE, "1"),
            ("lambda-runtime-client-context", "{not json"),
        ]);
        assert!(matches!(
            check(StatusCode::OK, &bad_context),
            Err(Unusable::Reportable { .. })
        ));
        for unanswerable in [
            headers(&[(DEADLINE, "1")]),
            headers(&[(REQUEST_ID, ""), (DEADLINE, "1")]),
            headers(&[(REQUEST_ID, "a/../b"), (DEADLINE, "1")]),
        ] {
            assert!(
                matches!(
                    check(StatusCode::OK, &unanswerable),
                    Err(Unusable::Unanswerable(_))
                ),
                "{unanswerable:?}"
            );
        }
        assert!(matches!(
            check(StatusCode::INTERNAL_SERVER_ERROR, &headers(&good)),
            Err(Unusable::Unanswerable(_))
        ));
    }
}
