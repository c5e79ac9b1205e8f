//! Ingest end to end: the real router, real senders (raw sockets, `logger`, curl), lines read
//! back with the real `paas logs`.

mod support;

use std::io::Write;
use std::process::Command;

use support::{Router, TempDir, frame, frames, send};

#[test]
fn syslog_tcp_octet_counted_and_newline_frames_reach_history() {
    let dir = TempDir::new("tcp");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let mut conn = router.connect();
    send(
        &mut conn,
        &frame(&token, "web.1", "at=info method=GET status=200"),
    );
    // A newline-ended frame on the same connection, framing detected per frame.
    send(
        &mut conn,
        format!("<190>1 2026-11-21T12:00:01+00:00 host {token} worker.1 - job done\n").as_bytes(),
    );
    drop(conn);
    router.wait_accepted("shop", 2);
    assert_eq!(
        router.history("shop", &[]),
        [
            "2026-11-21T12:00:00.123456+00:00 app[web.1]: at=info method=GET status=200",
            "2026-11-21T12:00:01.000000+00:00 app[worker.1]: job done",
        ]
    );
}

#[test]
fn logger_ships_with_nothing_but_configuration() {
    let dir = TempDir::new("logger");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let port = router.syslog.port().to_string();
    for framing in [&["--octet-count"][..], &[][..]] {
        let status = Command::new("logger")
            .args(["--tcp", "-n", "127.0.0.1", "-P", &port, "-t", &token])
            .args(framing)
            .arg(format!("at=info framing={}", framing.len()))
            .status()
            .expect("run logger (bsdutils)");
        assert!(status.success());
    }
    router.wait_accepted("shop", 2);
    let lines = router.history("shop", &["--source", "app"]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    // Two connections: their lines may be accepted in either order.
    for framing in ["framing=1", "framing=0"] {
        let want = format!(": at=info {framing}");
        assert!(lines.iter().any(|l| l.ends_with(&want)), "{lines:?}");
    }
    assert!(
        lines.iter().all(|l| l.contains(" app")),
        "the token became its name: {lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains(&token)), "{lines:?}");
}

#[test]
fn udp_datagrams_are_one_message_each() {
    let dir = TempDir::new("udp");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    router
        .send_udp(format!("<190>1 2026-11-21T12:00:00Z host {token} web.1 - over udp").as_bytes());
    router.send_udp(b"<190>1 2026-11-21T12:00:00Z host t.unknown web.1 - nobody's");
    router.send_udp(b"\x00\x01 garbage");
    router.wait_accepted("shop", 1);
    assert_eq!(
        router.history("shop", &[]),
        ["2026-11-21T12:00:00.000000+00:00 app[web.1]: over udp"]
    );
    let metrics = router.curl(&["/metrics"]).1;
    assert!(
        metrics.contains("logplex_connections_accepted_total{listener=\"udp\"} 3"),
        "{metrics}"
    );
}

#[test]
fn tokens_name_the_source_and_only_reach_their_own_app() {
    let dir = TempDir::new("tokens");
    let router = Router::start(&dir.0, &[]);
    let shop = router.create_app("shop");
    let blog = router.create_app("blog");
    let (status, body) = router.curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"name":"deploys"}"#,
        "/apps/shop/tokens",
    ]);
    assert_eq!(status, 201, "{body}");
    let deploys = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut conn = router.connect();
    send(&mut conn, &frame(&shop, "web.1", "for shop"));
    send(&mut conn, &frame(&blog, "web.1", "for blog"));
    send(&mut conn, &frame(&deploys, "-", "v42 released"));
    drop(conn);
    router.wait_accepted("shop", 2);
    router.wait_accepted("blog", 1);
    let shop_lines = router.history("shop", &[]);
    assert_eq!(shop_lines.len(), 2);
    assert!(shop_lines[0].ends_with("app[web.1]: for shop"));
    assert!(
        shop_lines[1].ends_with(" deploys: v42 released"),
        "{shop_lines:?}"
    );
    assert_eq!(router.history("blog", &[]).len(), 1);
    // A revoked token stops working at once, even on a connection that used it.
    let (status, _) = router.curl(&["-X", "DELETE", &format!("/apps/shop/tokens/{deploys}")]);
    assert_eq!(status, 200);
    let mut conn = router.connect();
    send(&mut conn, &frame(&deploys, "-", "after revoke"));
    send(&mut conn, &frame(&shop, "web.1", "still fine"));
    drop(conn);
    router.wait_accepted("shop", 3);
    assert!(
        !router
            .history("shop", &[])
            .iter()
            .any(|l| l.contains("after revoke"))
    );
}

