//! `paas up`'s config vars and releases in a cluster, end to end: two `paas up` nodes of the
//! same app (the example app, one web dyno each, each behind its own proxy) on loopback,
//! sharing the machine's NATS (a stream of the test's own) and a fresh PostgreSQL database.
//! A release made on one node is the other's too (same id, same version), and restarts the
//! other's dynos with its config vars, which the test sees in what the other's dyno serves
//! through the other's proxy (`$GREETING from $DYNO`).

#[path = "cluster_support/mod.rs"]
mod cluster_support;
mod support;

use std::time::{Duration, Instant};

use cluster_support::{Cluster, PgProxy, SOON, wait_until};
use serde_json::Value;
use support::{Router, TempDir};

/// The flags of a `paas up` node of `cluster`: its `--database-url` (the app's database on
/// `paas up`) is `--cluster-database-url` here.
fn up_flags(cluster: &Cluster, node: usize) -> Vec<String> {
    cluster
        .flags(node)
        .into_iter()
        .map(|f| {
            if f == "--database-url" {
                "--cluster-database-url".to_owned()
            } else {
                f
            }
        })
        .collect()
}

/// `paas up` of the example app (`hello`, one web dyno) as node `node` of `cluster`, in
/// `dir`, once its dyno serves.
fn up_node(cluster: &Cluster, node: usize, dir: &TempDir) -> Router {
    let flags = up_flags(cluster, node);
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend_from_slice(&[
        "--scale",
        "web=1",
        "--scale",
        "worker=0",
        "--metrics-interval",
        "0",
        "--exit-timeout",
        "3",
    ]);
    let up = Router::up(&dir.0, &all);
    support::dynos::wait_serving(&up);
    up
}

/// Two nodes started one after the other (the second finds the app and its releases).
fn two_nodes(cluster: &Cluster, dirs: &[TempDir; 2]) -> [Router; 2] {
    let a = up_node(cluster, 0, &dirs[0]);
    let b = up_node(cluster, 1, &dirs[1]);
    [a, b]
}

fn patch(up: &Router, body: &str) -> (u16, String) {
    up.curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        "/apps/hello/config-vars",
    ])
}

