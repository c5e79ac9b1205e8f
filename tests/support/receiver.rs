//! A real HTTPS (or HTTP) receiver for drain tests: hyper and rustls, on loopback, recording
//! every request's headers and frames, answering with the statuses a test scripts (then 200).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One request received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: hyper::HeaderMap,
    pub path: String,
    /// The body's octet-counted frames, decompressed.
    pub frames: Vec<String>,
}

/// A receiver running on its own thread and runtime.
pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub script: Arc<Mutex<VecDeque<u16>>>,
    _runtime: tokio::runtime::Runtime,
}

fn frames_of(mut body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(sp) = body.iter().position(|&b| b == b' ') {
        let Ok(n) = std::str::from_utf8(&body[..sp])
            .unwrap_or("x")
            .parse::<usize>()
        else {
            out.push(format!("BAD FRAMING: {}", String::from_utf8_lossy(body)));
            break;
        };
        let frame = &body[sp + 1..(sp + 1 + n).min(body.len())];
        out.push(String::from_utf8_lossy(frame).into_owned());
        body = &body[(sp + 1 + n).min(body.len())..];
    }
    out
}

impl Receiver {
    /// Starts a receiver; TLS with `cert`/`key` PEM files when given.
    pub fn start(tls: Option<(&std::path::Path, &std::path::Path)>) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let acceptor = tls.map(|(cert, key)| {
            let config = logplex::tls_server_config(cert, key, &[b"http/1.1"]).expect("tls config");
            tokio_rustls::TlsAcceptor::from(config)
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (r, s) = (received.clone(), script.clone());
        runtime.spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (r, s, acceptor) = (r.clone(), s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (r, s) = (r.clone(), s.clone());
                            async move {
                                let headers = req.headers().clone();
                                let path = req.uri().to_string();
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let body =
                                    if headers.get("content-encoding").is_some_and(|v| v == "gzip")
                                    {
                                        let mut out = Vec::new();
                                        let _ = flate2::read::GzDecoder::new(&body[..])
                                            .read_to_end(&mut out);
                                        out
                                    } else {
                                        body.to_vec()
                                    };
                                r.lock().unwrap().push(Received {
                                    headers,
                                    path,
                                    frames: frames_of(&body),
                                });
                                let mut status = s.lock().unwrap().pop_front().unwrap_or(200);
                                // 1: answer 200, but only after 3 s (a slow receiver).
                                if status == 1 {
                                    tokio::time::sleep(Duration::from_secs(3)).await;
                                    status = 200;
                                }
                                let mut resp = Response::new(Full::new(Bytes::new()));
                                *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(socket), service)
                                .await;
                        }
                        Some(a) => {
                            if let Ok(stream) = a.accept(socket).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            received,
            script,
            _runtime: runtime,
        }
    }

    /// Answers the next requests with these statuses (then 200); `1` is a 200 after 3 s.
    pub fn answer(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    /// Waits until `check` holds on what was received (10 s at most).
    pub fn wait(&self, what: &str, check: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received.lock().unwrap().clone();
            if check(&got) {
                return got;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "receiver never {what}: {} requests",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
