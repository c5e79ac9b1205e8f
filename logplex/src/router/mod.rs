//! The router: the registry of apps, tokens and keys, one `Channel` per app, and the
//! router-wide consumers. Every ingest path, the API and the stack's emitters go through it.

mod app_ids;
mod budget;
mod channel;
mod consumers;
mod emitter;
mod feed;
mod limits;
mod outbox;
mod queue;
mod seq;
pub(crate) mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use bytes::Bytes;

pub use app_ids::AppIds;
pub use budget::RateBudget;
pub use channel::{BatchOutcome, Channel, ChannelConfig, TooManyTails};
pub use consumers::{CatchUp, Resumed, Subscription};
pub use emitter::{EmitError, Emitter};
pub use feed::{ConsumerFeed, FeedTake};
pub use limits::{Limit, LimitCounters};
pub use outbox::{BusOutbox, OUTBOX_CAPACITY};
pub use queue::{Batch, DEFAULT_TAIL_BUFFER, LineQueue, Loss, QueueCounts, Taken};
pub use seq::{SEQ_BLOCK, SeqFileError};
pub(crate) use seq::{SeqFile, seq_dir};
pub use stats::{ChannelStats, ConsumerStats, HistoryStats, Reject, RejectCounts};

use crate::bus::LineBus;
use crate::history::{DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LINES};
use crate::line::AppName;
use crate::registry::{
    ApiKey, App, Caller, KeyScope, NewKey, Registry, RegistryDiff, RegistryError, RegistryRecords,
    RegistryStore, Token, diff_to,
};
use crate::shared_consumers::SharedConsumers;
use crate::time::Timestamp;
use consumers::Consumers;

/// How the router's channels are sized and budgeted.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Lines of history per app (Logplex: 1500).
    pub history_lines: usize,
    /// Bytes of history per app.
    pub history_bytes: usize,
    /// Lines a tail session's buffer holds (Logplex: 1024).
    pub tail_buffer: usize,
    /// Lines per second one app may send (0: no limit).
    pub app_rate: u64,
    /// Tail sessions one app may have open.
    pub max_tails_per_app: usize,
    /// Where each app's seq file is kept (`seq_dir(data_dir)`), so that `seq` stays
    /// monotonic across restarts; `None`: in memory, each start numbers from 1.
    pub seq_dir: Option<std::path::PathBuf>,
    /// A cluster node about to join: until its log bus is installed, ingest refuses lines
    /// (they could reach no other node nor any drain) and readiness fails.
    pub awaits_bus: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            history_lines: DEFAULT_HISTORY_LINES,
            history_bytes: DEFAULT_HISTORY_BYTES,
            tail_buffer: DEFAULT_TAIL_BUFFER,
            app_rate: 1_000_000,
            max_tails_per_app: 20,
            seq_dir: None,
            awaits_bus: false,
        }
    }
}

/// Where an ingest token's lines go: its app's channel and its source name.
#[derive(Clone, Debug)]
pub struct TokenTarget {
    /// The app's channel.
    pub channel: Arc<Channel>,
    /// The token's name, which its lines carry as their source.
    pub source: Bytes,
    /// The token itself.
    pub token: Arc<str>,
    /// The id of the app (a cluster's bus names the app by it).
    pub app_id: Arc<str>,
}

/// Something outside the router that hangs on apps' ids (drains, saved history) and must
/// let go of an app when it is deleted.
pub trait AppLifecycle: Send + Sync + std::fmt::Debug {
    /// `app` is deleted: its id will never be seen again.
    fn app_deleted(&self, app: &App);
}

