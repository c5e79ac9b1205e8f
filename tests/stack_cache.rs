//! The HTTP cache between the proxy and the dynos, end to end through the real proxy, against
//! a dyno that counts what it answers (`fixtures/odd_backend.py`, `/cache/...` and
//! `/count?p=`): hits never reach a dyno and say so in the router line (`cache=hit age=`),
//! what may not be shared is passed, variants follow `Vary`, 100 concurrent misses make one
//! dyno request, stale entries are revalidated (304) or served when the dyno fails, purges and
//! unsafe methods forget, and memory stays within its budget.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use support::dynos::{curl, exchange, odd_backend, odd_backend_with};
use support::{Router, lines_of, proxy_addr};

/// How many times the dyno answered `target`.
fn answered(up: &Router, target: &str) -> u64 {
    let target = target.replace('%', "%25").replace('&', "%26");
    let (status, body) = curl(up, &format!("/count?p={target}"), &[]);
    assert_eq!(status, "200", "{body}");
    body.trim().parse().unwrap_or(u64::MAX)
}

fn request_id(tag: &str) -> String {
    format!("cache-{tag}-{:0>24}", std::process::id())
}

/// curl with a request id; (status, body, its router line).
fn get(
    up: &Router,
    tag: &str,
    path: &str,
    args: &[&str],
) -> (String, String, BTreeMap<String, String>) {
    let id = request_id(tag);
    let header = format!("X-Request-Id: {id}");
    let (status, body) = curl(up, path, &[&["-H", &header][..], args].concat());
    let lines = lines_of(up, &id);
    assert_eq!(lines.len(), 1, "{lines:?}");
    (status, body, lines[0].clone())
}

