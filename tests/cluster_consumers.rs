//! The router-wide consumers once across the cluster, end to end: three `paas logplex` nodes
//! share metric extraction and the query spool through JetStream durable consumers
//! (`metrics`, `spool`). Lines sent round-robin to the three are counted once in all (a
//! counter summed over the nodes is the number of lines; no node alone has them all) and
//! kept once, and a query on any node answers as one router holding every line would, or
//! says which node it lacks; a node killed with SIGKILL while lines flow leaves its
//! unacknowledged batches to the others after the ack wait, which take them and say they
//! were delivered again.
//!
//! The lines are l2met counters (`count#requests=1`) in an app's own lines: router lines
//! come from the stack's proxy only (their sources, `heroku` and `paas`, are reserved), and
//! a router line and an l2met line take the same path through the consumer.

#[path = "cluster_support/mod.rs"]
mod cluster_support;
mod support;

use std::time::Duration;

use cluster_support::{Cluster, SOON, post_logs, wait_until};
use support::{Router, frame};

/// The sum of every sample of `family` (a full sample name) labelled `app` on `node`'s
/// `/metrics` (0 when the node does not answer).
fn sum_of(node: &Router, family: &str, app: &str) -> f64 {
    let (status, text) = node.curl(&["/metrics"]);
    if status != 200 {
        return 0.0;
    }
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(&format!("app=\"{app}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A counter of the engine itself (no labels) on `node`.
fn own_counter(node: &Router, name: &str) -> u64 {
    let (_, text) = node.curl(&["/metrics"]);
    text.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// `count` lines, each `count#<name>=1`, in one `POST /logs` to `node`.
fn post_counts(node: &Router, token: &str, name: &str, tag: &str, count: usize) {
    let body: Vec<u8> = (0..count)
        .flat_map(|i| frame(token, "web.1", &format!("{tag} n={i} count#{name}=1")))
        .collect();
    assert_eq!(post_logs(node, token, &body, count), 204);
}

/// Three nodes of a new cluster, app `shop` known to all; its token.
fn three_nodes(cluster: &mut Cluster, extra: &[&str]) -> (Vec<Router>, String) {
    let nodes: Vec<Router> = (0..3).map(|i| cluster.node(i, extra)).collect();
    let token = nodes[0].create_app("shop");
    for node in &nodes[1..] {
        wait_until("every node knows the app", SOON, || {
            node.curl(&["/apps/shop"]).0 == 200
        });
    }
    (nodes, token)
}

#[test]
fn lines_sent_round_robin_to_three_nodes_are_counted_once_in_all() {
    let mut cluster = Cluster::new("consumers");
    let (nodes, token) = three_nodes(&mut cluster, &[]);
    let family = "paas_app_requests_total";
    let mut n = 0;
    for batch in 0..30 {
        post_counts(
            &nodes[batch % 3],
            &token,
            "requests",
            &format!("b{batch}"),
            10,
        );
        n += 10;
    }
    let total = |nodes: &[Router]| -> f64 { nodes.iter().map(|r| sum_of(r, family, "shop")).sum() };
    wait_until("the nodes' counters add up to every line", SOON, || {
        total(&nodes) >= n as f64
    });
    // Settled: nothing more comes (no line counted twice).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(total(&nodes), n as f64);
    for node in &nodes {
        assert!(
            sum_of(node, family, "shop") < n as f64,
            "one node counted all"
        );
    }
    let read: u64 = nodes
        .iter()
        .map(|r| own_counter(r, "paas_metrics_lines_total"))
        .sum();
    assert_eq!(read, n as u64);
    let redelivered: u64 = nodes
        .iter()
        .map(|r| own_counter(r, "paas_metrics_lines_redelivered_total"))
        .sum();
    assert_eq!(redelivered, 0);
    // The shared consumer, caught up, as `GET /cluster` shows it.
    wait_until("the metrics consumer has nothing pending", SOON, || {
        let v = nodes[1].get_json("/cluster");
        v["consumers"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["name"] == "metrics"
                    && c["pending_messages"] == 0
                    && c["ack_pending_messages"] == 0
            })
        })
    });
}

#[test]
fn a_node_killed_while_lines_flow_leaves_its_batches_to_the_others() {
    let mut cluster = Cluster::new("consumerskill");
    let (mut nodes, token) = three_nodes(&mut cluster, &["--drain-ack-wait", "2"]);
    let family_before = "paas_app_before_total";
    let family_after = "paas_app_after_total";
    let (mut before, mut after) = (0usize, 0usize);
    let mut counted_by_node1 = 0.0;
    for batch in 0..60 {
        if batch == 30 {
            // What node 1 counted so far, then SIGKILL: its unacknowledged batches (a pull
            // holds its messages up to a second) go to the others after the ack wait.
            counted_by_node1 = sum_of(&nodes[1], family_before, "shop");
            nodes[1].child.kill().expect("kill -9");
            nodes[1].child.wait().expect("reaped");
        }
        if batch < 30 {
            post_counts(&nodes[batch % 3], &token, "before", &format!("b{batch}"), 5);
            before += 5;
        } else {
            let node = if batch % 2 == 0 { &nodes[0] } else { &nodes[2] };
            post_counts(node, &token, "after", &format!("b{batch}"), 5);
            after += 5;
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    let survivors = [&nodes[0], &nodes[2]];
    let sum = |family: &str| -> f64 { survivors.iter().map(|r| sum_of(r, family, "shop")).sum() };
    let redelivered = || -> u64 {
        survivors
            .iter()
            .map(|r| own_counter(r, "paas_metrics_lines_redelivered_total"))
            .sum()
    };
    wait_until(
        "the survivors count every line sent after the kill, and node 1's unacknowledged ones",
        Duration::from_secs(30),
        || sum(family_after) >= after as f64 && redelivered() > 0,
    );
    std::thread::sleep(Duration::from_millis(1500));
    // Lines sent after the kill: each counted once by the survivors.
    assert_eq!(sum(family_after), after as f64);
    // Lines sent before: what node 1 acknowledged died with it (at least what it showed
    // before the kill); the survivors counted the rest, repeats only among the lines they
    // say were delivered again.
    let redelivered = redelivered() as f64;
    assert!(redelivered > 0.0);
    assert!(
        sum(family_before) + counted_by_node1 <= before as f64 + redelivered,
        "before: survivors {} + node 1 {counted_by_node1} of {before}, {redelivered} redelivered",
        sum(family_before)
    );
    let spool_redelivered: u64 = survivors
        .iter()
        .map(|r| own_counter(r, "paas_query_spool_redelivered_total"))
        .sum();
    assert!(spool_redelivered > 0);

    // The spool is on disk: node 1 back on its data directory, a query on node 0 finds every
    // line acknowledged to its sender, once (a line kept on two nodes is used once).
    let dir = cluster.dirs[1].0.clone();
    nodes[1] = cluster.node_in(&dir, 1, &["--drain-ack-wait", "2"]);
    wait_until("node 0 counts every line sent, once", SOON, || {
        count_of(&nodes[0], "*| count") == (before + after) as u64
    });
    let (_, partial) = query_rows(&nodes[0], "*| count");
    assert_eq!(partial, None);
}

/// Line `i` of the query test: an app's request log with a path, a status and a duration.
fn request_line(i: usize) -> String {
    let path = ["/", "/cart", "/search", "/login"][i % 4];
    let status = if i % 10 == 3 { 503 } else { 200 };
    let service = 5 + (i * 37) % 400;
    format!("at=info method=GET path={path} status={status} service={service}ms request_id=r{i}")
}

/// A query's NDJSON rows on `node`, and its `Paas-Query-Partial` header if any.
fn query_rows(node: &Router, q: &str) -> (Vec<serde_json::Value>, Option<String>) {
    let encoded: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, text) = node.curl(&["-D", "-", &format!("/apps/shop/query?q={encoded}")]);
    assert_eq!(status, 200, "{q}: {text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let partial = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("paas-query-partial")
            .then(|| value.trim().to_owned())
    });
    let rows = body
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (rows, partial)
}

fn count_of(node: &Router, q: &str) -> u64 {
    query_rows(node, q)
        .0
        .first()
        .and_then(|r| r["count"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_query_on_one_node_answers_for_every_node_and_says_when_one_is_missing() {
    let mut cluster = Cluster::new("consumersquery");
    let (mut nodes, token) = three_nodes(&mut cluster, &[]);
    // The same lines to a single router, for what one node holding them all answers.
    let alone_dir = support::TempDir::new("consumers-alone");
    let alone = Router::start(&alone_dir.0, &[]);
    let alone_token = alone.create_app("shop");
    let n = 400;
    for batch in 0..40 {
        let lines: Vec<String> = (batch * 10..batch * 10 + 10).map(request_line).collect();
        for (node, token) in [(&nodes[batch % 3], &token), (&alone, &alone_token)] {
            let body: Vec<u8> = lines
                .iter()
                .flat_map(|m| frame(token, "web.1", m))
                .collect();
            assert_eq!(post_logs(node, token, &body, 10), 204);
        }
    }
    let only = frame(&token, "web.2", "only-at-node2 status=200");
    assert_eq!(post_logs(&nodes[2], &token, &only, 1), 204);
    let only = frame(&alone_token, "web.2", "only-at-node2 status=200");
    assert_eq!(post_logs(&alone, &alone_token, &only, 1), 204);
    alone.wait_accepted("shop", n as u64 + 1);
    wait_until("node 0 counts every node's lines", SOON, || {
        count_of(&nodes[0], "*| count") == n as u64 + 1
    });
    wait_until("the single router counts them", SOON, || {
        count_of(&alone, "*| count") == n as u64 + 1
    });
    // Each node's spool holds its share; together, every line once.
    let appended: Vec<u64> = nodes
        .iter()
        .map(|r| own_counter(r, "paas_query_spool_appended_total"))
        .collect();
    assert_eq!(appended.iter().sum::<u64>(), n as u64 + 1, "{appended:?}");
    assert!(appended.iter().all(|a| *a <= n as u64), "{appended:?}");

    let (found, partial) = query_rows(&nodes[0], "only-at-node2");
    assert_eq!(partial, None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["process"], "web.2");
    for q in [
        "* | count by path",
        "* | p50(service),p99(service),avg(service),max(service) by path",
        "status>=500 | count by path | sort -count | head 2",
        "path=/cart | head 5",
        "* | top 3 path",
        "* | timechart 1m count by status",
    ] {
        let (cluster_rows, partial) = query_rows(&nodes[0], q);
        assert_eq!(partial, None, "{q}");
        let (alone_rows, _) = query_rows(&alone, q);
        assert_eq!(cluster_rows, alone_rows, "{q}");
    }

    // The Loki API (Grafana) on node 0 answers for every node too.
    let at = 1_795_262_400i64; // the lines' time, 2026-11-21T12:00:00Z
    let loki = |params: &[(&str, String)], endpoint: &str| -> serde_json::Value {
        let mut args = vec!["-G".to_owned()];
        for (k, v) in params {
            args.extend(["--data-urlencode".to_owned(), format!("{k}={v}")]);
        }
        args.push(format!("/loki/api/v1/{endpoint}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, body) = nodes[0].curl(&args);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let found = loki(
        &[
            ("query", r#"{app="shop"} |= "only-at-node2""#.to_owned()),
            ("start", (at - 60).to_string()),
            ("end", (at + 60).to_string()),
        ],
        "query_range",
    );
    let streams = found["data"]["result"].as_array().expect("streams");
    let values: usize = streams
        .iter()
        .map(|s| s["values"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(values, 1, "{found}");
    let counted = loki(
        &[
            (
                "query",
                r#"sum(count_over_time({app="shop"}[5m]))"#.to_owned(),
            ),
            ("time", (at + 60).to_string()),
        ],
        "query",
    );
    assert_eq!(
        counted["data"]["result"][0]["value"][1].as_str(),
        Some((n + 1).to_string().as_str()),
        "{counted}"
    );

    // Only the cluster's nodes may ask for a node's lines: not even the operator's key does.
    let (status, _) = nodes[0].curl(&["/cluster-lines/shop?q=*&limit=10"]);
    assert_eq!(status, 401);

    // Node 2 dies: an answer lacks its lines, and says so, through `paas query` too.
    // (The heartbeat says alive for a few seconds more: it is asked, and does not answer.)
    nodes[2].child.kill().expect("kill -9");
    nodes[2].child.wait().expect("reaped");
    let (rows, partial) = query_rows(&nodes[0], "*| count");
    let partial = partial.expect("a partial answer says so");
    assert!(partial.contains("node2"), "{partial}");
    assert!(rows[0]["count"].as_u64().unwrap_or(0) <= n as u64 + 1);
    let out = nodes[0].paas(&["query", "-a", "shop", "* | count"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("partial: lacks node2"), "{text}");
    // The Loki API has no way to say an answer is partial: it refuses, naming the node.
    let (status, body) = nodes[0].curl(&[
        "-G",
        "--data-urlencode",
        r#"query=sum(count_over_time({app="shop"}[5m]))"#,
        "--data-urlencode",
        &format!("time={}", at + 60),
        "/loki/api/v1/query",
    ]);
    assert_ne!(status, 200, "{body}");
    assert!(body.contains("node2"), "{body}");
    nodes.remove(2);
}

#[test]
fn a_query_past_a_node_s_line_cap_is_partial_names_why_and_is_counted() {
    let mut cluster = Cluster::new("consumerscap");
    let (nodes, token) = three_nodes(&mut cluster, &["--query-cluster-max-lines", "5"]);
    // 60 lines round robin: each node's spool holds about 20, past the cap of 5.
    for batch in 0..6 {
        let body: Vec<u8> = (batch * 10..batch * 10 + 10)
            .flat_map(|i| frame(&token, "web.1", &request_line(i)))
            .collect();
        assert_eq!(post_logs(&nodes[batch % 3], &token, &body, 10), 204);
    }
    wait_until("every node's spool has its share", SOON, || {
        nodes
            .iter()
            .map(|r| own_counter(r, "paas_query_spool_appended_total"))
            .sum::<u64>()
            == 60
    });
    let (rows, partial) = query_rows(&nodes[0], "*| count");
    let partial = partial.expect("an answer past the cap says it is partial");
    assert!(
        partial.contains("more than 5 lines matched"),
        "the reason is named: {partial}"
    );
    // What it counted is what it had: less than every line.
    let counted = rows[0]["count"].as_u64().unwrap_or(0);
    assert!(counted < 60, "{rows:?}");
    assert!(own_counter(&nodes[0], "paas_query_partial_answers_total") >= 1);
    // A query whose filter matches few lines is whole.
    let (rows, partial) = query_rows(&nodes[0], "request_id=r7 | count");
    assert_eq!(partial, None);
    assert_eq!(rows[0]["count"], 1, "{rows:?}");
}
