//! The web process over real sockets: each endpoint asked with raw requests on 127.0.0.1.
//!
//! `/crash` is not tested here: it exits the process, which is the test binary.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// The longest any one read may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(5);

/// Starts the web process on a free port.
async fn start() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example_app::serve(listener));
    addr
}

async fn patiently<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// A raw HTTP/1.1 client on one connection.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = patiently("connect", TcpStream::connect(addr))
            .await
            .unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, raw: impl AsRef<[u8]>) {
        self.stream.write_all(raw.as_ref()).await.unwrap();
    }

    async fn request(&mut self, raw: impl AsRef<[u8]>) -> Response {
        self.send(raw).await;
        self.response().await
    }

    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0; 64 * 1024];
        let n = patiently("read", self.stream.read(&mut chunk))
            .await
            .unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads one response head: the response without its body.
    async fn head(&mut self) -> Response {
        loop {
            let mut headers = vec![httparse::EMPTY_HEADER; 1024];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = parsed.parse(&self.buf).unwrap() {
                let response = Response {
                    status: parsed.code.unwrap(),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8(h.value.to_vec()).unwrap(),
                            )
                        })
                        .collect(),
                    body: Vec::new(),
                };
                self.buf.drain(..len);
                return response;
            }
            assert!(
                self.fill().await,
                "the connection closed before a response head"
            );
        }
    }

    /// Reads one response to a non-HEAD request, its body by `Content-Length`, chunked or to
    /// the end of the stream.
    async fn response(&mut self) -> Response {
        let mut response = self.head().await;
        if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().unwrap();
            while self.buf.len() < length {
                assert!(self.fill().await, "the connection closed inside a body");
            }
            response.body = self.buf.drain(..length).collect();
        } else if response.header("transfer-encoding") == Some("chunked") {
            response.body = loop {
                if let Some((body, len)) = dechunk(&self.buf) {
                    self.buf.drain(..len);
                    break body;
                }
                assert!(
                    self.fill().await,
                    "the connection closed inside a chunked body"
                );
            };
        } else {
            response.body = self.read_to_end().await;
        }
        response
    }

    async fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    /// Whether the server closed the connection (with nothing more to read).
    async fn at_eof(&mut self) -> bool {
        self.read_to_end().await.is_empty()
    }
}

/// A complete chunked body at the start of `buf`: the body and the bytes it took.
fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&buf[at..line_end]).ok()?, 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            return (buf.get(at..at + 2)? == b"\r\n").then_some((body, at + 2));
        }
        body.extend_from_slice(buf.get(at..at + size)?);
        at += size + 2;
    }
}

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: app\r\n\r\n")
}

#[tokio::test]
async fn root_greets_from_the_dyno() {
    let addr = start().await;
    let response = Client::connect(addr).await.request(get("/")).await;
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".to_owned());
    let dyno = std::env::var("DYNO").unwrap_or_else(|_| "web.?".to_owned());
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), format!("{greeting} from {dyno}\n"));
    assert_eq!(response.header("server"), Some("example-app"));
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test]
async fn keep_alive_serves_requests_in_turn_and_pipelined() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    let first = client.request(get("/healthz")).await;
    assert_eq!((first.status, first.text()), (200, "ok"));
    assert_eq!(first.header("connection"), None);
    client
        .send(format!("{}{}", get("/healthz"), get("/nope")))
        .await;
    assert_eq!(client.response().await.status, 200);
    assert_eq!(client.response().await.status, 404);
    let last = client
        .request("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(last.header("connection"), Some("close"));
    assert!(client.at_eof().await);
}

#[tokio::test]
async fn http10_closes_unless_asked_to_keep_alive() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    let response = client.request("GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(
        (response.status, response.header("connection")),
        (200, Some("close"))
    );
    assert!(client.at_eof().await);

    let mut client = Client::connect(addr).await;
    let request = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert_eq!(
        client.request(request).await.header("connection"),
        Some("keep-alive")
    );
    assert_eq!(client.request(request).await.text(), "ok");
}

#[tokio::test]
async fn head_gets_the_headers_only() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    client.send("HEAD /healthz HTTP/1.1\r\n\r\n").await;
    let head = client.head().await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("2"))
    );
    // Had a body been sent, it would be read as the next response's start.
    assert_eq!(client.request(get("/healthz")).await.text(), "ok");

    client.send("HEAD /big HTTP/1.1\r\n\r\n").await;
    assert_eq!(
        client.head().await.header("content-length"),
        Some("67108864")
    );
    assert_eq!(client.request(get("/healthz")).await.text(), "ok");
}