#[test]
fn hits_never_reach_a_dyno_and_say_so() {
    let (_dir, up) = odd_backend("cache-hits");
    let (status, first, line) = get(&up, "miss", "/cache/a", &[]);
    assert_eq!(status, "200");
    assert_eq!(line["cache"], "miss", "{line:?}");
    assert_eq!(line["dyno"], "web.1");
    for i in 0..5 {
        let (status, again, line) = get(&up, &format!("hit{i}"), "/cache/a", &[]);
        assert_eq!((status.as_str(), again.as_str()), ("200", first.as_str()));
        assert_eq!(line["cache"], "hit", "{line:?}");
        assert_eq!(line["dyno"], "", "{line:?}");
        assert!(line["age"].parse::<u64>().is_ok(), "{line:?}");
        assert!(line["service"].ends_with("ms"), "{line:?}");
    }
    assert_eq!(answered(&up, "/cache/a"), 1);
    // The answer carries its age; a HEAD is answered from the same entry (the key is the
    // host and the path: the host curl sent).
    let host = proxy_addr(&up);
    let raw = exchange(
        &up,
        format!("GET /cache/a HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(raw.contains("\r\nage: "), "{raw}");
    assert!(raw.contains("\r\nvia: 1.1 paas\r\n"), "{raw}");
    let head = exchange(
        &up,
        format!("HEAD /cache/a HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    // A client whose copy is current gets a 304 from the cache.
    let (status, body, line) = get(&up, "inm", "/cache/a", &["-H", "If-None-Match: \"v1\""]);
    assert_eq!((status.as_str(), body.as_str()), ("304", ""));
    assert_eq!(line["cache"], "hit");
    assert_eq!(answered(&up, "/cache/a"), 1);
    // Counted, on /metrics and the cache's own resource.
    let (_, metrics) = up.curl(&["/metrics"]);
    assert!(
        metrics.contains("paas_cache_hits_total{app=\"hello\"} 8"),
        "{metrics}"
    );
    let stats = up.get_json("/apps/hello/cache");
    assert!(stats["cache"]["misses"].as_u64() >= Some(1), "{stats}");
    assert!(stats["cache"]["objects"].as_u64() >= Some(1), "{stats}");
}

#[test]
fn what_may_not_be_shared_is_passed() {
    let (_dir, up) = odd_backend("cache-pass");
    let cases = [
        ("/cache/private?cc=private,max-age=60", &[][..]),
        ("/cache/nostore?cc=no-store", &[][..]),
        ("/cache/cookie?h=Set-Cookie:a%3Db", &[][..]),
        ("/cache/star?h=Vary:*", &[][..]),
        ("/cache/nofresh?cc=no-transform", &[][..]),
        // Credentials, and an answer that does not say it may be shared.
        (
            "/cache/auth?cc=max-age=60",
            &["-H", "Authorization: Bearer x"][..],
        ),
        ("/cache/cookied?cc=max-age=60", &["-H", "Cookie: a=b"][..]),
    ];
    for (i, (path, args)) in cases.iter().enumerate() {
        for round in 0..2 {
            let (status, _, line) = get(&up, &format!("p{i}-{round}"), path, args);
            assert_eq!(status, "200", "{path}");
            assert_eq!(line["cache"], "pass", "{path}: {line:?}");
        }
        assert_eq!(answered(&up, path), 2, "{path}");
    }
    // Credentials with an answer that says it may be shared: stored.
    let shared = "/cache/shared?cc=public,max-age=60";
    get(&up, "s0", shared, &["-H", "Authorization: Bearer x"]);
    let (_, _, line) = get(&up, "s1", shared, &["-H", "Authorization: Bearer x"]);
    assert_eq!(line["cache"], "hit", "{line:?}");
}

#[test]
fn vary_keys_the_variant() {
    let (_dir, up) = odd_backend("cache-vary");
    let path = "/cache/v?h=Vary:Accept-Encoding";
    let (_, gzip, _) = get(&up, "g0", path, &["-H", "Accept-Encoding: gzip"]);
    let (_, plain, _) = get(&up, "p0", path, &[]);
    assert!(gzip.contains("encoding gzip"), "{gzip}");
    assert!(plain.contains("encoding none"), "{plain}");
    let (_, again, line) = get(&up, "g1", path, &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(
        (again.as_str(), line["cache"].as_str()),
        (gzip.as_str(), "hit")
    );
    let (_, again, line) = get(&up, "p1", path, &[]);
    assert_eq!(
        (again.as_str(), line["cache"].as_str()),
        (plain.as_str(), "hit")
    );
    assert_eq!(answered(&up, path), 2);
}

#[test]
fn a_hundred_concurrent_misses_make_one_dyno_request() {
    let (_dir, up) = odd_backend("cache-coalesce");
    all_ok(
        &format!("http://{}/cache/slow?ms=500", proxy_addr(&up)),
        100,
    );
    assert_eq!(answered(&up, "/cache/slow?ms=500"), 1);
    let stats = up.get_json("/apps/hello/cache");
    let c = &stats["cache"];
    let served = c["coalesced"].as_u64().unwrap_or(0) + c["hits"].as_u64().unwrap_or(0);
    assert_eq!(served, 99, "{stats}");
    // An answer that cannot be stored releases its waiters to the dynos at once.
    all_ok(
        &format!(
            "http://{}/cache/slow-pass?ms=300&cc=no-store",
            proxy_addr(&up)
        ),
        10,
    );
    assert_eq!(answered(&up, "/cache/slow-pass?ms=300&cc=no-store"), 10);
}

#[test]
fn stale_entries_are_revalidated_or_served_when_the_dyno_fails() {
    let (_dir, up) = odd_backend("cache-stale");
    // max-age=0 with an ETag: every request after the first is revalidated (304 from the dyno).
    let path = "/cache/r?cc=public,max-age=0";
    let (_, first, line) = get(&up, "r0", path, &[]);
    assert_eq!(line["cache"], "miss");
    let (status, again, line) = get(&up, "r1", path, &[]);
    assert_eq!((status.as_str(), again.as_str()), ("200", first.as_str()));
    assert_eq!(line["cache"], "revalidated", "{line:?}");
    assert_eq!(line["dyno"], "web.1", "{line:?}");
    // stale-while-revalidate: answered stale at once, refreshed in the background (a 304),
    // then fresh again.
    let path = "/cache/w?cc=public,max-age=1,stale-while-revalidate=60";
    let (_, first, _) = get(&up, "w0", path, &[]);
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    let (status, again, line) = get(&up, "w1", path, &[]);
    assert_eq!((status.as_str(), again.as_str()), ("200", first.as_str()));
    assert_eq!(line["cache"], "stale", "{line:?}");
    let start = std::time::Instant::now();
    while answered(&up, path) < 2 {
        assert!(start.elapsed().as_secs() < 10, "no refresh");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The refresh stores what it read a moment after the dyno counted it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, again, line) = get(&up, "w2", path, &[]);
    assert_eq!(
        (again.as_str(), line["cache"].as_str()),
        (first.as_str(), "hit"),
        "{line:?}"
    );
    assert_eq!(answered(&up, path), 2);
    // stale-if-error: the dyno answers garbage after the first time; the stale copy is
    // answered, and the line still tells the H17.
    let path = "/cache/e?cc=public,max-age=0,stale-if-error=60&fail=1";
    let (_, first, _) = get(&up, "e0", path, &[]);
    let (status, again, line) = get(&up, "e1", path, &[]);
    assert_eq!((status.as_str(), again.as_str()), ("200", first.as_str()));
    assert_eq!(line["cache"], "stale", "{line:?}");
    assert_eq!(line["code"], "H17", "{line:?}");
    assert_eq!(line["status"], "200", "{line:?}");
    // Without stale-if-error a dyno answering garbage to a revalidation is H17 for the client.
    let path = "/cache/g?cc=public,max-age=0&fail=1";
    get(&up, "g0", path, &[]);
    let (status, _, line) = get(&up, "g1", path, &[]);
    assert_eq!(status, "503");
    assert_eq!(line["code"], "H17", "{line:?}");
}

#[test]
fn purges_and_unsafe_methods_forget() {
    let (_dir, up) = odd_backend("cache-purge");
    for (i, path) in ["/cache/p1", "/cache/assets/a", "/cache/assets/b"]
        .iter()
        .enumerate()
    {
        get(&up, &format!("warm{i}"), path, &[]);
    }
    let out = up.paas(&["cache:purge", "-a", "hello", "/cache/assets/*"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 URLs"),
        "{out:?}"
    );
    let (_, _, line) = get(&up, "after-purge", "/cache/assets/a", &[]);
    assert_eq!(line["cache"], "miss");
    let (_, _, line) = get(&up, "kept", "/cache/p1", &[]);
    assert_eq!(line["cache"], "hit");
    // A POST to the URL forgets it.
    let (status, _, line) = get(&up, "post", "/cache/p1", &["-X", "POST", "--data", "x"]);
    assert_eq!(status, "200");
    assert_eq!(line["cache"], "pass", "{line:?}");
    let (_, _, line) = get(&up, "after-post", "/cache/p1", &[]);
    assert_eq!(line["cache"], "miss", "{line:?}");
    // A bad purge path is refused; everything is purged without one.
    let (status, _) = up.curl(&["-X", "DELETE", "/apps/hello/cache?path=nope"]);
    assert_eq!(status, 422);
    let (status, body) = up.curl(&["-X", "DELETE", "/apps/hello/cache"]);
    assert_eq!(status, 200, "{body}");
    let (_, _, line) = get(&up, "after-all", "/cache/p1", &[]);
    assert_eq!(line["cache"], "miss");
}

#[test]
fn hostile_headers_are_bounded_and_memory_stays_within_its_budget() {
    let (_dir, up) = odd_backend_with("cache-hostile", &["--cache-mb", "1"]);
    // A thousand directives and an absurd max-age: read as far as the bound, no harm done.
    let absurd = format!(
        "/cache/h?cc={}max-age=99999999999999999999999",
        "x,".repeat(1000)
    );
    let (status, _, line) = get(&up, "absurd", &absurd, &[]);
    assert_eq!(status, "200");
    assert_eq!(line["cache"], "pass", "{line:?}");
    let (status, _, line) = get(
        &up,
        "capped",
        "/cache/c?cc=public,max-age=99999999999999999999",
        &[],
    );
    assert_eq!(status, "200");
    assert_eq!(line["cache"], "miss", "{line:?}");
    // A flood of distinct URLs: the cache holds at most its megabyte.
    let urls: Vec<String> = (0..400)
        .map(|i| {
            format!(
                "http://{}/cache/flood/{i}?h=X-Pad:{}",
                proxy_addr(&up),
                "p".repeat(4000)
            )
        })
        .collect();
    for chunk in urls.chunks(50) {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null"])
            .args(chunk)
            .output()
            .expect("curl");
        assert!(out.status.success());
    }
    let stats = up.get_json("/apps/hello/cache");
    let bytes = stats["cache"]["bytes"].as_u64().unwrap_or(u64::MAX);
    assert!(bytes <= 1 << 20, "{stats}");
    assert!(stats["cache"]["evictions"].as_u64() > Some(0), "{stats}");
}

/// Sends `n` requests for `url` at once (a curl each) and asserts each got 200.
fn all_ok(url: &str, n: usize) {
    let curls: Vec<_> = (0..n)
        .map(|_| {
            Command::new("curl")
                .args(["-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(url)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn curl")
        })
        .collect();
    for c in curls {
        let out = c.wait_with_output().expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    }
}

#[test]
fn http2_requests_are_answered_from_the_same_cache() {
    let (dir, up) = odd_backend("cache-h2");
    let ca = dir.0.join("tls/localhost.pem");
    let port = up.proxy_tls.expect("https port");
    let h2 = |tag: &str| {
        let id = request_id(tag);
        let out = Command::new("curl")
            .args(["-s", "--http2", "--cacert"])
            .arg(&ca)
            .args([
                "-w",
                "\n%{http_version} %{http_code}",
                "-H",
                &format!("X-Request-Id: {id}"),
            ])
            .arg(format!("https://localhost:{port}/cache/two"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines = lines_of(&up, &id);
        (text, lines[0].clone())
    };
    let (first, line) = h2("h2-0");
    assert!(first.ends_with("\n2 200"), "{first}");
    assert_eq!(line["cache"], "miss", "{line:?}");
    let (again, line) = h2("h2-1");
    assert_eq!(again, first);
    assert_eq!(line["cache"], "hit", "{line:?}");
    assert_eq!(line["dyno"], "", "{line:?}");
    assert_eq!(answered(&up, "/cache/two"), 1);
}

#[test]
fn a_coalesced_miss_streams_the_answer_as_it_comes() {
    use std::io::{Read, Write};
    let (_dir, up) = odd_backend("cache-stream");
    let host = proxy_addr(&up);
    let path = "/cache/held?hold=1";
    let ask = |tag: &str| {
        let mut s = std::net::TcpStream::connect(&host).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Request-Id: {}\r\nConnection: close\r\n\r\n",
            request_id(tag)
        )
        .expect("send");
        s
    };
    // Reads until `needle` has come (or the connection ends).
    let until = |s: &mut std::net::TcpStream, got: &mut Vec<u8>, needle: &str| {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(got).contains(needle) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let (mut lead, mut lead_got) = (ask("lead"), Vec::new());
    until(&mut lead, &mut lead_got, "GET /cache/held");
    // The dyno holds the rest of its body: a second request for the URL gets the head and the
    // first half from the lead's answer as it is now.
    let (mut follower, mut follower_got) = (ask("follower"), Vec::new());
    until(&mut follower, &mut follower_got, "GET /cache/held");
    let text = String::from_utf8_lossy(&follower_got).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        !text.contains("encoding none"),
        "the whole body came before its release: {text}"
    );
    assert_eq!(curl(&up, "/release", &[]).0, "200");
    until(&mut lead, &mut lead_got, "encoding none\n");
    until(&mut follower, &mut follower_got, "encoding none\n");
    let body = |got: &[u8]| {
        let text = String::from_utf8_lossy(got).into_owned();
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(body(&follower_got), body(&lead_got));
    assert!(
        body(&lead_got).ends_with("answer 1 encoding none\n"),
        "{}",
        body(&lead_got)
    );
    let line = &lines_of(&up, &request_id("follower"))[0];
    assert_eq!(line["cache"], "coalesced", "{line:?}");
    assert_eq!(answered(&up, path), 1);
}
