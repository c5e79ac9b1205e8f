//! The cache's memory: one app's stored responses by URL (host and path), each URL with its
//! variants (one a set of the request's `Vary`'d header values), in a `moka` cache bounded in
//! bytes (TinyLFU admission, LRU eviction: a flood of one-off URLs cannot push out what is
//! used). A URL whose answer could not be stored is remembered for a while as a pass, so that
//! its requests neither wait for one another nor are looked up in vain (Varnish's
//! hit-for-miss). Misses for one URL are coalesced: the first goes to a dyno, the others wait
//! for its answer ([`Flight`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::cache::control::Control;
use crate::cache::policy::Meta;
use crate::cache::stats::CacheStats;

/// How long a URL whose answer could not be stored is passed without a look.
pub const PASS_FOR: Duration = Duration::from_secs(10);

/// Bytes an entry is counted for beyond its head and body.
const OVERHEAD: usize = 256;

/// The request headers an entry varies on (lowercase names), with the values it was stored
/// for (`None`: the request had none).
pub type VaryValues = Vec<(Box<str>, Option<Box<[u8]>>)>;

/// A stored response.
#[derive(Debug)]
pub struct Stored {
    /// Its status and reason.
    pub status: u16,
    pub reason: Box<str>,
    /// Its end-to-end headers as the client gets them, without framing, `Via` or `Age`.
    pub headers: Vec<(Box<str>, Box<[u8]>)>,
    /// Its body, whole.
    pub body: Bytes,
    /// The request headers it varies on (lowercase), and the values it was stored for.
    pub vary: VaryValues,
    /// When it was stored (or last revalidated).
    pub at: Instant,
    /// Its `Cache-Control`, freshness, age on arrival and validators.
    pub meta: Meta,
}

impl Stored {
    /// Its age now, in seconds (RFC 9111 §4.2.3).
    pub fn age(&self, now: Instant) -> u64 {
        self.meta.initial_age + now.saturating_duration_since(self.at).as_secs()
    }

    /// Whether it may be served without asking the dyno.
    pub fn fresh(&self, now: Instant) -> bool {
        !self.meta.control.no_cache && self.age(now) < self.meta.fresh_for
    }

    /// Whether, stale, it may be served while it is refreshed (`stale-while-revalidate`).
    pub fn usable_while_revalidating(&self, now: Instant) -> bool {
        self.stale_within(now, self.meta.control.stale_while_revalidate)
    }

    /// Whether, stale, it may be served when the dyno fails (`stale-if-error`).
    pub fn usable_on_error(&self, now: Instant) -> bool {
        self.stale_within(now, self.meta.control.stale_if_error)
    }

    fn stale_within(&self, now: Instant, extra: Option<u64>) -> bool {
        let control: &Control = &self.meta.control;
        !control.must_revalidate
            && !control.no_cache
            && extra.is_some_and(|extra| self.age(now) < self.meta.fresh_for.saturating_add(extra))
    }

    /// Whether it was stored for a request whose header values are `value(name)`.
    fn matches<'r>(&self, value: &impl Fn(&str) -> Option<&'r [u8]>) -> bool {
        self.vary
            .iter()
            .all(|(name, stored)| value(name).map(<[u8]>::trim_ascii) == stored.as_deref())
    }

    fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        OVERHEAD + self.body.len() + headers
    }
}

/// What the cache holds for a URL.
#[derive(Debug)]
enum Slot {
    /// Its stored variants.
    Variants(Vec<Arc<Stored>>),
    /// Its answer could not be stored: passed until then.
    Pass(Instant),
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    /// A variant for the request.
    Stored(Arc<Stored>),
    /// The URL is passed (its answer could not be stored lately).
    Pass,
    /// Nothing.
    Nothing,
}

/// One app's cache.
#[derive(Debug)]
pub struct Store {
    entries: moka::sync::Cache<Arc<str>, Arc<Slot>>,
    flights: Mutex<HashMap<Arc<str>, Arc<Landing>>>,
    stats: Arc<CacheStats>,
    max_object: usize,
}

impl Store {
    /// A cache of at most `max_bytes`, storing bodies of at most `max_object` bytes.
    pub fn new(max_bytes: u64, max_object: usize) -> Self {
        let stats = Arc::new(CacheStats::default());
        let evicted = stats.clone();
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Arc<str>, slot: &Arc<Slot>| {
                let weight = match &**slot {
                    Slot::Variants(v) => v.iter().map(|s| s.weight()).sum(),
                    Slot::Pass(_) => OVERHEAD,
                };
                u32::try_from(weight + key.len()).unwrap_or(u32::MAX)
            })
            .eviction_listener(move |_, _, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    evicted.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Store {
            entries,
            flights: Mutex::default(),
            stats,
            max_object,
        }
    }

