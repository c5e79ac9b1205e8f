//! The cluster's nodes for queries over all of them (`query::QueryPeers`): every other node's
//! row in `nodes` (its API's URL, whether its heartbeat is recent), and the cluster's secret,
//! which node-to-node requests carry. The secret is made once, by the first node to join
//! (128 random bits), in `cluster_secret`, and read by every node at join; it is no tenant's
//! or operator's key and opens nothing but `/cluster-lines`.

use std::sync::Arc;

use query::{PeersFuture, QueryPeer, QueryPeers};

use crate::config::{PgStore, bounded};
use crate::error::{Result, pg};
use crate::status::ALIVE_WITHIN;

/// This node's view of the others, for queries.
#[derive(Debug)]
pub(crate) struct NodePeers {
    pub(crate) id: String,
    pub(crate) store: Arc<PgStore>,
    pub(crate) secret: String,
}

/// The cluster's secret: made by the first node to ask, the same for every node after.
pub(crate) async fn cluster_secret(store: &PgStore) -> Result<String> {
    let client = store.reader().await?;
    let made = uuid::Uuid::new_v4().simple().to_string();
    bounded("cluster secret", async {
        client
            .execute(
                "INSERT INTO cluster_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&made],
            )
            .await
            .map_err(pg("cluster secret: insert"))?;
        let row = client
            .query_one("SELECT secret FROM cluster_secret WHERE id = 1", &[])
            .await
            .map_err(pg("cluster secret: read"))?;
        Ok(row.get::<_, String>(0))
    })
    .await
}

impl NodePeers {
    async fn list(&self) -> Result<Vec<QueryPeer>> {
        let client = self.store.reader().await?;
        let rows = bounded("peers", async {
            client
                .query(
                    "SELECT id, api_url, extract(epoch FROM now() - heartbeat_at)::float8
                     FROM nodes WHERE id <> $1 ORDER BY id",
                    &[&self.id],
                )
                .await
                .map_err(pg("peers"))
        })
        .await?;
        Ok(rows
            .iter()
            .map(|r| QueryPeer {
                node: r.get(0),
                api_url: r.get(1),
                alive: r.get::<_, f64>(2) < ALIVE_WITHIN.as_secs_f64(),
            })
            .collect())
    }
}

impl QueryPeers for NodePeers {
    fn peers(&self) -> PeersFuture<'_> {
        Box::pin(async move { self.list().await.map_err(|e| e.to_string()) })
    }

    fn secret(&self) -> &str {
        &self.secret
    }

    fn this_node(&self) -> &str {
        &self.id
    }
}
