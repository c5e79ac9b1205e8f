//! Queries over the whole cluster. In a cluster each node's spool and index hold the share of
//! the lines its spool writer took from the shared consumer `spool` (each line on one node),
//! so the node asked gathers the lines the query's filter matches from every other node
//! (`gather.rs`, over `GET /cluster-lines/{app}` which `resource.rs` serves, authenticated by
//! the cluster's secret, never a tenant's key), adds its own, and runs the whole pipeline over
//! them in the bus's order (`seq`): every stage (count, sum/avg/min/max, percentiles,
//! timechart, sort, head, top) is then the one a single node holding every line computes.
//! Lines kept twice (a batch delivered again after a node died) share their `seq` and are
//! kept once.
//!
//! Gathering is bounded: each node ships at most `ServiceConfig::max_cluster_lines` matching
//! lines in the window; a node that has more, that is not alive, or that does not answer
//! makes the answer partial, naming it (`Paas-Query-Partial`), never silently incomplete.
//!
//! The seam: `QueryPeers`, which the `cluster` crate implements from its `nodes` table.

mod gather;
mod resource;
mod wire;

use std::future::Future;
use std::pin::Pin;

pub(crate) use gather::{Ask, gather};
pub use resource::PeerLinesResource;
pub(crate) use wire::{PeerLines, decode, encode};

/// The path a node serves its matching lines under, for the node asking (`/cluster-lines/…`).
pub const PEER_PATH: &str = "cluster-lines";

/// The header that carries the cluster's secret between nodes.
pub const SECRET_HEADER: &str = "paas-cluster-secret";

/// The header that says an answer is partial, and which nodes' lines it lacks and why.
pub const PARTIAL_HEADER: &str = "paas-query-partial";

/// Another node of the cluster, as its heartbeat row says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPeer {
    /// Its node id.
    pub node: String,
    /// Where its API is (`http://host:port`).
    pub api_url: String,
    /// Whether its heartbeat is recent.
    pub alive: bool,
}

/// What `QueryPeers::peers` returns.
pub type PeersFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<QueryPeer>, String>> + Send + 'a>>;

/// A cluster's nodes, for queries over all of them.
pub trait QueryPeers: Send + Sync + std::fmt::Debug {
    /// Every other node of the cluster (alive or not).
    fn peers(&self) -> PeersFuture<'_>;

    /// The cluster's secret, which node-to-node requests carry.
    fn secret(&self) -> &str;

    /// This node's id (named when its own lines are more than an answer may use).
    fn this_node(&self) -> &str;
}

/// A node whose lines an answer lacks, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The node.
    pub node: String,
    /// Why: not alive, did not answer, more lines than shipped.
    pub why: String,
}

/// The `Paas-Query-Partial` header's value: `node2 (not alive); node1 (…)`.
pub(crate) fn partial_header(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(|m| format!("{} ({})", m.node, m.why.replace(['\r', '\n'], " ")))
        .collect::<Vec<_>>()
        .join("; ")
}
