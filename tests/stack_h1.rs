//! The proxy's own HTTP/1.1 forwarding path, end to end against real dynos: the example app,
//! and a dyno written to answer in the ways it does not (`fixtures/odd_backend.py`: chunked
//! with a trailer, delimited by its close, an interim `103`, an answer before the request body
//! is read, a kept-alive connection it closes soon after). Each response reaches curl or a raw
//! socket whole and framed for it, and each request gets its one line.

mod support;

use std::process::Command;
use std::time::Duration;

use support::dynos::{curl, example_app, exchange, odd_backend, odd_backend_with};
use support::{lines_of, proxy_addr};

fn request_id(tag: &str) -> String {
    format!("h1-{tag}-{:0>24}", std::process::id())
}

#[test]
fn pipelined_requests_are_answered_in_order_and_heads_end_to_end() {
    let (_dir, up) = odd_backend("h1-pipeline");
    let answer = exchange(
        &up,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /c HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 4, "{answer}");
    let a = answer.find("GET /a request").expect("/a");
    let c = answer.find("GET /c request").expect("/c");
    let d = answer.find("GET /d request").expect("/d");
    assert!(a < c && c < d, "{answer}");
    // The HEAD's answer has its length and no body.
    assert!(!answer.contains("HEAD /b request"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}

#[test]
fn every_framing_of_a_response_reaches_the_client_whole() {
    let (_dir, up) = odd_backend("h1-framing");
    // Chunked, passed on to an HTTP/1.1 client as chunks (its trailer too); decoded for an
    // HTTP/1.0 one, which is told the connection closes.
    let id = request_id("chunked");
    assert_eq!(
        curl(&up, "/chunked", &["-H", &format!("X-Request-Id: {id}")]),
        ("200".into(), "first,second,third".into())
    );
    let f = &lines_of(&up, &id)[0];
    assert_eq!(
        (f["status"].as_str(), f["bytes"].as_str()),
        ("200", "18"),
        "{f:?}"
    );
    let raw = exchange(
        &up,
        b"GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.contains("transfer-encoding: chunked\r\n"), "{raw}");
    assert!(
        raw.ends_with("5\r\nthird\r\n0\r\nX-Sum: 3\r\n\r\n"),
        "{raw}"
    );
    let old = exchange(&up, b"GET /chunked HTTP/1.0\r\n\r\n");
    assert!(old.contains("connection: close\r\n"), "{old}");
    assert!(old.ends_with("\r\n\r\nfirst,second,third"), "{old}");

    // Delimited by the dyno's close: chunked for an HTTP/1.1 client, whose connection stays
    // open for the next request.
    let both = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "[%{num_connects}]"])
        .arg(format!("http://{}/until-close", proxy_addr(&up)))
        .arg(format!("http://{}/after", proxy_addr(&up)))
        .output()
        .expect("curl");
    let both = String::from_utf8_lossy(&both.stdout);
    assert!(
        both.starts_with("until the close[1]GET /after request 1\n[0]"),
        "{both}"
    );
    let raw = exchange(
        &up,
        b"GET /until-close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.contains("transfer-encoding: chunked\r\n"), "{raw}");
    assert!(raw.ends_with("0\r\n\r\n"), "{raw}");

    // An interim response is not passed on; the final one is.
    assert_eq!(curl(&up, "/interim", &[]), ("200".into(), "final".into()));
    let raw = exchange(
        &up,
        b"GET /interim HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(!raw.contains("103"), "{raw}");
}

#[test]
fn a_dyno_answering_before_the_body_is_sent_is_passed_on_and_the_connection_closed() {
    let (dir, up) = odd_backend("h1-early");
    let body = dir.0.join("body");
    std::fs::write(&body, vec![b'a'; 4 << 20]).expect("body");
    let id = request_id("early");
    let (status, text) = curl(
        &up,
        "/early",
        &[
            "--data-binary",
            &format!("@{}", body.display()),
            "-H",
            &format!("X-Request-Id: {id}"),
        ],
    );
    assert_eq!((status.as_str(), text.as_str()), ("413", "too big\n"));
    let lines = lines_of(&up, &id);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], "413", "{lines:?}");
    assert!(!lines[0].contains_key("code"), "{lines:?}");
    // The dyno serves on.
    assert_eq!(curl(&up, "/next", &[]).0, "200");
}

#[test]
fn a_pooled_connection_the_dyno_closed_is_not_used() {
    // One proxy thread: one pool, which the requests share.
    let (_dir, up) = odd_backend_with("h1-stale", &["--proxy-threads", "1"]);
    assert_eq!(
        curl(&up, "/short-lived", &[]),
        ("200".into(), "brief\n".into())
    );
    // The dyno closes that connection 200 ms later; the next request goes on a new one (its
    // first request) and is no H13.
    std::thread::sleep(Duration::from_millis(500));
    let id = request_id("stale");
    let (status, body) = curl(&up, "/after", &["-H", &format!("X-Request-Id: {id}")]);
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("200", "GET /after request 1\n")
    );
    let f = &lines_of(&up, &id)[0];
    assert_eq!(f["status"], "200", "{f:?}");
    assert!(!f.contains_key("code"), "{f:?}");
}