#[tokio::test]
async fn echo_returns_the_body() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    let response = client
        .request("POST /echo HTTP/1.1\r\nContent-Type: text/x-test\r\nContent-Length: 11\r\n\r\nhello world")
        .await;
    assert_eq!((response.status, response.text()), (200, "hello world"));
    assert_eq!(response.header("content-type"), Some("text/x-test"));
}

#[tokio::test]
async fn echo_decodes_a_chunked_body_sent_in_pieces() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    client
        .send("PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.send("lo\r\n6;ext=1\r\n world\r").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.send("\n0\r\nX-Trailer: 1\r\n\r\n").await;
    let response = client.response().await;
    assert_eq!((response.status, response.text()), (200, "hello world"));
    assert_eq!(client.request(get("/healthz")).await.text(), "ok");
}

#[tokio::test]
async fn echo_with_headers_shows_what_arrived_as_json() {
    let addr = start().await;
    let request = "GET /echo?headers&x=1 HTTP/1.1\r\nHost: app\r\nX-Request-Id: abc\r\n\
                   X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\nVia: 1.1 router\r\n\r\n";
    let response = Client::connect(addr).await.request(request).await;
    assert_eq!(response.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(json["method"], "GET");
    assert_eq!(json["path"], "/echo");
    assert_eq!(json["query"], "headers&x=1");
    assert_eq!(json["headers"]["host"], "app");
    assert_eq!(json["headers"]["x-request-id"], "abc");
    assert_eq!(json["headers"]["x-forwarded-for"], "10.0.0.1, 10.0.0.2");
    assert_eq!(json["headers"]["via"], "1.1 router");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    client
        .send("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await;
    let interim = client.head().await;
    assert_eq!(interim.status, 100);
    client.send("body").await;
    let response = client.response().await;
    assert_eq!((response.status, response.text()), (200, "body"));
}

#[tokio::test]
async fn a_bad_request_head_gets_400_and_the_connection_closes() {
    let addr = start().await;
    let too_many = format!("GET / HTTP/1.1\r\n{}\r\n", "a: b\r\n".repeat(101));
    let too_long = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(64 * 1024));
    let ambiguous =
        "POST /echo HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for bad in [
        "this is not http\r\n\r\n",
        &too_many,
        &too_long,
        ambiguous,
        "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    ] {
        let mut client = Client::connect(addr).await;
        let response = client.request(bad).await;
        assert_eq!(response.status, 400, "{:?}", &bad[..bad.len().min(40)]);
        assert_eq!(response.header("connection"), Some("close"));
        assert!(client.at_eof().await);
    }
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    let response = client
        .request("POST /echo HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n")
        .await;
    assert_eq!(response.status, 413);
}

#[tokio::test]
async fn slow_answers_after_its_wait() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    let started = Instant::now();
    let response = client.request(get("/slow?ms=150")).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!((response.status, response.text()), (200, "slept 150 ms"));
    let bad = client.request(get("/slow?ms=soon")).await;
    assert_eq!((bad.status, bad.text()), (400, "ms must be a whole number"));
}

#[tokio::test]
async fn drip_streams_chunks_apart() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    let started = Instant::now();
    client.send(get("/drip?chunks=3&ms=150")).await;
    let head = client.head().await;
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    // The first chunk comes at once, long before the body ends.
    while dechunk_first(&client.buf).is_none() {
        assert!(client.fill().await);
    }
    assert_eq!(dechunk_first(&client.buf), Some(&b"chunk 0\n"[..]));
    assert_eq!(dechunk(&client.buf), None);
    let body = loop {
        if let Some((body, _)) = dechunk(&client.buf) {
            break body;
        }
        assert!(client.fill().await);
    };
    assert_eq!(body, b"chunk 0\nchunk 1\nchunk 2\n");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// The data of the first chunk in `buf`, once it is all there.
fn dechunk_first(buf: &[u8]) -> Option<&[u8]> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let size = usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).ok()?, 16).ok()?;
    buf.get(line_end + 2..line_end + 2 + size)
}

#[tokio::test]
async fn drip_to_http10_runs_to_the_close() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    let response = client
        .request("GET /drip?chunks=2&ms=0 HTTP/1.0\r\n\r\n")
        .await;
    assert_eq!(response.header("transfer-encoding"), None);
    assert_eq!(response.text(), "chunk 0\nchunk 1\n");
}

#[tokio::test]
async fn stall_body_sends_10_of_100_bytes_then_nothing() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    client.send(get("/stall-body")).await;
    let head = client.head().await;
    assert_eq!(head.header("content-length"), Some("100"));
    while client.buf.len() < 10 {
        assert!(client.fill().await);
    }
    assert_eq!(client.buf, b"0123456789");
    let mut more = [0; 16];
    let waited =
        tokio::time::timeout(Duration::from_millis(300), client.stream.read(&mut more)).await;
    assert!(waited.is_err(), "expected silence, got {waited:?}");
}