fn post_logs(router: &Router, token: &str, extra: &[&str], body: &[u8]) -> (u16, String) {
    let path =
        std::env::temp_dir().join(format!("paas-body-{}-{}", std::process::id(), body.len()));
    std::fs::write(&path, body).unwrap();
    let data = format!("@{}", path.display());
    let auth = format!("token:{token}");
    let mut args = vec![
        "-u",
        &auth,
        "-H",
        "Content-Type: application/logplex-1",
        "--data-binary",
        &data,
    ];
    args.extend_from_slice(extra);
    args.push("/logs");
    let r = router.curl_as("", &args);
    let _ = std::fs::remove_file(&path);
    r
}

#[test]
fn http_logplex_1_batches_plain_and_gzip() {
    let dir = TempDir::new("http");
    let router = Router::start(&dir.0, &[]);
    let token = router.create_app("shop");
    let body = frames(&token, "web.1", "plain", 0..3);
    assert_eq!(
        post_logs(&router, &token, &["-H", "Logplex-Msg-Count: 3"], &body).0,
        204
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&frames(&token, "web.2", "gzipped", 0..2))
        .unwrap();
    let gz = gz.finish().unwrap();
    let (status, out) = post_logs(
        &router,
        &token,
        &[
            "-H",
            "Content-Encoding: gzip",
            "-H",
            "Logplex-Msg-Count: 2",
            "-H",
            "Logplex-Frame-Id: 0123456789abcdef0123456789abcdef",
        ],
        &gz,
    );
    assert_eq!(status, 204, "{out}");
    // The same batch again (a sender's retry): accepted, not duplicated.
    let (status, _) = post_logs(
        &router,
        &token,
        &[
            "-H",
            "Content-Encoding: gzip",
            "-H",
            "Logplex-Frame-Id: 0123456789abcdef0123456789abcdef",
        ],
        &gz,
    );
    assert_eq!(status, 204);
    router.wait_accepted("shop", 5);
    let lines = router.history("shop", &[]);
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines[4].ends_with("app[web.2]: gzipped n=1"));
}