    /// The cache's counters.
    pub fn stats(&self) -> &Arc<CacheStats> {
        &self.stats
    }

    /// The largest body stored.
    pub fn max_object(&self) -> usize {
        self.max_object
    }

    /// What is held for `key` for a request whose header values are `value(name)`.
    pub fn lookup<'r>(&self, key: &str, value: impl Fn(&str) -> Option<&'r [u8]>) -> Found {
        let Some(slot) = self.entries.get(key) else {
            return Found::Nothing;
        };
        match &*slot {
            Slot::Pass(until) if Instant::now() < *until => Found::Pass,
            Slot::Pass(_) => Found::Nothing,
            Slot::Variants(variants) => variants
                .iter()
                .find(|s| s.matches(&value))
                .map_or(Found::Nothing, |s| Found::Stored(s.clone())),
        }
    }

    /// Stores `stored` under `key`, in place of the variant for the same request values
    /// (unless its body is over the largest object); returns it as stored.
    pub fn insert(&self, key: &str, stored: Stored) -> Arc<Stored> {
        let stored = Arc::new(stored);
        if stored.body.len() > self.max_object {
            return stored;
        }
        let mut variants = match self.entries.get(key).as_deref() {
            Some(Slot::Variants(v)) => v
                .iter()
                .filter(|s| s.vary != stored.vary)
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        variants.push(stored.clone());
        self.entries
            .insert(Arc::from(key), Arc::new(Slot::Variants(variants)));
        stored
    }

    /// Remembers that `key`'s answer could not be stored.
    pub fn pass(&self, key: &str) {
        self.entries.insert(
            Arc::from(key),
            Arc::new(Slot::Pass(Instant::now() + PASS_FOR)),
        );
    }

    /// Forgets every variant of `key` (an unsafe method was sent to it).
    pub fn invalidate(&self, key: &str) {
        self.entries.invalidate(key);
    }

    /// Forgets what `pattern` names: everything (`None`), a URL's path (`/a?b`, under any
    /// host), or a prefix of paths (`/assets/*`). Returns how many URLs were forgotten.
    pub fn purge(&self, pattern: Option<&str>) -> u64 {
        let mut purged = 0;
        let keys: Vec<Arc<str>> = self.entries.iter().map(|(k, _)| (*k).clone()).collect();
        for key in keys {
            let path = key.split_once('\n').map_or(&*key, |(_, p)| p);
            let hit = match pattern {
                None => true,
                Some(p) => match p.strip_suffix('*') {
                    Some(prefix) => path.starts_with(prefix),
                    None => path == p,
                },
            };
            if hit {
                self.entries.invalidate(&key);
                purged += 1;
            }
        }
        self.stats.purged.fetch_add(purged, Ordering::Relaxed);
        purged
    }

    /// Objects and bytes held now.
    pub fn size(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    /// Joins the misses in flight for `key`: the first leads (goes to a dyno; its [`Flight`]
    /// tells the others as its answer comes), the others follow (watch what is returned).
    pub fn fly(self: &Arc<Self>, key: &str) -> Result<Flight, Arc<Landing>> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(landing) = flights.get(key) {
            return Err(landing.clone());
        }
        let key: Arc<str> = Arc::from(key);
        let landing = Arc::new(Landing::default());
        flights.insert(key.clone(), landing.clone());
        Ok(Flight {
            store: self.clone(),
            key,
            landing,
        })
    }
}

/// What the misses waiting on a lead see of its answer as it comes: a storable answer of known
/// length is shared from its head on, its body as it arrives, so that they stream it too.
#[derive(Debug, Default)]
pub struct Landing {
    /// Told of every change.
    pub changed: Notify,
    shared: Mutex<Shared>,
}

/// A lead's answer as far as it has come.
#[derive(Debug, Default)]
pub struct Shared {
    /// The answer's head (status, reason, headers as stored; its body empty), once known.
    pub head: Option<Arc<Stored>>,
    /// The body's length, as the head declared it.
    pub length: u64,
    /// The body so far.
    pub body: Vec<u8>,
    /// The lead is done: its answer whole (`head` set, `body` complete), or given up.
    pub over: bool,
}