#[derive(Debug)]
struct Inner {
    lifecycle: RwLock<Vec<Arc<dyn AppLifecycle>>>,
    config: RouterConfig,
    registry: RwLock<Registry>,
    /// Bumped on every registry change, so cached token lookups know to look again.
    generation: AtomicU64,
    channels: RwLock<HashMap<String, Arc<Channel>>>,
    consumers: Arc<Consumers>,
    unattributed: RejectCounts,
    limits: LimitCounters,
    ingest: crate::ingest::IngestStats,
    stopping: AtomicBool,
    /// A cluster's configuration store: changes go through it before memory (`None`: the
    /// embedded default, `registry.json`).
    store: RwLock<Option<Arc<dyn RegistryStore>>>,
    /// One change through the store at a time on this node.
    store_writes: std::sync::Mutex<()>,
    /// A cluster's log bus: accepted lines go through it (`None`: straight to the channel).
    bus: RwLock<Option<Arc<dyn LineBus>>>,
    /// Where emitters' lines wait for the bus (with the bus).
    outbox: RwLock<Option<Arc<BusOutbox>>>,
    /// The nodes sharing each app's rate budget (1 but in a cluster).
    rate_share: AtomicU64,
    /// A cluster's shared router-wide consumers (`None`: each reads its own subscription).
    shared_consumers: RwLock<Option<Arc<dyn SharedConsumers>>>,
}

/// The router. Cheap to clone: every clone is the same router.
#[derive(Clone, Debug)]
pub struct Router {
    inner: Arc<Inner>,
}

impl Router {
    /// A router over `registry`, with a channel for each of its apps.
    pub fn new(config: RouterConfig, registry: Registry) -> Self {
        let router = Router {
            inner: Arc::new(Inner {
                lifecycle: RwLock::new(Vec::new()),
                config,
                registry: RwLock::new(registry),
                generation: AtomicU64::new(0),
                channels: RwLock::new(HashMap::new()),
                consumers: Arc::new(Consumers::default()),
                unattributed: RejectCounts::default(),
                limits: LimitCounters::default(),
                ingest: crate::ingest::IngestStats::default(),
                stopping: AtomicBool::new(false),
                store: RwLock::new(None),
                store_writes: std::sync::Mutex::new(()),
                bus: RwLock::new(None),
                outbox: RwLock::new(None),
                rate_share: AtomicU64::new(1),
                shared_consumers: RwLock::new(None),
            }),
        };
        let names: Vec<String> = router.registry().apps().map(|a| a.name.clone()).collect();
        for name in names {
            router.open_channel(&name);
        }
        router
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &RouterConfig {
        &self.inner.config
    }

    fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the registry: the change is made under the write lock and the generation
    /// bumped before it is let go (so no reader caches a look-up of the old state under the new
    /// generation); the file is written after, so ingest never waits on a disk.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Registry) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let store = self
            .inner
            .store
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(store) = store {
            return self.change_through(store.as_ref(), f);
        }
        let (out, snapshot) = {
            let mut registry = self
                .inner
                .registry
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let out = f(&mut registry).inspect_err(|e| self.count_limit(e))?;
            let snapshot = registry.snapshot()?;
            self.inner.generation.fetch_add(1, Ordering::Release);
            (out, snapshot)
        };
        if let Some((snapshot, file)) = snapshot {
            file.write(&snapshot)?;
        }
        Ok(out)
    }

    /// A change through the store: tried on a copy, committed to the store (outside the
    /// registry's lock: ingest never waits on it), then applied in memory. A store that cannot
    /// be reached changes nothing (`RegistryError::Unavailable`).
    fn change_through<T>(
        &self,
        store: &dyn RegistryStore,
        f: impl FnOnce(&mut Registry) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let _one = self.store_writes();
        let before = self.registry().scratch();
        let mut after = before.scratch();
        let out = f(&mut after).inspect_err(|e| self.count_limit(e))?;
        let diff = before.diff(&after);
        if !diff.is_empty() {
            store.commit(&diff)?;
            self.apply_diff(&diff);
        }
        Ok(out)
    }

