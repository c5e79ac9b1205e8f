//! Asking every other node for its matching lines, all at once, each within a timeout and a
//! bound on the bytes read; what a node did not give is `Missing`, with why.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use logplex::AppName;

use super::{Missing, PEER_PATH, PeerLines, QueryPeers, SECRET_HEADER, decode};
use crate::window::Window;

/// What one query asks every node.
#[derive(Debug)]
pub(crate) struct Ask<'a> {
    pub(crate) app: &'a str,
    pub(crate) q: &'a str,
    pub(crate) window: Window,
    /// Lines a node ships at most.
    pub(crate) cap: usize,
    /// Bytes of a node's answer read at most.
    pub(crate) max_bytes: usize,
    pub(crate) timeout: Duration,
}

fn encode_param(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every other node's matching lines, and the nodes whose lines are missing.
pub(crate) async fn gather(
    peers: &dyn QueryPeers,
    ask: &Ask<'_>,
) -> (Vec<PeerLines>, Vec<Missing>) {
    let nodes = match peers.peers().await {
        Ok(nodes) => nodes,
        Err(e) => {
            return (
                Vec::new(),
                vec![Missing {
                    node: "cluster".into(),
                    why: format!("the other nodes could not be listed: {e}"),
                }],
            );
        }
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut path = format!(
        "/{PEER_PATH}/{}?q={}&limit={}",
        encode_param(ask.app),
        encode_param(ask.q),
        ask.cap
    );
    if let Some(s) = ask.window.since {
        path.push_str(&format!("&since_us={}", s.as_micros()));
    }
    if let Some(u) = ask.window.until {
        path.push_str(&format!("&until_us={}", u.as_micros()));
    }
    let app = AppName::from(ask.app);
    let asks = nodes.into_iter().map(|node| {
        let (client, path, app) = (client.clone(), path.clone(), app.clone());
        async move {
            if !node.alive {
                let why = "not alive".to_owned();
                return (
                    None,
                    Some(Missing {
                        node: node.node,
                        why,
                    }),
                );
            }
            let url = format!("{}{path}", node.api_url);
            let fetched = tokio::time::timeout(ask.timeout, async {
                let req = Request::get(url.as_str())
                    .header(SECRET_HEADER, peers.secret())
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                let res = client.request(req).await.map_err(|e| e.to_string())?;
                let status = res.status();
                let body = Limited::new(res.into_body(), ask.max_bytes)
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                if status != StatusCode::OK {
                    return Err(format!(
                        "answered {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ));
                }
                decode(&body, &app).map_err(|e| e.to_string())
            })
            .await;
            let why = match fetched {
                Ok(Ok(lines)) if lines.omitted == 0 => return (Some(lines), None),
                Ok(Ok(lines)) => {
                    // Its newest lines are used; the answer says it lacks the rest.
                    let why = format!(
                        "more than {} lines matched there ({} left out): narrow the query",
                        ask.cap, lines.omitted
                    );
                    return (
                        Some(lines),
                        Some(Missing {
                            node: node.node,
                            why,
                        }),
                    );
                }
                Ok(Err(e)) => format!("did not answer: {e}"),
                Err(_) => format!("did not answer within {:?}", ask.timeout),
            };
            (
                None,
                Some(Missing {
                    node: node.node,
                    why,
                }),
            )
        }
    });
    let mut got = Vec::new();
    let mut missing = Vec::new();
    for (lines, lacking) in futures_util::future::join_all(asks).await {
        got.extend(lines);
        missing.extend(lacking);
    }
    (got, missing)
}