#[test]
fn http_ingest_answers_every_bad_request_clearly() {
    let dir = TempDir::new("http-bad");
    let router = Router::start(&dir.0, &["--max-frame", "1024"]);
    let token = router.create_app("shop");
    let other = router.create_app("blog");
    let good = frames(&token, "web.1", "x", 0..2);

    let (s, b) = post_logs(&router, &token, &["-H", "Logplex-Msg-Count: 3"], &good);
    assert_eq!(s, 400);
    assert!(
        b.contains("Message count mismatch: Logplex-Msg-Count is 3, the body has 2 messages"),
        "{b}"
    );

    let (s, b) = post_logs(&router, "t.not-a-token", &[], &good);
    assert_eq!((s, b.contains("Invalid credentials")), (401, true), "{b}");

    // The Basic user names an app the token is not for.
    let path = std::env::temp_dir().join(format!("paas-b-{}", std::process::id()));
    std::fs::write(&path, &good).unwrap();
    let (s, b) = router.curl_as(
        "",
        &[
            "-u",
            &format!("blog:{token}"),
            "-H",
            "Content-Type: application/logplex-1",
            "--data-binary",
            &format!("@{}", path.display()),
            "/logs",
        ],
    );
    assert_eq!(s, 404, "{b}");
    let _ = std::fs::remove_file(&path);

    let (s, _) = router.curl_as(
        "",
        &[
            "-u",
            &format!("token:{token}"),
            "-H",
            "Content-Type: text/plain",
            "-d",
            "hi",
            "/logs",
        ],
    );
    assert_eq!(s, 415);

    let mut bad = good.clone();
    bad.extend_from_slice(b"12 <190>1 short");
    let (s, b) = post_logs(&router, &token, &[], &bad);
    assert_eq!(s, 400);
    assert!(b.contains("Malformed log messages: frame 2"), "{b}");

    let big = frame(&token, "web.1", &"x".repeat(2000));
    let (s, b) = post_logs(&router, &token, &[], &big);
    assert_eq!(s, 413, "{b}");

    let (s, _) = post_logs(&router, &token, &[], &vec![b'7'; 5 << 20]);
    assert_eq!(s, 413, "a body over the limit");

    let (s, b) = post_logs(
        &router,
        &token,
        &["-H", "Content-Encoding: gzip"],
        b"not gzip at all",
    );
    assert_eq!(s, 400);
    assert!(b.contains("Malformed gzip body"), "{b}");

    // A frame naming another token than the credentials.
    let (s, b) = post_logs(&router, &token, &[], &frame(&other, "web.1", "sneaky"));
    assert_eq!(s, 400, "{b}");

    // Nothing of the refused batches was accepted; the good one still is.
    assert_eq!(post_logs(&router, &token, &[], &good).0, 204);
    let stats = router.wait_accepted("shop", 2);
    assert_eq!(stats["rejected"]["count_mismatch"], 2);
    assert_eq!(
        stats["rejected"]["malformed"].as_u64(),
        Some(3 + 1 + 1),
        "{stats}"
    );
    assert_eq!(stats["rejected"]["too_large"], 1);
    assert_eq!(stats["rejected"]["body_too_large"], 1);
    assert_eq!(stats["rejected"]["unknown_token"], 1);
    assert_eq!(
        router.stats("blog")["accepted"],
        0,
        "nothing reached the other app"
    );
}

#[test]
fn http_overload_is_503_with_retry_after() {
    let dir = TempDir::new("http-rate");
    let router = Router::start(&dir.0, &["--app-rate", "5"]);
    let token = router.create_app("shop");
    let batch = frames(&token, "web.1", "x", 0..5);
    assert_eq!(post_logs(&router, &token, &[], &batch).0, 204);
    let (s, b) = post_logs(&router, &token, &["-i"], &batch);
    assert_eq!(s, 503, "{b}");
    assert!(b.to_ascii_lowercase().contains("retry-after: 1"), "{b}");
    let stats = router.stats("shop");
    assert_eq!(
        (
            stats["accepted"].as_u64(),
            stats["rejected"]["rate_limited"].as_u64()
        ),
        (Some(5), Some(5))
    );
}

#[test]
fn syslog_over_tls_with_a_real_certificate() {
    let dir = TempDir::new("tls");
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (cert_path, key_path) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut router = Router::start(
        &dir.0.join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let tls = router.tls.expect("a TLS listener");
    // The API is HTTPS now; curl trusts our certificate.
    assert!(router.api.starts_with("https://"));
    router.ca = Some(cert_path.clone());
    let token = router.create_app("shop");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
    let sock = std::net::TcpStream::connect(tls).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, sock);
    stream
        .write_all(&frames(&token, "web.1", "over tls", 0..3))
        .unwrap();
    stream.flush().unwrap();
    stream.conn.send_close_notify();
    let _ = stream.flush();
    let s = router.wait_accepted("shop", 3);
    assert_eq!(s["rejected"]["malformed"], 0);
    // A plain-text client on the TLS port is refused and counted, and harms nothing.
    let mut plain = std::net::TcpStream::connect(tls).unwrap();
    let _ = plain.write_all(&frame(&token, "web.1", "not tls"));
    drop(plain);
    let start = std::time::Instant::now();
    while !router
        .curl(&["/metrics"])
        .1
        .contains("logplex_connections_refused_total{listener=\"tls\",reason=\"handshake\"} 1")
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the plain client was never counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(router.stats("shop")["accepted"], 3);
}
