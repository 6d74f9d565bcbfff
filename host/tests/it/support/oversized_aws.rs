//! A stand-in AWS endpoint whose every answer is endless: it answers any
//! request with HTTP 200 and streams up to 1 GiB of garbage, either after a
//! `Content-Length` that says so or chunked, without one. It counts the
//! requests (by their `Action`) and the bytes it got out, so a test can tell
//! how much of the answer the client took before it stopped reading.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the stand-in sends.
pub const ANSWER_SIZE: u64 = 1 << 30;
/// One write's worth of garbage.
const CHUNK: usize = 64 * 1024;

/// How the answer's length is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: 1073741824`.
    ContentLength,
    /// `Transfer-Encoding: chunked`, no length.
    Chunked,
}

/// The running stand-in; it stops when dropped.
pub struct OversizedAws {
    addr: std::net::SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Seen {
    actions: Mutex<Vec<String>>,
    sent: AtomicU64,
}

impl OversizedAws {
    /// Listens on 127.0.0.1 at a port the system picks.
    pub async fn start(framing: Framing) -> OversizedAws {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, framing, shared.clone()));
            }
        });
        OversizedAws { addr, seen, task }
    }

    /// Its URL, for `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `Action` of each request received, in order.
    pub fn actions(&self) -> Vec<String> {
        self.seen.actions.lock().unwrap().clone()
    }

    /// The bytes of answer body written to the sockets, all answers together.
    pub fn sent(&self) -> u64 {
        self.seen.sent.load(Ordering::SeqCst)
    }
}

impl Drop for OversizedAws {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (headers and a `Content-Length` body), then streams
/// the answer until it is all sent or the client goes away.
async fn answer(mut stream: TcpStream, framing: Framing, seen: Arc<Seen>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let body_start = loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < body_start + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let form = String::from_utf8_lossy(&request[body_start..]);
    let action = url::form_urlencoded::parse(form.as_bytes())
        .find(|(key, _)| key == "Action")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    seen.actions.lock().unwrap().push(action);

    let head = match framing {
        Framing::ContentLength => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {ANSWER_SIZE}\r\n\r\n"
        ),
        Framing::Chunked => {
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_owned()
        }
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let garbage = vec![b'x'; CHUNK];
    let chunk_head = format!("{CHUNK:x}\r\n");
    let mut sent = 0;
    while sent < ANSWER_SIZE {
        let written = match framing {
            Framing::ContentLength => stream.write_all(&garbage).await,
            Framing::Chunked => {
                let mut framed = Vec::with_capacity(CHUNK + 16);
                framed.extend_from_slice(chunk_head.as_bytes());
                framed.extend_from_slice(&garbage);
                framed.extend_from_slice(b"\r\n");
                stream.write_all(&framed).await
            }
        };
        if written.is_err() {
            return;
        }
        sent += CHUNK as u64;
        seen.sent.fetch_add(CHUNK as u64, Ordering::SeqCst);
    }
    if framing == Framing::Chunked {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
}
