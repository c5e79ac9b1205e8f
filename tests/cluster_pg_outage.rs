//! A PostgreSQL outage, end to end (the nodes reach PostgreSQL through a proxy the test
//! cuts): ingest with known tokens goes on, configuration changes are refused with 503 and a
//! clear error, `/readyz` fails; once PostgreSQL is back, changes work again and reach every
//! node.

#[path = "cluster_support/mod.rs"]
mod cluster_support;
mod support;

use cluster_support::{Cluster, PgProxy, SOON, post_logs, wait_until};
use support::frame;

#[test]
fn a_postgresql_outage_keeps_ingest_and_refuses_changes_until_it_ends() {
    let proxy = PgProxy::start();
    let mut cluster = Cluster::new("pgoutage");
    cluster.db_url = Some(proxy.url(&cluster.db));
    let nodes = cluster.nodes(2);
    let token = nodes[0].create_app("shop");
    wait_until("node 1 knows the app", SOON, || {
        nodes[1].curl(&["/apps/shop"]).0 == 200
    });

    proxy.cut();
    // Ingest with a known token goes on, on both nodes.
    for (i, node) in nodes.iter().enumerate() {
        let line = frame(&token, "web.1", &format!("during the outage {i}"));
        assert_eq!(post_logs(node, &token, &line, 1), 204);
    }
    // A change is refused, saying why, and changes nothing.
    let (code, body) = nodes[0].curl(&["-X", "POST", "-d", r#"{"name":"blog"}"#, "/apps"]);
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("configuration store is unavailable"),
        "{body}"
    );
    assert_eq!(nodes[0].curl(&["/apps/blog"]).0, 404);
    wait_until("node 1 is not ready", SOON, || {
        nodes[1].curl(&["/readyz"]).0 == 503
    });

    proxy.restore();
    for node in &nodes {
        wait_until("the node is ready again", SOON, || {
            node.curl(&["/readyz"]).0 == 200
        });
    }
    wait_until("a change is taken again", SOON, || {
        nodes[0]
            .curl(&["-X", "POST", "-d", r#"{"name":"blog"}"#, "/apps"])
            .0
            == 201
    });
    wait_until("node 1 learns it", SOON, || {
        nodes[1].curl(&["/apps/blog"]).0 == 200
    });
    let history = nodes[1].history("shop", &[]);
    for i in 0..2 {
        let want = format!("during the outage {i}");
        assert!(history.iter().any(|l| l.ends_with(&want)), "{history:?}");
    }
}
