//! A proxy in front of moto that refuses, as AWS's IAM does, every action a
//! role's policy does not allow: the answer a migrated deployment gets when
//! it keeps the original tool's role. moto's own IAM enforcement checks
//! Auto Scaling, but its refusals are not AWS's (XML for every service, no
//! resource and no reason in the message), so the tests would learn moto's
//! words, not AWS's.
//!
//! The refusals are AWS's documented error shapes: for the Query APIs (Auto
//! Scaling, STS, IAM), HTTP 403 and an `ErrorResponse` XML document with
//! code `AccessDenied`; for the JSON APIs (Secrets Manager, SSM), HTTP 400
//! and `{"__type": "AccessDeniedException", "Message": ...}`. The message is
//! AWS's: "User: ARN is not authorized to perform: ACTION [on resource:
//! RESOURCE] because no identity-based policy allows the ACTION action".
//! Allowed requests go to moto unchanged, and its answers come back unchanged.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The account moto uses.
pub const ACCOUNT: &str = "123456789012";
/// The role the original tool's set-up created, as its Lambda sees itself.
pub const ROLE: &str = "cci-runner-lambda-iam-role";
/// The principal of every refusal: the role, assumed by the function.
pub const PRINCIPAL: &str =
    "arn:aws:sts::123456789012:assumed-role/cci-runner-lambda-iam-role/cci-runner-lambda-function";
/// What the original tool's `lambda_iam.json` allows.
pub const ORIGINAL_ROLE: [&str; 2] = [
    "autoscaling:UpdateAutoScalingGroup",
    "secretsmanager:GetSecretValue",
];

struct Shared {
    upstream: String,
    allowed: HashSet<String>,
    client: reqwest::Client,
    /// Every action asked for, in order, and whether it was refused.
    seen: Mutex<Vec<(String, bool)>>,
}

/// The running proxy; stops when dropped.
pub struct RefusingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl RefusingProxy {
    /// A proxy to `upstream` (moto's endpoint) that allows only `allowed`
    /// actions (`service:Action`), as a role with that policy would be.
    pub async fn start(upstream: &str, allowed: &[&str]) -> RefusingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            allowed: allowed.iter().map(|a| a.to_string()).collect(),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            seen: Mutex::default(),
        });
        let server = tokio::spawn(super::serve_http(listener, shared.clone(), answer));
        RefusingProxy {
            addr,
            shared,
            server,
        }
    }

    /// Its URL, the `AWS_ENDPOINT_URL` of the code under test.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The actions refused so far, in order.
    pub fn refused(&self) -> Vec<String> {
        let seen = self.shared.seen.lock().unwrap();
        seen.iter()
            .filter(|(_, refused)| *refused)
            .map(|(action, _)| action.clone())
            .collect()
    }
}

impl Drop for RefusingProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// How the request is encoded, which decides how a refusal is.
enum Protocol {
    Query,
    Json,
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    // The SigV4 scope names the signing service and the region:
    // Credential=KEY/DATE/REGION/SERVICE/aws4_request.
    let authorization = header("authorization");
    let scope: Vec<&str> = authorization
        .split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .map(|credential| credential.split('/').collect())
        .unwrap_or_default();
    let region = scope.get(2).copied().unwrap_or("us-east-1").to_owned();
    let service = scope.get(3).copied().unwrap_or_default().to_owned();
    let target = header("x-amz-target");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (protocol, operation) = if let Some((_, op)) = target.split_once('.') {
        (Protocol::Json, op.to_owned())
    } else {
        (Protocol::Query, field("Action").unwrap_or_default())
    };
    let action = format!("{service}:{operation}");
    // AWS: "No permissions are required to perform this operation."
    let refused = !shared.allowed.contains(&action) && action != "sts:GetCallerIdentity";
    shared.seen.lock().unwrap().push((action.clone(), refused));
    if refused {
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let resource = match service.as_str() {
            "autoscaling" => field("AutoScalingGroupName")
                .or_else(|| field("Tags.member.1.ResourceId"))
                .filter(|_| operation != "DescribeAutoScalingGroups")
                .map(|group| {
                    format!(
                        "arn:aws:autoscaling:{region}:{ACCOUNT}:autoScalingGroup:\
                         6d9a8b9e-51e2-4c3b-9a1f-2c4f0e3d7a11:autoScalingGroupName/{group}"
                    )
                }),
            // Secrets Manager names the secret as it was asked for.
            "secretsmanager" => json["SecretId"].as_str().map(str::to_owned),
            "ssm" => json["Name"].as_str().map(|name| {
                format!(
                    "arn:aws:ssm:{region}:{ACCOUNT}:parameter/{}",
                    name.trim_start_matches('/')
                )
            }),
            _ => None,
        };
        let on = resource
            .map(|r| format!(" on resource: {r}"))
            .unwrap_or_default();
        let message = format!(
            "User: {PRINCIPAL} is not authorized to perform: {action}{on} because no \
             identity-based policy allows the {action} action"
        );
        return Ok(refusal(protocol, &service, &message));
    }
    Ok(forward(&shared, parts, body).await)
}

/// AWS's refusal, in the request's protocol.
fn refusal(protocol: Protocol, service: &str, message: &str) -> Response<Full<Bytes>> {
    let request_id = "8f4c2a7e-3b1d-4e6f-9a0b-1c2d3e4f5a6b";
    match protocol {
        Protocol::Query => {
            let namespace = match service {
                "autoscaling" => "http://autoscaling.amazonaws.com/doc/2011-01-01/",
                "sts" => "https://sts.amazonaws.com/doc/2011-06-15/",
                _ => "https://iam.amazonaws.com/doc/2010-05-08/",
            };
            let body = format!(
                "<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>Sender</Type>\n    \
                 <Code>AccessDenied</Code>\n    <Message>{}</Message>\n  </Error>\n  \
                 <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
                xml_escape(message)
            );
            Response::builder()
                .status(403)
                .header("content-type", "text/xml")
                .header("x-amzn-requestid", request_id)
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        }
        Protocol::Json => {
            let body = serde_json::json!({ "__type": "AccessDeniedException", "Message": message });
            Response::builder()
                .status(400)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amzn-requestid", request_id)
                .header("x-amzn-errortype", "AccessDeniedException:")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        }
    }
}

/// The request as moto gets it, and moto's answer as the client gets it.
async fn forward(
    shared: &Shared,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .client
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(err) => {
            return Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(format!("proxy: {err}"))))
                .unwrap()
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Full::new(bytes)).unwrap()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
