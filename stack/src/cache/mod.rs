//! The HTTP cache between the proxy's head handling and the routing mesh (the seeds'
//! Varnish): answers the requests it can from memory, so that they never reach a dyno, and
//! tells the router line what it decided (`cache=hit|miss|pass|stale|revalidated|coalesced`,
//! `age=` on what it answered). `control.rs` reads `Cache-Control`; `policy.rs` decides what
//! may be stored and for how long (RFC 9111 for a shared cache); `store.rs` holds it, bounded
//! in bytes, with request coalescing; `stats.rs` counts. The proxy's exchange step
//! (`proxy/h1/exchange.rs`) consults it before `Mesh::pick`. `DELETE /apps/{app}/cache`
//! purges, `GET /apps/{app}/cache` shows the counters, and they are `paas_cache_*` on
//! `/metrics`.

pub mod control;
pub mod policy;
pub mod stats;
pub mod store;

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{AppResource, Body, api_error, api_json};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde_json::json;

pub use stats::{CacheCounts, Outcome};
pub use store::Store;

/// The cache's settings.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// Memory for stored responses, in bytes (0: no cache).
    pub max_bytes: u64,
    /// The largest body stored, in bytes; larger ones are streamed through.
    pub max_object: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 128 << 20,
            max_object: 1 << 20,
        }
    }
}

/// One app's HTTP cache.
#[derive(Debug)]
pub struct HttpCache {
    app: String,
    store: Arc<Store>,
}

impl HttpCache {
    /// A cache for `app` under `config`, or `None` when its memory is 0 (the cache is off).
    pub fn new(app: &str, config: CacheConfig) -> Option<Arc<HttpCache>> {
        (config.max_bytes > 0).then(|| {
            Arc::new(HttpCache {
                app: app.to_owned(),
                store: Arc::new(Store::new(config.max_bytes, config.max_object)),
            })
        })
    }

    /// Its store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The counters now.
    pub fn counts(&self) -> CacheCounts {
        let (objects, bytes) = self.store.size();
        self.store.stats().counts(objects, bytes)
    }

    /// `/apps/{app}/cache`: `GET` the counters, `DELETE` to purge (all; `?path=/a` one path;
    /// `?path=/assets/*` a prefix).
    pub fn resource(self: &Arc<Self>) -> Arc<dyn AppResource> {
        Arc::new(Resource(self.clone()))
    }
}

#[derive(Debug)]
struct Resource(Arc<HttpCache>);

impl AppResource for Resource {
    fn handle(
        &self,
        req: Request<Incoming>,
        app: String,
        rest: Vec<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>> {
        let cache = self.0.clone();
        Box::pin(async move {
            if app != cache.app || !rest.is_empty() {
                return api_error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "This app has no cache here (is it started by `paas up`?).",
                );
            }
            match *req.method() {
                Method::GET => api_json(StatusCode::OK, &json!({ "cache": cache.counts() })),
                Method::DELETE => {
                    let path = req.uri().query().and_then(|q| {
                        q.split('&')
                            .find_map(|kv| kv.strip_prefix("path="))
                            .map(decode)
                    });
                    if path.as_deref().is_some_and(|p| !p.starts_with('/')) {
                        return api_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid_params",
                            "A path to purge starts with `/` (a prefix ends with `*`).",
                        );
                    }
                    let purged = cache.store.purge(path.as_deref());
                    api_json(StatusCode::OK, &json!({ "purged": purged }))
                }
                _ => api_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "GET shows the cache, DELETE purges it.",
                ),
            }
        })
    }
}

/// A query value with its `%XX` escapes (and `+`) decoded.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Collector for HttpCache {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let c = self.counts();
        let app = [("app", self.app.as_str())];
        let counters = [
            (
                "paas_cache_hits",
                "Requests answered from the cache.",
                c.hits,
            ),
            (
                "paas_cache_misses",
                "Requests sent to a dyno whose answer the cache could store.",
                c.misses,
            ),
            (
                "paas_cache_passes",
                "Requests sent to a dyno whose answer the cache could not store.",
                c.passes,
            ),
            (
                "paas_cache_stale",
                "Requests answered stale (while revalidating, or the dyno failed).",
                c.stale,
            ),
            (
                "paas_cache_revalidated",
                "Stale entries a dyno confirmed (304), then answered.",
                c.revalidated,
            ),
            (
                "paas_cache_coalesced",
                "Misses that waited for another's answer and were answered from it.",
                c.coalesced,
            ),
            (
                "paas_cache_evictions",
                "Entries evicted for room.",
                c.evictions,
            ),
            ("paas_cache_purged", "URLs purged.", c.purged),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(family.encode_family(&app)?)?;
        }
        let gauges = [
            ("paas_cache_objects", "URLs held by the cache.", c.objects),
            ("paas_cache_bytes", "Bytes held by the cache.", c.bytes),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
                .encode(family.encode_family(&app)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_paths_are_decoded() {
        assert_eq!(decode("/a%20b+c%2A"), "/a b c*");
        assert_eq!(decode("/bad%2"), "/bad%2");
        assert_eq!(decode("%zz"), "%zz");
    }
}