fn releases(up: &Router) -> Vec<Value> {
    up.get_json("/apps/hello/releases")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The newest release `up` knows: (id, version).
fn newest(up: &Router) -> (String, u64) {
    let list = releases(up);
    let last = list.last().cloned().unwrap_or_default();
    (
        last["id"].as_str().unwrap_or_default().to_owned(),
        last["version"].as_u64().unwrap_or(0),
    )
}

/// Waits until `up`'s web dyno answers `/` with `want` through `up`'s own proxy.
fn wait_greeting(up: &Router, want: &str) {
    let start = Instant::now();
    loop {
        let (status, body) = support::dynos::curl(up, "/", &[]);
        if status == "200" && body.starts_with(want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "want {want:?}, got {status} {body:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// A rollback on `node` to its app's first release (`POST /releases`): the status and body.
fn roll_back_to_first(node: &Router) -> (u16, String) {
    let v1_id = releases(node)[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    node.curl(&[
        "-X",
        "POST",
        "-d",
        &format!(r#"{{"release":"{v1_id}"}}"#),
        "/apps/hello/releases",
    ])
}

#[test]
fn a_release_on_one_node_restarts_every_nodes_dynos_and_changes_at_once_all_count() {
    let cluster = Cluster::new("releases");
    let dirs = [TempDir::new("rel-a"), TempDir::new("rel-b")];
    let migrations = "SELECT version, applied_at FROM schema_migrations ORDER BY version";
    let a = up_node(&cluster, 0, &dirs[0]);
    let applied = cluster.db.query(migrations);
    let b = up_node(&cluster, 1, &dirs[1]);
    // Every migration applied once, by the first node; the second applied none.
    assert_eq!(cluster.db.query(migrations), applied);
    assert_eq!(
        cluster.db.query("SELECT count(*) FROM schema_migrations"),
        cluster::MIGRATIONS.len().to_string()
    );
    // One v1, made by the first node from app.json's env, known to both.
    assert_eq!(releases(&a).len(), 1);
    assert_eq!(newest(&a), newest(&b));
    assert_eq!(b.get_json("/apps/hello/config-vars")["GREETING"], "hello");

    // A change on A: B knows the same release and its dyno runs with it.
    let (status, body) = patch(
        &a,
        r#"{"GREETING":"bonjour","SECRET_TOKEN":"s3cr3t-v4lue"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let made = newest(&a);
    assert_eq!(made.1, 2);
    let since = Instant::now();
    wait_until("node B knows v2", SOON, || newest(&b) == made);
    // A figure, not a check: how long B took to know it, as this test sees it.
    eprintln!("node B knew v2 {:?} after A answered", since.elapsed());
    assert_eq!(b.get_json("/apps/hello/config-vars")["GREETING"], "bonjour");
    assert_eq!(
        b.get_json("/apps/hello/releases/v2")["description"],
        "Set GREETING, SECRET_TOKEN config vars"
    );
    wait_greeting(&b, "bonjour from web.1");
    wait_greeting(&a, "bonjour from web.1");

    // A rollback on B: A knows it, and A's dyno runs with v1's vars again.
    let (status, body) = roll_back_to_first(&b);
    assert_eq!(status, 201, "{body}");
    let rollback = newest(&b);
    assert_eq!(rollback.1, 3);
    let since = Instant::now();
    wait_until("node A knows the rollback", SOON, || newest(&a) == rollback);
    eprintln!("node A knew v3 {:?} after B answered", since.elapsed());
    assert_eq!(
        a.get_json("/apps/hello/releases/v3")["description"],
        "Rollback to v1"
    );
    wait_greeting(&a, "hello from web.1");
    wait_greeting(&b, "hello from web.1");

    // Changes at once on both nodes: each a release of its own, consecutive, none lost.
    let nodes = std::sync::Arc::new([a, b]);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let nodes = nodes.clone();
            std::thread::spawn(move || patch(&nodes[i % 2], &format!(r#"{{"K{i}":"{i}"}}"#)))
        })
        .collect();
    for t in threads {
        let (status, body) = t.join().expect("thread");
        assert_eq!(status, 200, "{body}");
    }
    let [a, b] = &*nodes;
    wait_until("both nodes know v11", SOON, || {
        newest(a).1 == 11 && newest(b) == newest(a)
    });
    let versions: Vec<u64> = releases(b)
        .iter()
        .filter_map(|r| r["version"].as_u64())
        .collect();
    assert_eq!(versions, (1..=11).collect::<Vec<u64>>());
    let vars = a.get_json("/apps/hello/config-vars");
    for i in 0..8 {
        assert_eq!(vars[format!("K{i}")], i.to_string(), "{vars}");
    }
    assert_eq!(
        cluster
            .db
            .query("SELECT count(*), count(DISTINCT version) FROM releases"),
        "11|11"
    );

    // The api lines are written by the node that made the release only, once, by name only,
    // and reach every node through the bus; no config var's value is in either stream.
    for node in [&a, &b] {
        wait_until("both nodes have the rollback's api line", SOON, || {
            count(
                &node.history("hello", &["--dyno", "api"]),
                "Rollback to v1 by operator@localhost",
            ) == 1
        });
        let lines = node.history("hello", &["--dyno", "api"]);
        assert_eq!(
            count(&lines, "Release v2 created by operator@localhost"),
            1,
            "{lines:?}"
        );
    }
    for node in [a, b] {
        let all = node.history("hello", &[]).join("\n");
        assert!(
            !all.contains("s3cr3t-v4lue"),
            "a config var's value in the stream"
        );
    }
    // Nor in the data directories: in a cluster, releases live in PostgreSQL.
    for dir in &dirs {
        assert!(!dir.0.join("releases/hello.json").exists());
    }
}

#[test]
fn a_single_process_releases_file_is_imported_once() {
    // A single `paas up` makes v1 and v2 in its data directory.
    let dir_a = TempDir::new("rel-import-a");
    let alone = {
        let mut up = Router::up(
            &dir_a.0,
            &[
                "--scale",
                "web=1",
                "--scale",
                "worker=0",
                "--metrics-interval",
                "0",
            ],
        );
        support::dynos::wait_serving(&up);
        let (status, body) = patch(&up, r#"{"GREETING":"salut"}"#);
        assert_eq!(status, 200, "{body}");
        let list = releases(&up);
        up.terminate();
        list
    };
    assert_eq!(alone.len(), 2);
    // Node B's directory holds a file of its own, which must not be imported.
    let dir_b = TempDir::new("rel-import-b");
    std::fs::create_dir_all(dir_b.0.join("releases")).expect("releases dir");
    std::fs::write(
        dir_b.0.join("releases/hello.json"),
        r#"{"version":1,"app":"hello","releases":[{"id":"not-imported","version":1,
            "description":"Initial release","user":"x@localhost","created_at":"2026-01-01T00:00:00Z",
            "config_vars":{"GREETING":"nope"}}]}"#,
    )
    .expect("write B's releases");

    let cluster = Cluster::new("relimport");
    let dirs = [dir_a, dir_b];
    let [a, b] = two_nodes(&cluster, &dirs);
    for node in [&a, &b] {
        let list = releases(node);
        let ids: Vec<&Value> = list.iter().map(|r| &r["id"]).collect();
        let want: Vec<&Value> = alone.iter().map(|r| &r["id"]).collect();
        assert_eq!(ids, want);
        assert_eq!(
            node.get_json("/apps/hello/config-vars")["GREETING"],
            "salut"
        );
    }
    wait_greeting(&b, "salut from web.1");
    assert_eq!(
        cluster
            .db
            .query("SELECT count(*) FROM imports WHERE source LIKE 'releases:%'"),
        "1"
    );
}

#[test]
fn a_postgresql_outage_refuses_config_changes_until_it_ends() {
    let proxy = PgProxy::start();
    let mut cluster = Cluster::new("reloutage");
    cluster.db_url = Some(proxy.url(&cluster.db));
    let dirs = [TempDir::new("rel-out-a"), TempDir::new("rel-out-b")];
    let [a, b] = two_nodes(&cluster, &dirs);
    let before = newest(&a);

    proxy.cut();
    let (status, body) = patch(&a, r#"{"GREETING":"ciao"}"#);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("unavailable"), "{body}");
    assert!(body.contains("nothing changed"), "{body}");
    let (status, body) = roll_back_to_first(&b);
    assert_eq!(status, 503, "{body}");
    // Nothing changed; the dynos carry on.
    assert_eq!(newest(&a), before);
    assert_eq!(a.get_json("/apps/hello/config-vars")["GREETING"], "hello");
    assert_eq!(
        cluster.db.query("SELECT count(*) FROM releases"),
        "1",
        "a release was kept during the outage"
    );
    wait_greeting(&a, "hello from web.1");
    wait_greeting(&b, "hello from web.1");

    proxy.restore();
    wait_until("a change is taken again", SOON, || {
        patch(&a, r#"{"GREETING":"ciao"}"#).0 == 200
    });
    let made = newest(&a);
    assert_eq!(made.1, 2);
    wait_until("node B knows it", SOON, || newest(&b) == made);
    wait_greeting(&b, "ciao from web.1");
}