impl Landing {
    /// The answer so far, to `f`.
    pub fn with<T>(&self, f: impl FnOnce(&Shared) -> T) -> T {
        f(&self.shared.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn change(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut self.shared.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_waiters();
    }
}

/// The lead miss for a URL; the misses waiting on it are released when it is dropped (its
/// answer stored, or known not to be storable, or failed).
#[derive(Debug)]
pub struct Flight {
    store: Arc<Store>,
    key: Arc<str>,
    landing: Arc<Landing>,
}

impl Flight {
    /// The answer's head is known, storable, and its body `length` bytes long: the waiting
    /// misses may stream it from here (`head`'s body is empty).
    pub fn share_head(&self, head: Stored, length: u64) {
        self.landing.change(|s| {
            s.head = Some(Arc::new(head));
            s.length = length;
        });
    }

    /// More of the body.
    pub fn share_body(&self, data: &[u8]) {
        self.landing.change(|s| s.body.extend_from_slice(data));
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut flights = self.store.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.remove(&self.key);
        drop(flights);
        self.landing.change(|s| s.over = true);
    }
}

/// The current time as the cache's clock for HTTP dates.
pub fn now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(vary: &[(&str, Option<&str>)], body: &str, fresh_for: u64) -> Stored {
        Stored {
            status: 200,
            reason: "OK".into(),
            headers: vec![("content-type".into(), b"text/plain".to_vec().into())],
            body: Bytes::from(body.to_owned()),
            vary: vary
                .iter()
                .map(|(n, v)| ((*n).into(), v.map(|v| v.as_bytes().into())))
                .collect(),
            at: Instant::now(),
            meta: Meta {
                control: Control::default(),
                fresh_for,
                initial_age: 0,
                vary: vary.iter().map(|(n, _)| (*n).to_owned()).collect(),
                etag: None,
                last_modified: None,
            },
        }
    }

    #[test]
    fn variants_are_found_by_the_request_s_values() {
        let store = Store::new(1 << 20, 1 << 16);
        store.insert(
            "h\n/a",
            stored(&[("accept-encoding", Some("gzip"))], "zipped", 60),
        );
        store.insert("h\n/a", stored(&[("accept-encoding", None)], "plain", 60));
        let body = |found: Found| match found {
            Found::Stored(s) => String::from_utf8_lossy(&s.body).into_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(
            body(store.lookup("h\n/a", |_| Some(&b" gzip"[..]))),
            "zipped"
        );
        assert_eq!(body(store.lookup("h\n/a", |_| None)), "plain");
        assert_eq!(body(store.lookup("h\n/a", |_| Some(&b"br"[..]))), "Nothing");
        store.invalidate("h\n/a");
        assert!(matches!(store.lookup("h\n/a", |_| None), Found::Nothing));
        store.pass("h\n/b");
        assert!(matches!(store.lookup("h\n/b", |_| None), Found::Pass));
    }

    #[test]
    fn purges_take_all_a_path_or_a_prefix() {
        let store = Store::new(1 << 20, 1 << 16);
        for path in ["/a", "/assets/x.css", "/assets/y.js", "/b?q=1"] {
            store.insert(&format!("h\n{path}"), stored(&[], "x", 60));
        }
        assert_eq!(store.purge(Some("/assets/*")), 2);
        assert_eq!(store.purge(Some("/b?q=1")), 1);
        assert_eq!(store.purge(None), 1);
        assert_eq!(store.size().0, 0);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_urls() {
        let store = Store::new(256 << 10, 1 << 16);
        let body = "b".repeat(1000);
        for i in 0..10_000 {
            store.insert(&format!("h\n/{i}"), stored(&[], &body, 60));
        }
        let (_, bytes) = store.size();
        assert!(bytes <= 256 << 10, "{bytes} bytes held");
        assert!(store.stats().evictions.load(Ordering::Relaxed) > 0);
        // Too large to store.
        store.insert("h\n/big", stored(&[], &"x".repeat(1 << 17), 60));
        assert!(matches!(store.lookup("h\n/big", |_| None), Found::Nothing));
    }

    #[test]
    fn freshness_and_staleness_windows() {
        let mut s = stored(&[], "x", 10);
        let now = Instant::now();
        assert!(s.fresh(now));
        assert!(!s.fresh(now + Duration::from_secs(11)));
        s.meta.control.stale_if_error = Some(60);
        assert!(s.usable_on_error(now + Duration::from_secs(30)));
        assert!(!s.usable_on_error(now + Duration::from_secs(80)));
        assert!(!s.usable_while_revalidating(now + Duration::from_secs(30)));
        s.meta.control.must_revalidate = true;
        assert!(!s.usable_on_error(now + Duration::from_secs(30)));
    }

    #[tokio::test]
    async fn one_miss_leads_and_the_others_wait_for_it() {
        let store = Arc::new(Store::new(1 << 20, 1 << 16));
        let lead = store.fly("h\n/a").unwrap();
        let landing = store.fly("h\n/a").unwrap_err();
        let waiting = landing.changed.notified();
        tokio::pin!(waiting);
        waiting.as_mut().enable();
        drop(lead);
        waiting.await;
        assert!(landing.with(|s| s.over));
        assert!(store.fly("h\n/a").is_ok());
    }
}
