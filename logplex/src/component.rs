//! `Component`: a part of the platform that `Logplex` owns and stops, such as the drains, the
//! index or metrics. Components are added once the router runs
//! (`Logplex::add_component`); `Logplex::stop` stops them after every channel has closed (so
//! every line has reached their queues), in reverse order of adding, each with what is left
//! of one shutdown bound.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What `Component::stop` returns: a future that finishes once the component has stopped.
pub type StopFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A part of the platform with a lifecycle: started by its maker (usually subscribing to the
/// router), stopped by `Logplex`.
pub trait Component: Send + Sync + std::fmt::Debug {
    /// Its name, for logs (`drains`, `index`).
    fn name(&self) -> &str;

    /// Finishes what it holds (delivers buffered lines, flushes files) and stops, taking at
    /// most `within`; `Logplex` stops waiting for it past that bound.
    fn stop(&self, within: Duration) -> StopFuture<'_>;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{Logplex, LogplexConfig, Router};

    /// Records, when stopped, its name and whether the router had closed its channels.
    #[derive(Debug)]
    struct Probe {
        name: &'static str,
        router: Router,
        log: Arc<Mutex<Vec<(&'static str, bool)>>>,
    }

    impl Component for Probe {
        fn name(&self) -> &str {
            self.name
        }

        fn stop(&self, _within: Duration) -> StopFuture<'_> {
            Box::pin(async move {
                let closed = self.router.all_channels().iter().all(|c| c.is_closed());
                if let Ok(mut log) = self.log.lock() {
                    log.push((self.name, closed && self.router.is_stopping()));
                }
            })
        }
    }

    /// Never stops by itself.
    #[derive(Debug)]
    struct Stuck;

    impl Component for Stuck {
        fn name(&self) -> &str {
            "stuck"
        }

        fn stop(&self, _within: Duration) -> StopFuture<'_> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn components_stop_after_the_channels_close_last_added_first_within_the_bound() {
        let dir = std::env::temp_dir().join(format!("logplex-component-{}", std::process::id()));
        let mut config = LogplexConfig::new(dir.clone());
        config.api_port = 0;
        (config.syslog_port, config.syslog_tls_port, config.udp_port) = (None, None, None);
        config.shutdown_timeout = Duration::from_millis(200);
        let mut logplex = Logplex::start(config).await.unwrap();
        logplex.router().create_app("shop").unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        logplex.add_component(Arc::new(Stuck));
        for name in ["drains", "index"] {
            let router = logplex.router().clone();
            let log = log.clone();
            logplex.add_component(Arc::new(Probe { name, router, log }));
        }
        logplex.stop().await; // returns although `stuck` never stops
        let log = log.lock().unwrap().clone();
        assert_eq!(log, [("index", true), ("drains", true)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