#[test]
fn bodies_chunked_or_awaiting_100_continue_reach_the_dyno_whole() {
    let (dir, up) = example_app("h1-bodies", &[]);
    let body = dir.0.join("body");
    let data: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&body, &data).expect("body");
    let file = format!("@{}", body.display());
    let out = dir.0.join("out");
    for headers in [
        &["-H", "Transfer-Encoding: chunked"][..],
        &["-H", "Expect: 100-continue"][..],
    ] {
        let (status, _) = curl(
            &up,
            "/echo",
            &[
                &["--data-binary", &file, "-o", &out.display().to_string()],
                headers,
            ]
            .concat(),
        );
        assert_eq!(status, "200", "{headers:?}");
        let echoed = std::fs::read(&out).expect("echoed");
        assert!(echoed == data, "{headers:?}: {} bytes echoed", echoed.len());
    }
    // A chunked body a parser could read two ways is refused, and no dyno sees it.
    let answer = exchange(
        &up,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[test]
fn http2_with_prior_knowledge_is_served_by_hyper() {
    let (_dir, up) = example_app("h1-h2c", &[]);
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            "--http2-prior-knowledge",
            "-w",
            "[%{http_version}]",
        ])
        .arg(format!("http://{}/", proxy_addr(&up)))
        .output()
        .expect("curl");
    let out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out, "hello from web.1\n[2]");
}

#[test]
fn the_hyper_path_serves_when_asked() {
    let (_dir, up) = example_app("h1-hyper", &["--proxy-hyper"]);
    let id = request_id("hyper");
    let (status, body) = curl(&up, "/", &["-H", &format!("X-Request-Id: {id}")]);
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("200", "hello from web.1\n")
    );
    let f = &lines_of(&up, &id)[0];
    assert_eq!(
        (f["at"].as_str(), f["dyno"].as_str()),
        ("info", "web.1"),
        "{f:?}"
    );
}

#[test]
fn a_dyno_s_head_past_the_limits_is_h17_and_the_proxy_carries_on() {
    let (_dir, up) = example_app("h1-hostile-dyno", &[]);
    for (tag, path) in [("huge", "/huge-header"), ("many", "/headers-many?n=500")] {
        let id = request_id(tag);
        let (status, body) = curl(&up, path, &["-H", &format!("X-Request-Id: {id}")]);
        assert_eq!(status, "503", "{tag}: {body}");
        assert!(body.contains("Bad HTTP response (H17)"), "{tag}: {body}");
        let lines = lines_of(&up, &id);
        assert_eq!(lines.len(), 1, "{tag}: {lines:?}");
        assert_eq!(lines[0]["code"], "H17", "{tag}: {lines:?}");
        assert_eq!(lines[0]["dyno"], "web.1", "{tag}: {lines:?}");
    }
    assert_eq!(
        curl(&up, "/", &[]),
        ("200".into(), "hello from web.1\n".into())
    );
}
