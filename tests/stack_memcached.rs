//! The memcached add-on end to end: `paas up --memcached` runs Debian's memcached, a dyno
//! reaches it through `MEMCACHE_SERVERS` with a standard client (libmemcached's `memccp` and
//! `memccat`), and its figures come into the app's stream as `app[memcached]` add-on lines.

mod support;

use std::time::{Duration, Instant};

use support::{Router, TempDir};

#[test]
fn a_dyno_uses_memcached_and_its_figures_reach_the_stream() {
    let dir = TempDir::new("memcached");
    let app = dir.0.join("app-src");
    std::fs::create_dir_all(&app).expect("app dir");
    // Stores a value, reads it back, asks for a key that is not there, then idles.
    let worker = "worker: sh -c 'cd \"$(mktemp -d)\" && printf cached-value > greeting && \
                  memccp --servers=$MEMCACHE_SERVERS greeting && \
                  echo \"read: $(memccat --servers=$MEMCACHE_SERVERS greeting)\" && \
                  (memccat --servers=$MEMCACHE_SERVERS missing-key || true) && \
                  echo \"servers: $MEMCACHIER_SERVERS\" && exec sleep 3600'\n";
    std::fs::write(app.join("Procfile"), worker).expect("Procfile");
    let app = app.display().to_string();
    let up = Router::up(
        &dir.0,
        &[
            "--app-dir",
            &app,
            "--name",
            "hello",
            "--memcached",
            "--metrics-interval",
            "1",
            "--scale",
            "worker=1",
        ],
    );
    let start = Instant::now();
    let (mut read, mut sample) = (None, None);
    while read.is_none() || sample.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            up.history("hello", &[])
        );
        std::thread::sleep(Duration::from_millis(200));
        let lines = up.history("hello", &[]);
        read = lines
            .iter()
            .find(|l| l.contains("app[worker.1]: read: "))
            .cloned();
        sample = lines
            .iter()
            .rev()
            .find(|l| l.contains("app[memcached]: source=memcached") && !l.contains("hits=0 "))
            .cloned();
    }
    let read = read.unwrap_or_default();
    assert!(read.ends_with("read: cached-value"), "{read}");
    let sample = sample.unwrap_or_default();
    let fields = support::fields(&sample);
    assert_eq!(fields["sample#memcached.hits"], "1", "{sample}");
    assert_eq!(fields["sample#memcached.misses"], "1", "{sample}");
    assert!(
        fields["sample#memcached.bytes"].ends_with("bytes"),
        "{sample}"
    );
    assert!(
        fields.contains_key("sample#memcached.evictions"),
        "{sample}"
    );
    assert!(
        fields.contains_key("sample#memcached.connections"),
        "{sample}"
    );
    // MEMCACHIER_SERVERS names it too.
    let lines = up.history("hello", &[]);
    assert!(
        lines.iter().any(|l| l.contains("servers: 127.0.0.1:")),
        "{lines:?}"
    );
    // The app's add-ons list it.
    let addons = up.get_json("/apps/hello/addons");
    assert_eq!(addons[0]["addon_service"]["name"], "memcachier", "{addons}");
}