#[tokio::test]
async fn big_streams_its_whole_length() {
    let addr = start().await;
    let response = Client::connect(addr).await.request(get("/big?mb=2")).await;
    assert_eq!(response.header("content-length"), Some("2097152"));
    assert_eq!(response.body.len(), 2 * 1024 * 1024);
    assert_eq!(&response.body[..3], b"abc");
}

#[tokio::test]
async fn close_ends_the_connection_without_a_response() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    client.send(get("/close")).await;
    assert!(client.at_eof().await);
    // The process is still serving.
    assert_eq!(
        Client::connect(addr)
            .await
            .request(get("/healthz"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn garbage_is_not_http_and_closes() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    client.send(get("/garbage")).await;
    assert_eq!(client.read_to_end().await, b"this is not http\r\n\r\n");
}

#[tokio::test]
async fn huge_header_is_600_kib() {
    let addr = start().await;
    let response = Client::connect(addr)
        .await
        .request(get("/huge-header"))
        .await;
    let huge = response.header("x-huge").unwrap();
    assert_eq!(huge.len(), 600 * 1024);
    assert!(huge.bytes().all(|b| b == b'a'));
}

#[tokio::test]
async fn headers_many_sends_n_headers() {
    let addr = start().await;
    let response = Client::connect(addr)
        .await
        .request(get("/headers-many?n=50"))
        .await;
    let numbered: Vec<_> = response
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-h-"))
        .collect();
    assert_eq!(numbered.len(), 50);
    assert_eq!(response.header("x-h-49"), Some("49"));
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    let missing = client.request(get("/nope")).await;
    assert_eq!((missing.status, missing.text()), (404, "not found"));
    let posted = client
        .request("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(
        (posted.status, posted.header("allow")),
        (405, Some("GET, HEAD"))
    );
}

#[tokio::test]
async fn unlisten_refuses_later_connects_and_keeps_open_connections() {
    let addr = start().await;
    let mut open = Client::connect(addr).await;
    assert_eq!(open.request(get("/healthz")).await.status, 200);

    let mut client = Client::connect(addr).await;
    let response = client.request(get("/unlisten")).await;
    assert_eq!(
        (response.status, response.text()),
        (200, "not listening any more")
    );
    assert_eq!(response.header("connection"), Some("close"));

    let refused = TcpStream::connect(addr).await.map(drop);
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(open.request(get("/healthz")).await.text(), "ok");
}

#[tokio::test]
async fn stall_accept_makes_later_connects_hang() {
    let addr = start().await;
    let mut open = Client::connect(addr).await;
    assert_eq!(open.request(get("/healthz")).await.status, 200);

    let response = Client::connect(addr)
        .await
        .request(get("/stall-accept"))
        .await;
    assert_eq!(
        (response.status, response.text()),
        (200, "not accepting any more")
    );

    let connect = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await;
    assert!(connect.is_err(), "the connect should hang, got {connect:?}");
    assert_eq!(open.request(get("/healthz")).await.text(), "ok");
}

#[tokio::test]
async fn websocket_echoes_text_and_binary() {
    let addr = start().await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        patiently("echo", ws.next()).await.unwrap().unwrap(),
        Message::text("hello")
    );
    ws.send(Message::binary(vec![0, 1, 2])).await.unwrap();
    assert_eq!(
        patiently("echo", ws.next()).await.unwrap().unwrap(),
        Message::binary(vec![0, 1, 2])
    );
    ws.close(None).await.unwrap();
    let closed = patiently("close", ws.next()).await;
    assert!(
        matches!(closed, Some(Ok(Message::Close(_))) | None),
        "{closed:?}"
    );
}

#[tokio::test]
async fn websocket_frames_sent_with_the_handshake_are_not_lost() {
    let addr = start().await;
    let mut client = Client::connect(addr).await;
    let upgrade = "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    // A masked text frame "hi", in the same write as the handshake.
    let mask = [1, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 2];
    frame.extend_from_slice(&mask);
    frame.extend(b"hi".iter().zip(mask).map(|(b, m)| b ^ m));
    client.send([upgrade.as_bytes(), &frame].concat()).await;
    let head = client.head().await;
    assert_eq!(head.status, 101);
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    while client.buf.len() < 4 {
        assert!(client.fill().await);
    }
    assert_eq!(client.buf, [0x81, 2, b'h', b'i']);
}

#[tokio::test]
async fn ws_without_an_upgrade_is_426() {
    let addr = start().await;
    let response = Client::connect(addr).await.request(get("/ws")).await;
    assert_eq!(
        (response.status, response.header("upgrade")),
        (426, Some("websocket"))
    );
}