    /// The one-change-at-a-time lock of changes through the store. Its holder waits on the
    /// store (a worker thread handed over with `block_in_place`); a thread that must wait for
    /// it here hands its worker over too, so that waiting writers never leave the runtime
    /// without a worker to drive the very I/O the holder waits on.
    fn store_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        let lock = &self.inner.store_writes;
        match lock.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                let multi = tokio::runtime::Handle::try_current().is_ok_and(|h| {
                    h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                });
                let wait = || lock.lock().unwrap_or_else(|p| p.into_inner());
                if multi {
                    tokio::task::block_in_place(wait)
                } else {
                    wait()
                }
            }
        }
    }

    fn count_limit(&self, e: &RegistryError) {
        match e {
            RegistryError::TooMany { what: "tokens", .. } => {
                self.inner.limits.hit(Limit::TokensPerApp)
            }
            RegistryError::TooMany { .. } => self.inner.limits.hit(Limit::KeysPerApp),
            RegistryError::InvalidSourceName { .. } => self.inner.limits.hit(Limit::TokenName),
            _ => {}
        }
    }

    /// From now on, registry changes go through `store` before memory (a cluster node's
    /// PostgreSQL); the file is no longer written.
    pub fn set_registry_store(&self, store: Arc<dyn RegistryStore>) {
        *self.inner.store.write().unwrap_or_else(|p| p.into_inner()) = Some(store);
    }

    /// Everything the registry holds, as records.
    pub fn registry_records(&self) -> RegistryRecords {
        self.registry().records()
    }

    /// Makes the registry hold exactly `records` (read whole from the store after another
    /// node's change): apps new here get a channel, apps gone close theirs and are let go
    /// everywhere, and cached token look-ups are made again. Returns whether anything changed.
    pub fn replace_registry(&self, records: &RegistryRecords) -> bool {
        let diff = diff_to(&self.registry(), records);
        if diff.is_empty() {
            return false;
        }
        self.apply_diff(&diff);
        true
    }

    /// `replace_registry`, but only if `current()` still says `records` are current, asked
    /// while no change of this node's can commit (a read that overlapped one may predate it,
    /// and would undo it for a moment): `None` when not, or when a change is committing now
    /// (it never waits: it runs on the runtime's threads, which the commit needs).
    pub fn replace_registry_if(
        &self,
        records: &RegistryRecords,
        current: &dyn Fn() -> bool,
    ) -> Option<bool> {
        // Never waits: a change of this node's is committing (the caller reads again later).
        let _one = match self.inner.store_writes.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        if !current() {
            return None;
        }
        let diff = diff_to(&self.registry(), records);
        if diff.is_empty() {
            return Some(false);
        }
        self.apply_diff(&diff);
        Some(true)
    }

    fn apply_diff(&self, diff: &RegistryDiff) {
        let gone: Vec<App> = {
            let mut registry = self
                .inner
                .registry
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let gone = diff
                .removed_apps
                .iter()
                .filter_map(|id| registry.app_by_id(id).cloned())
                .collect();
            registry.apply(diff);
            self.inner.generation.fetch_add(1, Ordering::Release);
            gone
        };
        for app in gone {
            self.forget_app(&app);
        }
        for app in &diff.added.apps {
            if self.channel(&app.name).is_none() {
                self.open_channel(&app.name);
            }
        }
    }

    /// Installs the cluster's log bus: from now on ingest hands accepted lines to it, and
    /// they reach the channels through `Channel::publish_numbered` (the bus reader). Emitters
    /// made from now on write through its outbox of `outbox_lines` lines (started here when
    /// within a tokio runtime).
    pub fn set_bus(&self, bus: Arc<dyn LineBus>, outbox_lines: usize) {
        if tokio::runtime::Handle::try_current().is_ok() {
            let outbox = outbox::start(self, bus.clone(), outbox_lines);
            *self.inner.outbox.write().unwrap_or_else(|p| p.into_inner()) = Some(outbox.clone());
            // Taken apart from the registry's lock: no lock held while taking the other.
            let channels: Vec<(String, Arc<Channel>)> = self
                .channels()
                .iter()
                .map(|(name, channel)| (name.clone(), channel.clone()))
                .collect();
            for (name, channel) in channels {
                let id = self
                    .registry()
                    .app(&name)
                    .map(|app| Arc::from(app.id.as_str()));
                if let Some(id) = id {
                    channel.set_bus_sink(outbox.clone(), id);
                }
            }
        }
        *self.inner.bus.write().unwrap_or_else(|p| p.into_inner()) = Some(bus);
    }

    /// The outbox of emitters' lines to the bus, when the router is a cluster node.
    pub fn outbox(&self) -> Option<Arc<BusOutbox>> {
        self.inner
            .outbox
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether this router is a cluster node that has not joined yet (`awaits_bus`, and no
    /// bus installed): ingest refuses, readiness fails.
    pub fn awaiting_bus(&self) -> bool {
        self.inner.config.awaits_bus && self.bus().is_none()
    }

    /// The log bus, when the router is a cluster node.
    pub fn bus(&self) -> Option<Arc<dyn LineBus>> {
        self.inner
            .bus
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn channels(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Channel>>> {
        self.inner
            .channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Each app's rate budget on this node: `--app-rate` shared among the cluster's live
    /// nodes (`set_rate_share`), rounded up.
    pub fn node_rate(&self) -> u64 {
        let share = self.inner.rate_share.load(Ordering::Relaxed).max(1);
        self.inner.config.app_rate.div_ceil(share)
    }

    /// Shares each app's rate budget among `nodes` live nodes of a cluster (a node's
    /// heartbeat counts them): every app may send `--app-rate` lines a second to the cluster
    /// as a whole, a sender spread over the nodes as a load balancer spreads it. A sender
    /// pinned to one node gets that node's share.
    pub fn set_rate_share(&self, nodes: u64) {
        let nodes = nodes.max(1);
        if self.inner.rate_share.swap(nodes, Ordering::Relaxed) == nodes {
            return;
        }
        let rate = self.node_rate();
        for channel in self.channels().values() {
            channel.set_rate(rate);
        }
    }

    fn open_channel(&self, name: &str) -> Arc<Channel> {
        let config = ChannelConfig {
            history_lines: self.inner.config.history_lines,
            history_bytes: self.inner.config.history_bytes,
            rate: self.node_rate(),
            max_tails: self.inner.config.max_tails_per_app,
        };
        let seq_file = self.inner.config.seq_dir.as_deref().and_then(|dir| {
            let id = self.registry().app(name)?.id.clone();
            Some(SeqFile::new(dir, &id))
        });
        let channel = Arc::new(Channel::new(
            AppName::from(name),
            config,
            self.inner.consumers.clone(),
            seq_file,
        ));
        let id = self
            .registry()
            .app(name)
            .map(|app| Arc::from(app.id.as_str()));
        if let (Some(outbox), Some(id)) = (self.outbox(), id) {
            channel.set_bus_sink(outbox, id);
        }
        self.inner
            .channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), channel.clone());
        channel
    }

    /// Changes to the registry so far; a cached token lookup made at an older generation must
    /// be made again.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Makes an app, its channel and its first ingest token.
    pub fn create_app(&self, name: &str) -> Result<(App, Token), RegistryError> {
        let made = self.change(|r| r.create_app(name))?;
        if self.channel(name).is_none() {
            self.open_channel(name);
        }
        Ok(made)
    }

    /// Deletes an app: its channel closes (tails end), its tokens and keys stop working, and
    /// everything hung on its id elsewhere (drains, sessions, saved history) is let go at once.
    pub fn delete_app(&self, name: &str) -> Result<App, RegistryError> {
        let app = self.change(|r| r.delete_app(name))?;
        self.forget_app(&app);
        Ok(app)
    }

    /// Closes a deleted app's channel and tells every hook, once (the channel's removal is
    /// the proof it was not done already).
    fn forget_app(&self, app: &App) {
        let channel = self
            .inner
            .channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&app.name);
        let Some(channel) = channel else {
            return;
        };
        channel.close();
        let hooks: Vec<_> = self
            .inner
            .lifecycle
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for hook in hooks {
            hook.app_deleted(app);
        }
    }

    /// Tells `hook` of every app deleted from now on.
    pub fn on_app_deleted(&self, hook: Arc<dyn AppLifecycle>) {
        self.inner
            .lifecycle
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Every app, by name.
    pub fn apps(&self) -> Vec<App> {
        self.registry().apps().cloned().collect()
    }

    /// The app called `name`.
    pub fn app(&self, name: &str) -> Option<App> {
        self.registry().app(name).cloned()
    }

    /// The app whose id is `id`.
    pub fn app_by_id(&self, id: &str) -> Option<App> {
        self.registry().app_by_id(id).cloned()
    }

    /// The channel of the app called `name`.
    pub fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.channels().get(name).cloned()
    }

    /// The channel of the app whose id is `id`: `None` once that app is gone, even when
    /// another app has taken its name.
    pub fn channel_by_id(&self, id: &str) -> Option<Arc<Channel>> {
        let name = self.registry().app_by_id(id)?.name.clone();
        self.channel(&name)
    }

    /// Every channel.
    pub fn all_channels(&self) -> Vec<Arc<Channel>> {
        let mut all: Vec<_> = self.channels().values().cloned().collect();
        all.sort_by(|a, b| a.app().cmp(b.app()));
        all
    }

    /// The tokens of `app`.
    pub fn tokens(&self, app: &str) -> Vec<Token> {
        self.registry().tokens(app)
    }

    /// A new ingest token for `app`, whose lines carry the source `name`.
    pub fn create_token(&self, app: &str, name: &str) -> Result<Token, RegistryError> {
        self.change(|r| r.create_token(app, name))
    }

    /// Replaces `app`'s token with a new one for the same source.
    pub fn rotate_token(&self, app: &str, token: &str) -> Result<Token, RegistryError> {
        self.change(|r| r.rotate_token(app, token))
    }

    /// Revokes `app`'s token.
    pub fn revoke_token(&self, app: &str, token: &str) -> Result<Token, RegistryError> {
        self.change(|r| r.revoke_token(app, token))
    }

    /// Where a token's lines go, if it is a live token of a live app.
    pub fn resolve_token(&self, token: &[u8]) -> Option<TokenTarget> {
        let token = std::str::from_utf8(token).ok()?;
        let (app, source, app_id) = {
            let reg = self.registry();
            let t = reg.token(token)?;
            let app_id = Arc::from(t.app_id.as_str());
            // The usual name is a static `Bytes`: cloning it per line touches no counter.
            let source = match t.name.as_str() {
                "app" => Bytes::from_static(crate::line::APP_SOURCE),
                name => Bytes::copy_from_slice(name.as_bytes()),
            };
            (reg.app_by_id(&t.app_id)?.name.clone(), source, app_id)
        };
        let channel = self.channel(&app)?;
        Some(TokenTarget {
            channel,
            source,
            token: Arc::from(token),
            app_id,
        })
    }

    /// A new API key.
    pub fn create_key(&self, scope: &KeyScope) -> Result<NewKey, RegistryError> {
        self.change(|r| r.create_key(scope))
    }

    /// The keys `scope` may see.
    pub fn keys(&self, scope: &KeyScope) -> Vec<ApiKey> {
        self.registry().keys(scope)
    }

    /// Revokes key `id`, if `by` may act on it.
    pub fn revoke_key(&self, id: &str, by: &KeyScope) -> Result<ApiKey, RegistryError> {
        self.change(|r| r.revoke_key(id, by))
    }

    /// Replaces key `id` with a new one, if `by` may act on it.
    pub fn rotate_key(&self, id: &str, by: &KeyScope) -> Result<NewKey, RegistryError> {
        self.change(|r| r.rotate_key(id, by))
    }

    /// Makes sure operator key `secret` works (a cluster node's key given at start, or the
    /// one it made at its first start), without retiring any other node's: `configured` says
    /// which (a configured key cannot be revoked through the API).
    pub fn ensure_operator_key(&self, secret: &str, configured: bool) -> Result<(), RegistryError> {
        if self
            .authenticate(secret)
            .is_some_and(|c| c.scope == KeyScope::Operator)
        {
            return Ok(());
        }
        self.change(|r| {
            r.ensure_operator_key(secret, configured);
            Ok(())
        })
    }

    /// Who presents API key `secret`, if anyone.
    pub fn authenticate(&self, secret: &str) -> Option<Caller> {
        self.registry().authenticate(secret)
    }

    /// An emitter writing into `app` as `source`, for the stack's layers: into its channel,
    /// or on a cluster node through the outbox to the bus (`Channel::bus_sink`).
    pub fn emitter(&self, app: &str, source: &str) -> Option<Emitter> {
        self.channel(app).map(|c| Emitter::new(c, source))
    }

    /// A router-wide consumer: every app's lines, in a queue of `capacity` lines of its own.
    pub fn subscribe_all(&self, name: &str, capacity: usize) -> Subscription {
        self.inner.consumers.subscribe(name, capacity)
    }

    /// A router-wide consumer that resumes: for each app, the history lines after `after(app)`
    /// (the last `seq` it has of that app; 0: none, so all of history), with a `Loss` when
    /// history no longer reaches back that far, then every live line in its queue of
    /// `capacity` lines. Nothing is missed or seen twice at the boundary: each app's snapshot
    /// and the attachment happen under that app's channel lock. An app made meanwhile waits.
    /// `after` runs under those locks: it must not call into the router.
    pub fn subscribe_all_from(
        &self,
        name: &str,
        capacity: usize,
        after: &dyn Fn(&AppName) -> u64,
    ) -> Resumed {
        // The map's read lock is held throughout, so no channel opens (and takes lines)
        // between the snapshot and the attachment.
        let channels = self.channels();
        let mut all: Vec<Arc<Channel>> = channels.values().cloned().collect();
        all.sort_by(|a, b| a.app().cmp(b.app()));
        let resumed = consumers::resume(&self.inner.consumers, &all, name, capacity, after);
        drop(channels);
        resumed
    }

    /// Installs the cluster's shared router-wide consumers: from now on `consumer_feed`
    /// hands out a consumer's share of the cluster's lines rather than this router's own.
    pub fn set_shared_consumers(&self, shared: Arc<dyn SharedConsumers>) {
        *self
            .inner
            .shared_consumers
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(shared);
    }

    /// Where the router-wide consumer `name` reads: alone, its own subscription (as
    /// `subscribe_all`, a queue of `capacity` lines); in a cluster, its share of the cluster's
    /// lines through the shared consumer `name` (each line to one node, acknowledged by
    /// `ConsumerFeed::done`).
    pub fn consumer_feed(&self, name: &str, capacity: usize) -> ConsumerFeed {
        let shared = self
            .inner
            .shared_consumers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match shared {
            Some(shared) => ConsumerFeed::Shared(shared.feed(name)),
            None => ConsumerFeed::Local(self.subscribe_all(name, capacity)),
        }
    }

    /// The router-wide consumers' queues.
    pub fn consumer_stats(&self) -> Vec<ConsumerStats> {
        self.inner.consumers.stats()
    }

    /// Rejections no app can be charged with (frames with no valid token).
    pub fn unattributed(&self) -> &RejectCounts {
        &self.inner.unattributed
    }

    /// How often each limit outside the line path refused.
    pub fn limits(&self) -> &LimitCounters {
        &self.inner.limits
    }

    /// The ingest listeners' counters.
    pub fn ingest_stats(&self) -> &crate::ingest::IngestStats {
        &self.inner.ingest
    }

    /// Housekeeping, once a second: owed in-stream reports.
    pub fn tick(&self, now: Timestamp) {
        for channel in self.all_channels() {
            channel.tick(now);
        }
    }

    /// Whether the router is stopping (ingest answers 503, readiness fails).
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Starts stopping: from now on ingest is refused and tails end once drained.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        for channel in self.all_channels() {
            channel.close();
        }
        self.inner.consumers.close_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::LineFilter;

    #[test]
    fn tokens_resolve_to_their_app_and_source_until_revoked() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        let (_, token) = router.create_app("shop").unwrap();
        let g = router.generation();
        let target = router.resolve_token(token.token.as_bytes()).unwrap();
        assert_eq!(
            (target.channel.app().as_str(), &target.source[..]),
            ("shop", &b"app"[..])
        );
        router.revoke_token("shop", &token.token).unwrap();
        assert!(router.generation() > g);
        assert!(router.resolve_token(token.token.as_bytes()).is_none());
        assert!(router.resolve_token(b"\xff\xfe").is_none());
    }

    /// A cluster's store that takes every change, or none (PostgreSQL away).
    #[derive(Debug, Default)]
    struct FakeStore {
        down: AtomicBool,
        commits: std::sync::Mutex<Vec<RegistryDiff>>,
    }

    impl RegistryStore for FakeStore {
        fn commit(&self, diff: &RegistryDiff) -> Result<(), RegistryError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(RegistryError::Unavailable("down".into()));
            }
            self.commits.lock().unwrap().push(diff.clone());
            Ok(())
        }
    }

    #[derive(Debug, Default)]
    struct Deleted(std::sync::Mutex<Vec<String>>);

    impl AppLifecycle for Deleted {
        fn app_deleted(&self, app: &App) {
            self.0.lock().unwrap().push(app.name.clone());
        }
    }

    #[test]
    fn with_a_store_a_change_is_committed_first_and_an_outage_changes_nothing() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        let store = Arc::new(FakeStore::default());
        router.set_registry_store(store.clone());
        let (_, token) = router.create_app("shop").unwrap();
        assert!(router.channel("shop").is_some());
        assert!(router.resolve_token(token.token.as_bytes()).is_some());
        assert_eq!(store.commits.lock().unwrap().len(), 1);

        store.down.store(true, Ordering::SeqCst);
        let g = router.generation();
        assert!(matches!(
            router.create_app("blog"),
            Err(RegistryError::Unavailable(_))
        ));
        assert!(matches!(
            router.revoke_token("shop", &token.token),
            Err(RegistryError::Unavailable(_))
        ));
        assert!(router.app("blog").is_none() && router.channel("blog").is_none());
        assert_eq!(router.generation(), g, "nothing changed");
        // Ingest with a known token goes on.
        assert!(router.resolve_token(token.token.as_bytes()).is_some());
        // A refusal of the registry's own is still that, not an outage.
        assert!(matches!(
            router.create_app("Not A Name"),
            Err(RegistryError::InvalidAppName(_))
        ));
    }

    #[test]
    fn another_nodes_changes_open_and_close_channels_and_tell_the_hooks_once() {
        let other = Router::new(RouterConfig::default(), Registry::in_memory());
        other.create_app("shop").unwrap();
        other.create_app("blog").unwrap();
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        let deleted = Arc::new(Deleted::default());
        router.on_app_deleted(deleted.clone());
        assert!(router.replace_registry(&other.registry_records()));
        assert!(router.channel("shop").is_some() && router.channel("blog").is_some());
        assert!(
            !router.replace_registry(&other.registry_records()),
            "no change"
        );

        other.delete_app("blog").unwrap();
        let (_, token) = other.create_app("blog").unwrap(); // the same name, a new id
        assert!(router.replace_registry(&other.registry_records()));
        assert_eq!(*deleted.0.lock().unwrap(), ["blog"]);
        let blog = router.channel("blog").expect("the new app's channel");
        assert!(!blog.is_closed());
        assert!(router.resolve_token(token.token.as_bytes()).is_some());
        // A read found stale is not applied.
        other.delete_app("shop").unwrap();
        assert_eq!(
            router.replace_registry_if(&other.registry_records(), &|| false),
            None
        );
        assert!(router.channel("shop").is_some());
    }

    #[derive(Debug)]
    struct NoBus;

    impl LineBus for NoBus {
        fn publish<'a>(&'a self, _batch: &'a crate::bus::BusBatch) -> crate::bus::BusFuture<'a> {
            Box::pin(async { Err(crate::bus::BusError("none".into())) })
        }
    }

    #[test]
    fn a_node_about_to_join_awaits_its_bus_and_then_does_not() {
        let plain = Router::new(RouterConfig::default(), Registry::in_memory());
        assert!(!plain.awaiting_bus());
        let config = RouterConfig {
            awaits_bus: true,
            ..RouterConfig::default()
        };
        let node = Router::new(config, Registry::in_memory());
        assert!(node.awaiting_bus());
        node.set_bus(Arc::new(NoBus), OUTBOX_CAPACITY);
        assert!(!node.awaiting_bus());
        assert!(node.bus().is_some());
    }

    #[test]
    fn an_emitter_writes_into_its_app_only() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        router.create_app("blog").unwrap();
        let e = router.emitter("shop", "paas").unwrap();
        e.try_emit("router", "at=info status=200").unwrap();
        let shop = router.channel("shop").unwrap();
        let blog = router.channel("blog").unwrap();
        let got = shop.history(10, &LineFilter::default().source("router"));
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].message[..], b"at=info status=200");
        assert!(blog.history(10, &LineFilter::default()).is_empty());
    }

    #[test]
    fn deleting_an_app_closes_its_channel_and_emitters() {
        let router = Router::new(RouterConfig::default(), Registry::in_memory());
        router.create_app("shop").unwrap();
        let e = router.emitter("shop", "app").unwrap();
        let all = router.subscribe_all("index", 10);
        e.try_emit("web.1", "one").unwrap();
        router.delete_app("shop").unwrap();
        assert!(matches!(
            e.try_emit("web.1", "two"),
            Err(EmitError::Closed(_))
        ));
        assert_eq!(all.queue().try_take(10).lines.len(), 1);
        assert!(router.channel("shop").is_none());
    }
    #[test]
    fn every_platform_line_told_is_counted_once_where_it_went() {
        use crate::platform::PlatformEvent;
        let config = RouterConfig {
            app_rate: 2,
            ..RouterConfig::default()
        };
        let router = Router::new(config, Registry::in_memory());
        router.create_app("shop").unwrap();
        let shop = router.channel("shop").unwrap();
        let drain = shop.subscribe("drain", "d.1", LineFilter::default(), 100);
        let tail = shop.subscribe("tail", "t.1", LineFilter::default(), 100);
        let lines = (0..5)
            .map(|i| crate::line::tests::line("shop", "app", "web.1", "x", i))
            .collect();
        assert_eq!(shop.publish(lines, Timestamp::now()), 2);
        let since = Timestamp::now();
        let for_drain = shop.emit_for_drain(
            PlatformEvent::DrainOverflow {
                drain: "d.1".into(),
                dropped: 4,
                since,
            },
            "d.1",
        );
        shop.emit(PlatformEvent::CertificateInvalid {
            error: "bad".into(),
            uri: "syslog+tls://x:6514".into(),
        });
        let l11 = shop.emit_to_reader(PlatformEvent::TailOverflow { dropped: 9, since });
        let told = |lines: &[crate::line::LogLine], code: &str| {
            let needle = format!("Error {code} ");
            lines
                .iter()
                .filter(|l| l.message.starts_with(needle.as_bytes()))
                .count() as u64
        };
        let history = shop.history(100, &LineFilter::default());
        let events = shop.platform_events();
        for code in ["L10", "L12", "L14"] {
            assert_eq!(told(&history, code), events.count(code), "{code}");
            assert_eq!(events.count(code), 1, "{code}");
        }
        assert_eq!((events.dropped("L12"), events.dropped("L10")), (3, 4));
        // L11 concerns one tail session: counted, never in the stream.
        assert_eq!((told(&history, "L11"), events.count("L11")), (0, 1));
        assert!(l11.message.starts_with(b"Error L11 "));
        // A drain's own L10 is handed to it, not queued for it again.
        let to_drain = drain.queue().try_take(100).lines;
        assert_eq!(told(&to_drain, "L10"), 0);
        assert!(for_drain.message.starts_with(b"Error L10 "));
        assert_eq!(told(&tail.queue().try_take(100).lines, "L10"), 1);
        // Nothing is told, nor counted, once the channel is closed.
        shop.close();
        shop.emit(PlatformEvent::CertificateInvalid {
            error: "bad".into(),
            uri: "u".into(),
        });
        assert_eq!(events.count("L14"), 1);
    }
}

#[cfg(test)]
#[path = "tests/contract.rs"]
mod contract_tests;
