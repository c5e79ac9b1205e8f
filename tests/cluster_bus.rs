//! The log bus on JetStream, end to end: `paas logplex` nodes on loopback against the
//! machine's NATS (a unique stream and prefix per test) and PostgreSQL. Lines ingested on
//! any node reach every node's tails and history in one order, numbered from the stream;
//! a sender acknowledged is never let down by a node killed with SIGKILL or a NATS restart.

#[path = "cluster_support/mod.rs"]
mod cluster_support;
mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, SOON, post_logs, post_logs_with, wait_until};
use support::{Router, Stream, TempDir, fields, frames, log_session, send};

/// The messages of `app`'s history on `node`, oldest first.
fn history(node: &Router, app: &str) -> Vec<String> {
    node.history(app, &[])
        .into_iter()
        .filter_map(|l| l.split_once(": ").map(|(_, m)| m.to_owned()))
        .collect()
}

/// Waits until every node knows `app`.
fn known_everywhere(nodes: &[Router], app: &str) {
    for node in nodes {
        wait_until("the app is known on every node", SOON, || {
            node.curl(&[&format!("/apps/{app}")]).0 == 200
        });
    }
}

#[test]
fn a_tail_on_one_node_sees_every_nodes_lines_and_every_history_is_the_same() {
    let mut cluster = Cluster::new("bus");
    let nodes = cluster.nodes(3);
    let token = nodes[0].create_app("shop");
    known_everywhere(&nodes, "shop");
    let url = log_session(&nodes[0], "shop", r#"{"tail": true}"#);
    let tail = Stream::open(&url, "text/event-stream");
    wait_until("the tail is open", SOON, || {
        nodes[0].stats("shop")["tails"] == 1
    });

    // Syslog to node 2 and node 0, POST /logs to node 1.
    let mut conn = nodes[2].connect();
    send(&mut conn, &frames(&token, "web.1", "from-c", 0..5));
    let body = frames(&token, "web.2", "from-b", 0..5);
    assert_eq!(post_logs(&nodes[1], &token, &body, 5), 204);
    let mut conn0 = nodes[0].connect();
    send(&mut conn0, &frames(&token, "web.3", "from-a", 0..5));

    let want: BTreeSet<String> = ["from-a", "from-b", "from-c"]
        .iter()
        .flat_map(|p| (0..5).map(move |i| format!("{p} n={i}")))
        .collect();
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    let start = Instant::now();
    while seen.len() < want.len() {
        assert!(
            start.elapsed() < SOON,
            "the tail on node 0 saw only {seen:?}"
        );
        let Some(line) = tail.next() else { continue };
        if let Some(id) = line.strip_prefix("id: ") {
            ids.push(id.parse::<u64>().expect("numeric id"));
        }
        if let Some((_, message)) = line.split_once("]: ") {
            seen.insert(message.to_owned());
        }
    }
    assert_eq!(seen, want);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    // Every node's history holds the 15 lines, in the same (the stream's) order.
    for node in &nodes {
        wait_until("every node's history has all 15", SOON, || {
            history(node, "shop").len() == 15
        });
    }
    let first = history(&nodes[0], "shop");
    for node in &nodes[1..] {
        assert_eq!(history(node, "shop"), first);
    }

    // `seq` is the stream's on every node: an EventSource that read node 0 resumes on node 2
    // with its Last-Event-ID, with no gap and no repeat.
    let last = *ids.last().expect("ids");
    let body = frames(&token, "web.4", "later", 0..3);
    assert_eq!(post_logs(&nodes[1], &token, &body, 3), 204);
    let url = log_session(&nodes[2], "shop", r#"{"tail": true, "lines": 100}"#);
    let resumed = Stream::open_with(
        &url,
        "text/event-stream",
        &[&format!("Last-Event-ID: {last}")],
    );
    let got: Vec<String> = resumed
        .until("later n=2")
        .iter()
        .filter_map(|l| l.split_once("]: ").map(|(_, m)| m.to_owned()))
        .collect();
    assert_eq!(got, ["later n=0", "later n=1", "later n=2"]);

    // GET /cluster: three live nodes, the stream, both backends healthy.
    let report = nodes[1].get_json("/cluster");
    assert_eq!(report["node"], "node1");
    assert_eq!(report["postgresql"]["healthy"], true);
    assert_eq!(report["nats"]["connected"], true);
    assert_eq!(report["nats"]["stream"]["name"], cluster.stream.as_str());
    wait_until("every node heartbeats", SOON, || {
        let r = nodes[1].get_json("/cluster");
        r["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 3 && n.iter().all(|n| n["alive"] == true))
    });
    assert_eq!(nodes[2].curl(&["/readyz"]).0, 200);
}

#[test]
fn a_frame_retried_on_another_node_is_stored_once() {
    let mut cluster = Cluster::new("frameid");
    let nodes = cluster.nodes(3);
    let token = nodes[0].create_app("shop");
    let other = nodes[0].create_app("other");
    known_everywhere(&nodes, "shop");
    known_everywhere(&nodes, "other");
    let body = frames(&token, "web.1", "once", 0..5);
    let frame_id = "Logplex-Frame-Id: 3f1c0b7e6f1c2b4a4c1e9d3f5a6b7c8d";
    // The sender's retries (its 204 lost, say) reach each node in turn.
    for node in &nodes {
        assert_eq!(post_logs_with(node, &token, &body, 5, &[frame_id]), 204);
    }
    // The same frame id from another app is another frame.
    let other_body = frames(&other, "web.1", "other", 0..5);
    assert_eq!(
        post_logs_with(&nodes[1], &other, &other_body, 5, &[frame_id]),
        204
    );
    let marker = frames(&token, "web.1", "marker", 0..1);
    assert_eq!(post_logs(&nodes[2], &token, &marker, 1), 204);
    let once: Vec<String> = (0..5).map(|i| format!("once n={i}")).collect();
    for node in &nodes {
        wait_until("the marker is in history", SOON, || {
            history(node, "shop").contains(&"marker n=0".to_owned())
        });
        let got: Vec<String> = history(node, "shop")
            .into_iter()
            .filter(|m| m.starts_with("once"))
            .collect();
        assert_eq!(got, once, "each line once, on every node");
        wait_until("the other app's batch is in history", SOON, || {
            history(node, "other").len() == 5
        });
    }
    // The two repeats are counted (each node's heartbeat tells its own).
    wait_until("the repeats are counted", SOON, || {
        let report = nodes[0].get_json("/cluster");
        let counted: u64 = report["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| n["status"]["duplicate_lines"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        counted == 10
    });
    // And on /metrics, summed over the nodes.
    let on_metrics: u64 = nodes
        .iter()
        .map(|n| {
            let (_, body) = n.curl(&["/metrics"]);
            body.lines()
                .find_map(|l| l.strip_prefix("logplex_cluster_bus_duplicate_lines_total "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .expect("logplex_cluster_bus_duplicate_lines_total on /metrics")
        })
        .sum();
    assert_eq!(on_metrics, 10);
}

#[test]
fn an_app_s_rate_budget_is_shared_by_the_live_nodes() {
    let mut cluster = Cluster::new("rate");
    let mut nodes: Vec<Router> = (0..3)
        .map(|i| cluster.node(i, &["--app-rate", "30"]))
        .collect();
    let token = nodes[0].create_app("shop");
    known_everywhere(&nodes, "shop");
    let share = |node: &Router| node.get_json("/cluster")["app_rate_per_node"].as_u64();
    for node in &nodes {
        wait_until("each node has a third of the budget", SOON, || {
            share(node) == Some(10)
        });
    }
    // A batch is taken whole while the budget is full (15 > the node's 10, as one node's
    // --app-rate 30 would take two of them); a second at once is over this node's share.
    let body = frames(&token, "web.1", "rate", 0..15);
    assert_eq!(post_logs(&nodes[0], &token, &body, 15), 204);
    assert_eq!(post_logs(&nodes[0], &token, &body, 15), 503);
    // Another node has its own share.
    assert_eq!(post_logs(&nodes[1], &token, &body, 15), 204);
    // The refusal is told as Logplex's L12 on the bus: in every node's stream (and so to the
    // cluster's drains), not only on the node that refused.
    for node in &nodes {
        wait_until("the L12 is in every node's history", SOON, || {
            history(node, "shop")
                .iter()
                .any(|m| m.starts_with("Error L12"))
        });
    }
    // A node gone: the others share the budget among two once its heartbeat is old.
    let mut gone = nodes.pop().expect("node 2");
    gone.terminate();
    wait_until(
        "the two left share the budget",
        Duration::from_secs(20),
        || share(&nodes[0]) == Some(15) && share(&nodes[1]) == Some(15),
    );
}

#[test]
fn paas_up_s_own_lines_reach_every_node_through_the_bus() {
    let mut cluster = Cluster::new("up");
    let node = cluster.node(0, &[]);
    let up = cluster.up(1, &["--scale", "web=1", "--scale", "worker=0"]);
    wait_until("node 0 knows paas up's app", SOON, || {
        node.curl(&["/apps/hello"]).0 == 200
    });
    // The dyno's own output (its boot line) and the platform's lines reach node 0.
    wait_until("the web dyno's output is on node 0", SOON, || {
        node.history("hello", &["--source", "app"])
            .iter()
            .any(|l| l.contains("[web.1]"))
    });
    // 20 characters at least, or the proxy makes its own (as Heroku's router does).
    let id = format!("cluster-up-{:0>20}", std::process::id());
    let proxy = up.proxy.clone().expect("paas up's proxy");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-H", &format!("X-Request-Id: {id}")])
        .arg(format!("{proxy}/"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    // The proxy's router line, written on node 1, is in node 0's history (and once in node
    // 1's: through the bus, not also straight into its own channel).
    let needle = format!("request_id={id} ");
    for router in [&node, &up] {
        wait_until("the router line is on the node", SOON, || {
            router
                .history("hello", &["--source", "router"])
                .iter()
                .any(|l| l.contains(&needle))
        });
        let lines: Vec<String> = router
            .history("hello", &["--source", "router"])
            .into_iter()
            .filter(|l| l.contains(&needle))
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(fields(&lines[0])["status"], "200");
    }
}

#[test]
fn kill_9_of_a_node_under_load_loses_no_acknowledged_line() {
    let mut cluster = Cluster::new("kill");
    let mut nodes = cluster.nodes(3);
    let token = nodes[0].create_app("shop");
    known_everywhere(&nodes, "shop");
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for batch in 0..45 {
        if batch == 15 {
            // Mid-load, without warning.
            nodes[1].child.kill().expect("kill -9");
            nodes[1].child.wait().expect("reaped");
        }
        let node = &nodes[batch % 3];
        let prefix = format!("b{batch}");
        let body = frames(&token, "web.1", &prefix, 0..20);
        match post_logs(node, &token, &body, 20) {
            204 => acknowledged.push(prefix),
            _ => refused += 1,
        }
    }
    assert_eq!(refused, 10, "the dead node's batches, and only those, fail");
    let want: BTreeSet<String> = acknowledged
        .iter()
        .flat_map(|p| (0..20).map(move |i| format!("{p} n={i}")))
        .collect();
    for survivor in [&nodes[0], &nodes[2]] {
        wait_until("every acknowledged line is in history", SOON, || {
            let got: BTreeSet<String> = history(survivor, "shop").into_iter().collect();
            want.is_subset(&got)
        });
    }
    // The dead node shows as not alive once its heartbeat ages.
    wait_until("node 1 is reported dead", Duration::from_secs(20), || {
        let r = nodes[0].get_json("/cluster");
        r["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["id"] == "node1" && n["alive"] == false))
    });
    nodes.remove(1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Our own NATS server with JetStream, stored in a directory; killed on drop.
struct Nats(Child);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts our own NATS server on `port`, stored in `dir`.
fn nats_server(port: u16, dir: &std::path::Path) -> Nats {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start nats-server (apt-get install nats-server)");
    wait_until("nats-server listens", SOON, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Nats(child)
}

#[test]
fn a_nats_restart_loses_nothing_acknowledged_and_nodes_reconnect() {
    let store = TempDir::new("cluster-nats");
    let port = free_port();
    let nats = nats_server(port, &store.0);
    let mut cluster = Cluster::on("natsrestart", &format!("nats://127.0.0.1:{port}"));
    let nodes = cluster.nodes(2);
    let token = nodes[0].create_app("shop");
    known_everywhere(&nodes, "shop");
    let body = frames(&token, "web.1", "before", 0..10);
    assert_eq!(post_logs(&nodes[0], &token, &body, 10), 204);

    let mut nats = nats;
    Command::new("kill")
        .args(["-TERM", &nats.0.id().to_string()])
        .status()
        .expect("kill");
    nats.0.wait().expect("nats-server ended");
    drop(nats);
    // While NATS is away, a node is not ready and refuses what it cannot make durable.
    wait_until("node 1 is not ready", SOON, || {
        nodes[1].curl(&["/readyz"]).0 == 503
    });
    let during = frames(&token, "web.1", "during", 0..10);
    let frame_id = "Logplex-Frame-Id: during-1";
    assert_eq!(
        post_logs_with(&nodes[1], &token, &during, 10, &[frame_id]),
        503
    );
    let (_, metrics) = nodes[1].curl(&["/metrics"]);
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("logplex_cluster_bus_refused_lines_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("logplex_cluster_bus_refused_lines_total on /metrics");
    assert!(refused >= 10, "the refused batch is counted: {refused}");

    let nats = nats_server(port, &store.0);
    let after = frames(&token, "web.1", "after", 0..10);
    wait_until("node 1 takes lines again", Duration::from_secs(30), || {
        post_logs(&nodes[1], &token, &after, 10) == 204
    });
    // The refused batch's retry, with the same frame id to the same node, is stored: a frame
    // id counts as seen only once the bus has its batch.
    assert_eq!(
        post_logs_with(&nodes[1], &token, &during, 10, &[frame_id]),
        204
    );
    for node in &nodes {
        wait_until("the node is ready again", SOON, || {
            node.curl(&["/readyz"]).0 == 200
        });
        wait_until("the three batches are in history", SOON, || {
            let got = history(node, "shop");
            ["before", "after", "during"]
                .iter()
                .all(|p| (0..10).all(|i| got.contains(&format!("{p} n={i}"))))
        });
    }
    drop(nodes);
    drop(nats);
}
