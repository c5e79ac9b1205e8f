//! The cluster's configuration in PostgreSQL, end to end: three `paas logplex` nodes on
//! loopback against the machine's PostgreSQL (a fresh database each test) and NATS. An app
//! made, a token made or revoked, a key made on one node takes effect on every node (each
//! learns it by LISTEN/NOTIFY; the test waits for it with a generous deadline); nodes starting
//! at once migrate once; a single router's registry is imported once into an empty database.

#[path = "cluster_support/mod.rs"]
mod cluster_support;
mod support;

use cluster_support::{Cluster, SOON, post_logs, wait_until};
use support::{TempDir, frame};

fn status(router: &support::Router, path: &str) -> u16 {
    router.curl(&[path]).0
}

#[test]
fn an_app_a_token_and_a_revocation_on_one_node_take_effect_on_every_node() {
    let mut cluster = Cluster::new("config");
    let nodes = cluster.nodes(3);
    // Three nodes started at once (all came up): every migration applied once, under the
    // advisory lock.
    assert_eq!(
        cluster.db.query("SELECT count(*) FROM schema_migrations"),
        cluster::MIGRATIONS.len().to_string()
    );

    let token = nodes[0].create_app("shop");
    for node in &nodes[1..] {
        wait_until("the app is known on every node", SOON, || {
            status(node, "/apps/shop") == 200
        });
    }
    // A token made on node 0 is good for ingest on node 2.
    let line = frame(&token, "web.1", "hello from node 2");
    wait_until("node 2 takes the token", SOON, || {
        post_logs(&nodes[2], &token, &line, 1) == 204
    });

    // A token made on node 1, revoked on node 2: refused on node 0 once told.
    let (code, body) = nodes[1].curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"name":"worker"}"#,
        "/apps/shop/tokens",
    ]);
    assert_eq!(code, 201, "{body}");
    let second: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let second = second["token"].as_str().expect("token").to_owned();
    let ingest = frame(&second, "worker.1", "x");
    wait_until("node 0 takes the new token", SOON, || {
        post_logs(&nodes[0], &second, &ingest, 1) == 204
    });
    wait_until("node 2 knows the new token", SOON, || {
        nodes[2].curl(&["/apps/shop/tokens"]).1.contains(&second)
    });
    let (code, body) = nodes[2].curl(&["-X", "DELETE", &format!("/apps/shop/tokens/{second}")]);
    assert_eq!(code, 200, "{body}");
    wait_until("node 0 refuses the revoked token", SOON, || {
        post_logs(&nodes[0], &second, &ingest, 1) == 401
    });
    // The first token is untouched everywhere.
    for node in &nodes {
        assert_eq!(post_logs(node, &token, &line, 1), 204);
    }

    // An app key made on node 0 works on node 1; the rows hold its digest, never the key.
    let (code, body) = nodes[0].curl(&["-X", "POST", "/apps/shop/keys"]);
    assert_eq!(code, 201, "{body}");
    let key: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let key = key["key"].as_str().expect("key").to_owned();
    wait_until("node 1 takes the app key", SOON, || {
        nodes[1].curl_as(&key, &["/apps/shop"]).0 == 200
    });
    assert_eq!(
        cluster.db.query(&format!(
            "SELECT count(*) FROM api_keys WHERE digest = '{key}'"
        )),
        "0"
    );

    // A name taken on another node is a conflict, not a second app.
    assert_eq!(
        nodes[2]
            .curl(&["-X", "POST", "-d", r#"{"name":"shop"}"#, "/apps"])
            .0,
        409
    );
    // Deleted on node 1: gone on node 2, and its token refused there.
    assert_eq!(nodes[1].curl(&["-X", "DELETE", "/apps/shop"]).0, 200);
    wait_until("node 2 forgets the app", SOON, || {
        status(&nodes[2], "/apps/shop") == 404
    });
    wait_until("node 2 refuses its token", SOON, || {
        post_logs(&nodes[2], &token, &line, 1) == 401
    });
}

#[test]
fn a_single_routers_registry_is_imported_once_into_an_empty_database() {
    let mut cluster = Cluster::new("import");
    let dir = TempDir::new("cluster-import");
    // A single router first, with its registry.json.
    let token = {
        let single = support::Router::start(&dir.0, &[]);
        let token = single.create_app("legacy");
        single.add_drain("legacy", "http://127.0.0.1:9/legacy-drain");
        drop(single);
        token
    };
    let first = cluster.node_in(&dir.0, 0, &[]);
    assert_eq!(status(&first, "/apps/legacy"), 200);
    // registry.json and drains.json, once each.
    assert_eq!(cluster.db.query("SELECT count(*) FROM imports"), "2");
    // A second node (its own, empty, data directory) sees it, and takes its token.
    let second = cluster.node(1, &[]);
    assert_eq!(status(&second, "/apps/legacy"), 200);
    // Its drain too: it runs on every node.
    assert!(
        second
            .curl(&["/apps/legacy/log-drains"])
            .1
            .contains("legacy-drain")
    );
    assert_eq!(
        post_logs(&second, &token, &frame(&token, "web.1", "hi"), 1),
        204
    );
    // A node whose own registry.json has other apps imports nothing more.
    let other = TempDir::new("cluster-import-other");
    {
        let single = support::Router::start(&other.0, &[]);
        single.create_app("stray");
    }
    let third = cluster.node_in(&other.0, 2, &[]);
    assert_eq!(status(&third, "/apps/stray"), 404);
    assert_eq!(cluster.db.query("SELECT count(*) FROM imports"), "2");
    assert_eq!(status(&third, "/apps/legacy"), 200);
}
