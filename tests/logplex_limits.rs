//! The router's listeners and API under exhaustion attacks (issue 10), each against the real
//! binary with small limits given as flags: bodies that never finish, idle and capped API
//! connections, log sessions without end, unauthenticated syslog sockets, one address taking
//! every connection; and the smaller ones (an inexact Content-Type, a `logplex_url` built from
//! the client's `Host`, an attacker's `Logplex-Msg-Count` added to counters). Each limit is
//! answered with a status and a body naming it, and counted in `/metrics`.

mod support;

use support::{Router, TempDir, frame};

/// The value of the `/metrics` series that starts with `series` (name and labels), if any.
fn metric(router: &Router, series: &str) -> Option<u64> {
    let text = router.curl(&["/metrics"]).1;
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn post_logs(
    router: &Router,
    token: &str,
    content_type: &str,
    extra: &[&str],
    body: &[u8],
) -> (u16, String) {
    let path = std::env::temp_dir().join(format!(
        "paas-limits-{}-{}-{}",
        std::process::id(),
        body.len(),
        extra.len()
    ));
    std::fs::write(&path, body).unwrap();
    let data = format!("@{}", path.display());
    let auth = format!("token:{token}");
    let content_type = format!("Content-Type: {content_type}");
    let mut args = vec!["-u", &auth, "-H", &content_type, "--data-binary", &data];
    args.extend_from_slice(extra);
    args.push("/logs");
    let r = router.curl_as("", &args);
    let _ = std::fs::remove_file(&path);
    r
}

#[test]
fn the_content_type_must_be_logplex_1_exactly() {
    let dir = TempDir::new("content-type");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let body = frame(&token, "web.1", "hi");
    for wrong in [
        "application/logplex-1evil",
        "application/logplex-10",
        "text/plain",
    ] {
        let (s, b) = post_logs(&router, &token, wrong, &[], &body);
        assert_eq!(s, 415, "{wrong}: {b}");
    }
    for right in [
        "application/logplex-1",
        "Application/Logplex-1; charset=utf-8",
        "application/logplex-1 ;x=y",
    ] {
        let (s, b) = post_logs(&router, &token, right, &[], &body);
        assert_eq!(s, 204, "{right}: {b}");
    }
    router.wait_accepted("shop", 3);
}

#[test]
fn a_huge_logplex_msg_count_does_not_inflate_counters() {
    let dir = TempDir::new("msg-count");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let huge = ["-H", "Logplex-Msg-Count: 18446744073709551615"];
    let gzip = [&huge[..], &["-H", "Content-Encoding: gzip"]].concat();
    for _ in 0..2 {
        let (s, b) = post_logs(&router, &token, "application/logplex-1", &gzip, b"not gzip");
        assert_eq!(s, 400, "{b}");
    }
    let (s, b) = post_logs(
        &router,
        &token,
        "application/logplex-1",
        &huge,
        &vec![b'7'; 5 << 20],
    );
    assert_eq!(s, 413, "{b}");
    let stats = router.stats("shop");
    assert_eq!(stats["rejected"]["malformed"], 2, "{stats}");
    assert_eq!(stats["rejected"]["body_too_large"], 1, "{stats}");
    assert_eq!(
        metric(
            &router,
            "logplex_lines_rejected_total{app=\"shop\",reason=\"malformed\"}"
        ),
        Some(2)
    );
}
